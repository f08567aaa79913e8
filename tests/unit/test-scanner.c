/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The scanner against a fake memory model: /proc (maps, pagemap, clear_refs),
 * process_vm_readv and the helper are mocked at their seams with -Wl,--wrap.
 * Processes are real (forked children that pause) so the pidfds are real.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "index.h"
#include "memory-reader.h"
#include "merge.h"
#include "macro.h"
#include "proc-reader.h"
#include "region.h"
#include "scan-worker.h"
#include "scanner.h"

#define N_PROCS 2
#define N_PAGES 64
#define BASE_ADDR UINT64_C(0x7f0000000000)
#define ZERO_PFN UINT64_C(0x1234)

typedef struct FakePage {
        uint8_t fill;                    /* every byte of the page; 0: all zero */
        uint64_t flags;                  /* PAGEMAP_* bits; PRESENT|EXCLUSIVE by default */
        uint64_t pfn;
        bool changes_on_read;            /* volatile: fill changes after every read */
        unsigned reads;
} FakePage;

static struct {
        pid_t pid[N_PROCS];
        bool dead[N_PROCS];
        size_t n_pages[N_PROCS];
        FakePage page[N_PROCS][N_PAGES];
        unsigned clears[N_PROCS];
        unsigned hashes;
        /* helper mock */
        size_t merge_calls;
        uint32_t (*result_for)(const HelperMergeItem *it, bool zero);
        uint64_t last_handle_used;
        int watch_pidfd;                 /* > 0: items naming it as target or source are counted */
        unsigned watch_items;
        int last_pidfd, last_src_pidfd;  /* of the last item with a source page */
        /* kernel model */
        bool pfn_hidden;                 /* pagemap shows no PFNs (no CAP_SYS_ADMIN) */
        bool shared_reads_ok;            /* the scanner may read pages not exclusively mapped */
        unsigned mark_calls;             /* proc_pagemap_mark_zero_pages() calls */
        size_t max_read_batch;           /* most pages asked of one memory_read_pages() */
        int pidfd[N_PROCS];              /* of each process's region, once registered */
} fake;

/* Scan workers (ScanThreads=) call the read and hash seams from their threads. */
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

/* A read of a page of a process that does not return until released (a FUSE mapping never answered). */
static struct {
        pthread_mutex_t lock;
        pthread_cond_t released;
        bool on;
        int proc;
        uint64_t addr;
        unsigned calls;                  /* reads that asked for memory of proc */
        unsigned blocked;                /* reads now waiting */
} stall = { .lock = PTHREAD_MUTEX_INITIALIZER, .released = PTHREAD_COND_INITIALIZER };

static int proc_of(pid_t pid) {
        for (int i = 0; i < N_PROCS; i++)
                if (fake.pid[i] == pid)
                        return i;
        fail_msg("unknown pid %d", (int) pid);
        return -1;
}

int __wrap_proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n);
int __wrap_proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n) {
        int p = proc_of(pid);
        ProcMapping *m;

        if (fake.dead[p])
                return -ESRCH;
        m = calloc(1, sizeof(*m));
        *m = (ProcMapping) {
                .start = BASE_ADDR,
                .end = BASE_ADDR + fake.n_pages[p] * PAGE_SIZE_BYTES,
                .readable = true,
                .writable = true,
                .private_ = true,
                .kind = PROC_MAPPING_ANON,
        };
        *ret = m;
        *ret_n = 1;
        return 0;
}

/* A fake pagemap file holds its pid, so that a dup() of it (each scan job has its own) names it too. */
static pid_t fd_pid(int fd) {
        pid_t pid = 0;

        assert_int_equal(pread(fd, &pid, sizeof(pid), 0), sizeof(pid));
        return pid;
}

int __wrap_proc_pagemap_open(pid_t pid, int *ret_fd);
int __wrap_proc_pagemap_open(pid_t pid, int *ret_fd) {
        int fd;

        if (fake.dead[proc_of(pid)])
                return -ESRCH;
        fd = memfd_create("fake-pagemap", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, &pid, sizeof(pid)), sizeof(pid));
        *ret_fd = fd;
        return 0;
}

int __wrap_proc_pagemap_read(int fd, uint64_t addr, size_t n_pages, uint64_t *entries);
int __wrap_proc_pagemap_read(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        int p = proc_of(fd_pid(fd));

        for (size_t i = 0; i < n_pages; i++) {
                uint64_t page = (addr - BASE_ADDR) / PAGE_SIZE_BYTES + i;

                assert_true(page < fake.n_pages[p]);
                entries[i] = fake.dead[p] ? 0 :
                             fake.page[p][page].flags | (fake.pfn_hidden ? 0 : fake.page[p][page].pfn);
        }
        return 0;
}

/* PAGEMAP_SCAN's zero-page flag, as the kernel gives it whether or not PFNs are shown. */
int __wrap_proc_pagemap_mark_zero_pages(int fd, uint64_t addr, size_t n_pages, uint64_t *entries);
int __wrap_proc_pagemap_mark_zero_pages(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        int p = proc_of(fd_pid(fd));

        fake.mark_calls++;
        for (size_t i = 0; i < n_pages; i++) {
                uint64_t page = (addr - BASE_ADDR) / PAGE_SIZE_BYTES + i;

                if (fake.page[p][page].pfn == ZERO_PFN && (entries[i] & PAGEMAP_PRESENT))
                        entries[i] |= PAGEMAP_ZERO_PAGE;
        }
        return 0;
}

int __wrap_proc_clear_soft_dirty(pid_t pid);
int __wrap_proc_clear_soft_dirty(pid_t pid) {
        int p = proc_of(pid);

        fake.clears[p]++;
        for (size_t i = 0; i < fake.n_pages[p]; i++)
                fake.page[p][i].flags &= ~PAGEMAP_SOFT_DIRTY;
        return 0;
}

int __wrap_memory_read_pages(pid_t pid, const uint64_t *addrs, size_t n, void *buf, size_t *ret_n_read);
int __wrap_memory_read_pages(pid_t pid, const uint64_t *addrs, size_t n, void *buf, size_t *ret_n_read) {
        int p = proc_of(pid);

        if (fake.dead[p])
                return -ESRCH;
        pthread_mutex_lock(&stall.lock);
        if (p == stall.proc)
                stall.calls++;
        for (size_t i = 0; i < n; i++)
                if (p == stall.proc && addrs[i] == stall.addr && stall.on) {
                        stall.blocked++;
                        while (stall.on)
                                pthread_cond_wait(&stall.released, &stall.lock);
                        stall.blocked--;
                }
        pthread_mutex_unlock(&stall.lock);
        pthread_mutex_lock(&fake_lock);
        fake.max_read_batch = MAX(fake.max_read_batch, n);
        for (size_t i = 0; i < n; i++) {
                FakePage *fp = &fake.page[p][(addrs[i] - BASE_ADDR) / PAGE_SIZE_BYTES];

                /* The scanner must never read what pagemap says is absent, zero-mapped or shared. */
                assert_true(fp->flags & PAGEMAP_PRESENT);
                assert_true(fake.shared_reads_ok || (fp->flags & PAGEMAP_EXCLUSIVE));
                assert_false(fp->flags & PAGEMAP_FILE_OR_SHARED);
                assert_true(fp->pfn != ZERO_PFN);
                memset((uint8_t *) buf + i * PAGE_SIZE_BYTES, fp->fill, PAGE_SIZE_BYTES);
                fp->reads++;
                if (fp->changes_on_read) {
                        fp->fill++;
                        if (fp->fill == 0)
                                fp->fill = 1;
                        fp->flags |= PAGEMAP_SOFT_DIRTY;
                }
        }
        pthread_mutex_unlock(&fake_lock);
        *ret_n_read = n;
        return 0;
}

uint64_t __real_page_hash(const void *page, uint64_t seed);
uint64_t __wrap_page_hash(const void *page, uint64_t seed);
uint64_t __wrap_page_hash(const void *page, uint64_t seed) {
        pthread_mutex_lock(&fake_lock);
        fake.hashes++;
        pthread_mutex_unlock(&fake_lock);
        return __real_page_hash(page, seed);
}

int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results);
int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results) {
        fake.merge_calls++;
        for (size_t i = 0; i < n; i++) {
                results[i] = (HelperMergeResult) {
                        .result = fake.result_for(&items[i], zero),
                        .reason = KSMD_HELPER_REASON_THP,
                        .handle = 0x5000,
                };
                if (items[i].handle)
                        fake.last_handle_used = items[i].handle;
                else if (!zero) {
                        fake.last_pidfd = items[i].pidfd;
                        fake.last_src_pidfd = items[i].src_pidfd;
                }
                if (fake.watch_pidfd > 0 &&
                    (items[i].pidfd == fake.watch_pidfd ||
                     (!zero && !items[i].handle && items[i].src_pidfd == fake.watch_pidfd)))
                        fake.watch_items++;
        }
        return 0;
}

/* A test world: registry, index, merger and scanner over the fake processes. */
typedef struct World {
        RegionRegistry *reg;
        PageIndex *idx;
        Merger *merger;
        Scanner *scanner;
        Region *region[N_PROCS];
        uint64_t now;
} World;

typedef enum WorldFlags {
        WORLD_ESTIMATE = 0,              /* no helper, pages read every pass */
        WORLD_SOFT_DIRTY = 1 << 0,       /* unchanged pages are known from pagemap and not read */
        WORLD_MERGING = 1 << 1,          /* a (mocked) helper merges */
        /* What the host probe may find missing (host-probe.h, scanner_config_from_host()): */
        WORLD_ZERO_PFN_UNKNOWN = 1 << 2, /* the zero page's PFN was never learnt */
        WORLD_PAGEMAP_SCAN = 1 << 3,     /* ... and PAGEMAP_SCAN names it */
        WORLD_NO_EXCLUSIVE_BIT = 1 << 4, /* PAGEMAP_EXCLUSIVE does not tell shared pages */
        WORLD_SINGLE_PAGE_READS = 1 << 5, /* process_vm_readv one page at a time */
        WORLD_NO_SHARED_BIT = 1 << 6,    /* PAGEMAP_FILE_OR_SHARED does not mark the helper's pages */
        /*
         * MergePolicy=first-pass, the daemon's default: a page is offered in the pass that first reads
         * it. Without it the world waits for a stable hash (MergePolicy=stable): most tests here prove
         * what both policies share, written when every candidate needed two passes.
         */
        WORLD_FIRST_PASS = 1 << 7,
} WorldFlags;

#define UNBOUNDED_TRACKED_PAGES (UINT64_C(1) << 20)

static void on_result(const MergeRequest *req, const HelperMergeResult *res, void *userdata) {
        World *w = userdata;

        scanner_apply_merge_result(w->scanner, req, res);
}

