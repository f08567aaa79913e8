/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: when a page is offered for merging, and how volatility is learned
 *
 * MergePolicy= ([Scan], settings.h) says when a page the scanner reads is
 * offered to the index and so merged once it matches an indexed page:
 *
 *   first-pass  in the pass that first reads it, unless it is known to be
 *               volatile (v > 0, below). The helper compares the bytes under
 *               the page lock before it merges, so merging needs no hash that
 *               held still to be safe; waiting only spares merging pages that
 *               are about to be written, which volatility learns per page.
 *   stable      only once its content held still across two reads, or a
 *               clean soft-dirty bit proved it unchanged: the kernel's KSM
 *               waits for a stable checksum so.
 *
 * Under either policy a page with v > 0 is offered only once it held still.
 * In estimate mode (no helper) "offered" means counted as the saving a merge
 * would bring: first-pass counts a duplicate in the pass that first reads it,
 * so memory that holds still shows after one full scan the estimate that
 * stable shows after two, and a page found changed is left out from then on
 * under both. Nothing is merged there, so no COW break teaches volatility.
 *
 * The volatility level v (0..7, three bits of each PageSlot, index.h: it
 * costs nothing beyond the 8-byte slot) moves with what happens to the page:
 *
 *   a read finds its content changed since the last read          v + 1
 *   a read finds it unchanged, or soft-dirty proves it unchanged  v - 1
 *   a COW break: a page merged by the helper (its shared page or  v + 2
 *     the zero page) now maps a private anonymous frame, so the
 *     process wrote it (counted in cow_breaks)
 *   a merged page is found still merged at its tick               v - 1
 *
 * A break raises by two because the read that finds the page unchanged, the
 * one that lets it merge again, lowers by one: a page written back with the
 * same bytes soon after every merge (a hot page) so climbs a level per
 * merge, where +1 would leave it at 1 and merge it every other pass.
 *
 * A page with v > 0 is visited only at its tick, every 2^v passes (pass +
 * page index is a multiple of 2^v, which spreads a run of volatile pages
 * over the passes): a page written again soon after each merge is read, and
 * merged, ever more rarely, at most 2^7 = 128 passes apart; one that stays
 * merged comes back to 0 within 2^v + ... + 2 passes. A page that stops
 * being mapped (not present: unmapped, discarded, paged out) or whose
 * process exits or is unregistered (ksmctl unmerge included) is no COW break.
 * Pagemap cannot tell a write from a discard followed by a fault between two
 * visits (MADV_DONTNEED then a write): that counts as a COW break too.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "macro.h"

typedef enum MergePolicy {
        MERGE_POLICY_FIRST_PASS,         /* offer a page in the pass that first reads it (unless volatile) */
        MERGE_POLICY_STABLE,             /* offer a page once its content held still across two reads */
        _MERGE_POLICY_MAX,
        _MERGE_POLICY_INVALID = -EINVAL,
} MergePolicy;

/* Whether a page of volatility v is visited in pass `pass`; page: its index in its area. */
static inline bool volatility_tick(unsigned v, uint64_t pass, uint64_t page) {
        return v == 0 || ((pass + page) & ((UINT64_C(1) << v) - 1)) == 0;
}

static inline unsigned volatility_raise(unsigned v) {
        return MIN(v + 1, PAGE_SLOT_VOL_MAX);
}

/* After a COW break (see above for why two levels). */
static inline unsigned volatility_raise_broken(unsigned v) {
        return MIN(v + 2, PAGE_SLOT_VOL_MAX);
}

static inline unsigned volatility_lower(unsigned v) {
        return v > 0 ? v - 1 : 0;
}

/*
 * Whether a page just read is offered for merging: still (its content equals
 * that of its last read), v its volatility after this read.
 */
static inline bool merge_policy_offers(MergePolicy p, bool still, unsigned v) {
        return still || (p == MERGE_POLICY_FIRST_PASS && v == 0);
}
