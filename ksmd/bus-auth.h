/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Authorization decisions of the control plane, as pure functions of
 * credentials so that each rule has a unit test. The bus code gathers the
 * inputs (SO_PEERCRED/SO_PEERGROUPS at accept time) and only acts on the
 * answer.
 *
 * Who may call at all: root, or a member (primary or supplementary group) of
 * a group in the configured AllowGroups= or OperatorGroups=. Anyone else is
 * refused when the server accepts the connection, before it counts against
 * any limit.
 *
 * Who may act on the whole host (Pause, Resume, Reload, setting a
 * property): root, or a member of a group in OperatorGroups=.
 *
 * How many connections: users other than root share MaxConnections=, each
 * at most MaxConnectionsPerUser= of them; root is limited by neither but
 * by MaxConnections= + BUS_AUTH_ROOT_RESERVE in all, so that however many
 * connections others hold, root always has BUS_AUTH_ROOT_RESERVE of its own.
 *
 * Whose memory a caller may register is not decided here: the kernel
 * decides, when the caller opens /proc/PID/mem (access.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BUS_AUTH_MAX_GROUPS 256
#define BUS_AUTH_ROOT_RESERVE 4u      /* connections only root may open, beyond MaxConnections= */

/*
 * Who the caller is, as the kernel (private socket) or the bus daemon (system
 * bus) vouches for it; nothing is read from /proc.
 */
typedef struct PeerCreds {
        pid_t pid;
        int pidfd;                          /* the caller's process since it connected (pidfd_open_peer()):
                                             * owned by the connection and closed with it, borrowed by
                                             * copies; -EBADF on the system bus */
        uid_t uid;
        gid_t gid;                          /* primary group; (gid_t) -1 on the system bus, whose daemon
                                             * does not vouch for it: there only groups[] count */
        gid_t groups[BUS_AUTH_MAX_GROUPS];  /* supplementary groups */
        size_t n_groups;
} PeerCreds;

/* true if the peer is root or a member of one of gids. */
bool bus_auth_is_root_or_member(const PeerCreds *peer, const gid_t *gids, size_t n_gids);

/* true if the peer may use the API at all. */
bool bus_auth_may_call(const PeerCreds *peer, const gid_t *allow_gids, size_t n_allow_gids,
                       const gid_t *operator_gids, size_t n_operator_gids);

/* true if the peer may act on the whole host. */
bool bus_auth_may_operate(const PeerCreds *peer, const gid_t *operator_gids, size_t n_operator_gids);

/* The connections a server holds when a peer connects. */
typedef struct ConnectionCounts {
        size_t total;
        size_t non_root;                    /* of peers other than root */
        size_t of_uid;                      /* of the connecting peer's uid */
} ConnectionCounts;

/*
 * 0 if the server may accept one more connection of uid, holding n;
 * -EUSERS otherwise, with *ret_reason set to a static sentence naming the
 * limit (the setting's key).
 */
int bus_auth_may_connect(uid_t uid, const ConnectionCounts *n, uint64_t max_connections,
                         uint64_t max_connections_per_user, const char **ret_reason);