static void set_page(int p, size_t i, uint8_t fill) {
        fake.page[p][i] = (FakePage) {
                .fill = fill,
                .flags = PAGEMAP_PRESENT | PAGEMAP_EXCLUSIVE | PAGEMAP_SOFT_DIRTY,
                .pfn = 0x10000 + (uint64_t) p * N_PAGES + i,
        };
}

/* Appends n private pages to process p, all filled with fill (0: zero pages). */
static void add_same_pages(int p, size_t n, uint8_t fill) {
        assert_true(fake.n_pages[p] + n <= N_PAGES);
        for (size_t i = 0; i < n; i++)
                set_page(p, fake.n_pages[p]++, fill);
}

/* Appends n private pages to process p, filled with first_fill, first_fill + 1, ... */
static void add_distinct_pages(int p, size_t n, uint8_t first_fill) {
        assert_true(fake.n_pages[p] + n <= N_PAGES);
        for (size_t i = 0; i < n; i++)
                set_page(p, fake.n_pages[p]++, (uint8_t) (first_fill + i));
}

static void add_pages_n(int p, const uint8_t *fills, size_t n) {
        assert_true(fake.n_pages[p] + n <= N_PAGES);
        for (size_t i = 0; i < n; i++)
                set_page(p, fake.n_pages[p]++, fills[i]);
}

/* add_pages(p, fill, ...): appends one private page to process p for each fill given. */
#define add_pages(p, ...) \
        add_pages_n(p, (const uint8_t[]) { __VA_ARGS__ }, sizeof((const uint8_t[]) { __VA_ARGS__ }))

/* The kernel maps the zero page at page i of process p. */
static void map_zero_page(int p, size_t i) {
        fake.page[p][i].flags = PAGEMAP_PRESENT;
        fake.page[p][i].pfn = ZERO_PFN;
}

/* The kernel maps page frame pfn, shared with others, at page i of process p. */
static void map_shared_page(int p, size_t i, uint64_t pfn) {
        fake.page[p][i].flags = PAGEMAP_PRESENT;
        fake.page[p][i].pfn = pfn;
}

/*
 * The helper's shared page, frame pfn, is mapped at page i of process p: a
 * page that is not anonymous, so pagemap marks it file-or-shared (as the VM
 * test helper-edge-test checks on the real kernels), and never exclusive.
 */
static void map_helper_page(int p, size_t i, uint64_t pfn) {
        fake.page[p][i].flags = PAGEMAP_PRESENT | PAGEMAP_FILE_OR_SHARED;
        fake.page[p][i].pfn = pfn;
}

/* Registers the first n_procs fake processes whole; at most max_tracked pages are tracked. */
static void world_init_bounded(World *w, size_t n_procs, WorldFlags flags, uint64_t max_tracked) {
        ScannerConfig sc = {
                .hash_seed = 42,
                .soft_dirty = flags & WORLD_SOFT_DIRTY,
                .pagemap_scan = flags & WORLD_PAGEMAP_SCAN,
                .no_exclusive_bit = flags & WORLD_NO_EXCLUSIVE_BIT,
                .no_shared_bit = flags & WORLD_NO_SHARED_BIT,
                .single_page_reads = flags & WORLD_SINGLE_PAGE_READS,
                .zero_pfn = flags & WORLD_ZERO_PFN_UNKNOWN ? 0 : ZERO_PFN,
        };
        HelperClient *helper = flags & WORLD_MERGING ? (HelperClient *) 0x1 : NULL;

        *w = (World) { .now = 1000000 };
        assert_int_equal(region_registry_new(16, &w->reg), 0);
        assert_int_equal(index_new(max_tracked, &w->idx), 0);
        assert_int_equal(merger_new(helper, 16, 1024, on_result, w, &w->merger), 0);
        assert_int_equal(scanner_new(w->reg, w->idx, w->merger, &sc, &w->scanner), 0);
        scanner_set_merge_policy(w->scanner,
                                 flags & WORLD_FIRST_PASS ? MERGE_POLICY_FIRST_PASS : MERGE_POLICY_STABLE);
        for (size_t p = 0; p < n_procs; p++) {
                assert_int_equal(region_registry_add(w->reg, fake.pid[p], 0, 0, true, 0, &w->region[p]), 0);
                fake.pidfd[p] = w->region[p]->pidfd;
        }
}

/* What the scanner knows of process p's region. */
static const RegionScan *scan_of(const World *w, int p) {
        const RegionScan *rs = scanner_region(w->scanner, w->region[p]->id);

        assert_non_null(rs);
        return rs;
}

/* The slot of the page at addr in process p's region. */
static PageSlot slot_at(const World *w, int p, uint64_t addr) {
        const PageSlot *slot = region_scan_slot_at((RegionScan *) scan_of(w, p), addr);

        assert_non_null(slot);
        return *slot;
}

static void world_init(World *w, size_t n_procs, WorldFlags flags) {
        world_init_bounded(w, n_procs, flags, UNBOUNDED_TRACKED_PAGES);
}

static void world_done(World *w) {
        scanner_free(w->scanner);
        merger_free(w->merger);
        index_free(w->idx);
        region_registry_free(w->reg);
}

/* After every full scan: each region's pages are counted under exactly one reason (reasons.h). */
static void assert_reasons_add_up(const World *w) {
        REGISTRY_FOREACH(r, w->reg) {
                const RegionScan *rs = scanner_region(w->scanner, r->id);
                uint64_t sum = 0;

                if (!rs || r->gone)
                        continue;
                for (size_t i = 0; i < _PAGE_REASON_MAX; i++)
                        sum += rs->last.pages_by_reason[i];
                assert_int_equal(sum, region_scan_registered_pages(rs, r));
        }
}

/* Runs one full scan in small steps (so passes cross step boundaries) and flushes merges;
 * true if it was quiet. */
static bool run_pass(World *w) {
        ScanStepResult res = {};
        unsigned steps = 0;

        do {
                assert_int_equal(scanner_step(w->scanner, 7, w->now, &res), 0);
                w->now += 1000;
                assert_true(merger_flush(w->merger, w->now) >= 0);
                assert_true(++steps < 10000);
        } while (!res.pass_done);
        assert_reasons_add_up(w);
        return res.pass_quiet;
}

/*
 * n full scans. Two settle a still world under the stable policy: the first
 * reads every page, the second finds the pages that held still as candidates
 * (and merges them). Under first-pass one does.
 */
static void run_passes(World *w, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                run_pass(w);
}

/* Steps of pages_per_step pages, without flushing merges, until the current pass is done. */
static void finish_pass(World *w, size_t pages_per_step) {
        ScanStepResult res;

        do
                assert_int_equal(scanner_step(w->scanner, pages_per_step, w->now, &res), 0);
        while (!res.pass_done);
        assert_reasons_add_up(w);
}

static uint64_t reason_of(const World *w, int p, PageReason r) {
        return scan_of(w, p)->last.pages_by_reason[r];
}

static const ScanCounters *last_counters(const World *w) {
        return scanner_last_counters(w->scanner);
}

static unsigned reads_of(int p) {
        unsigned n = 0;

        for (size_t i = 0; i < fake.n_pages[p]; i++)
                n += fake.page[p][i].reads;
        return n;
}

static void reset_reads(void) {
        for (int p = 0; p < N_PROCS; p++)
                for (size_t i = 0; i < N_PAGES; i++)
                        fake.page[p][i].reads = 0;
}

static int setup(void **state) {
        memset(&fake, 0, sizeof(fake));
        for (int p = 0; p < N_PROCS; p++) {
                pid_t pid = fork();

                assert_true(pid >= 0);
                if (pid == 0) {
                        pause();
                        _exit(0);
                }
                fake.pid[p] = pid;
        }
        return 0;
}

static int teardown(void **state) {
        /* A failed test may leave a worker waiting in a stalled read. */
        pthread_mutex_lock(&stall.lock);
        stall.on = false;
        pthread_cond_broadcast(&stall.released);
        pthread_mutex_unlock(&stall.lock);
        for (int p = 0; p < N_PROCS; p++)
                /* A reaped child's pid may already belong to someone else: never signal it. */
                if (fake.pid[p] > 0 && !fake.dead[p]) {
                        (void) kill(fake.pid[p], SIGKILL);
                        (void) waitpid(fake.pid[p], NULL, 0);
                }
        return 0;
}

static void test_page_becomes_candidate_only_after_holding_still(void **state) {
        World w;

        add_pages(0, 1, 1, 2, 0);
        world_init(&w, 1, WORLD_ESTIMATE);

        run_pass(&w);
        assert_int_equal(last_counters(&w)->pages_read, 4);
        assert_int_equal(last_counters(&w)->pages_sharing, 0);
        assert_int_equal(last_counters(&w)->pages_zero, 0);

        run_pass(&w);
        const ScanCounters *c = last_counters(&w);
        assert_int_equal(c->pages_sharing, 1);
        assert_int_equal(c->pages_shared, 1);
        assert_int_equal(c->pages_unshared, 1);
        assert_int_equal(c->pages_zero, 1);
        assert_int_equal(scan_counters_saving_pages(c), 2);
        world_done(&w);
}

/* Under both policies; first-pass is exact from the first full scan on, stable from the second. */
static void check_estimate_exact(bool first_pass) {
        World w;

        fake.n_pages[0] = fake.n_pages[1] = 0;
        /* Process 0: contents 1..20, then 6 zero pages, then 4 more copies of content 3. */
        add_distinct_pages(0, 20, 1);
        add_same_pages(0, 6, 0);
        add_same_pages(0, 4, 3);
        /* Process 1: contents 11..30 (11..20 shared with process 0), then 2 zero pages. */
        add_distinct_pages(1, 20, 11);
        add_same_pages(1, 2, 0);
        /*
         * Distinct non-zero contents: 1..30 = 30. Non-zero pages: 24 + 20 = 44.
         * Sharing = 44 - 30 = 14; shared = 11 (content 3 and 11..20); zero = 8.
         */
        world_init(&w, 2, WORLD_ESTIMATE | (first_pass ? WORLD_FIRST_PASS : 0));
        for (int pass = 0; pass < 4; pass++) {
                run_pass(&w);
                if (pass == 0 && !first_pass) {
                        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 0);
                        continue;
                }
                const ScanCounters *c = last_counters(&w);
                assert_int_equal(c->pages_sharing, 14);
                assert_int_equal(c->pages_shared, 11);
                assert_int_equal(c->pages_zero, 8);
                assert_int_equal(c->pages_unshared, 30 - 11);
                assert_int_equal(scan_counters_saving_pages(c), 22);
                /* Per region: process 0 holds the first copy of everything it shares. */
                assert_int_equal(scan_counters_saving_pages(&scan_of(&w, 0)->last), 4 + 6);
                assert_int_equal(scan_counters_saving_pages(&scan_of(&w, 1)->last), 10 + 2);
        }
        assert_int_equal(merger_counters(w.merger)->estimated, (first_pass ? 4 : 3) * 22);
        world_done(&w);
}

static void test_estimate_is_exact_across_processes_and_stays_exact(void **state) {
        check_estimate_exact(false);
        check_estimate_exact(true);
}

