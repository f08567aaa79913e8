/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "bus-auth.h"

bool bus_auth_is_root_or_member(const PeerCreds *peer, const gid_t *gids, size_t n_gids) {
        if (peer->uid == 0)
                return true;
        for (size_t i = 0; i < n_gids; i++) {
                if (peer->gid == gids[i])
                        return true;
                for (size_t j = 0; j < peer->n_groups; j++)
                        if (peer->groups[j] == gids[i])
                                return true;
        }
        return false;
}

bool bus_auth_may_call(const PeerCreds *peer, const gid_t *allow_gids, size_t n_allow_gids,
                       const gid_t *operator_gids, size_t n_operator_gids) {
        return bus_auth_is_root_or_member(peer, allow_gids, n_allow_gids) ||
               bus_auth_may_operate(peer, operator_gids, n_operator_gids);
}

bool bus_auth_may_operate(const PeerCreds *peer, const gid_t *operator_gids, size_t n_operator_gids) {
        return bus_auth_is_root_or_member(peer, operator_gids, n_operator_gids);
}

int bus_auth_may_connect(uid_t uid, const ConnectionCounts *n, uint64_t max_connections,
                         uint64_t max_connections_per_user, const char **ret_reason) {
        if (uid == 0) {
                if (n->total < max_connections + BUS_AUTH_ROOT_RESERVE)
                        return 0;
                *ret_reason = "MaxConnections= and root's reserve are all taken";
                return -EUSERS;
        }
        if (n->non_root >= max_connections) {
                *ret_reason = "MaxConnections= are taken by users other than root";
                return -EUSERS;
        }
        if (n->of_uid >= max_connections_per_user) {
                *ret_reason = "the user holds MaxConnectionsPerUser= connections";
                return -EUSERS;
        }
        return 0;
}

static int deny(const char **ret_reason, const char *reason) {
        *ret_reason = reason;
        return -EPERM;
}

int bus_auth_may_access(const PeerCreds *peer, const TargetIds *t, int yama_scope, const char **ret_reason) {
        if (peer->uid == 0)
                return 0;

        if (t->uid != peer->uid || t->euid != peer->uid || t->suid != peer->uid)
                return deny(ret_reason, "the process runs as another user");
        if (t->gid != peer->gid || t->egid != peer->gid || t->sgid != peer->gid)
                return deny(ret_reason, "the process runs with another group");
        if (!t->dumpable)
                return deny(ret_reason, "the process is not dumpable (setuid, or PR_SET_DUMPABLE 0)");
        if ((t->cap_permitted & ~peer->cap_permitted) != 0)
                return deny(ret_reason, "the process holds capabilities the caller lacks");
        if (yama_scope >= 2)
                return deny(ret_reason, "Yama ptrace_scope 2 or more lets only root attach to processes");
        if (yama_scope == 1 && !t->descends_from_caller)
                return deny(ret_reason,
                            "Yama ptrace_scope 1 lets a caller attach only to its own descendants");
        return 0;
}
