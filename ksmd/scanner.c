/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "memory-reader.h"
#include "merge-policy.h"
#include "page-hash.h"
#include "pidfd-util.h"
#include "proc-reader.h"
#include "scan-region.h"
#include "scan-worker.h"
#include "scanner.h"

static_assert(SCAN_CHUNK_PAGES <= SCAN_JOB_MAX_PAGES, "a chunk must fit a ScanJob");

/*
 * Jobs in flight per scan thread (about 13 KiB each). The event-loop thread consumes them in order, so a
 * worker runs dry once the jobs behind the oldest are all done; with 2 threads on 2 CPUs the event-loop
 * thread is a third busy thread and may wait a scheduler slice (some ms) for a CPU. 8 jobs are about
 * 4 ms of a worker's reading; 3 were 1.5 ms.
 */
#define SCAN_JOBS_PER_THREAD 8u

/*
 * A read of a process's memory that takes longer than this holds up no more
 * than its worker: the region is skipped until it returns (scan-worker.h).
 * Well within the service's WatchdogSec=30s.
 */
#define SCAN_READ_DEADLINE_USEC (5 * UINT64_C(1000000))

/* A region whose read stalled: skipped for the rest of the pass, and while jobs of it are stuck. */
typedef struct StalledRegion {
        uint32_t region_id;
        uint64_t pass;                   /* the pass it stalled in */
        unsigned stuck_jobs;             /* its jobs abandoned and not yet returned */
} StalledRegion;

/* A page the helper found busy after every retry is read again after 2^this passes. */
#define PAGE_REFUSED_RETRY_VOLATILITY 2u

typedef struct OwnerPages {
        uid_t uid;
        uint64_t pages;
} OwnerPages;

struct Scanner {
        RegionRegistry *registry;
        PageIndex *index;
        Merger *merger;
        ScannerConfig config;

        uint64_t passes;                 /* full scans started */
        bool in_pass;
        uint64_t pass_started_usec;
        bool limit_reported;
        uint32_t pass_last_region_id;    /* regions registered later wait for the next pass */
        uint32_t entered_region_id;      /* the region at the cursor was refreshed and attached */

        RegionScan **scans;              /* one per region met so far, ascending by region id */
        size_t n_scans;

        RegionScan **by_pid;             /* this pass's regions sorted by (pid, id) */
        size_t n_by_pid;

        /* Cursor: region id, area and page inside it. Survives region removal. */
        uint32_t region_id;
        size_t area_pos;
        uint64_t page_pos;

        int pagemap_fd;                  /* of the region at the cursor */
        uint32_t pagemap_region_id;

        /* Chunks in flight (scan-worker.h): a ring, consumed oldest first, drained by each step. */
        unsigned threads;                /* ScanThreads=: 1 runs each job on this thread */
        ScanPool *pool;                  /* threads >= 2 */
        ScanJob **jobs;
        size_t n_jobs, job_head, n_inflight;
        uint64_t read_deadline_usec;
        StalledRegion *stalled;
        size_t n_stalled;
        uint64_t pages_reread;           /* pages read on this thread: the worker's view was stale */

        /* Tracked pages per owner other than root this pass, against max_pages_per_owner. */
        OwnerPages *owner_pages;
        size_t n_owner_pages;
        uint64_t max_pages_per_owner;
        bool merging_held;               /* the COW guard holds: no new merges */
        MergePolicy merge_policy;        /* when a page read is offered (merge-policy.h) */
        uint64_t cow_breaks_gone;        /* COW breaks of regions since removed (each counts its own) */
        uint64_t merge_budget;           /* new merges allowed until the guard looks again */

        uint64_t current_pages;
        uint64_t pass_news;              /* pages read this pass that may settle into new candidates */
        uint64_t pass_merges;            /* merge mode: merges submitted this pass */
        ScanCounters last;

        uint64_t pagemap[SCAN_CHUNK_PAGES];
        uint64_t addrs[SCAN_CHUNK_PAGES];
        uint32_t which[SCAN_CHUNK_PAGES]; /* page index in the area, per read */
        uint64_t prefetch_keys[SCAN_CHUNK_PAGES]; /* the chunk's likely candidates, in the order offered */
        size_t n_prefetch_keys, prefetch_next;
        uint8_t *data;                   /* SCAN_CHUNK_PAGES pages */
};

void scanner_config_from_host(ScannerConfig *c, const HostProbe *p) {
        bool thp = p->thp_enabled[0] && !streq(p->thp_enabled, "never");

        c->soft_dirty = host_probe_has(p, HOST_SOFT_DIRTY);
        /* Plain pagemap reads are cheaper: PAGEMAP_SCAN only where a zero page's PFN is unknown. */
        c->pagemap_scan = host_probe_has(p, HOST_PAGEMAP_SCAN) &&
                          (p->zero_pfn == 0 || (thp && p->huge_zero_pfn == 0));
        c->no_exclusive_bit = !host_probe_has(p, HOST_PAGEMAP_EXCLUSIVE);
        c->no_shared_bit = !host_probe_has(p, HOST_PAGEMAP_SHARED);
        c->single_page_reads = !host_probe_has(p, HOST_PROCESS_VM_READV) && p->pages_readable;
        c->zero_pfn = p->zero_pfn;
        c->huge_zero_pfn = p->huge_zero_pfn;
        c->huge_pages = p->huge_pages;
}