static uint32_t merged_except_fill(const HelperMergeItem *it, bool zero);

/* What a few full scans found, pass by pass: the whole scan's counters and each region's. */
typedef struct ScanRecord {
        ScanCounters total[6];
        ScanCounters region[6][N_PROCS];
        MergeCounters merge;
        unsigned reads[N_PROCS], hashes;
} ScanRecord;

/* A world with every kind of page: duplicates within and across processes, zero pages, changing ones. */
static void fill_mixed_world(void) {
        for (int p = 0; p < N_PROCS; p++)
                fake.n_pages[p] = 0;
        fake.hashes = 0;
        add_distinct_pages(0, 20, 1);
        add_same_pages(0, 6, 0);
        add_same_pages(0, 10, 3);
        add_distinct_pages(0, 10, 200);
        add_distinct_pages(1, 20, 11);
        add_same_pages(1, 9, 0);
        add_same_pages(1, 12, 7);
        add_distinct_pages(1, 15, 100);
        for (size_t i = 40; i < 50; i++)
                fake.page[0][i].changes_on_read = true;
        fake.page[1][3].flags = PAGEMAP_SWAPPED;
        fake.page[1][4].flags = 0;
        map_zero_page(1, 5);
        map_shared_page(0, 2, 0x9999);
}

/* Six full scans of fill_mixed_world() with threads scan threads, each in steps of step_pages pages. */
static void record_scans(unsigned threads, WorldFlags flags, uint64_t step_pages, ScanRecord *rec) {
        World w;

        memset(rec, 0, sizeof(*rec));
        fill_mixed_world();
        reset_reads();
        world_init(&w, N_PROCS, flags);
        assert_int_equal(scanner_set_threads(w.scanner, threads), 0);
        assert_int_equal(scanner_threads(w.scanner), threads);
        for (int pass = 0; pass < 6; pass++) {
                ScanStepResult res;

                do {
                        assert_int_equal(scanner_step(w.scanner, step_pages, w.now, &res), 0);
                        w.now += 1000;
                        assert_true(merger_flush(w.merger, w.now) >= 0);
                } while (!res.pass_done);
                assert_reasons_add_up(&w);
                rec->total[pass] = *last_counters(&w);
                for (int p = 0; p < N_PROCS; p++)
                        rec->region[pass][p] = scan_of(&w, p)->last;
        }
        rec->merge = *merger_counters(w.merger);
        for (int p = 0; p < N_PROCS; p++)
                rec->reads[p] = reads_of(p);
        rec->hashes = fake.hashes;
        /* The workers read exactly what the scanner wanted: nothing was read twice. */
        assert_int_equal(scanner_pages_reread(w.scanner), 0);
        world_done(&w);
}

static void assert_same_scans(const ScanRecord *a, const ScanRecord *b) {
        for (int pass = 0; pass < 6; pass++) {
                assert_memory_equal(&a->total[pass], &b->total[pass], sizeof(ScanCounters));
                assert_memory_equal(a->region[pass], b->region[pass], sizeof(a->region[pass]));
        }
        assert_memory_equal(&a->merge, &b->merge, sizeof(MergeCounters));
        assert_memory_equal(a->reads, b->reads, sizeof(a->reads));
        assert_int_equal(a->hashes, b->hashes);
}

static void test_estimate_is_identical_with_1_2_and_4_scan_threads(void **state) {
        /* Steps of 7 pages put many chunks in flight at once; steps of 5000 one chunk per region. */
        static const uint64_t steps[] = { 7, 5000 };

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                ScanRecord one, two, four;

                record_scans(1, WORLD_ESTIMATE, steps[i], &one);
                record_scans(2, WORLD_ESTIMATE, steps[i], &two);
                record_scans(4, WORLD_ESTIMATE, steps[i], &four);
                assert_same_scans(&one, &two);
                assert_same_scans(&one, &four);
                assert_true(scan_counters_saving_pages(&one.total[5]) > 0);
                assert_int_equal(one.merge.estimated, two.merge.estimated);
        }
}

static void test_soft_dirty_and_merging_scans_are_identical_with_scan_threads(void **state) {
        ScanRecord one, two, four;

        fake.result_for = merged_except_fill;
        record_scans(1, WORLD_SOFT_DIRTY, 7, &one);
        record_scans(2, WORLD_SOFT_DIRTY, 7, &two);
        record_scans(4, WORLD_SOFT_DIRTY, 7, &four);
        assert_same_scans(&one, &two);
        assert_same_scans(&one, &four);
        assert_true(one.total[5].pages_unchanged > 0);

        record_scans(1, WORLD_MERGING | WORLD_SOFT_DIRTY, 7, &one);
        record_scans(2, WORLD_MERGING | WORLD_SOFT_DIRTY, 7, &two);
        record_scans(4, WORLD_MERGING | WORLD_SOFT_DIRTY, 7, &four);
        assert_same_scans(&one, &two);
        assert_same_scans(&one, &four);
        assert_true(one.merge.by_result[KSMD_HELPER_RESULT_MERGED] > 0);
}

static void test_scan_threads_can_change_between_steps_mid_pass(void **state) {
        ScanRecord ref;
        ScanStepResult res;
        World w;
        unsigned threads[] = { 2, 1, 4, 3 };
        size_t t = 0;

        record_scans(1, WORLD_ESTIMATE, 7, &ref);
        fill_mixed_world();
        world_init(&w, N_PROCS, WORLD_ESTIMATE);
        for (int pass = 0; pass < 6; pass++) {
                do {
                        assert_int_equal(scanner_set_threads(w.scanner, threads[t++ % ELEMENTSOF(threads)]),
                                         0);
                        assert_int_equal(scanner_step(w.scanner, 11, w.now, &res), 0);
                } while (!res.pass_done);
                assert_memory_equal(last_counters(&w), &ref.total[pass], sizeof(ScanCounters));
        }
        assert_int_equal(scanner_set_threads(w.scanner, 0), -EINVAL);
        assert_int_equal(scanner_set_threads(w.scanner, SCAN_THREADS_MAX + 1), -EINVAL);
        world_done(&w);
}

static unsigned stall_calls(void) {
        unsigned n;

        pthread_mutex_lock(&stall.lock);
        n = stall.calls;
        pthread_mutex_unlock(&stall.lock);
        return n;
}

static void test_a_read_that_never_returns_stalls_only_its_region(void **state) {
        ScanRecord ref;
        ScanStepResult res;
        const RegionScan *rs;
        unsigned calls, steps;
        World w;

        /* What the scan finds when nothing stalls. */
        record_scans(1, WORLD_ESTIMATE, 7, &ref);

        fill_mixed_world();
        world_init(&w, N_PROCS, WORLD_ESTIMATE);
        assert_int_equal(scanner_set_threads(w.scanner, 2), 0);
        scanner_set_read_deadline(w.scanner, 100000);
        pthread_mutex_lock(&stall.lock);
        stall.on = true;
        stall.proc = 1;
        stall.addr = BASE_ADDR + 10 * PAGE_SIZE_BYTES;
        stall.calls = 0;
        pthread_mutex_unlock(&stall.lock);

        /* The pass ends, in steps that each return: process 1's read holds a worker, not the scan. */
        for (int pass = 0; pass < 2; pass++) {
                steps = 0;
                do {
                        assert_int_equal(scanner_step(w.scanner, 7, w.now, &res), 0);
                        assert_true(++steps < 1000);
                } while (!res.pass_done);
                assert_reasons_add_up(&w);
                /* Process 0 is scanned in full (what pairs with process 1's pages differs, of course). */
                assert_int_equal(scan_of(&w, 0)->last.pages_scanned, ref.region[pass][0].pages_scanned);
                assert_int_equal(scan_of(&w, 0)->last.pages_read, ref.region[pass][0].pages_read);
                rs = scan_of(&w, 1);
                assert_non_null(strstr(rs->note, "took longer than 100 ms"));
                /* Its pages from the stalled chunk on are counted unreadable, as pages not reached. */
                assert_true(rs->last.pages_by_reason[PAGE_REASON_UNREADABLE] >= fake.n_pages[1] - 14);
        }
        calls = stall_calls();

        /* While the read hangs, the region is not read again, not even its maps. */
        steps = 0;
        do
                assert_int_equal(scanner_step(w.scanner, 7, w.now, &res), 0);
        while (!res.pass_done);
        assert_int_equal(stall_calls(), calls);
        assert_int_equal(scan_of(&w, 1)->last.pages_read, 0);

        /* The read returns: the region is scanned again, in full, and the note is gone. */
        pthread_mutex_lock(&stall.lock);
        stall.on = false;
        pthread_cond_broadcast(&stall.released);
        pthread_mutex_unlock(&stall.lock);
        for (int pass = 0; pass < 200; pass++) {
                do
                        assert_int_equal(scanner_step(w.scanner, 7, w.now, &res), 0);
                while (!res.pass_done);
                if (scan_of(&w, 1)->last.pages_by_reason[PAGE_REASON_UNREADABLE] == 0)
                        break;
                usleep(10000);
        }
        rs = scan_of(&w, 1);
        assert_int_equal(rs->last.pages_by_reason[PAGE_REASON_UNREADABLE], 0);
        assert_true(rs->last.pages_read > 0);
        assert_null(strstr(rs->note, "took longer"));
        world_done(&w);
}

static void test_default_scan_threads_follow_max_cpu_and_the_cpus(void **state) {
        assert_int_equal(scan_threads_default(20, 8), 1);
        assert_int_equal(scan_threads_default(100, 8), 1);
        assert_int_equal(scan_threads_default(101, 8), 2);
        assert_int_equal(scan_threads_default(200, 8), 2);
        assert_int_equal(scan_threads_default(800, 2), 2);
        assert_int_equal(scan_threads_default(800, -1), 8);
        assert_int_equal(scan_threads_default(1, 0), 1);
        assert_int_equal(scan_threads_default(100000, 1000), SCAN_THREADS_MAX);
}

static void test_absent_swapped_zero_mapped_and_shared_pages_are_never_read(void **state) {
        World w;

        add_same_pages(0, 6, 7);
        fake.page[0][0].flags = 0;                                           /* never touched */
        fake.page[0][1].flags = PAGEMAP_SWAPPED;                             /* swapped out */
        map_zero_page(0, 2);
        map_shared_page(0, 3, fake.page[0][3].pfn);                          /* fork COW / KSM */
        fake.page[0][4].flags = PAGEMAP_PRESENT | PAGEMAP_EXCLUSIVE | PAGEMAP_FILE_OR_SHARED;
        world_init(&w, 1, WORLD_ESTIMATE);
        run_passes(&w, 2);
        const ScanCounters *c = last_counters(&w);
        assert_int_equal(c->pages_scanned, 6);
        assert_int_equal(c->pages_not_present, 2);
        assert_int_equal(c->pages_swapped, 1);
        assert_int_equal(c->pages_zero_mapped, 1);
        assert_int_equal(c->pages_external, 2);
        assert_int_equal(c->pages_read, 1);
        assert_int_equal(fake.page[0][5].reads, 2);
        assert_int_equal(scan_counters_saving_pages(c), 0);
        world_done(&w);
}

