/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "ledger.h"

bool ledger_may_see(const Region *r, uid_t uid) {
        return uid == 0 || r->owner_uid == uid;
}

size_t ledger_count_regions(RegionRegistry *reg, uid_t uid) {
        size_t n = 0;

        /* A region whose process exited counts no more, even before the scan timer drops it. */
        REGISTRY_FOREACH(r, reg)
                if (r->owner_uid == uid && !r->gone && region_alive(r) > 0)
                        n++;
        return n;
}

int ledger_check_region_quota(RegionRegistry *reg, uid_t uid, uint64_t max_per_client) {
        if (uid == 0 || ledger_count_regions(reg, uid) < max_per_client)
                return 0;
        return -EDQUOT;
}
