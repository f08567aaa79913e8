/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: merging
 *
 * The scanner submits one MergeRequest per page it wants merged: a target
 * page and its source (another page with the same hash, or the handle of a
 * shared page of the helper), or a zero page for MERGE_ZERO. Requests queue
 * up and leave in batches of at most the helper's max_batch items, zero and
 * non-zero requests in separate batches. Every item's result is handled:
 *
 *   BUSY, NO_MEMORY     queued again after a backoff that doubles per attempt
 *                       (MERGE_RETRY_BASE_USEC << attempt; for NO_MEMORY, the
 *                       helper finding no memory for a shared page without
 *                       pressing the kernel, MERGE_RETRY_NO_MEMORY_BASE_USEC <<
 *                       attempt), given up after MERGE_MAX_ATTEMPTS; the page
 *                       stays a candidate and is tried again next pass
 *   everything else     handed to the owner's MergeResultFn, which updates the
 *                       page (shared, re-examine, region note, region gone);
 *                       BAD_PIDFD and NO_ACCESS (a pidfd names no process
 *                       the daemon may read) included
 *
 * Without a helper (estimate mode) nothing is queued: each request is counted
 * as a page merging would save, and the result function is not called.
 * The queue is bounded; a full queue refuses new requests with -ENOBUFS and
 * the scanner offers the page again next pass.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "helper-client.h"
#include "macro.h"
#include "stats.h"

#define MERGE_MAX_ATTEMPTS 5u
#define MERGE_RETRY_BASE_USEC 10000u
#define MERGE_RETRY_NO_MEMORY_BASE_USEC 100000u /* memory comes back slower than a page lock */
#define MERGE_QUEUE_MAX 65536u            /* hard limit on queued requests */

/*
 * Processes travel as pidfds, never as pids: a queued or retried request
 * reaches the very process it was made for, or none (NO_PROCESS), however
 * long it waits. The pidfds are borrowed from the Regions, which own them
 * while they are registered; the owner must call merger_forget_region()
 * before a region is removed (and its pidfd closed), so no queued request
 * ever outlives the pidfds it names.
 */
typedef struct MergeRequest {
        uint32_t region_id;              /* target's region */
        int pidfd;                       /* target's process: its region's pidfd, borrowed */
        uint64_t addr;
        uint64_t hash;                   /* target's content hash (slot bits); 0 for zero requests */
        bool zero;                       /* MERGE_ZERO: no source */
        uint64_t handle;                 /* source: a shared page, or 0 */
        uint32_t src_region_id;          /* source: a page, when handle == 0 */
        int src_pidfd;                   /* source's process: its region's pidfd, borrowed */
        uint64_t src_addr;
        uint8_t attempts;                /* sends so far */
        uint64_t not_before_usec;        /* CLOCK_MONOTONIC; 0: now */
} MergeRequest;

/* Final outcome of one request (never BUSY/NO_MEMORY unless attempts are exhausted). */
typedef void (*MergeResultFn)(const MergeRequest *req, const HelperMergeResult *res, void *userdata);

typedef struct Merger Merger;

/*
 * helper == NULL: estimate mode. helper is borrowed. max_batch: items per
 * request (1..the helper's max_batch); max_queue: 1..MERGE_QUEUE_MAX.
 */
int merger_new(HelperClient *helper, size_t max_batch, size_t max_queue, MergeResultFn fn, void *userdata,
               Merger **ret);
Merger *merger_free(Merger *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Merger *, merger_free);

/* Switches to estimate mode (the helper went away); queued requests are dropped and counted. */
void merger_set_estimate(Merger *m);
bool merger_is_estimate(const Merger *m);

/* Queues a request (copied). -ENOBUFS when the queue is full. In estimate mode it is only counted. */
int merger_submit(Merger *m, const MergeRequest *req);

/*
 * Drops every queued request whose target or source page lies in the region
 * (it is being unregistered or its process exited): nothing is merged into or
 * from a region after it is gone, and no request keeps a pidfd the region is
 * about to close. Call it before removing the region. Returns the number
 * dropped (not counted as dropped items: they were never due).
 */
size_t merger_forget_region(Merger *m, uint32_t region_id);

/* Calls fn for every request waiting in the queue (attempts > 0: for a retry). */
void merger_foreach_pending(const Merger *m, void (*fn)(const MergeRequest *req, void *userdata),
                            void *userdata);

/* Requests waiting (for a batch to fill or for their backoff). */
size_t merger_pending(const Merger *m);

/*
 * Sends every request due at now_usec, in batches. Returns the number of
 * items sent, or a request-level -errno from the helper: -ENOENT (the module
 * is gone), -EAGAIN, -ENOMEM, -ENOBUFS, -EINTR keep the failed batch queued
 * for a later flush; any other error (-EINVAL, -ERANGE, -EPERM, -EBADMSG...)
 * drops that batch (counted in dropped), whose pages the scanner offers
 * again next pass.
 */
int merger_flush(Merger *m, uint64_t now_usec);

/*
 * true for a request-level error of merger_flush() after which the batch
 * stays queued: the module is gone (-ENOENT), busy, short of memory or was
 * interrupted. Any other error is not expected and drops the batch.
 */
bool merge_error_is_transient(int r);

/* Earliest not_before_usec of a waiting retry, or UINT64_MAX if none. */
uint64_t merger_next_retry_usec(const Merger *m);

const MergeCounters *merger_counters(const Merger *m);