static void test_changing_page_is_never_a_candidate_and_is_read_less_often(void **state) {
        World w;
        const int passes = 64;

        add_same_pages(0, 3, 9);
        fake.page[0][0].changes_on_read = true;
        world_init(&w, 1, WORLD_ESTIMATE);
        for (int i = 0; i < passes; i++) {
                run_pass(&w);
                if (i > 0)
                        /* Only the two steady pages ever pair up. */
                        assert_int_equal(last_counters(&w)->pages_sharing, 1);
        }
        /* Steady pages are read every pass (no soft-dirty here); the volatile one far less. */
        assert_int_equal(fake.page[0][1].reads, passes);
        print_message("# volatile page read %u times in %d passes\n", fake.page[0][0].reads, passes);
        assert_true(fake.page[0][0].reads <= passes / 4);
        assert_true(fake.page[0][0].reads >= 4);
        world_done(&w);
}

/* Quiet: at most 1 in SCAN_QUIET_FRACTION examined pages new, merged or newly saving (here: none). */
static void test_a_scan_is_quiet_when_it_finds_nothing_new(void **state) {
        World w;

        add_same_pages(0, 4, 7);
        add_distinct_pages(0, 8, 20);
        add_same_pages(1, 2, 0);
        fake.page[1][0].changes_on_read = true;
        world_init(&w, 2, WORLD_ESTIMATE);
        assert_false(run_pass(&w));      /* everything is new */
        assert_false(run_pass(&w));      /* the duplicates held still: the saving grew */
        /* The volatile page changes on every read, but after its first change it is not news. */
        for (int i = 0; i < 3; i++)
                assert_true(run_pass(&w));
        /* A page that held still changes once: news; then it holds still again: quiet. */
        fake.page[0][5].fill = 99;
        assert_false(run_pass(&w));
        assert_true(run_pass(&w));
        /* A new page faulted in: news. */
        add_same_pages(0, 1, 123);
        assert_false(run_pass(&w));
        assert_true(run_pass(&w));
        world_done(&w);
}

static void test_zero_pages_are_recognised_without_hashing(void **state) {
        World w;

        add_same_pages(0, 8, 0);
        world_init(&w, 1, WORLD_ESTIMATE);
        run_passes(&w, 2);
        assert_int_equal(last_counters(&w)->pages_zero, 8);
        assert_int_equal(fake.hashes, 0);
        world_done(&w);
}

static void test_soft_dirty_spares_reading_unchanged_pages(void **state) {
        World w;

        /* Contents 1..5, twice. */
        add_distinct_pages(0, 5, 1);
        add_distinct_pages(0, 5, 1);
        world_init(&w, 1, WORLD_SOFT_DIRTY);

        run_pass(&w);                       /* clears soft-dirty first, then reads all */
        assert_int_equal(fake.clears[0], 1);
        assert_int_equal(reads_of(0), 10);

        reset_reads();
        run_pass(&w);                       /* nothing written: nothing read, all candidates */
        const ScanCounters *c = last_counters(&w);
        assert_int_equal(reads_of(0), 0);
        assert_int_equal(c->pages_unchanged, 10);
        assert_int_equal(c->pages_sharing, 5);
        assert_int_equal(fake.clears[0], 1);

        /* The process writes one page: only that one is read again. */
        fake.page[0][3].fill = 0x77;
        fake.page[0][3].flags |= PAGEMAP_SOFT_DIRTY;
        reset_reads();
        run_pass(&w);
        assert_int_equal(reads_of(0), 1);
        assert_int_equal(fake.page[0][3].reads, 1);
        c = last_counters(&w);
        assert_int_equal(c->pages_volatile, 1);
        assert_int_equal(c->pages_sharing, 4);   /* page 3 changed: not a candidate this pass */
        assert_int_equal(fake.clears[0], 1);
        world_done(&w);
}

static void test_soft_dirty_is_cleared_again_when_rereads_are_wasted(void **state) {
        World w;
        unsigned clears_before;

        add_distinct_pages(0, 8, 1);
        world_init(&w, 1, WORLD_SOFT_DIRTY);
        run_passes(&w, 2);
        assert_int_equal(fake.clears[0], 1);

        /* Half the pages were written with the same bytes: dirty, but unchanged. */
        for (size_t i = 0; i < 4; i++)
                fake.page[0][i].flags |= PAGEMAP_SOFT_DIRTY;
        clears_before = fake.clears[0];
        reset_reads();
        run_pass(&w);
        assert_int_equal(reads_of(0), 4);
        assert_int_equal(last_counters(&w)->pages_rewritten_same, 4);
        assert_int_equal(fake.clears[0], clears_before);

        /* 4 wasted reads = half of 8 tracked pages: the next pass clears and reads everything once. */
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.clears[0], clears_before + 1);
        assert_int_equal(reads_of(0), 8);
        reset_reads();
        run_pass(&w);
        assert_int_equal(reads_of(0), 0);
        world_done(&w);
}

static void test_without_soft_dirty_every_page_is_read_each_pass(void **state) {
        World w;

        add_same_pages(0, 5, 1);
        world_init(&w, 1, WORLD_ESTIMATE);
        run_passes(&w, 3);
        assert_int_equal(fake.clears[0], 0);
        assert_int_equal(reads_of(0), 15);
        world_done(&w);
}

static void test_process_exit_mid_scan_drops_only_its_region(void **state) {
        World w;
        ScanStepResult res;

        add_same_pages(0, 20, 1);
        add_same_pages(1, 20, 1);
        world_init(&w, 2, WORLD_ESTIMATE);
        run_pass(&w);
        /* Start the next pass, then process 0 exits and is reaped. */
        assert_int_equal(scanner_step(w.scanner, 5, w.now, &res), 0);
        fake.dead[0] = true;
        (void) kill(fake.pid[0], SIGKILL);
        (void) waitpid(fake.pid[0], NULL, 0);
        finish_pass(&w, 5);
        assert_true(w.region[0]->gone);
        assert_false(w.region[1]->gone);
        /* Pages of process 0 read before it exited still served as first copies in this pass. */
        assert_int_equal(scan_of(&w, 1)->last.pages_sharing, 20);
        scanner_forget_region(w.scanner, w.region[0]);
        assert_int_equal(region_registry_remove(w.reg, w.region[0]->id), 0);
        run_pass(&w);
        assert_int_equal(last_counters(&w)->pages_sharing, 19);
        world_done(&w);
}

static void test_region_removed_with_the_cursor_in_it_leaves_the_next_scanned_in_full(void **state) {
        World w;
        ScanStepResult res;

        add_distinct_pages(0, 40, 1);
        add_distinct_pages(1, 30, 1);
        world_init(&w, 2, WORLD_ESTIMATE);
        run_pass(&w);
        /* The cursor is in process 0's region, 25 pages in, when it is unregistered between steps. */
        for (int i = 0; i < 5; i++)
                assert_int_equal(scanner_step(w.scanner, 5, w.now, &res), 0);
        assert_int_equal(scanner_current_pages(w.scanner), 25);
        scanner_forget_region(w.scanner, w.region[0]);
        assert_int_equal(region_registry_remove(w.reg, w.region[0]->id), 0);
        finish_pass(&w, 5);
        /* Process 1's region from its first page: every page scanned, all 30 candidates. */
        assert_int_equal(scan_of(&w, 1)->last.pages_scanned, 30);
        assert_int_equal(scan_of(&w, 1)->last.pages_unshared, 30);
        world_done(&w);
}

static uint32_t merged_except_fill(const HelperMergeItem *it, bool zero) {
        return KSMD_HELPER_RESULT_MERGED;
}

static void test_merged_pages_join_the_shared_page_by_handle_and_are_not_read_again(void **state) {
        World w;

        fake.result_for = merged_except_fill;
        add_pages(0, 5, 5, 6, 0);
        world_init(&w, 1, WORLD_MERGING);
        run_passes(&w, 2);
        /* One MERGE (page 1 onto page 0) and one MERGE_ZERO. */
        assert_int_equal(fake.merge_calls, 2);
        assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
        uint64_t handle;
        assert_int_equal(index_shared_lookup(w.idx, page_slot_hash(slot_at(&w, 0, BASE_ADDR)), &handle), 1);
        assert_true(handle == 0x5000);

        /* The kernel now maps one shared page at 0 and 1, and the zero page at 3. */
        map_helper_page(0, 0, 0x9999);
        map_helper_page(0, 1, 0x9999);
        map_zero_page(0, 3);
        /* Page 2 now holds the shared content too: it must join by handle. */
        fake.page[0][2].fill = 5;
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.page[0][0].reads + fake.page[0][1].reads, 0);
        /* As KSM counts: the shared page once as shared, its other mapper as sharing;
         * the merged zero page as zero. */
        assert_int_equal(last_counters(&w)->pages_shared, 1);
        assert_int_equal(last_counters(&w)->pages_sharing, 1);
        assert_int_equal(last_counters(&w)->pages_zero, 1);
        assert_int_equal(last_counters(&w)->pages_zero_mapped, 1);
        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 2);
        run_pass(&w);
        assert_true(fake.last_handle_used == 0x5000);
        world_done(&w);
}

/*
 * Merges pages 0 and 1 (content 5) into the helper's page 0x9999 and page 3
 * into the zero page, as the kernel then shows them; page 2 stays unique.
 */
