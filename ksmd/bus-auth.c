/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "bus-auth.h"

bool bus_auth_may_call(const PeerCreds *peer, const gid_t *allow_gids, size_t n_allow_gids) {
        if (peer->uid == 0)
                return true;
        for (size_t i = 0; i < n_allow_gids; i++) {
                if (peer->gid == allow_gids[i])
                        return true;
                for (size_t j = 0; j < peer->n_groups; j++)
                        if (peer->groups[j] == allow_gids[i])
                                return true;
        }
        return false;
}
