/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: the scanner
 *
 * The scanner walks all regions in full scans ("passes"), a bounded number of
 * pages per call of scanner_step(), so the event loop never blocks on it.
 * Starting a pass is O(regions) with no /proc access; a region's mappings are
 * re-read and its areas attached to the index when the cursor reaches it. A
 * region registered during a pass joins at the next one. For each chunk of
 * pages it reads /proc/PID/pagemap first and never touches a
 * page that is not present, swapped out, mapping the zero page, or not
 * exclusively mapped (already shared: fork COW, the kernel's KSM, or merged
 * by the helper): scanning faults nothing in and re-reads no merged page.
 * A page merged by the helper is known as such while pagemap still shows it
 * mapping the helper's shared page (not anonymous: PAGEMAP_FILE_OR_SHARED)
 * or the zero page; neither is ever written in place, so it costs no read
 * (pages_skipped_merged). A write gives the process a private copy, a new
 * anonymous frame, which is read again; if a fork shares that copy it is
 * counted as shared elsewhere, never as merged. Pagemap only spares reads:
 * every merge is still decided by the helper comparing bytes.
 *
 * Merge policy and volatility (merge-policy.h): with MergePolicy=first-pass
 * a page read becomes a merge candidate in that very pass unless it is known
 * volatile; with stable only once its content held still across a pass:
 * read twice with equal hashes (or all zero twice), or proven unchanged by
 * soft-dirty. A page found changed, and a merged page found written (a COW
 * break, counted in cow_breaks), raise its volatility level v (0..7): it is
 * read only every 2^v passes and offered only once it held still. A page
 * found still, or still merged, lowers it.
 *
 * Change tracking: when the cursor reaches the first region of a process in
 * a pass and the process needs it, the scanner clears the soft-dirty bits of
 * that process (before reading any of its pages in that pass) and re-reads
 * all of its pages in that pass; a page
 * hashed after the clear (SD_OK in its slot) and whose soft-dirty bit is
 * still clean is unchanged and costs one pagemap entry instead of a read. A
 * clear is needed when the process was never cleared, or when the reads that
 * a clear would have avoided (dirty pages found unchanged) since the last
 * clear add up to half of its tracked pages. Without soft-dirty (kernel
 * without CONFIG_MEM_SOFT_DIRTY, or clear_refs refused) every page is read
 * each time it is visited, as the kernel's KSM does. Another program that
 * clears the same process's soft-dirty bits defeats this (documented limit).
 *
 * Threads (scan-worker.h): each chunk's pagemap read, process_vm_readv,
 * zero test and hash is a job, run here with one thread or by workers with
 * more; the scanner plans chunks ahead (entering regions as the cursor
 * reaches them) and takes their results in the order planned, so everything
 * above happens in the same order and with the same outcome whatever the
 * threads. A job that has not returned after the read deadline is abandoned:
 * its region is skipped, with a note, until the job returns.
 *
 * Zero pages are recognised by their content with page_is_zero() (no hash)
 * or, already mapped to the kernel zero page, by their pagemap PFN or
 * PAGEMAP_SCAN's zero-page flag, whichever the kernel gives (host-probe.h).
 * A kernel whose read faults map fresh pages instead of the zero page gives
 * no PFN to learn: its pages only read are private zero pages and are read.
 */

#include <stdbool.h>
#include <stdint.h>

#include "host-probe.h"
#include "index.h"
#include "macro.h"
#include "merge.h"
#include "merge-policy.h"
#include "region.h"
#include "scan-region.h"

/*
 * A full scan is quiet when its activity, the pages it read with new content
 * (never read, or changed for the first time after holding still), the merges
 * it submitted and the growth of the saving, is at most 1/SCAN_QUIET_FRACTION
 * of the pages it examined, and no merge waits for a retry: scanning again
 * right away would find little. The manager then rests.
 */
#define SCAN_QUIET_FRACTION 1024u

/* Pages per pagemap read and per process_vm_readv batch (2 MiB of data). */
#define SCAN_CHUNK_PAGES 512u

/* What the scanner may rely on: the caller fills it from the host probe (host-probe.h). */
typedef struct ScannerConfig {
        uint64_t hash_seed;
        bool soft_dirty;                 /* soft-dirty works on this kernel */
        bool pagemap_scan;               /* zero_pfn is unknown, and PAGEMAP_SCAN names the zero page
                                          * (proc_pagemap_mark_zero_pages()) */
        bool no_exclusive_bit;           /* PAGEMAP_EXCLUSIVE does not tell private pages from shared ones:
                                          * only PAGEMAP_FILE_OR_SHARED (and the zero page) are skipped */
        bool no_shared_bit;              /* PAGEMAP_FILE_OR_SHARED does not mark non-anonymous pages (the
                                          * helper's shared pages): a merged page is known by not being
                                          * exclusive alone */
        bool single_page_reads;          /* process_vm_readv batches do not stop at an unreadable page:
                                          * read one page per call */
        uint64_t zero_pfn;               /* PFN of the zero page; 0 if unknown */
        uint64_t huge_zero_pfn;          /* first PFN of the huge zero page; 0 if unknown */
        uint64_t huge_pages;             /* small pages in the huge zero page; 0: 512 */
} ScannerConfig;