static void merge_two_pages_and_a_zero_page(World *w, WorldFlags flags) {
        fake.result_for = merged_except_fill;
        add_pages(0, 5, 5, 6, 0);
        world_init(w, 1, WORLD_MERGING | flags);
        run_passes(w, 2);
        assert_int_equal(merger_counters(w->merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
        map_helper_page(0, 0, 0x9999);
        map_helper_page(0, 1, 0x9999);
        map_zero_page(0, 3);
}

static void test_pages_still_mapping_what_they_were_merged_into_are_never_read_again(void **state) {
        for (int sd = 0; sd < 2; sd++) {
                World w;

                fake.n_pages[0] = 0;
                merge_two_pages_and_a_zero_page(&w, sd ? WORLD_SOFT_DIRTY : 0);
                for (int pass = 0; pass < 3; pass++) {
                        const ScanCounters *c;

                        reset_reads();
                        run_pass(&w);
                        c = last_counters(&w);
                        /* Same frames: no read, counted as skipped and as the saving they are. */
                        assert_int_equal(fake.page[0][0].reads + fake.page[0][1].reads, 0);
                        assert_int_equal(fake.page[0][3].reads, 0);
                        assert_int_equal(c->pages_skipped_merged, 3);
                        assert_int_equal(c->pages_shared, 1);
                        assert_int_equal(c->pages_sharing, 1);
                        assert_int_equal(c->pages_zero, 1);
                        /* The unique page: read each pass without soft-dirty, spared with it. */
                        assert_int_equal(fake.page[0][2].reads, sd ? 0 : 1);
                        assert_int_equal(c->pages_read, sd ? 0 : 1);
                        assert_int_equal(c->pages_unchanged, sd ? 1 : 0);
                }
                world_done(&w);
        }
}

static void test_written_merged_page_gets_a_new_frame_and_is_read_again(void **state) {
        World w;
        const ScanCounters *c;

        merge_two_pages_and_a_zero_page(&w, 0);
        /* The process writes pages 1 and 3: COW gives each a private copy, a new frame. */
        set_page(0, 1, 9);
        set_page(0, 3, 7);
        reset_reads();
        run_pass(&w);
        c = last_counters(&w);
        assert_int_equal(fake.page[0][0].reads, 0);
        /* Only page 0 still maps the shared page, which now saves nothing. */
        assert_int_equal(c->pages_skipped_merged, 1);
        assert_int_equal(c->pages_sharing, 0);
        assert_int_equal(c->pages_zero, 0);
        assert_int_equal(scan_counters_saving_pages(c), 0);
        /* Each break raised its page's volatility: read now as a new page, or at its tick. */
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_NEW) + reason_of(&w, 0, PAGE_REASON_VOLATILE), 2);
        for (unsigned passes = 1; fake.page[0][1].reads == 0 || fake.page[0][3].reads == 0; passes++) {
                assert_true(passes < 4);
                run_pass(&w);
        }
        assert_int_equal(fake.page[0][1].reads, 1);
        assert_int_equal(fake.page[0][3].reads, 1);
        assert_int_equal(fake.page[0][0].reads, 0);
        /* Its new content is handled like any: once it held still, page 1 is a candidate. */
        for (unsigned passes = 0;
             page_slot_state(slot_at(&w, 0, BASE_ADDR + PAGE_SIZE_BYTES)) != PAGE_HASHED; passes++) {
                assert_true(passes < 8);
                run_pass(&w);
        }
        world_done(&w);
}

static void test_written_merged_page_shared_by_a_fork_is_not_counted_as_merged(void **state) {
        World w;
        const ScanCounters *c;

        merge_two_pages_and_a_zero_page(&w, 0);
        /* Page 1 was written (a private copy, frame 0x4444), then the process forked: not exclusive. */
        map_shared_page(0, 1, 0x4444);
        reset_reads();
        run_pass(&w);
        c = last_counters(&w);
        assert_int_equal(reads_of(0), 1);        /* the unique page 2 only */
        assert_int_equal(c->pages_skipped_merged, 2);
        assert_int_equal(c->pages_external, 1);
        assert_int_equal(c->pages_sharing, 0);
        assert_int_equal(scan_counters_saving_pages(c), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_SHARED_ELSEWHERE), 1);
        assert_int_equal(page_slot_state(slot_at(&w, 0, BASE_ADDR + PAGE_SIZE_BYTES)), PAGE_UNKNOWN);
        world_done(&w);
}

static void test_without_the_shared_bit_merged_pages_are_known_by_not_being_exclusive(void **state) {
        World w;

        merge_two_pages_and_a_zero_page(&w, WORLD_NO_SHARED_BIT);
        /* This kernel shows the helper's page as present and not exclusive only. */
        map_shared_page(0, 0, 0x9999);
        map_shared_page(0, 1, 0x9999);
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.page[0][0].reads + fake.page[0][1].reads, 0);
        assert_int_equal(last_counters(&w)->pages_skipped_merged, 3);
        assert_int_equal(last_counters(&w)->pages_sharing, 1);
        world_done(&w);
}

static void test_estimate_mode_skips_nothing_as_merged(void **state) {
        World w;

        /* Nothing is merged: a page that maps the zero page by itself or a fork's page is no saving. */
        add_pages(0, 5, 5, 0, 8);
        map_zero_page(0, 2);
        map_shared_page(0, 3, 0x4444);
        world_init(&w, 1, WORLD_ESTIMATE);
        run_passes(&w, 3);
        assert_int_equal(last_counters(&w)->pages_skipped_merged, 0);
        assert_int_equal(last_counters(&w)->pages_read, 2);
        world_done(&w);
}

static void test_zero_merged_page_counts_as_saved_until_written(void **state) {
        World w;

        fake.result_for = merged_except_fill;
        add_pages(0, 0, 7);
        world_init(&w, 1, WORLD_MERGING);
        run_passes(&w, 2);
        assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 1);

        /* The kernel now maps the zero page there: counted as saved, never read. */
        map_zero_page(0, 0);
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.page[0][0].reads, 0);
        assert_int_equal(last_counters(&w)->pages_zero, 1);
        assert_int_equal(last_counters(&w)->pages_zero_mapped, 1);

        /* Written: a private page again, read and no longer counted as saved. */
        set_page(0, 0, 9);
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.page[0][0].reads, 1);
        assert_int_equal(last_counters(&w)->pages_zero, 0);
        assert_int_equal(last_counters(&w)->pages_zero_mapped, 0);
        world_done(&w);
}

static void test_zero_page_mapped_by_a_thp_split_counts_only_when_merging(void **state) {
        for (int live = 0; live < 2; live++) {
                World w;

                fake.result_for = merged_except_fill;
                fake.n_pages[0] = 0;             /* each round starts from an empty process */
                add_pages(0, 0, 7);
                world_init(&w, 1, live ? WORLD_MERGING : WORLD_ESTIMATE);
                run_pass(&w);
                /* Read as a private zero page, then the kernel maps the zero page there itself. */
                map_zero_page(0, 0);
                run_passes(&w, 2);
                /* Merging: a saving our merges caused. Estimating: nothing left to save. */
                assert_int_equal(last_counters(&w)->pages_zero, live ? 1 : 0);
                assert_int_equal(last_counters(&w)->pages_zero_mapped, 1);
                world_done(&w);
        }
}

static void test_zero_page_without_its_pfn_is_named_by_pagemap_scan_and_never_read(void **state) {
        World w;

        /* PFNs hidden: only PAGEMAP_SCAN can tell the zero page from another shared page. */
        fake.pfn_hidden = true;
        add_same_pages(0, 4, 7);
        map_zero_page(0, 1);
        map_zero_page(0, 2);
        world_init(&w, 1, WORLD_ESTIMATE | WORLD_ZERO_PFN_UNKNOWN | WORLD_PAGEMAP_SCAN);
        run_passes(&w, 2);
        assert_true(fake.mark_calls > 0);
        assert_int_equal(last_counters(&w)->pages_zero_mapped, 2);
        assert_int_equal(last_counters(&w)->pages_external, 0);
        assert_int_equal(fake.page[0][1].reads + fake.page[0][2].reads, 0);
        assert_int_equal(last_counters(&w)->pages_sharing, 1);
        world_done(&w);
}

static void test_zero_page_nobody_can_name_counts_as_shared_and_is_never_read(void **state) {
        World w;

        fake.pfn_hidden = true;
        add_same_pages(0, 4, 7);
        map_zero_page(0, 1);
        world_init(&w, 1, WORLD_ESTIMATE | WORLD_ZERO_PFN_UNKNOWN);
        run_passes(&w, 2);
        assert_int_equal(fake.mark_calls, 0);
        assert_int_equal(last_counters(&w)->pages_zero_mapped, 0);
        assert_int_equal(last_counters(&w)->pages_external, 1);
        assert_int_equal(fake.page[0][1].reads, 0);
        world_done(&w);
}

/*
 * A kernel whose read faults map fresh pages gives no zero PFN to learn. Its
 * pages only read are private zero pages, merged like any other; once the
 * helper mapped the zero page there, PAGEMAP_SCAN keeps it counted as saved.
 * Without PAGEMAP_SCAN it counts as shared with other processes, unread.
 */
static void test_merged_zero_page_where_read_faults_map_fresh_pages(void **state) {
        for (int scan = 0; scan < 2; scan++) {
                World w;

                fake.result_for = merged_except_fill;
                fake.n_pages[0] = 0;
                add_pages(0, 0, 7);              /* page 0: read, a fresh zero-filled private page */
                world_init(&w, 1, WORLD_MERGING | WORLD_ZERO_PFN_UNKNOWN | (scan ? WORLD_PAGEMAP_SCAN : 0));
                run_passes(&w, 2);
                assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 1);

                map_zero_page(0, 0);
                reset_reads();
                run_pass(&w);
                assert_int_equal(fake.page[0][0].reads, 0);
                assert_int_equal(last_counters(&w)->pages_zero, scan ? 1 : 0);
                assert_int_equal(last_counters(&w)->pages_zero_mapped, scan ? 1 : 0);
                assert_int_equal(last_counters(&w)->pages_external, scan ? 0 : 1);
                world_done(&w);
        }
}

static void test_without_the_exclusive_bit_shared_pages_are_read_and_offered(void **state) {
        World w;

        fake.shared_reads_ok = true;
        add_same_pages(0, 3, 5);
        /* Page 0 and 1 shared with a fork: present, not exclusive; page 2 a file page. */
        fake.page[0][0].flags = fake.page[0][1].flags = PAGEMAP_PRESENT;
        fake.page[0][2].flags = PAGEMAP_PRESENT | PAGEMAP_FILE_OR_SHARED;
        world_init(&w, 1, WORLD_ESTIMATE | WORLD_NO_EXCLUSIVE_BIT);
        run_passes(&w, 2);
        assert_int_equal(fake.page[0][0].reads, 2);
        assert_int_equal(fake.page[0][1].reads, 2);
        assert_int_equal(fake.page[0][2].reads, 0);
        assert_int_equal(last_counters(&w)->pages_sharing, 1);
        assert_int_equal(last_counters(&w)->pages_external, 1);
        world_done(&w);
}

static void test_single_page_reads_ask_one_page_per_call(void **state) {
        World w;

        add_distinct_pages(0, 16, 1);
        world_init(&w, 1, WORLD_ESTIMATE);
        run_pass(&w);
        assert_true(fake.max_read_batch > 1);
        world_done(&w);

        fake.max_read_batch = 0;
        reset_reads();
        world_init(&w, 1, WORLD_ESTIMATE | WORLD_SINGLE_PAGE_READS);
        run_pass(&w);
        assert_int_equal(fake.max_read_batch, 1);
        assert_int_equal(reads_of(0), 16);
        assert_int_equal(last_counters(&w)->pages_read, 16);
        world_done(&w);
}

/* The region (process) whose pidfd the helper was given. */
static int proc_of_pidfd(int pidfd) {
        for (int p = 0; p < N_PROCS; p++)
                if (fake.pidfd[p] == pidfd)
                        return p;
        fail_msg("unknown pidfd %d", pidfd);
        return -1;
}

/*
 * The helper merges every page and the kernel then maps what it merged into:
 * the zero page, or one shared page per content (frame 0x9000 + fill).
 */
