/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Authorization decisions of the control plane, as pure functions of
 * credentials so that each rule has a unit test. The bus code gathers the
 * inputs (SO_PEERCRED/SO_PEERGROUPS at accept time) and only acts on the
 * answer.
 *
 * Who may call at all: root, or a member (primary or supplementary group) of
 * a group in the configured AllowGroups=.
 *
 * Whose memory a caller may register is not decided here: the kernel
 * decides, when the caller opens /proc/PID/mem (access.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BUS_AUTH_MAX_GROUPS 256

typedef struct PeerCreds {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t groups[BUS_AUTH_MAX_GROUPS];  /* supplementary groups */
        size_t n_groups;
        uint64_t cap_permitted;             /* the caller's permitted capability set */
} PeerCreds;

/* true if the peer may use the API at all. */
bool bus_auth_may_call(const PeerCreds *peer, const gid_t *allow_gids, size_t n_allow_gids);