int scanner_new(RegionRegistry *reg, PageIndex *idx, Merger *merger, const ScannerConfig *config,
                Scanner **ret) {
        _cleanup_(scanner_freep) Scanner *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->registry = reg;
        s->index = idx;
        s->merger = merger;
        s->config = *config;
        s->pagemap_fd = -EBADF;
        s->max_pages_per_owner = UINT64_MAX;
        s->merge_budget = UINT64_MAX;
        s->read_deadline_usec = SCAN_READ_DEADLINE_USEC;

        s->data = aligned_alloc(PAGE_SIZE_BYTES, (size_t) SCAN_CHUNK_PAGES * PAGE_SIZE_BYTES);
        if (!s->data)
                return -ENOMEM;
        r = scanner_set_threads(s, 1);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

Scanner *scanner_free(Scanner *s) {
        if (!s)
                return NULL;
        s->pool = scan_pool_free(s->pool);
        for (size_t i = 0; i < s->n_jobs; i++)
                scan_job_free(s->jobs[i]);
        free(s->jobs);
        free(s->stalled);
        safe_close(s->pagemap_fd);
        for (size_t i = 0; i < s->n_scans; i++)
                region_scan_free(s->scans[i]);
        free(s->scans);
        free(s->owner_pages);
        free(s->by_pid);
        free(s->data);
        free(s);
        return NULL;
}

uint64_t scanner_passes(const Scanner *s) {
        return s->passes;
}

bool scanner_in_pass(const Scanner *s) {
        return s->in_pass;
}

const ScanCounters *scanner_last_counters(const Scanner *s) {
        return &s->last;
}

uint64_t scanner_current_pages(const Scanner *s) {
        return s->in_pass ? s->current_pages : 0;
}

void scanner_set_merge_policy(Scanner *s, MergePolicy p) {
        s->merge_policy = p;
}

uint64_t scanner_cow_breaks(const Scanner *s) {
        uint64_t n = s->cow_breaks_gone;

        for (size_t i = 0; i < s->n_scans; i++)
                n += s->scans[i]->cow_breaks;
        return n;
}

/* One page of rs's running pass, counted under reason r (reasons.h). */
static void count_reason(RegionScan *rs, PageReason r) {
        rs->pass.pages_by_reason[r]++;
}

/* Moves one page of rs's running pass from reason from to reason to, if one is counted there. */
static void move_reason(RegionScan *rs, PageReason from, PageReason to) {
        if (rs->pass.pages_by_reason[from] == 0)
                return;
        rs->pass.pages_by_reason[from]--;
        rs->pass.pages_by_reason[to]++;
}

/* A page the helper refused keeps the reason in its slot, and is visited again after a backoff. */
static PageSlot page_slot_make_refused(PageReason r, unsigned volatility) {
        return page_slot_make((uint64_t) r << 8, PAGE_REFUSED, volatility, false);
}

static PageReason page_slot_refusal(PageSlot slot) {
        PageReason r = (PageReason) (page_slot_hash(slot) >> 8);

        return r >= 0 && r < _PAGE_REASON_MAX ? r : PAGE_REASON_HELPER_REFUSED;
}

static void cursor_close_pagemap(Scanner *s) {
        s->pagemap_fd = safe_close(s->pagemap_fd);
        s->pagemap_region_id = 0;
}

int scanner_set_threads(Scanner *s, unsigned threads) {
        _cleanup_(scan_pool_freep) ScanPool *pool = NULL;
        size_t n_jobs;
        ScanJob **jobs;
        int r;

        assert(s->n_inflight == 0);
        if (threads == 0 || threads > SCAN_THREADS_MAX)
                return -EINVAL;
        if (threads == s->threads)
                return 0;
        if (threads >= 2) {
                r = scan_pool_new(threads, &pool);
                if (r < 0)
                        return r;
        }
        /* One job at a time on this thread, as the scanner read before it had workers. */
        n_jobs = threads == 1 ? 1 : threads * SCAN_JOBS_PER_THREAD;
        jobs = calloc(n_jobs, sizeof(ScanJob *));
        if (!jobs)
                return -ENOMEM;
        for (size_t i = 0; i < n_jobs; i++)
                if (!(jobs[i] = scan_job_new())) {
                        while (i > 0)
                                scan_job_free(jobs[--i]);
                        free(jobs);
                        return -ENOMEM;
                }
        /* Stuck jobs of the old pool are its own now; their regions are tried again. */
        scan_pool_free(s->pool);
        s->pool = TAKE_PTR(pool);
        s->n_stalled = 0;
        for (size_t i = 0; i < s->n_jobs; i++)
                scan_job_free(s->jobs[i]);
        free(s->jobs);
        s->jobs = jobs;
        s->n_jobs = n_jobs;
        s->job_head = 0;
        s->threads = threads;
        return 0;
}

void scanner_set_read_deadline(Scanner *s, uint64_t usec) {
        s->read_deadline_usec = usec;
}

static StalledRegion *stalled_find(Scanner *s, uint32_t region_id) {
        for (size_t i = 0; i < s->n_stalled; i++)
                if (s->stalled[i].region_id == region_id)
                        return &s->stalled[i];
        return NULL;
}

/* Whether region_id is skipped: it stalled this pass, or a job of it is still stuck. */
static bool region_stalled(Scanner *s, uint32_t region_id) {
        StalledRegion *st = s->n_stalled > 0 ? stalled_find(s, region_id) : NULL;

        return st && (st->pass == s->passes || st->stuck_jobs > 0);
}

/* Takes back the regions whose stuck jobs returned: tried again from the next pass on. */
static void stalled_reap(Scanner *s) {
        uint32_t ids[64];
        size_t n;

        if (!s->pool || s->n_stalled == 0)
                return;
        while ((n = scan_pool_reap(s->pool, ids, ELEMENTSOF(ids))) > 0)
                for (size_t i = 0; i < n; i++) {
                        StalledRegion *st = stalled_find(s, ids[i]);

                        if (st && st->stuck_jobs > 0)
                                st->stuck_jobs--;
                }
        for (size_t i = 0; i < s->n_stalled;)
                if (s->stalled[i].stuck_jobs == 0 && s->stalled[i].pass != s->passes)
                        s->stalled[i] = s->stalled[--s->n_stalled];
                else
                        i++;
}

unsigned scanner_threads(const Scanner *s) {
        return s->threads;
}

uint64_t scanner_pages_reread(const Scanner *s) {
        return s->pages_reread;
}

static size_t scans_lower_bound(const Scanner *s, uint32_t id) {
        return LOWER_BOUND(s->n_scans, id, s->scans[_i_]->region_id);
}

static RegionScan *scan_find(const Scanner *s, uint32_t id) {
        size_t i = scans_lower_bound(s, id);

        return i < s->n_scans && s->scans[i]->region_id == id ? s->scans[i] : NULL;
}

const RegionScan *scanner_region(const Scanner *s, uint32_t id) {
        return scan_find(s, id);
}

bool scanner_region_notes_changed(Scanner *s, uint32_t id) {
        RegionScan *rs = scan_find(s, id);

        return rs && region_scan_notes_changed(rs);
}

/* The scan state of r, made when the scanner first meets it. -ENOMEM. */
static int scan_make(Scanner *s, Region *r, RegionScan **ret) {
        size_t i = scans_lower_bound(s, r->id);
        RegionScan **l, *rs;

        if (i < s->n_scans && s->scans[i]->region_id == r->id) {
                s->scans[i]->region = r;
                *ret = s->scans[i];
                return 0;
        }
        l = reallocarray(s->scans, s->n_scans + 1, sizeof(RegionScan *));
        if (!l)
                return -ENOMEM;
        s->scans = l;
        rs = region_scan_new(r->id);
        if (!rs)
                return -ENOMEM;
        rs->region = r;
        memmove(&s->scans[i + 1], &s->scans[i], (s->n_scans - i) * sizeof(RegionScan *));
        s->scans[i] = rs;
        s->n_scans++;
        *ret = rs;
        return 0;
}

void scanner_forget_region(Scanner *s, Region *r) {
        size_t i = scans_lower_bound(s, r->id);
        RegionScan *rs;

        /* Queued merges into or from it must not happen once it is gone. */
        (void) merger_forget_region(s->merger, r->id);
        if (s->pagemap_region_id == r->id)
                cursor_close_pagemap(s);
        if (i >= s->n_scans || s->scans[i]->region_id != r->id)
                return;
        rs = s->scans[i];
        s->cow_breaks_gone += rs->cow_breaks;
        for (size_t j = 0; j < rs->n_areas; j++)
                if (rs->areas[j].attached)
                        index_detach(s->index, rs->areas[j].base_id);
        for (size_t j = 0; j < s->n_by_pid; j++)
                if (s->by_pid[j] == rs) {
                        memmove(&s->by_pid[j], &s->by_pid[j + 1],
                                (s->n_by_pid - j - 1) * sizeof(RegionScan *));
                        s->n_by_pid--;
                        break;
                }
        region_scan_free(rs);
        memmove(&s->scans[i], &s->scans[i + 1], (s->n_scans - i - 1) * sizeof(RegionScan *));
        s->n_scans--;
}

static void region_clear_sd_ok(RegionScan *r) {
        for (size_t i = 0; i < r->n_areas; i++) {
                RegionArea *a = &r->areas[i];

                if (!a->slots)
                        continue;
                for (uint64_t p = 0; p < a->n_pages; p++)
                        a->slots[p] &= ~PAGE_SLOT_SD_OK;
        }
}

static int cmp_region_pid(const void *a, const void *b) {
        const Region *x = (*(RegionScan *const *) a)->region, *y = (*(RegionScan *const *) b)->region;

        if (x->pid != y->pid)
                return x->pid < y->pid ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

/* The regions of r's process that take part in this pass: [*ret_first, *ret_end) of by_pid. */
static void pid_group(Scanner *s, const Region *r, size_t *ret_first, size_t *ret_end) {
        size_t lo = LOWER_BOUND(s->n_by_pid, r->pid, s->by_pid[_i_]->region->pid);

        *ret_first = lo;
        while (lo < s->n_by_pid && s->by_pid[lo]->region->pid == r->pid)
                lo++;
        *ret_end = lo;
}

/*
 * Decides, once per pass and process, whether to clear its soft-dirty bits
 * (see DOC in scanner.h). Runs when the cursor enters the process's first
 * region of the pass, before any page of the process is read in this pass.
 */
static void enter_process(Scanner *s, const Region *r) {
        uint64_t pages = 0, waste = 0;
        size_t first, end;
        bool need = false, ok;

        pid_group(s, r, &first, &end);
        for (size_t i = first; i < end; i++) {
                RegionScan *o = s->by_pid[i];

                o->soft_dirty_pass = s->passes;
                if (o->region->gone)
                        continue;
                if (!o->soft_dirty_tracking)
                        need = true;
                pages += region_scan_pages(o);
                waste += o->dirty_waste_pages;
        }
        if (!need && waste * 2 < pages)
                return;

        ok = s->config.soft_dirty && proc_clear_soft_dirty(r->pid) >= 0;
        for (size_t i = first; i < end; i++) {
                RegionScan *o = s->by_pid[i];

                region_clear_sd_ok(o);
                o->soft_dirty_tracking = ok;
                o->dirty_waste_pages = 0;
        }
}

void scanner_set_max_pages_per_owner(Scanner *s, uint64_t max_pages) {
        s->max_pages_per_owner = max_pages;
}

void scanner_set_merge_budget(Scanner *s, uint64_t pages) {
        s->merge_budget = pages;
}

void scanner_set_merging_held(Scanner *s, bool held) {
        s->merging_held = held;
}

/* The pages owner uid has tracked this pass; made at 0 for a new owner. NULL: -ENOMEM. */
static OwnerPages *owner_pages(Scanner *s, uid_t uid) {
        OwnerPages *l;

        for (size_t i = 0; i < s->n_owner_pages; i++)
                if (s->owner_pages[i].uid == uid)
                        return &s->owner_pages[i];
        l = reallocarray(s->owner_pages, s->n_owner_pages + 1, sizeof(OwnerPages));
        if (!l)
                return NULL;
        s->owner_pages = l;
        s->owner_pages[s->n_owner_pages] = (OwnerPages) { .uid = uid };
        return &s->owner_pages[s->n_owner_pages++];
}

/* 1 if n_pages more pages of owner uid fit its budget this pass (root has none), 0 if not, -ENOMEM. */
static int owner_has_room(Scanner *s, uid_t uid, uint64_t n_pages) {
        OwnerPages *o;

        if (uid == 0)
                return 1;
        o = owner_pages(s, uid);
        if (!o)
                return -ENOMEM;
        return o->pages <= s->max_pages_per_owner && n_pages <= s->max_pages_per_owner - o->pages;
}

static void owner_charge(Scanner *s, uid_t uid, uint64_t n_pages) {
        OwnerPages *o = uid == 0 ? NULL : owner_pages(s, uid);

        if (o)
                o->pages += n_pages;
}

/* Re-reads the region's mappings and attaches its areas to the index, when the cursor enters it. */
static int enter_region(Scanner *s, Region *r, RegionScan *rs, bool *limit_hit) {
        int k;

        /* A caller's proof of access is checked again before anything is read this pass (access.h). */
        if (r->proof) {
                const char *reason = NULL;

                k = access_proof_check(r->proof, r->pid, r->pidfd, &reason);
                if (k < 0) {
                        r->gone = true;
                        r->gone_reason = k == -ESRCH ? NULL : reason;
                        return 0;
                }
        }

        k = region_scan_refresh(rs, r, index_max_tracked_pages(s->index));
        if (k == -ESRCH || k == -ENOENT) {
                r->gone = true;
                return 0;
        }
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                /* EACCES and the like: skip the region this pass, say why, try again next pass. */
                region_scan_set_note(rs, "cannot read /proc/%d/maps (%s): check ksmd's privileges",
                                     (int) r->pid, strerror(-k));
                for (size_t j = 0; j < rs->n_areas; j++)
                        rs->areas[j].attached = false;
                return 0;
        }

        for (size_t j = 0; j < rs->n_areas; j++) {
                RegionArea *a = &rs->areas[j];

                a->attached = false;
                k = owner_has_room(s, r->owner_uid, a->n_pages);
                if (k < 0)
                        return k;
                if (k == 0) {
                        free(a->slots);
                        a->slots = NULL;
                        rs->pass.pages_by_reason[PAGE_REASON_OVER_BUDGET] += a->n_pages;
                        region_scan_set_note(rs,
                                             "0x%llx-0x%llx (%llu pages) not tracked: uid %u's budget of "
                                             "%llu tracked pages is reached (MaxPagesPerOwner=)",
                                             (unsigned long long) a->start,
                                             (unsigned long long) (a->start + a->n_pages * PAGE_SIZE_BYTES),
                                             (unsigned long long) a->n_pages, (unsigned) r->owner_uid,
                                             (unsigned long long) s->max_pages_per_owner);
                        continue;
                }
                /* The bound is checked before the slots are allocated: it bounds memory. */
                if (!index_has_room(s->index, a->n_pages)) {
                        free(a->slots);
                        a->slots = NULL;
                        rs->pass.pages_by_reason[PAGE_REASON_OVER_BUDGET] += a->n_pages;
                        region_scan_set_note(rs, "0x%llx-0x%llx (%llu pages) not tracked: "
                                             "the daemon's bound on tracked pages is reached",
                                             (unsigned long long) a->start,
                                             (unsigned long long) (a->start + a->n_pages * PAGE_SIZE_BYTES),
                                             (unsigned long long) a->n_pages);
                        if (!s->limit_reported) {
                                s->limit_reported = true;
                                *limit_hit = true;
                        }
                        continue;
                }
                k = region_area_alloc_slots(a);
                if (k < 0)
                        return k;
                k = index_attach(s->index, a->slots, a->n_pages, r->id, a->start, &a->base_id);
                if (k < 0)
                        return k;
                a->attached = true;
                owner_charge(s, r->owner_uid, a->n_pages);
        }

        rs->pass.pages_by_reason[PAGE_REASON_MAPPING] += rs->mapping_pages;
        rs->pass.pages_by_reason[PAGE_REASON_NOT_MAPPED] += rs->unmapped_pages;

        if (rs->soft_dirty_pass != s->passes)
                enter_process(s, r);
        return 0;
}

/* Drops the scan state of regions that left the registry without scanner_forget_region(). */
static void scans_prune(Scanner *s) {
        size_t j = 0;

        for (size_t i = 0; i < s->n_scans; i++)
                if (region_registry_find(s->registry, s->scans[i]->region_id))
                        s->scans[j++] = s->scans[i];
                else {
                        s->cow_breaks_gone += s->scans[i]->cow_breaks;
                        region_scan_free(s->scans[i]);
                }
        s->n_scans = j;
}

/* O(regions): no /proc access here; each region's work happens when the cursor reaches it. */
static int begin_pass(Scanner *s, uint64_t now_usec) {
        RegionRegistry *reg = s->registry;
        size_t n = region_registry_count(reg), k = 0;
        RegionScan **by_pid;
        int r;

        scans_prune(s);
        by_pid = reallocarray(s->by_pid, MAX(n, (size_t) 1), sizeof(RegionScan *));
        if (!by_pid)
                return -ENOMEM;
        s->by_pid = by_pid;
        REGISTRY_FOREACH(region, reg) {
                RegionScan *rs;

                r = scan_make(s, region, &rs);
                if (r < 0)
                        return r;
                memset(&rs->pass, 0, sizeof(rs->pass));
                for (size_t j = 0; j < rs->n_areas; j++)
                        rs->areas[j].attached = false;
                s->by_pid[k++] = rs;
        }
        s->n_by_pid = k;
        qsort(s->by_pid, s->n_by_pid, sizeof(RegionScan *), cmp_region_pid);

        index_begin_pass(s->index);
        cursor_close_pagemap(s);
        s->limit_reported = false;
        s->n_owner_pages = 0;

        s->passes++;
        s->in_pass = true;
        s->pass_started_usec = now_usec;
        s->pass_last_region_id = region_registry_next_id(reg) - 1;
        s->current_pages = 0;
        s->pass_news = s->pass_merges = 0;
        s->region_id = 0;
        s->entered_region_id = 0;
        s->area_pos = 0;
        s->page_pos = 0;
        return 0;
}

/* A page whose merge waits in the queue for a retry at the end of a pass was counted as merged. */
static void count_retry(const MergeRequest *req, void *userdata) {
        RegionScan *rs = scan_find(userdata, req->region_id);

        if (rs && req->attempts > 0)
                move_reason(rs, req->zero ? PAGE_REASON_ZERO : PAGE_REASON_DUPLICATE, PAGE_REASON_RETRY);
}

/* Pages the pass never reached (its maps or pagemap could not be read, it went away): unreadable. */
static void count_unvisited(RegionScan *rs) {
        uint64_t total = rs->region ? region_scan_registered_pages(rs, rs->region) : 0, counted = 0;

        for (size_t i = 0; i < _PAGE_REASON_MAX; i++)
                counted += rs->pass.pages_by_reason[i];
        if (counted < total)
                rs->pass.pages_by_reason[PAGE_REASON_UNREADABLE] += total - counted;
}

static void end_pass(Scanner *s, uint64_t now_usec, ScanStepResult *res) {
        uint64_t saving_before = scan_counters_saving_pages(&s->last), saving, activity;

        merger_foreach_pending(s->merger, count_retry, s);
        memset(&s->last, 0, sizeof(s->last));
        for (size_t i = 0; i < s->n_by_pid; i++) {
                RegionScan *rs = s->by_pid[i];

                count_unvisited(rs);
                rs->last = rs->pass;
                scan_counters_add(&s->last, &rs->pass);
        }
        cursor_close_pagemap(s);
        s->in_pass = false;
        res->pass_done = true;
        saving = scan_counters_saving_pages(&s->last);
        activity = s->pass_news + s->pass_merges + (saving > saving_before ? saving - saving_before : 0);
        res->pass_quiet = s->passes > 1 && activity * SCAN_QUIET_FRACTION <= s->last.pages_scanned &&
                          merger_pending(s->merger) == 0;
        res->pass_usec = now_usec - s->pass_started_usec;
}

/* Whether pagemap entry e maps the zero page or the huge zero page. */
static bool entry_is_zero_page(const Scanner *s, uint64_t e) {
        uint64_t pfn = e & PAGEMAP_PFN_MASK;

        if (e & PAGEMAP_ZERO_PAGE)
                return true;
        if (s->config.zero_pfn != 0 && pfn == s->config.zero_pfn)
                return true;
        return s->config.huge_zero_pfn != 0 && pfn >= s->config.huge_zero_pfn &&
               pfn < s->config.huge_zero_pfn + (s->config.huge_pages ?: 512);
}

/* Whether pagemap entry e maps a page someone else maps too (or may). */
static bool entry_is_shared(const Scanner *s, uint64_t e) {
        if (e & PAGEMAP_FILE_OR_SHARED)
                return true;
        return !s->config.no_exclusive_bit && !(e & PAGEMAP_EXCLUSIVE);
}

/*
 * Whether pagemap entry e (present, not the zero page) maps a shared page of
 * the helper. Those are neither anonymous nor in the page cache, so pagemap
 * marks them PAGEMAP_FILE_OR_SHARED, which no page of a private anonymous
 * mapping has otherwise; a merged page that was written has a private copy
 * (a new frame) without it, even when a fork shares that copy. Where the
 * kernel does not mark them (no_shared_bit), not being exclusive is all
 * there is to go by.
 */
static bool entry_is_helper_page(const Scanner *s, uint64_t e) {
        if (!s->config.no_shared_bit)
                return (e & PAGEMAP_FILE_OR_SHARED) != 0;
        return entry_is_shared(s, e);
}

/* Hands a merge to the merger and counts the page: as reason, or as waiting if the queue is full. */
static void submit(Scanner *s, RegionScan *rs, const MergeRequest *req, PageReason reason) {
        if (!merger_is_estimate(s->merger))
                s->pass_merges++;
        count_reason(rs, merger_submit(s->merger, req) == -ENOBUFS ? PAGE_REASON_RETRY : reason);
}

/* While the COW guard holds (scanner_set_merging_held()), a page that would merge is held back. */
static bool held_by_guard(Scanner *s, RegionScan *rs) {
        if (merger_is_estimate(s->merger))
                return false;
        if (!s->merging_held && s->merge_budget > 0) {
                if (s->merge_budget != UINT64_MAX)
                        s->merge_budget--;
                return false;
        }
        count_reason(rs, PAGE_REASON_COW_GUARD);
        return true;
}

/*
 * The page of req (region rs) has the content of the indexed candidate match: asks the helper to merge the
 * two, and counts the page, as a duplicate (or held by the COW guard). The candidate, counted unique when it
 * was indexed, becomes the pair's copy. False if they cannot pair: nothing is counted for the page then.
 */
static bool pair_with_candidate(Scanner *s, RegionScan *rs, MergeRequest *req, uint32_t match) {
        PageSlot *other = index_slot(s->index, match);
        uint32_t owner;
        RegionScan *o;

        /* Equal keys of two domains are two contents (page_key()): never a pair. */
        if (!other || index_page_info(s->index, match, &owner, &req->src_addr) < 0 ||
            !(o = scan_find(s, owner)) || !o->region || o->region->domain_id != rs->region->domain_id)
                return false;
        if (held_by_guard(s, rs))
                return true;
        rs->pass.pages_sharing++;
        if (!(*other & PAGE_SLOT_GROUPED)) {
                *other |= PAGE_SLOT_GROUPED;
                o->pass.pages_shared++;
                if (o->pass.pages_unshared > 0)
                        o->pass.pages_unshared--;
                /* The first of the pair was counted unique when it was offered: it is the copy. */
                move_reason(o, PAGE_REASON_UNIQUE, PAGE_REASON_SHARED_COPY);
        }
        req->src_region_id = o->region_id;
        req->src_pidfd = o->region->pidfd;
        submit(s, rs, req, PAGE_REASON_DUPLICATE);
        return true;
}

/*
 * The last mapper of a shared page the index forgot (index_shared_prune(): at most one page table mapped it)
 * still maps it, and a page that comes with its content later (a process started or restored, a copy written
 * back) can only join it through this page: without, it would find no partner, ever. So the page is indexed
 * as a candidate again, and a duplicate pairs with it: the helper finds the shared page at the source and
 * joins the duplicate to it, and its handle is learnt again. Its bytes need no read: the helper compared
 * them. Counts the page: as the copy it is while it waits (GROUPED, so that a partner does not count it
 * again), or as the duplicate of a candidate indexed before it.
 */
static void offer_last_mapper(Scanner *s, RegionScan *rs, RegionArea *a, uint64_t page) {
        PageSlot *slot = &a->slots[page];
        MergeRequest req = {
                .region_id = rs->region_id,
                .pidfd = rs->region->pidfd,
                .addr = a->start + page * PAGE_SIZE_BYTES,
                .hash = page_slot_hash(*slot),
                .src_pidfd = -EBADF,
        };
        uint32_t match;
        int k = -ENOENT;

        if (!merger_is_estimate(s->merger))
                k = index_add_candidate(s->index, a->base_id + (uint32_t) page, &match);
        if (k == 1 && pair_with_candidate(s, rs, &req, match))
                return;
        if (k == 0)
                *slot |= PAGE_SLOT_GROUPED;
        rs->pass.pages_shared++;
        count_reason(rs, PAGE_REASON_SHARED_COPY);
}

/* A page whose content held still: hand it to the index or the merger. */
static void offer_candidate(Scanner *s, RegionScan *rs, RegionArea *a, uint64_t page) {
        PageSlot *slot = &a->slots[page];
        uint64_t addr = a->start + page * PAGE_SIZE_BYTES;
        MergeRequest req = {
                .region_id = rs->region_id,
                .pidfd = rs->region->pidfd,
                .addr = addr,
                .src_pidfd = -EBADF,
        };
        uint32_t match;
        int k;

        if (page_slot_state(*slot) == PAGE_ZERO) {
                if (held_by_guard(s, rs))
                        return;
                rs->pass.pages_zero++;
                req.zero = true;
                submit(s, rs, &req, PAGE_REASON_ZERO);
                return;
        }

        req.hash = page_slot_hash(*slot);
        *slot &= ~PAGE_SLOT_GROUPED;

        if (!merger_is_estimate(s->merger) && index_shared_lookup(s->index, req.hash, &req.handle) > 0) {
                if (held_by_guard(s, rs))
                        return;
                rs->pass.pages_sharing++;
                submit(s, rs, &req, PAGE_REASON_DUPLICATE);
                return;
        }

        k = index_add_candidate(s->index, a->base_id + (uint32_t) page, &match);
        if (k <= 0) {
                /* First of its content this pass (or no memory to index it: it waits for the next pass). */
                rs->pass.pages_unshared++;
                count_reason(rs, PAGE_REASON_UNIQUE);
                return;
        }
        if (!pair_with_candidate(s, rs, &req, match))
                count_reason(rs, PAGE_REASON_UNIQUE);
}

/*
 * The content of a page just read (all zero, or its page_hash()): update its slot, and offer it if it held
 * still.
 */
static void page_was_read(Scanner *s, RegionScan *rs, RegionArea *a, uint64_t page, bool zero,
                          uint64_t content_hash, bool dirty) {
        PageSlot old = a->slots[page];
        PageState state = page_slot_state(old);
        unsigned v = page_slot_volatility(old);
        bool still;
        uint64_t hash = 0;

        if (!zero)
                hash = page_key(content_hash, rs->region->domain_id);

        still = zero ? state == PAGE_ZERO : state == PAGE_HASHED && page_slot_hash(old) == hash;
        /* New content, or the first change of a page that held still: it may settle into a candidate. */
        if (!still && ((state != PAGE_HASHED && state != PAGE_ZERO) || v == 0))
                s->pass_news++;
        if (still) {
                if (dirty)
                        rs->dirty_waste_pages++, rs->pass.pages_rewritten_same++;
                v = v > 0 ? v - 1 : 0;
        } else if (state == PAGE_HASHED || state == PAGE_ZERO) {
                rs->pass.pages_volatile++;
                v = MIN(v + 1, PAGE_SLOT_VOL_MAX);
        }

        a->slots[page] = page_slot_make(hash, zero ? PAGE_ZERO : PAGE_HASHED, v, rs->soft_dirty_tracking);
        if (merge_policy_offers(s->merge_policy, still, v))
                offer_candidate(s, rs, a, page);
        else
                count_reason(rs, state == PAGE_HASHED || state == PAGE_ZERO ? PAGE_REASON_VOLATILE :
                                                                             PAGE_REASON_NEW);
}

/*
 * Whether a page the helper merged (its slot says so) was written since: present, not the zero page,
 * not the helper's page (the caller has ruled those out), and anonymous, a private frame of its own.
 */
static bool merge_broken(PageState state, uint64_t e) {
        return (state == PAGE_SHARING || state == PAGE_ZERO_MERGED) && !(e & PAGEMAP_FILE_OR_SHARED);
}

/*
 * Counts a COW break of a page of rs of volatility v; returns its raised volatility (merge-policy.h).
 * Only the region's counter is written, so that whoever scans a region counts its breaks alone.
 */
static unsigned count_cow_break(RegionScan *rs, unsigned v) {
        rs->cow_breaks++;
        return volatility_raise_broken(v);
}

/* The volatility of a page found still merged: lowered at its tick (merge-policy.h). */
static unsigned merged_volatility(const Scanner *s, unsigned v, uint64_t page) {
        return volatility_tick(v, s->passes, page) ? volatility_lower(v) : v;
}

/*
 * Whether scan_chunk() will read page i of job, judged on a worker from the
 * pagemap entry and the slot as they were when the job was submitted: the
 * tests of scan_chunk()'s first loop, without their effects. Keep the two in
 * step: a difference costs a read, never a wrong result (scan-worker.h).
 */
static bool chunk_page_wants_read(const ScanJob *j, size_t i) {
        const Scanner *s = j->filter_data;     /* only its constant config is read */
        uint64_t e = j->pagemap[i], page = j->first_page + i;
        PageSlot slot = j->slots[i];
        PageState state = page_slot_state(slot);
        unsigned v = page_slot_volatility(slot);

        if (!(e & PAGEMAP_PRESENT) || entry_is_zero_page(s, e))
                return false;
        if (state == PAGE_SHARING && entry_is_helper_page(s, e))
                return false;
        if (entry_is_shared(s, e))
                return false;
        /* A broken merge is read unless its raised volatility backs it off. */
        if (merge_broken(state, e))
                v = volatility_raise_broken(v);
        if (j->soft_dirty_tracking && (slot & PAGE_SLOT_SD_OK) && !(e & PAGEMAP_SOFT_DIRTY) &&
            (state == PAGE_HASHED || state == PAGE_ZERO))
                return false;
        return volatility_tick(v, j->passes, page);
}

/*
 * Reads page i of job on this thread, when the worker did not (its view of the slot was older): the
 * job's results for it are filled as the worker would have.
 */
static void chunk_read_page(Scanner *s, ScanJob *j, size_t i) {
        uint64_t addr = j->start + i * PAGE_SIZE_BYTES;
        size_t got = 0;
        int k;

        s->pages_reread++;
        k = memory_read_pages(j->pid, &addr, 1, s->data, &got);
        if (k >= 0 && pidfd_is_alive(j->pidfd) <= 0)
                k = -ESRCH;
        if (k < 0) {
                j->status[i] = SCAN_JOB_PAGE_FAILED;
                j->read_error = k;
        } else if (got == 0)
                j->status[i] = SCAN_JOB_PAGE_UNREADABLE;
        else {
                j->zero[i] = page_is_zero(s->data);
                j->hash[i] = j->zero[i] ? 0 : page_hash(s->data, s->config.hash_seed);
                j->status[i] = SCAN_JOB_PAGE_READ;
        }
}

/*
 * How far ahead of the candidate offered the index is asked for the slots its probe will compare (in
 * candidates), and twice that for the table line the probe starts at: far enough for a miss to arrive
 * while the pages between are handled, near enough for the lines to stay in the cache.
 */
#define CANDIDATE_PREFETCH_DISTANCE 8u

/*
 * Whether page i of job j (area a of rs) will likely be offered to the index as the job is consumed, and
 * the key it will be offered under: that of the content a worker read (read), or, with soft-dirty, of the
 * slot of a page that held still (!read). A guess, for the prefetches only: scan_chunk() decides.
 */
static bool chunk_page_key(const RegionScan *rs, const RegionArea *a, const ScanJob *j, size_t i,
                           bool read, uint64_t *ret_key) {
        PageSlot slot;

        if (read) {
                if (j->status[i] != SCAN_JOB_PAGE_READ || j->zero[i])
                        return false;
                *ret_key = page_key(j->hash[i], rs->region->domain_id);
                return true;
        }
        slot = a->slots[j->first_page + i];
        if (j->status[i] == SCAN_JOB_PAGE_READ || !rs->soft_dirty_tracking || !(slot & PAGE_SLOT_SD_OK) ||
            page_slot_state(slot) != PAGE_HASHED ||
            (j->pagemap[i] & (PAGEMAP_PRESENT | PAGEMAP_SOFT_DIRTY)) != PAGEMAP_PRESENT)
                return false;
        *ret_key = page_slot_hash(slot);
        return true;
}

/*
 * Lists the keys the pages of job j will likely be offered under, in the order scan_chunk() offers them
 * (first the pages that held still by soft-dirty, then those read), and asks the CPU for the index's memory
 * the first of them will touch (index_prefetch_candidate_*()). Each chunk_prefetch_step() then asks for that
 * of a later one, so that the candidates' cache misses overlap instead of coming one after the other.
 */
static void chunk_prefetch_begin(Scanner *s, const RegionScan *rs, const RegionArea *a, const ScanJob *j) {
        size_t n = 0;

        for (int read = 0; read <= 1; read++)
                for (size_t i = 0; i < j->n_pages; i++)
                        if (chunk_page_key(rs, a, j, i, read, &s->prefetch_keys[n]))
                                n++;
        s->n_prefetch_keys = n;
        s->prefetch_next = 0;
        for (size_t k = 0; k < MIN(n, (size_t) 2 * CANDIDATE_PREFETCH_DISTANCE); k++)
                index_prefetch_candidate_home(s->index, s->prefetch_keys[k]);
        for (size_t k = 0; k < MIN(n, (size_t) CANDIDATE_PREFETCH_DISTANCE); k++)
                index_prefetch_candidate_probe(s->index, s->prefetch_keys[k]);
}

/* A page listed by chunk_prefetch_begin() is being handled: asks for what later ones will touch. */
static void chunk_prefetch_step(Scanner *s) {
        size_t k = s->prefetch_next++, d = CANDIDATE_PREFETCH_DISTANCE;

        if (k + 2 * d < s->n_prefetch_keys)
                index_prefetch_candidate_home(s->index, s->prefetch_keys[k + 2 * d]);
        if (k + d < s->n_prefetch_keys)
                index_prefetch_candidate_probe(s->index, s->prefetch_keys[k + d]);
}

/* Consumes job j, a chunk of area a of region r: its pagemap entries, then the pages it read. */
static int scan_chunk(Scanner *s, Region *r, RegionScan *rs, RegionArea *a, ScanJob *j) {
        uint64_t first = j->first_page;
        size_t n = j->n_pages, n_read = 0;

        if (j->pagemap_error < 0)
                return j->pagemap_error;
        memcpy(s->pagemap, j->pagemap, n * sizeof(uint64_t));
        chunk_prefetch_begin(s, rs, a, j);

        for (size_t i = 0; i < n; i++) {
                uint64_t page = first + i, e = s->pagemap[i];
                PageSlot *slot = &a->slots[page];
                PageState state = page_slot_state(*slot);
                unsigned v = page_slot_volatility(*slot);

                rs->pass.pages_scanned++;
                if (!(e & PAGEMAP_PRESENT)) {
                        rs->pass.pages_not_present++;
                        if (e & PAGEMAP_SWAPPED)
                                rs->pass.pages_swapped++;
                        count_reason(rs, e & PAGEMAP_SWAPPED ? PAGE_REASON_SWAPPED :
                                                               PAGE_REASON_NOT_PRESENT);
                        *slot = page_slot_make(0, PAGE_UNKNOWN, v, false);
                        continue;
                }
                if (entry_is_zero_page(s, e)) {
                        rs->pass.pages_zero_mapped++;
                        /*
                         * Zero pages the helper merged stay counted as the saving they are; so do
                         * private zero pages that turned into the zero page while merging (since
                         * 6.12 the kernel maps zero-filled subpages of a THP it splits to it).
                         */
                        if (state == PAGE_ZERO_MERGED ||
                            (state == PAGE_ZERO && !merger_is_estimate(s->merger))) {
                                rs->pass.pages_zero++;
                                rs->pass.pages_skipped_merged++;
                                *slot = page_slot_make(0, PAGE_ZERO_MERGED, merged_volatility(s, v, page),
                                                       false);
                        } else
                                *slot = page_slot_make(0, PAGE_UNKNOWN, v, false);
                        count_reason(rs, PAGE_REASON_ZERO);
                        continue;
                }
                if (state == PAGE_SHARING && entry_is_helper_page(s, e)) {
                        /*
                         * Still the helper's read-only shared page: its bytes are the ones the helper
                         * compared, so it is not read. One mapper of each shared page is its "shared",
                         * the others save a page each. A shared page the index forgot (at most one
                         * page table maps it) saves nothing: its last mapper is offered as a partner.
                         */
                        int k = index_shared_note_mapper(s->index, page_slot_hash(*slot));
                        bool copy = k > 0;

                        *slot = page_slot_make(page_slot_hash(*slot), PAGE_SHARING,
                                               merged_volatility(s, v, page), false);
                        rs->pass.pages_skipped_merged++;
                        if (k < 0) {
                                offer_last_mapper(s, rs, a, page);
                                continue;
                        }
                        if (copy)
                                rs->pass.pages_shared++;
                        else
                                rs->pass.pages_sharing++;
                        count_reason(rs, copy ? PAGE_REASON_SHARED_COPY : PAGE_REASON_DUPLICATE);
                        continue;
                }
                if (entry_is_shared(s, e)) {
                        /* Also a merged page written (its COW copy: a break), then shared by a fork. */
                        if (merge_broken(state, e))
                                v = count_cow_break(rs, v);
                        rs->pass.pages_external++;
                        *slot = page_slot_make(0, PAGE_UNKNOWN, v, false);
                        count_reason(rs, PAGE_REASON_SHARED_ELSEWHERE);
                        continue;
                }
                if (state == PAGE_SHARING || state == PAGE_ZERO_MERGED) {
                        /* Exclusive again: written to, the COW gave it a private copy. */
                        if (merge_broken(state, e))
                                v = count_cow_break(rs, v);
                        state = PAGE_UNKNOWN;
                        *slot = page_slot_make(0, PAGE_UNKNOWN, v, false);
                }
                if (state == PAGE_REFUSED) {
                        /* Refused by the helper: so counted until its backoff ends, then read afresh. */
                        if (!volatility_tick(v, s->passes, page)) {
                                count_reason(rs, page_slot_refusal(*slot));
                                continue;
                        }
                        state = PAGE_UNKNOWN;
                        v = 0;
                        *slot = page_slot_make(0, PAGE_UNKNOWN, 0, false);
                }

                bool dirty = (e & PAGEMAP_SOFT_DIRTY) != 0;

                if ((state == PAGE_HASHED || state == PAGE_ZERO) && dirty)
                        rs->pass.pages_dirty++;
                if (rs->soft_dirty_tracking && (*slot & PAGE_SLOT_SD_OK) && !dirty &&
                    (state == PAGE_HASHED || state == PAGE_ZERO)) {
                        if (state == PAGE_HASHED && j->status[i] != SCAN_JOB_PAGE_READ)
                                chunk_prefetch_step(s);
                        rs->pass.pages_unchanged++;
                        *slot = page_slot_make(page_slot_hash(*slot), state, v > 0 ? v - 1 : 0, true);
                        offer_candidate(s, rs, a, page);
                        continue;
                }
                if (!volatility_tick(v, s->passes, page)) {
                        rs->pass.pages_skipped_volatile++;
                        count_reason(rs, PAGE_REASON_VOLATILE);
                        continue;
                }
                s->addrs[n_read] = a->start + page * PAGE_SIZE_BYTES;
                s->which[n_read] = (uint32_t) i;
                n_read++;
        }

        /* An exited process's pagemap reads as empty: tell that apart from memory that is not there. */
        if (n_read == 0 && region_alive(r) <= 0)
                return -ESRCH;

        /* The pages read, in order, as the job saw them (scan_job_run()): alive after the read, the
         * pages read up to a failure taken, one that vanished skipped. */
        for (size_t d = 0; d < n_read; d++) {
                size_t i = s->which[d];

                if (j->status[i] == SCAN_JOB_PAGE_READ && !j->zero[i])
                        chunk_prefetch_step(s);
                if (j->status[i] == SCAN_JOB_PAGE_NOT_READ)
                        chunk_read_page(s, j, i);
                if (j->status[i] == SCAN_JOB_PAGE_FAILED)
                        return j->read_error;
                if (j->status[i] == SCAN_JOB_PAGE_READ) {
                        rs->pass.pages_read++;
                        page_was_read(s, rs, a, first + i, j->zero[i], j->hash[i],
                                      (s->pagemap[i] & PAGEMAP_SOFT_DIRTY) != 0);
                        continue;
                }
                /* This page vanished between pagemap and the read. */
                rs->pass.pages_unreadable++;
                count_reason(rs, PAGE_REASON_UNREADABLE);
                a->slots[first + i] = page_slot_make(0, PAGE_UNKNOWN,
                                                     page_slot_volatility(a->slots[first + i]), false);
        }
        return 0;
}

/*
 * Moves the cursor to the next chunk of at most max_pages pages, entering
 * regions on the way, and fills a job for it. 1: *ret is the chunk; 0: the
 * pass has no pages left; -ENOMEM.
 */
static int plan_chunk(Scanner *s, uint64_t max_pages, ScanStepResult *res, ScanJob *j) {
        int k, fd;

        for (;;) {
                Region *r = region_registry_next(s->registry, s->region_id);
                RegionScan *rs;
                RegionArea *a;
                size_t n;

                if (!r || r->id > s->pass_last_region_id)
                        return 0;
                if (r->id != s->region_id) {
                        /* The next region, or the one at the cursor left the registry between steps: its
                         * successor is scanned from its first page. */
                        s->region_id = r->id;
                        s->area_pos = 0;
                        s->page_pos = 0;
                }
                rs = scan_find(s, r->id);
                if (!rs) {
                        /* Not in this pass (cannot happen: begin_pass() met every region
                         * up to pass_last). */
                        s->region_id = r->id + 1;
                        continue;
                }
                if (region_stalled(s, r->id)) {
                        /* Its memory does not answer reads: not even its maps are read (mmap_lock). */
                        s->region_id = r->id + 1;
                        s->area_pos = 0;
                        s->page_pos = 0;
                        cursor_close_pagemap(s);
                        continue;
                }
                if (!r->gone && s->entered_region_id != r->id) {
                        k = enter_region(s, r, rs, &res->limit_hit);
                        if (k < 0)
                                return k;
                        s->entered_region_id = r->id;
                }
                if (r->gone || s->area_pos >= rs->n_areas) {
                        s->region_id = r->id + 1;
                        s->area_pos = 0;
                        s->page_pos = 0;
                        cursor_close_pagemap(s);
                        continue;
                }
                a = &rs->areas[s->area_pos];
                if (!a->attached || s->page_pos >= a->n_pages) {
                        s->area_pos++;
                        s->page_pos = 0;
                        continue;
                }
                if (s->pagemap_region_id != r->id) {
                        cursor_close_pagemap(s);
                        k = proc_pagemap_open(r->pid, &s->pagemap_fd);
                        if (k >= 0 && region_alive(r) <= 0)
                                k = -ESRCH;
                        if (k < 0) {
                                r->gone = k == -ESRCH;
                                if (!r->gone)
                                        region_scan_set_note(rs, "cannot read /proc/%d/pagemap (%s)%s",
                                                             (int) r->pid, strerror(-k),
                                                             k == -EACCES || k == -EPERM ?
                                                                     ": ksmd needs CAP_DAC_OVERRIDE "
                                                                     "for other users' processes" : "");
                                s->area_pos = rs->n_areas;
                                continue;
                        }
                        s->pagemap_region_id = r->id;
                }

                n = (size_t) MIN(MIN(max_pages, (uint64_t) SCAN_CHUNK_PAGES), a->n_pages - s->page_pos);
                /* The job's own descriptor: a worker stuck on it keeps it open after the cursor moved. */
                fd = fcntl(s->pagemap_fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        region_scan_set_note(rs, "cannot duplicate its pagemap descriptor (%s)",
                                             strerror(errno));
                        s->area_pos = rs->n_areas;
                        continue;
                }
                safe_close(j->pagemap_fd);
                *j = (ScanJob) {
                        .pid = r->pid,
                        .pidfd = r->pidfd,
                        .pagemap_fd = fd,
                        .start = a->start + s->page_pos * PAGE_SIZE_BYTES,
                        .n_pages = n,
                        .pagemap_scan = s->config.pagemap_scan,
                        .single_page_reads = s->config.single_page_reads,
                        .hash_seed = s->config.hash_seed,
                        .filter = chunk_page_wants_read,
                        .filter_data = s,
                        .passes = s->passes,
                        .soft_dirty_tracking = rs->soft_dirty_tracking,
                        .region_id = r->id,
                        .area_pos = s->area_pos,
                        .first_page = s->page_pos,
                };
                memcpy(j->slots, &a->slots[s->page_pos], n * sizeof(PageSlot));
                s->page_pos += n;
                return 1;
        }
}

/*
 * Waits for the oldest job in flight, up to the read deadline (runs it here
 * with one thread), and takes it off the ring. 1: done; 0: abandoned to the
 * pool, its region stalled (skipped until the job returns); -ENOMEM.
 */
static int wait_oldest(Scanner *s) {
        ScanJob *j = s->jobs[s->job_head];
        uint32_t region_id = j->region_id;
        bool stalled;
        StalledRegion *st;
        int k;

        s->job_head = (s->job_head + 1) % s->n_jobs;
        s->n_inflight--;
        if (!s->pool) {
                scan_job_run(j, s->data);
                return 1;
        }
        /* The rest of a region that stalled is not waited for. */
        stalled = region_stalled(s, region_id);
        k = scan_pool_wait(s->pool, j, stalled ? 0 : s->read_deadline_usec);
        if (k == 0)
                return 1;

        /* The pool owns j now: its slot gets a new one. */
        s->jobs[(s->job_head + s->n_jobs - 1) % s->n_jobs] = scan_job_new();
        st = stalled_find(s, region_id);
        if (!st) {
                StalledRegion *l = reallocarray(s->stalled, s->n_stalled + 1, sizeof(StalledRegion));

                if (!l)
                        return -ENOMEM;
                s->stalled = l;
                st = &s->stalled[s->n_stalled++];
                *st = (StalledRegion) { .region_id = region_id };
        }
        st->stuck_jobs++;
        if (!stalled) {
                RegionScan *rs = scan_find(s, region_id);

                st->pass = s->passes;
                if (rs) {
                        /* The one reason that matters now, logged by the manager after the pass. */
                        region_scan_clear_note(rs);
                        region_scan_set_note(rs, "a read of its memory took longer than %llu ms "
                                             "(a mapping whose reads do not return, such as a FUSE file, "
                                             "or its mmap_lock held): it is skipped until the read returns",
                                             (unsigned long long) (s->read_deadline_usec / 1000));
                }
        }
        if (!s->jobs[(s->job_head + s->n_jobs - 1) % s->n_jobs])
                return -ENOMEM;
        return 0;
}

/* Takes the oldest job in flight into the scan. */
static int consume_chunk(Scanner *s, ScanStepResult *res) {
        ScanJob *j = s->jobs[s->job_head];
        RegionScan *rs;
        Region *r;
        int k;

        k = wait_oldest(s);
        if (k <= 0)
                return k;

        rs = scan_find(s, j->region_id);
        r = rs ? rs->region : NULL;
        /* Its region went away since the job was planned: the rest of it is not scanned this pass. */
        if (!r || r->gone)
                return 0;
        k = scan_chunk(s, r, rs, &rs->areas[j->area_pos], j);
        if (k == -ESRCH) {
                r->gone = true;
                return 0;
        }
        if (k == -ENOMEM)
                return k;
        /* Other read errors (EPERM, EFAULT on the whole chunk) skip the chunk, not the scan. */
        if (k < 0) {
                rs->pass.pages_unreadable += j->n_pages;
                region_scan_set_note(rs, "cannot read its memory with process_vm_readv (%s)%s", strerror(-k),
                                     k == -EPERM || k == -EACCES ? ": ksmd needs CAP_SYS_PTRACE" : "");
        }
        res->pages += j->n_pages;
        s->current_pages += j->n_pages;
        return 0;
}

/* Consumes nothing more: waits for the jobs in flight (up to the deadline), after an error. */
static void drain_chunks(Scanner *s) {
        while (s->n_inflight > 0)
                if (wait_oldest(s) < 0)
                        break;
}

int scanner_step(Scanner *s, uint64_t budget_pages, uint64_t now_usec, ScanStepResult *ret) {
        ScanStepResult res = {};
        uint64_t planned = 0;
        bool pass_end = false;
        int k;

        stalled_reap(s);
        if (!s->in_pass) {
                k = begin_pass(s, now_usec);
                if (k < 0)
                        return k;
        }

        /*
         * Chunks are planned (the cursor moves, regions are entered) up to the budget and as far ahead
         * as there are jobs, and consumed in the order planned; the step ends with none in flight.
         */
        for (;;) {
                while (!pass_end && planned < budget_pages && s->n_inflight < s->n_jobs) {
                        ScanJob *j = s->jobs[(s->job_head + s->n_inflight) % s->n_jobs];

                        k = plan_chunk(s, budget_pages - planned, &res, j);
                        if (k < 0) {
                                drain_chunks(s);
                                return k;
                        }
                        if (k == 0) {
                                pass_end = true;
                                break;
                        }
                        planned += j->n_pages;
                        s->n_inflight++;
                        if (s->pool)
                                scan_pool_submit(s->pool, j);
                }
                if (s->n_inflight == 0)
                        break;
                k = consume_chunk(s, &res);
                if (k < 0) {
                        drain_chunks(s);
                        return k;
                }
        }
        if (pass_end)
                end_pass(s, now_usec, &res);

        *ret = res;
        return 0;
}

/* Why the helper will not merge a page, for the region's merge note. */
static const char *merge_refusal_to_string(const HelperMergeResult *res) {
        switch (res->result) {
        case KSMD_HELPER_RESULT_BAD_PIDFD:
                /* A daemon bug: a region's pidfd stays open while it can be named. */
                return "the helper did not take this region's pidfd, or its source's, for a pidfd";
        case KSMD_HELPER_RESULT_NO_ACCESS:
                return "the kernel's ptrace read check refused this process or its source "
                       "(ksmd needs CAP_SYS_PTRACE)";
        default:
                return helper_reason_to_string(res->reason);
        }
}

void scanner_apply_merge_result(Scanner *s, const MergeRequest *req, const HelperMergeResult *res) {
        Region *r = region_registry_find(s->registry, req->region_id);
        RegionScan *rs = scan_find(s, req->region_id);
        PageSlot *slot;

        if (!r || !rs)
                return;
        if (res->result < __KSMD_HELPER_RESULT_MAX)
                rs->merge_results[res->result]++;
        slot = region_scan_slot_at(rs, req->addr);
        /*
         * A target in SHARING is the last mapper of a forgotten shared page (offer_last_mapper()): it maps
         * that page whatever the helper answered, so unless merged its slot stays as it is, and the next
         * pass looks at the page as it is then (a reset slot would take it for a page shared elsewhere).
         */
        if (slot && page_slot_state(*slot) == PAGE_SHARING && res->result != KSMD_HELPER_RESULT_MERGED &&
            res->result != KSMD_HELPER_RESULT_ALREADY)
                slot = NULL;

        switch (res->result) {
        case KSMD_HELPER_RESULT_MERGED:
        case KSMD_HELPER_RESULT_ALREADY:
                /* What volatility a page learned stays with it while merged (merge-policy.h). */
                if (req->zero) {
                        if (slot)
                                *slot = page_slot_make(0, PAGE_ZERO_MERGED, page_slot_volatility(*slot),
                                                       false);
                        break;
                }
                if (slot)
                        *slot = page_slot_make(req->hash, PAGE_SHARING, page_slot_volatility(*slot), false);
                if (req->handle == 0) {
                        RegionScan *o = scan_find(s, req->src_region_id);
                        PageSlot *src = o ? region_scan_slot_at(o, req->src_addr) : NULL;

                        if (src)
                                *src = page_slot_make(req->hash, PAGE_SHARING, page_slot_volatility(*src),
                                                      false);
                        /* Its candidate entry is dead weight now: the shared table answers for it. */
                        index_forget_merged_candidates(s->index, req->hash);
                }
                if (res->handle != 0)
                        (void) index_shared_add(s->index, req->hash, res->handle);
                break;

        case KSMD_HELPER_RESULT_DIFFERS:
        case KSMD_HELPER_RESULT_CHANGED:
        case KSMD_HELPER_RESULT_NO_PAGE:
                /* Re-examine from scratch next pass. */
                if (slot)
                        *slot = page_slot_make(0, PAGE_UNKNOWN, page_slot_volatility(*slot), false);
                break;

        case KSMD_HELPER_RESULT_NO_HANDLE:
                /* The shared page is gone; the page stays a candidate and finds a new partner next pass. */
                (void) index_shared_remove(s->index, req->hash);
                break;

        case KSMD_HELPER_RESULT_UNSUPPORTED:
        case KSMD_HELPER_RESULT_BAD_PIDFD:
        case KSMD_HELPER_RESULT_NO_ACCESS:
                region_scan_set_merge_note(rs, "page 0x%llx: %s", (unsigned long long) req->addr,
                                           merge_refusal_to_string(res));
                /* Visit it rarely from now on. */
                if (slot)
                        *slot = page_slot_make_refused(page_reason_of_refusal(res->result, res->reason),
                                                       PAGE_SLOT_VOL_MAX);
                break;

        case KSMD_HELPER_RESULT_NO_PROCESS: {
                /* The target's process or the source's has no memory any more: the result does not say
                 * which, so only a region whose process has exited goes (a live one stays registered). */
                Region *src = req->zero || req->handle ? NULL : region_registry_find(s->registry,
                                                                                    req->src_region_id);

                if (region_alive(r) <= 0)
                        r->gone = true;
                if (src && region_alive(src) <= 0)
                        src->gone = true;
                break;
        }

        default:
                /* BUSY/NO_MEMORY after the last retry (pinned, or short of memory): tried again after a
                 * few passes; so is a result this ksmd does not know. */
                if (slot)
                        *slot = page_slot_make_refused(page_reason_of_refusal(res->result, res->reason),
                                                       PAGE_REFUSED_RETRY_VOLATILITY);
                break;
        }
}