static uint32_t merged_and_mapped(const HelperMergeItem *it, bool zero) {
        int p = proc_of_pidfd(it->pidfd);
        uint64_t page = (it->addr - BASE_ADDR) / PAGE_SIZE_BYTES;
        uint8_t fill = fake.page[p][page].fill;

        if (zero) {
                map_zero_page(p, page);
                return KSMD_HELPER_RESULT_MERGED;
        }
        map_helper_page(p, page, 0x9000 + fill);
        if (!it->handle)
                map_helper_page(proc_of_pidfd(it->src_pidfd), (it->src_addr - BASE_ADDR) / PAGE_SIZE_BYTES,
                                0x9000 + fill);
        return KSMD_HELPER_RESULT_MERGED;
}

static PageState state_of(const World *w, int p, size_t page) {
        return page_slot_state(slot_at(w, p, BASE_ADDR + page * PAGE_SIZE_BYTES));
}

static unsigned volatility_of(const World *w, int p, size_t page) {
        return page_slot_volatility(slot_at(w, p, BASE_ADDR + page * PAGE_SIZE_BYTES));
}

static void test_first_pass_merges_a_duplicate_in_the_pass_that_first_reads_it(void **state) {
        World w;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 6, 0);
        add_pages(1, 5, 7);
        world_init(&w, 2, WORLD_MERGING | WORLD_FIRST_PASS);
        run_pass(&w);
        /* Process 1's page 0 onto process 0's, and process 0's zero page: in the first full scan. */
        assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 2);
        assert_int_equal(state_of(&w, 1, 0), PAGE_SHARING);
        assert_int_equal(state_of(&w, 0, 0), PAGE_SHARING);
        assert_int_equal(state_of(&w, 0, 2), PAGE_ZERO_MERGED);
        /* The next finds them merged, reads nothing of them and merges nothing more. */
        reset_reads();
        run_pass(&w);
        assert_int_equal(merger_counters(w.merger)->items, 2);
        assert_int_equal(last_counters(&w)->pages_skipped_merged, 3);
        assert_int_equal(reads_of(0) + reads_of(1), 2);         /* the unique pages 6 and 7 */
        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 2);
        assert_int_equal(scanner_cow_breaks(w.scanner), 0);
        world_done(&w);
}

static unsigned differs_left;

/* As merged_and_mapped(), but the first differs_left pairs differ (the source changed meanwhile). */
static uint32_t differs_then_merged_and_mapped(const HelperMergeItem *it, bool zero) {
        if (!zero && !it->handle && differs_left > 0) {
                differs_left--;
                return KSMD_HELPER_RESULT_DIFFERS;
        }
        return merged_and_mapped(it, zero);
}

/*
 * The index forgets a shared page that at most one page table still maps (the daemon's prune after a full
 * scan). A page that later comes with that content (a process restored by CRIU beside the survivor, as in
 * the VM test ksmd-criu, or a copy written back) must still join it, whether it is scanned after the last
 * mapper or before it; without, neither would ever find a partner. Scanned before it, the newcomer is the
 * source of the pair, and a first answer DIFFERS (it changed meanwhile) must leave the last mapper merged
 * and a candidate still.
 */
static void test_a_new_duplicate_joins_the_last_mapper_of_a_forgotten_shared_page(void **state) {
        for (int order = 0; order < 2; order++) {
                /* Order 0: the last mapper in process 0, the newcomer in process 1; order 1 the reverse. */
                int last = order, gone = !order, late = !order;
                uint64_t hash, handle;
                World w;

                memset(&fake.n_pages, 0, sizeof(fake.n_pages));
                fake.result_for = merged_and_mapped;
                add_pages(0, 5, 6);
                add_pages(1, 5, 7);
                fake.page[late][1].flags = 0;   /* not faulted in yet */
                world_init(&w, 2, WORLD_MERGING | WORLD_FIRST_PASS);
                run_pass(&w);
                assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 1);

                /* One mapper writes its copy; the daemon's prune forgets the shared page. */
                set_page(gone, 0, 10);
                hash = page_slot_hash(slot_at(&w, last, BASE_ADDR));
                assert_int_equal(index_shared_remove(w.idx, hash), 1);
                run_pass(&w);
                assert_int_equal(merger_counters(w.merger)->items, 1);
                assert_int_equal(state_of(&w, last, 0), PAGE_SHARING);
                assert_int_equal(reason_of(&w, last, PAGE_REASON_SHARED_COPY), 1);

                /* A page with the shared content appears: it joins the last mapper's shared page. */
                set_page(late, 1, 5);
                reset_reads();
                if (order == 1) {
                        fake.result_for = differs_then_merged_and_mapped;
                        differs_left = 1;
                        run_pass(&w);
                        assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_DIFFERS],
                                         1);
                        assert_int_equal(state_of(&w, last, 0), PAGE_SHARING);
                        assert_int_equal(state_of(&w, late, 1), PAGE_HASHED);
                }
                run_pass(&w);
                assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
                assert_int_equal(state_of(&w, late, 1), PAGE_SHARING);
                assert_int_equal(state_of(&w, last, 0), PAGE_SHARING);
                assert_int_equal(fake.page[last][0].reads, 0);
                assert_int_equal(index_shared_lookup(w.idx, hash, &handle), 1);
                assert_true(handle == 0x5000);
                run_pass(&w);
                assert_int_equal(last_counters(&w)->pages_shared, 1);
                assert_int_equal(last_counters(&w)->pages_sharing, 1);
                assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 1);
                assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
                world_done(&w);
        }
}

static void test_stable_policy_still_needs_two_passes(void **state) {
        World w;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 6, 0);
        add_pages(1, 5, 7);
        world_init(&w, 2, WORLD_MERGING);
        run_pass(&w);
        assert_int_equal(merger_counters(w.merger)->items, 0);
        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 0);
        run_pass(&w);
        assert_int_equal(merger_counters(w.merger)->by_result[KSMD_HELPER_RESULT_MERGED], 2);
        assert_int_equal(state_of(&w, 1, 0), PAGE_SHARING);
        assert_int_equal(state_of(&w, 0, 2), PAGE_ZERO_MERGED);
        world_done(&w);
}

/* A policy change applies from the next page read: stable, then first-pass merges at once. */
static void test_merge_policy_changes_at_once(void **state) {
        World w;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 6);
        world_init(&w, 1, WORLD_MERGING);
        run_pass(&w);
        add_pages(0, 5);
        scanner_set_merge_policy(w.scanner, MERGE_POLICY_FIRST_PASS);
        run_pass(&w);
        /* Page 0 held still (a candidate under both), page 2 is new and merges onto it at once. */
        assert_int_equal(state_of(&w, 0, 2), PAGE_SHARING);
        world_done(&w);
}

/*
 * A merged page written again (a COW break) is counted and its volatility
 * raised: under first-pass it is no longer merged when first read again,
 * only once it held still, while a new page of the same content merges at
 * once. The break is counted once.
 */
static void test_cow_break_raises_volatility_and_delays_the_next_merge(void **state) {
        World w;
        unsigned passes = 0;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 5, 6);
        world_init(&w, 1, WORLD_MERGING | WORLD_FIRST_PASS);
        run_passes(&w, 2);
        assert_int_equal(state_of(&w, 0, 1), PAGE_SHARING);
        assert_int_equal(volatility_of(&w, 0, 1), 0);

        /* The process writes page 1: COW gives it a private frame. */
        set_page(0, 1, 9);
        run_pass(&w);
        assert_int_equal(scanner_cow_breaks(w.scanner), 1);
        assert_int_equal(scan_of(&w, 0)->cow_breaks, 1);
        assert_int_equal(volatility_of(&w, 0, 1), 2);
        assert_int_equal(state_of(&w, 0, 0), PAGE_SHARING);     /* its partner stays merged */

        /* It writes the shared content back, and a new page with that content appears. */
        fake.page[0][1].fill = 5;
        add_pages(0, 5);
        run_pass(&w);
        passes++;
        assert_int_equal(state_of(&w, 0, 3), PAGE_SHARING);     /* the new page: merged when first read */
        assert_int_not_equal(state_of(&w, 0, 1), PAGE_SHARING); /* the written one waits */
        while (state_of(&w, 0, 1) != PAGE_SHARING) {
                run_pass(&w);
                assert_true(++passes < 20);
        }
        print_message("# the written page merged again %u passes after its write-back\n", passes);
        assert_true(passes >= 2);
        assert_int_equal(scanner_cow_breaks(w.scanner), 1);
        world_done(&w);
}

/*
 * A hot page: written back with the same bytes soon after every merge. Each
 * break raises its volatility by two and the read that lets it merge again
 * lowers it by one, so it climbs a level per merge and waits ever longer
 * between merges, where its content alone (always a duplicate) would have it
 * merged every other pass.
 */
static void test_page_broken_after_every_merge_waits_ever_longer(void **state) {
        unsigned last_wait = 0;
        World w;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 5);
        world_init(&w, 1, WORLD_MERGING | WORLD_FIRST_PASS);
        run_passes(&w, 2);
        assert_int_equal(state_of(&w, 0, 1), PAGE_SHARING);
        for (unsigned cycle = 1; cycle <= 3; cycle++) {
                unsigned wait = 0;

                set_page(0, 1, 5);                               /* a same-value write: COW */
                run_pass(&w);
                assert_int_equal(scanner_cow_breaks(w.scanner), cycle);
                while (state_of(&w, 0, 1) != PAGE_SHARING) {
                        run_pass(&w);
                        assert_true(++wait < 200);
                }
                print_message("# break %u: merged again after %u passes, volatility %u\n", cycle, wait,
                              volatility_of(&w, 0, 1));
                assert_int_equal(volatility_of(&w, 0, 1), cycle);
                assert_true(wait > last_wait);
                last_wait = wait;
        }
        world_done(&w);
}

/* A page that kept changing merges with a raised volatility, which falls while it stays merged. */
static void test_page_that_stays_merged_lowers_its_volatility(void **state) {
        World w;
        unsigned v, reads, passes = 0;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 20);
        fake.page[0][1].changes_on_read = true;
        world_init(&w, 1, WORLD_MERGING | WORLD_FIRST_PASS);
        run_passes(&w, 12);
        assert_true(volatility_of(&w, 0, 1) >= 2);
        assert_int_not_equal(state_of(&w, 0, 1), PAGE_SHARING);

        /* It stops changing, with the content of page 0: merged once it held still, v still raised. */
        fake.page[0][1].changes_on_read = false;
        fake.page[0][1].fill = 5;
        while (state_of(&w, 0, 1) != PAGE_SHARING) {
                run_pass(&w);
                assert_true(++passes < 64);
        }
        v = volatility_of(&w, 0, 1);
        print_message("# merged with volatility %u\n", v);
        assert_true(v > 0);
        reads = fake.page[0][1].reads;
        /* Never read while merged; one level less each 2^v passes. */
        for (unsigned i = 0; i < (2u << v); i++)
                run_pass(&w);
        assert_int_equal(state_of(&w, 0, 1), PAGE_SHARING);
        assert_int_equal(volatility_of(&w, 0, 1), 0);
        assert_int_equal(fake.page[0][1].reads, reads);
        assert_int_equal(scanner_cow_breaks(w.scanner), 0);
        world_done(&w);
}

