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
