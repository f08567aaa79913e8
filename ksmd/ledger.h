/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The ownership ledger of the control plane: who may see and change which
 * region, and how many a caller holds. A region belongs to the uid that
 * registered it (Region.owner_uid; 0 for the daemon's own registrations:
 * the command line and [AutoRegister]). Root sees and changes every region;
 * anyone else only its own, at most MaxRegionsPerClient= of them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "region.h"

/* true if uid may see and change the region. */
bool ledger_may_see(const Region *r, uid_t uid);

/* The regions uid registered whose processes still run. */
size_t ledger_count_regions(RegionRegistry *reg, uid_t uid);

/* 0 if uid may register one more region; -EDQUOT if it holds max_per_client already
 * (root is not limited). */
int ledger_check_region_quota(RegionRegistry *reg, uid_t uid, uint64_t max_per_client);