/*
 * cow_breaks counts merged pages that map a private anonymous frame again,
 * nothing else: not a merged page unmapped, discarded and read again (the
 * zero page), nor the pages of a region forgotten (unregistered, unmerged)
 * or of an exiting process; each break once.
 */
static void test_cow_breaks_count_exactly_the_writes_to_merged_pages(void **state) {
        World w;

        fake.result_for = merged_and_mapped;
        add_pages(0, 5, 5, 5, 5, 5, 0, 0);
        add_pages(1, 5, 5, 0);
        world_init(&w, 2, WORLD_MERGING | WORLD_FIRST_PASS);
        run_pass(&w);
        /* Ten pages, one content and the zero page: all but one copy saved in the first full scan. */
        assert_int_equal(scan_counters_saving_pages(last_counters(&w)), 9);
        run_pass(&w);
        assert_int_equal(last_counters(&w)->pages_skipped_merged, 10);

        set_page(0, 1, 9);                       /* written: a private frame */
        set_page(0, 2, 5);                       /* written with the same bytes: a break all the same */
        set_page(0, 5, 3);                       /* the merged zero page written */
        map_shared_page(0, 3, 0x4444);           /* written, then shared with a fork: a break */
        fake.page[0][4].flags = 0;               /* unmapped (MADV_DONTNEED): no break */
        map_zero_page(0, 6);                     /* still the zero page: no break */
        run_pass(&w);
        assert_int_equal(scanner_cow_breaks(w.scanner), 4);
        assert_int_equal(scan_of(&w, 0)->cow_breaks, 4);
        assert_int_equal(scan_of(&w, 1)->cow_breaks, 0);

        /* Discarded, then read: the zero page is mapped there, no break. Counted breaks stay counted. */
        map_zero_page(0, 4);
        run_passes(&w, 2);
        assert_int_equal(scanner_cow_breaks(w.scanner), 4);

        /* Region 1 is forgotten (unregistered, as ksmctl unmerge does) and its pages made private. */
        scanner_forget_region(w.scanner, w.region[1]);
        assert_int_equal(region_registry_remove(w.reg, w.region[1]->id), 0);
        set_page(1, 0, 5);
        set_page(1, 1, 5);
        set_page(1, 2, 0);
        run_pass(&w);
        assert_int_equal(scanner_cow_breaks(w.scanner), 4);

        /* Process 0 exits: its merged pages go with it, no break. */
        fake.dead[0] = true;
        (void) kill(fake.pid[0], SIGKILL);
        (void) waitpid(fake.pid[0], NULL, 0);
        run_pass(&w);
        assert_true(w.region[0]->gone);
        assert_int_equal(scanner_cow_breaks(w.scanner), 4);
        /* Removed, its region takes its count along, but the total keeps the breaks it saw. */
        scanner_forget_region(w.scanner, w.region[0]);
        assert_int_equal(region_registry_remove(w.reg, w.region[0]->id), 0);
        run_pass(&w);
        assert_int_equal(scanner_cow_breaks(w.scanner), 4);
        world_done(&w);
}

static uint32_t always_busy(const HelperMergeItem *it, bool zero) {
        return KSMD_HELPER_RESULT_BUSY;
}

static void test_forgotten_region_leaves_no_merge_queued(void **state) {
        World w;

        fake.result_for = always_busy;
        add_same_pages(0, 4, 5);
        add_pages(1, 0, 5, 5, 5);
        world_init(&w, 2, WORLD_MERGING);
        run_passes(&w, 2);
        /* BUSY: requests wait for their retry, naming region 2 as target (and region 1's page as source). */
        assert_true(merger_pending(w.merger) > 0);
        fake.watch_pidfd = w.region[1]->pidfd;
        fake.watch_items = 0;
        w.now += 10000000;
        assert_true(merger_flush(w.merger, w.now) >= 0);
        assert_true(fake.watch_items > 0);
        scanner_forget_region(w.scanner, w.region[1]);
        assert_int_equal(region_registry_remove(w.reg, w.region[1]->id), 0);
        /* Region 1's own requests (its pages 1..3 onto page 0) stay; none may name region 2's pidfd,
         * closed now, whose number a new file may take. */
        assert_true(merger_pending(w.merger) > 0);
        fake.watch_items = 0;
        w.now += 10000000;
        assert_true(merger_flush(w.merger, w.now) >= 0);
        assert_int_equal(fake.watch_items, 0);
        world_done(&w);
}

static uint32_t result_by_fill(const HelperMergeItem *it, bool zero) {
        uint64_t page = (it->addr - BASE_ADDR) / PAGE_SIZE_BYTES;

        switch (fake.page[0][page].fill) {
        case 2:
                return KSMD_HELPER_RESULT_DIFFERS;
        case 3:
                return KSMD_HELPER_RESULT_UNSUPPORTED;
        default:
                return KSMD_HELPER_RESULT_MERGED;
        }
}

static void test_differs_reexamines_and_unsupported_records_why(void **state) {
        World w;

        fake.result_for = result_by_fill;
        add_pages(0, 2, 2, 3, 3);
        world_init(&w, 1, WORLD_MERGING);
        run_passes(&w, 2);
        assert_int_equal(scan_of(&w, 0)->merge_results[KSMD_HELPER_RESULT_DIFFERS], 1);
        assert_int_equal(scan_of(&w, 0)->merge_results[KSMD_HELPER_RESULT_UNSUPPORTED], 1);
        assert_non_null(strstr(scan_of(&w, 0)->merge_note, "huge page that could not be split"));
        assert_non_null(strstr(scan_of(&w, 0)->merge_note, "0x7f0000003000"));
        /* DIFFERS: the page's hash was forgotten, so the next pass reads it as new (no candidate). */
        assert_int_equal(page_slot_state(slot_at(&w, 0, BASE_ADDR + PAGE_SIZE_BYTES)), PAGE_UNKNOWN);
        world_done(&w);
}

static void test_merges_name_processes_by_their_regions_pidfds(void **state) {
        World w;

        fake.result_for = always_busy;
        add_pages(0, 7, 8);
        add_pages(1, 7, 8);
        world_init(&w, 2, WORLD_MERGING);
        run_passes(&w, 2);
        assert_true(fake.merge_calls > 0);
        /* Region 2's pages are offered onto region 1's, found first. */
        assert_int_equal(fake.last_pidfd, w.region[1]->pidfd);
        assert_int_equal(fake.last_src_pidfd, w.region[0]->pidfd);
        assert_true(w.region[0]->pidfd != w.region[1]->pidfd);
        world_done(&w);
}

static uint32_t no_process(const HelperMergeItem *it, bool zero) {
        return KSMD_HELPER_RESULT_NO_PROCESS;
}

/* NO_PROCESS names no side: the source's process exited, the target's region stays registered. */
static void test_no_process_drops_only_the_region_whose_process_exited(void **state) {
        World w;

        fake.result_for = no_process;
        add_pages(0, 7, 8);
        add_pages(1, 7, 8);
        world_init(&w, 2, WORLD_MERGING);
        run_pass(&w);
        /* The second pass offers region 2's pages onto region 1's; process 0 exits before they are sent. */
        finish_pass(&w, 7);
        fake.dead[0] = true;
        (void) kill(fake.pid[0], SIGKILL);
        (void) waitpid(fake.pid[0], NULL, 0);
        assert_true(merger_flush(w.merger, w.now) >= 0);
        assert_int_equal(scan_of(&w, 1)->merge_results[KSMD_HELPER_RESULT_NO_PROCESS], 2);
        assert_false(w.region[1]->gone);
        assert_true(w.region[0]->gone);
        world_done(&w);
}

static uint32_t refused_by_fill(const HelperMergeItem *it, bool zero) {
        uint64_t page = (it->addr - BASE_ADDR) / PAGE_SIZE_BYTES;

        return fake.page[0][page].fill == 2 ? KSMD_HELPER_RESULT_BAD_PIDFD : KSMD_HELPER_RESULT_NO_ACCESS;
}

static void test_bad_pidfd_and_no_access_record_why_and_rest_the_page(void **state) {
        World w;

        fake.result_for = refused_by_fill;
        add_pages(0, 2, 2, 3, 3);
        world_init(&w, 1, WORLD_MERGING);
        run_passes(&w, 2);
        assert_int_equal(scan_of(&w, 0)->merge_results[KSMD_HELPER_RESULT_BAD_PIDFD], 1);
        assert_int_equal(scan_of(&w, 0)->merge_results[KSMD_HELPER_RESULT_NO_ACCESS], 1);
        /* The latest refusal wins the note: page 3, refused access. */
        assert_non_null(strstr(scan_of(&w, 0)->merge_note, "ptrace read check"));
        assert_non_null(strstr(scan_of(&w, 0)->merge_note, "0x7f0000003000"));
        /* Both pages are visited rarely from now on, as for UNSUPPORTED; the region stays. */
        assert_int_equal(page_slot_volatility(slot_at(&w, 0, BASE_ADDR + PAGE_SIZE_BYTES)),
                         PAGE_SLOT_VOL_MAX);
        assert_int_equal(page_slot_volatility(slot_at(&w, 0, BASE_ADDR + 3 * PAGE_SIZE_BYTES)),
                         PAGE_SLOT_VOL_MAX);
        assert_false(w.region[0]->gone);
        world_done(&w);
}

static void test_every_page_is_counted_under_one_reason(void **state) {
        World w;

        add_pages(0, 5, 5, 5, 0, 0, 9, 1, 2, 3);
        fake.page[0][6].flags = 0;
        fake.page[0][7].flags = PAGEMAP_SWAPPED;
        map_shared_page(0, 8, 0x7777);
        world_init(&w, 1, WORLD_ESTIMATE);
        run_pass(&w);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_NEW), 6);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_NOT_PRESENT), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_SWAPPED), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_SHARED_ELSEWHERE), 1);
        run_pass(&w);
        /* The first of the three was counted unique until its twins came: the copy they share. */
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_DUPLICATE), 2);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_SHARED_COPY), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_ZERO), 2);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_UNIQUE), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_NEW), 0);
        world_done(&w);
}

static uint32_t refusal_by_fill(const HelperMergeItem *it, bool zero) {
        uint64_t page = (it->addr - BASE_ADDR) / PAGE_SIZE_BYTES;

        switch (fake.page[0][page].fill) {
        case 3:
                return KSMD_HELPER_RESULT_UNSUPPORTED;   /* the fake's reason: THP */
        case 4:
                return KSMD_HELPER_RESULT_NO_ACCESS;
        default:
                return KSMD_HELPER_RESULT_BUSY;
        }
}

