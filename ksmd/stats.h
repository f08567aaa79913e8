/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Statistics, per region and global. Counters of one full scan accumulate in
 * a ScanCounters while the scan runs and are published whole when it ends, so
 * a reader never sees half a pass. All counters are pages unless named
 * otherwise.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/ksmd_helper.h>

#include "cow-guard.h"
#include "helper-client.h"
#include "reasons.h"

typedef struct ScanCounters {
        uint64_t pages_scanned;          /* pagemap entries examined */
        uint64_t pages_read;             /* contents read with process_vm_readv */
        uint64_t pages_unchanged;        /* proven unchanged by a clean soft-dirty bit: not read */
        uint64_t pages_skipped_merged;   /* merge mode: still map the helper's shared page or the zero page
                                          * they were merged into (pagemap): not read */
        uint64_t pages_not_present;      /* not present or swapped out: never faulted in */
        uint64_t pages_swapped;          /* of those, swapped out */
        uint64_t pages_zero_mapped;      /* already map the kernel zero page */
        uint64_t pages_external;         /* not exclusively mapped (fork COW, kernel KSM, ...) */
        uint64_t pages_volatile;         /* content changed since the previous read */
        uint64_t pages_skipped_volatile; /* not read this pass because they keep changing */
        uint64_t pages_unreadable;       /* process_vm_readv failed on them */
        uint64_t pages_dirty;            /* soft-dirty set on a page with a hash */
        uint64_t pages_rewritten_same;   /* dirty, read again, content was unchanged */
        uint64_t pages_zero;             /* stable all-zero private pages (MERGE_ZERO candidates); in merge
                                          * mode also pages the helper merged that still map the zero page */
        uint64_t pages_unshared;         /* stable candidates with no duplicate */
        uint64_t pages_shared;           /* distinct contents with >= 2 candidates this pass
                                          * (KSM's pages_shared); in merge mode also each shared page
                                          * of the helper found mapped, once */
        uint64_t pages_sharing;          /* further candidates of those contents (KSM's pages_sharing); in
                                          * merge mode also the further pages found mapping a shared page. */
        uint64_t pages_by_reason[_PAGE_REASON_MAX]; /* every page of the regions under one reason
                                                     * (reasons.h); they add up to the regions' pages */
} ScanCounters;

void scan_counters_add(ScanCounters *a, const ScanCounters *b);

/* Pages merging saves (or would save): pages_sharing + pages_zero. */
static inline uint64_t scan_counters_saving_pages(const ScanCounters *c) {
        return c->pages_sharing + c->pages_zero;
}

typedef struct MergeCounters {
        uint64_t requests;               /* netlink requests sent */
        uint64_t items;                  /* items sent */
        uint64_t retries;                /* items queued again after BUSY/NO_MEMORY */
        uint64_t dropped;                /* items given up after the retry limit or a full queue */
        uint64_t estimated;              /* estimate mode: items that would have been sent */
        uint64_t by_result[__KSMD_HELPER_RESULT_MAX];
} MergeCounters;

typedef struct Stats {
        ScanCounters last;               /* the last completed full scan, all regions */
        uint64_t full_scans;
        uint64_t last_full_scan_usec;    /* duration of the last full scan */
        uint64_t rest_usec;              /* the rest after it (it found almost nothing new); 0: none */
        uint64_t current_scan_pages;     /* pages examined so far in the running scan */
        uint64_t tracked_pages;          /* pages with a slot this pass */
        uint64_t metadata_bytes;         /* the daemon's own index memory */
        uint64_t cpu_nsec_per_page;      /* the daemon's measured CPU per page examined (moving average) */
        uint64_t batch_pages;            /* the rate in effect (PagesToScan= or adapted)... */
        uint64_t batch_sleep_usec;       /* ...and the pause between batches */
        bool live;                       /* merging through the helper (else estimate mode) */
        /* Live: the helper's figures at its last INFO, at the end of the last full scan. */
        uint64_t helper_bytes_saved;     /* its KSMD_HELPER_STAT_BYTES_SAVED (all its merges since it
                                          * loaded, also outside today's regions and pages written since) */
        uint64_t helper_pages_owned;     /* its shared pages: memory never swapped out or migrated */
        uint64_t helper_pages_mapped;    /* page table entries mapping them */
        uint64_t helper_no_memory;       /* items it answered NO_MEMORY since it loaded */
        HelperPoolNode helper_pool[HELPER_POOL_NODES_MAX]; /* where its pages come from, per NUMA node */
        size_t n_helper_pool;
        MergeCounters merge;
        uint64_t cow_breaks;             /* merged pages found written since the start: COW breaks
                                          * (merge-policy.h) */
        CowStatus cow;                   /* the unmerge debt, the headroom and the COW guard (cow-guard.h) */
} Stats;

/*
 * Bytes saved (live) or that merging would save (estimate) in the registered
 * regions, as the last full scan found them: its pages_sharing + pages_zero.
 * In merge mode this counts what the pagemap showed mapped to shared or zero
 * pages, plus the merges the scan submitted.
 */
uint64_t stats_saving_bytes(const Stats *s);

/*
 * A one-line summary for sd_notify STATUS= and logs, e.g.
 * "estimate: 12.0 MiB saveable (3072 pages) after 2 scans; scanning 45%".
 * Returns the length written, truncating like snprintf.
 */
int stats_format_status(const Stats *s, bool estimate, bool paused, uint64_t total_pages, char *buf,
                        size_t size);