/* What the scanner may rely on, from what the kernel does; hash_seed is left alone. */
void scanner_config_from_host(ScannerConfig *c, const HostProbe *p);

typedef struct ScanStepResult {
        uint64_t pages;                  /* pages examined in this step */
        bool pass_done;                  /* a full scan ended in this step */
        bool limit_hit;                  /* the tracked-page bound refused an area (once per pass) */
        bool pass_quiet;                 /* the ending full scan found almost nothing new (see below) */
        uint64_t pass_usec;              /* now_usec of the ending step minus that of the starting one */
} ScanStepResult;

typedef struct Scanner Scanner;

/* reg, idx and merger are borrowed and must outlive the scanner. */
int scanner_new(RegionRegistry *reg, PageIndex *idx, Merger *merger, const ScannerConfig *config,
                Scanner **ret);
Scanner *scanner_free(Scanner *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Scanner *, scanner_free);

/*
 * Examines up to budget_pages pages, starting a new full scan if none runs.
 * Returns 0 (see *ret), or -ENOMEM. Vanished processes are not errors: their
 * regions get gone = true and the caller removes them (scanner_forget_region
 * first).
 */
int scanner_step(Scanner *s, uint64_t budget_pages, uint64_t now_usec, ScanStepResult *ret);

/*
 * Call before a region is removed from the registry: detaches its pages from
 * the index, drops the queued merges whose target or source is in it and
 * frees what the scanner knew of it.
 */
void scanner_forget_region(Scanner *s, Region *r);

/* What the scanner knows of a region (read only), or NULL before its first full scan. */
const RegionScan *scanner_region(const Scanner *s, uint32_t region_id);
/* true once for each change of the region's notes (why it cannot be merged), so the caller logs it once. */
bool scanner_region_notes_changed(Scanner *s, uint32_t region_id);

/* Applies a final merge result to the page it names (the MergeResultFn of the manager forwards here). */
void scanner_apply_merge_result(Scanner *s, const MergeRequest *req, const HelperMergeResult *res);

/*
 * The tracked pages the regions of one owner other than root may have
 * (MaxPagesPerOwner=): areas beyond it are not tracked, with a note saying
 * so. From the next region the cursor enters on; UINT64_MAX until set.
 */
void scanner_set_max_pages_per_owner(Scanner *s, uint64_t max_pages);

/*
 * While held, the scanner submits no new merge (the COW guard, manager.h): a
 * page that would merge is counted under PAGE_REASON_COW_GUARD instead.
 * Pages merged already stay merged. Estimate mode ignores it.
 */
void scanner_set_merging_held(Scanner *s, bool held);

/*
 * At most this many new merges until the next call (UINT64_MAX: no bound, as
 * at the start); beyond them pages are held as while held. The COW guard
 * gives its headroom above the reserve, so that merges the guard has not yet
 * seen cannot take more (were all the memory they free used meanwhile).
 */
void scanner_set_merge_budget(Scanner *s, uint64_t pages);

/* When a page read is offered for merging (merge-policy.h), from the next page read; first-pass at first. */
void scanner_set_merge_policy(Scanner *s, MergePolicy p);

/*
 * COW breaks since the scanner started, over all regions, also those since
 * removed: pages the helper merged that were found mapping a private
 * anonymous frame again (merge-policy.h). RegionScan.cow_breaks has them per
 * region.
 */
uint64_t scanner_cow_breaks(const Scanner *s);
/*
 * Scan threads (ScanThreads=, scan-worker.h): 1 reads on the calling thread;
 * n >= 2 starts n workers that read and hash while the caller keeps the
 * index. The scan's results do not depend on it. Call between steps.
 * -EINVAL outside 1..SCAN_THREADS_MAX, -ENOMEM, or why a thread could not
 * start; the scanner then keeps its threads.
 */
int scanner_set_threads(Scanner *s, unsigned threads);
unsigned scanner_threads(const Scanner *s);
/*
 * With scan threads, how long a read of a process's memory may take before
 * its region is skipped (with a note) until the read returns. Default 5 s.
 */
void scanner_set_read_deadline(Scanner *s, uint64_t usec);
/* Pages read on the calling thread because a worker's view of their slots was older (a cost, for tests). */
uint64_t scanner_pages_reread(const Scanner *s);

/* Full scans started, and whether one is running. */
uint64_t scanner_passes(const Scanner *s);
bool scanner_in_pass(const Scanner *s);

/* Counters of the last completed full scan over all regions, and pages examined in the running one. */
const ScanCounters *scanner_last_counters(const Scanner *s);
uint64_t scanner_current_pages(const Scanner *s);