static void test_helper_refusals_are_counted_under_the_helpers_result(void **state) {
        World w;

        fake.result_for = refusal_by_fill;
        add_pages(0, 3, 3, 4, 4, 6, 6);
        world_init(&w, 1, WORLD_MERGING);
        run_passes(&w, 3);
        /* The refused targets, from the pass after their result; their sources are alone now. */
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_HUGE_PAGE), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_HELPER_NO_ACCESS), 1);
        /* BUSY: the merge waits for its retry. */
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_RETRY), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_SHARED_COPY), 1);
        assert_int_equal(reason_of(&w, 0, PAGE_REASON_UNIQUE), 2);
        /* Held by the COW guard: nothing new is sent, and the pages say why. */
        scanner_set_merging_held(w.scanner, true);
        fake.merge_calls = 0;
        w.now += 10000000;
        assert_true(merger_flush(w.merger, w.now) >= 0);
        fake.merge_calls = 0;
        run_passes(&w, 2);
        assert_int_equal(fake.merge_calls, 0);
        assert_true(reason_of(&w, 0, PAGE_REASON_COW_GUARD) > 0);
        world_done(&w);
}

static void test_tracked_page_bound_leaves_the_rest_unscanned(void **state) {
        World w;
        ScanStepResult res = {};
        bool hit = false;

        add_same_pages(0, 10, 1);
        add_same_pages(1, 10, 1);
        world_init_bounded(&w, 2, WORLD_ESTIMATE, 15);
        do {
                assert_int_equal(scanner_step(w.scanner, 100, w.now, &res), 0);
                hit = hit || res.limit_hit;
        } while (!res.pass_done);
        assert_true(hit);
        assert_int_equal(reads_of(0), 10);
        assert_int_equal(reads_of(1), 0);
        assert_non_null(strstr(scan_of(&w, 1)->note, "bound on tracked pages"));
        assert_int_equal(reason_of(&w, 1, PAGE_REASON_OVER_BUDGET), 10);
        assert_reasons_add_up(&w);
        /* Refused before allocation: no slot memory for untracked pages. */
        assert_null(scan_of(&w, 1)->areas[0].slots);
        world_done(&w);
}

static void test_pages_of_two_domains_never_pair_and_zero_pages_merge_in_any(void **state) {
        World w;

        /* The same ten contents in both processes, and two zero pages each. */
        add_distinct_pages(0, 10, 1);
        add_distinct_pages(1, 10, 1);
        add_same_pages(0, 2, 0);
        add_same_pages(1, 2, 0);
        world_init(&w, 2, WORLD_ESTIMATE);
        region_set_domain(w.region[0], 1);
        region_set_domain(w.region[1], 2);
        run_passes(&w, 3);
        assert_int_equal(last_counters(&w)->pages_sharing, 0);
        assert_int_equal(last_counters(&w)->pages_shared, 0);
        assert_int_equal(last_counters(&w)->pages_zero, 4);
        assert_int_equal(scan_of(&w, 0)->last.pages_unshared, 10);
        assert_int_equal(scan_of(&w, 1)->last.pages_unshared, 10);

        /* In one domain they are duplicates, as before. */
        region_set_domain(w.region[1], 1);
        run_passes(&w, 3);
        assert_int_equal(last_counters(&w)->pages_sharing, 10);
        assert_int_equal(last_counters(&w)->pages_shared, 10);
        world_done(&w);
}

static void test_a_domain_changes_the_key_of_every_content(void **state) {
        for (uint64_t h = 0; h < (UINT64_C(1) << 20); h += 0x1234567) {
                uint64_t hash = h * 0x9e3779b97f4a7c15;

                assert_true(page_key(hash, 1) != page_key(hash, 2));
                assert_true(page_key(hash, 7) != page_key(hash, 0x80000007));
                assert_int_equal(page_key(hash, 5) & ~PAGE_SLOT_HASH_MASK, 0);
        }
}

/* Two regions of owners a and b, with an owner budget of 15 pages; 10 pages each. */
static void run_owner_budget(World *w, uid_t a, uid_t b) {
        world_init(w, 0, WORLD_ESTIMATE);
        scanner_set_max_pages_per_owner(w->scanner, 15);
        assert_int_equal(region_registry_add(w->reg, fake.pid[0], 0, 0, true, a, &w->region[0]), 0);
        assert_int_equal(region_registry_add(w->reg, fake.pid[1], 0, 0, true, b, &w->region[1]), 0);
        run_pass(w);
}

static void test_an_owners_budget_leaves_its_other_areas_untracked_and_roots_alone(void **state) {
        World w;

        add_same_pages(0, 10, 1);
        add_same_pages(1, 10, 2);
        run_owner_budget(&w, 1000, 1000);
        assert_int_equal(reads_of(0), 10);
        assert_int_equal(reads_of(1), 0);
        assert_non_null(strstr(scan_of(&w, 1)->note, "uid 1000's budget of 15 tracked pages is reached"));
        assert_null(scan_of(&w, 1)->areas[0].slots);
        world_done(&w);

        /* Root has no budget; another owner has its own. */
        reset_reads();
        run_owner_budget(&w, 0, 0);
        assert_int_equal(reads_of(0) + reads_of(1), 20);
        world_done(&w);
        reset_reads();
        run_owner_budget(&w, 1000, 1001);
        assert_int_equal(reads_of(0) + reads_of(1), 20);
        world_done(&w);
}

static void test_two_regions_of_one_process_share_one_soft_dirty_clear(void **state) {
        World w;
        Region *a, *b;

        /* Contents 1..4, four times. */
        for (int copy = 0; copy < 4; copy++)
                add_distinct_pages(0, 4, 1);
        world_init(&w, 0, WORLD_SOFT_DIRTY);
        assert_int_equal(region_registry_add(w.reg, fake.pid[0], BASE_ADDR, 8 * PAGE_SIZE_BYTES, false, 0,
                                             &a), 0);
        assert_int_equal(region_registry_add(w.reg, fake.pid[0], BASE_ADDR + 8 * PAGE_SIZE_BYTES,
                                             8 * PAGE_SIZE_BYTES, false, 0, &b), 0);
        run_pass(&w);
        assert_int_equal(fake.clears[0], 1);
        assert_int_equal(reads_of(0), 16);
        reset_reads();
        run_pass(&w);
        assert_int_equal(fake.clears[0], 1);
        assert_int_equal(reads_of(0), 0);
        assert_int_equal(last_counters(&w)->pages_sharing, 12);
        /* Content shared across the two regions is found: b's pages all match a's. */
        assert_int_equal(scanner_region(w.scanner, b->id)->last.pages_sharing, 8);
        world_done(&w);
}

static void test_region_registered_mid_pass_joins_the_next_pass(void **state) {
        World w;
        ScanStepResult res;

        add_same_pages(0, 20, 1);
        add_same_pages(1, 20, 1);
        world_init(&w, 1, WORLD_ESTIMATE);
        assert_int_equal(scanner_step(w.scanner, 5, w.now, &res), 0);
        assert_int_equal(region_registry_add(w.reg, fake.pid[1], 0, 0, true, 0, &w.region[1]), 0);
        finish_pass(&w, 5);
        assert_int_equal(reads_of(1), 0);
        run_pass(&w);
        assert_int_equal(reads_of(1), 20);
        world_done(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_page_becomes_candidate_only_after_holding_still, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_estimate_is_exact_across_processes_and_stays_exact,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_absent_swapped_zero_mapped_and_shared_pages_are_never_read, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_changing_page_is_never_a_candidate_and_is_read_less_often, setup, teardown),
                cmocka_unit_test_setup_teardown(test_a_scan_is_quiet_when_it_finds_nothing_new, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_zero_pages_are_recognised_without_hashing, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_soft_dirty_spares_reading_unchanged_pages, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_soft_dirty_is_cleared_again_when_rereads_are_wasted,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_without_soft_dirty_every_page_is_read_each_pass, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_process_exit_mid_scan_drops_only_its_region, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_merged_pages_join_the_shared_page_by_handle_and_are_not_read_again, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_pages_still_mapping_what_they_were_merged_into_are_never_read_again, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_written_merged_page_gets_a_new_frame_and_is_read_again,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_written_merged_page_shared_by_a_fork_is_not_counted_as_merged, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_without_the_shared_bit_merged_pages_are_known_by_not_being_exclusive, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_estimate_mode_skips_nothing_as_merged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_zero_merged_page_counts_as_saved_until_written, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_forgotten_region_leaves_no_merge_queued, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_zero_page_mapped_by_a_thp_split_counts_only_when_merging, setup, teardown),
                cmocka_unit_test_setup_teardown(test_differs_reexamines_and_unsupported_records_why, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_merges_name_processes_by_their_regions_pidfds, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_no_process_drops_only_the_region_whose_process_exited,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_pidfd_and_no_access_record_why_and_rest_the_page,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_page_is_counted_under_one_reason, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_helper_refusals_are_counted_under_the_helpers_result,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_tracked_page_bound_leaves_the_rest_unscanned, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_pages_of_two_domains_never_pair_and_zero_pages_merge_in_any, setup, teardown),
                cmocka_unit_test(test_a_domain_changes_the_key_of_every_content),
                cmocka_unit_test_setup_teardown(
                        test_an_owners_budget_leaves_its_other_areas_untracked_and_roots_alone, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_two_regions_of_one_process_share_one_soft_dirty_clear,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_region_registered_mid_pass_joins_the_next_pass, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_zero_page_without_its_pfn_is_named_by_pagemap_scan_and_never_read, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(
                        test_zero_page_nobody_can_name_counts_as_shared_and_is_never_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_merged_zero_page_where_read_faults_map_fresh_pages,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_without_the_exclusive_bit_shared_pages_are_read_and_offered, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_first_pass_merges_a_duplicate_in_the_pass_that_first_reads_it, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_a_new_duplicate_joins_the_last_mapper_of_a_forgotten_shared_page, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_stable_policy_still_needs_two_passes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_merge_policy_changes_at_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cow_break_raises_volatility_and_delays_the_next_merge,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_page_broken_after_every_merge_waits_ever_longer, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_page_that_stays_merged_lowers_its_volatility, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_cow_breaks_count_exactly_the_writes_to_merged_pages,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_single_page_reads_ask_one_page_per_call, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_estimate_is_identical_with_1_2_and_4_scan_threads,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_soft_dirty_and_merging_scans_are_identical_with_scan_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_scan_threads_can_change_between_steps_mid_pass, setup,
                                                teardown),
                cmocka_unit_test(test_default_scan_threads_follow_max_cpu_and_the_cpus),
                cmocka_unit_test_setup_teardown(
                        test_region_removed_with_the_cursor_in_it_leaves_the_next_scanned_in_full, setup,
                        teardown),
                cmocka_unit_test_setup_teardown(test_a_read_that_never_returns_stalls_only_its_region, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
