/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Authorization decisions of the control plane, as pure functions of
 * credentials so that each rule has a unit test. The bus code gathers the
 * inputs (SO_PEERCRED/SO_PEERGROUPS at accept time, the target's ids from
 * the /proc reader) and only acts on the answer.
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
 * Whose memory a caller may register: root, any process. Anyone else only a
 * process it could ptrace-attach to, as the kernel decides for
 * process_vm_readv (PTRACE_MODE_ATTACH_REALCREDS, kernel/ptrace.c
 * __ptrace_may_access, security/commoncap.c, security/yama): the target's
 * real, effective and saved uids all equal the caller's uid and its gids the
 * caller's gid, the target is dumpable, it holds no permitted capability the
 * caller lacks, and under Yama ptrace_scope 1 it descends from the caller
 * (scope 2 and 3 allow no one but root here).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc-process.h"

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
        /*
         * TODO(trust-kernel): always 0 now: callers' capabilities are no longer read from
         * /proc/PID/status by pid number, which raced with pid reuse. Only bus_auth_may_access()
         * reads it ("holds capabilities the caller lacks"), so a caller other than root can no
         * longer register a process that holds a permitted capability. Drop the field with the
         * ptrace-style check when the kernel-proven one replaces it.
         */
        uint64_t cap_permitted;
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

/*
 * 0 if the peer may register the target's memory; -EPERM otherwise, with
 * *ret_reason set to a static sentence saying why (for the D-Bus error).
 * yama_scope: /proc/sys/kernel/yama/ptrace_scope, or 0 without Yama.
 */
int bus_auth_may_access(const PeerCreds *peer, const TargetIds *target, int yama_scope,
                        const char **ret_reason);
