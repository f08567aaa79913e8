/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-edge-test: what ksmd_helper keeps of the kernel's rules at the edges,
 * between separate worker processes. Prints TAP.
 *
 *   helper-edge-test memcg [PAGES]
 *       The source's memory cgroup at memory.max: merges that need a new
 *       shared page fail NO_MEMORY, no OOM kill, nothing lost; with memory
 *       back the same merges succeed.
 *   helper-edge-test soft-dirty [PAGES]
 *       A merge keeps each PTE's soft-dirty bit (pagemap bit 55), on the
 *       shared-page and the zero-page paths, target and source; pages
 *       write-protected by userfaultfd are refused.
 *   helper-edge-test sparse-unmerge
 *       UNMERGE of a 64 TiB PROT_NONE/NORESERVE reservation with merged pages
 *       in three windows finishes at once (prints its time).
 *   helper-edge-test pinned
 *       A process with pinned pages (io_uring fixed buffers, a long-term
 *       FOLL_PIN): on 6.1 none of its pages merge (PINNED), on 6.2 and
 *       later the others do and the pinned ones are BUSY.
 *   helper-edge-test dma-pin IOMMU_GROUP
 *       QEMU's edu device, bound to vfio-pci behind intel-iommu, reads a
 *       process's pages by DMA: a read-only long-term pin of merged pages
 *       is unshared on 6.2 and later and the device reads what the process
 *       wrote; on 6.1 it is not (as documented), and once the process has
 *       pins nothing of it merges.
 *   helper-edge-test numa
 *       On a guest with two NUMA nodes, the shared page is on the target
 *       page's node; a transparent huge page migrating between the nodes
 *       is never reported NO_PAGE, and its differing bytes never split it.
 *   helper-edge-test pool
 *       Shared pages come from whole pageblocks: 600 merges take two blocks
 *       and their pages lie in those two; after UNMERGE the freed slots are
 *       reused before any new block; rewritten and merged again with new
 *       contents, the pages take no new block either (the slots the writes
 *       freed are collected first); when the processes exit, the blocks
 *       are kept empty a while and go back within two collector runs.
 *   helper-edge-test hog LEAVE_MIB
 *       Not a test: fills memory until MemAvailable is about LEAVE_MIB and
 *       holds it there (allocating as merges free memory, freeing if it
 *       falls below half) until stdin closes. Prints "ready" once there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "helper-genl.h"
#include "helper-test.h"
#include "helper-worker.h"
#include "tap.h"

#define PM_PFN_MASK ((UINT64_C(1) << 55) - 1)
#define PM_SOFT_DIRTY (UINT64_C(1) << 55)
#define PM_EXCLUSIVE (UINT64_C(1) << 56)
#define PM_UFFD_WP (UINT64_C(1) << 57)
#define PM_FILE (UINT64_C(1) << 61)
#define PM_PRESENT (UINT64_C(1) << 63)

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The pagemap entry of addr in pid, or 0 if it cannot be read. */
static uint64_t pagemap(pid_t pid, uintptr_t addr) {
        char path[64];
        uint64_t e = 0;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        if (pread(fd, &e, sizeof(e), (off_t) (addr / PG * sizeof(e))) != sizeof(e))
                e = 0;
        close(fd);
        return e;
}

static bool clear_soft_dirty(pid_t pid) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
        return write_file(path, "4");
}

/* The pfn of the kernel's zero page, as a read fault of untouched memory maps it. */
static uint64_t zero_pfn(void) {
        volatile char *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t pfn;

        if (p == MAP_FAILED)
                return 0;
        (void) p[0];
        pfn = pagemap(getpid(), (uintptr_t) p) & PM_PFN_MASK;
        munmap((void *) p, PG);
        return pfn;
}

static bool worker_alive(const Worker *w) {
        return kill(w->pid, 0) == 0;
}

typedef struct {
        long by_result[__KSMD_HELPER_RESULT_MAX + 1];
        long by_reason[__KSMD_HELPER_REASON_MAX + 1];
} Tally;

/* Whether run_items() leaves out its summary line (for loops of many rounds). */
static bool run_items_quiet;

/* Run items in batches of up to 256; BUSY ones are sent again up to `busy_tries` times. */
static int run_items(KgSock *s, KgItem *items, size_t n, int zero, int busy_tries, Tally *t) {
        memset(t, 0, sizeof(*t));
        for (size_t off = 0; off < n; off += 256) {
                size_t m = n - off < 256 ? n - off : 256;
                int r = kg_merge_retrying_busy(s, items + off, m, zero, busy_tries);

                if (r < 0) {
                        printf("# MERGE request failed: %s (%s)\n", strerror(-r), kg_extack);
                        return r;
                }
        }
        for (size_t i = 0; i < n; i++) {
                uint32_t r = items[i].result;

                t->by_result[r < __KSMD_HELPER_RESULT_MAX ? r : __KSMD_HELPER_RESULT_MAX]++;
                if (r == KSMD_HELPER_RESULT_UNSUPPORTED)
                        t->by_reason[items[i].reason < __KSMD_HELPER_REASON_MAX ? items[i].reason :
                                                                                __KSMD_HELPER_REASON_MAX]++;
        }
        if (run_items_quiet)
                return 0;
        printf("#");
        for (uint32_t r = 0; r <= __KSMD_HELPER_RESULT_MAX; r++)
                if (t->by_result[r])
                        printf(" %s %ld", kg_result_name(r), t->by_result[r]);
        printf("\n");
        return 0;
}

static int start_filled(Worker *w, size_t pages, int thp, uint64_t seed) {
        int r = worker_start(w, pages, thp);

        if (r < 0)
                return r;
        worker_do(w, W_ADDR, 0, 0, 0);
        worker_do(w, W_FILL, 0, pages, seed);
        return 0;
}

static uint64_t helper_stat(KgSock *s, int stat) {
        KgInfo info;

        return kg_info(s, &info) < 0 ? UINT64_MAX : info.stats[stat];
}

/*
 * Returns the pages every CPU holds charged ahead for @cgroup, so that its
 * memory.current counts only what it uses and a memory.max set to it lets no
 * charge through. A charge of another cgroup on each CPU gave them back up to
 * 6.15; since 6.16 a CPU keeps such pages for several cgroups at once. A
 * memory.high below memory.current makes the kernel drain them on every CPU
 * before it would reclaim (a memory.high write never OOM-kills); one page
 * below, as little as possible is reclaimed if nothing was held ahead, and
 * memory.high is lifted at once. Other CPUs drain from a work item:
 * memory.current is read until it holds still.
 */
static void drain_charge_caches(const char *cgroup) {
        char current[128], high[128], text[32];
        long cur, prev;

        snprintf(current, sizeof(current), "/sys/fs/cgroup/%s/memory.current", cgroup);
        snprintf(high, sizeof(high), "/sys/fs/cgroup/%s/memory.high", cgroup);
        cur = read_long(current);
        if (cur <= (long) PG)
                return;
        snprintf(text, sizeof(text), "%ld\n", cur - (long) PG);
        (void) write_file(high, text);
        (void) write_file(high, "max\n");
        for (int i = 0; i < 20; i++) {
                prev = cur;
                usleep(200 * 1000);
                cur = read_long(current);
                if (cur == prev)
                        break;
        }
}

static int test_memcg(KgSock *s, size_t n) {
        long oom_kills0, cur, src_before, src_after, events_oom, events_kill, events_max;
        uint64_t nomem0, nomem1;
        Worker S, T;
        KgItem *it, *again;
        size_t n_again = 0;
        char text[32];
        Tally t;
        int r;

        if (!write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory") ||
            (mkdir("/sys/fs/cgroup/kh-src", 0755) < 0 && errno != EEXIST) ||
            (mkdir("/sys/fs/cgroup/kh-tgt", 0755) < 0 && errno != EEXIST)) {
                tap(false, "memory cgroups for the test (%s)", strerror(errno));
                return tap_end();
        }
        /* Swap, if any, would let the cgroup reclaim; this test wants it full. */
        (void) write_file("/sys/fs/cgroup/kh-src/memory.swap.max", "0");

        tap(worker_start(&S, n, 0) == 0 && join_cgroup("kh-src", S.pid) &&
            worker_start(&T, n, 0) == 0 && join_cgroup("kh-tgt", T.pid),
            "source and target processes start in their memory cgroups");
        worker_do(&S, W_ADDR, 0, 0, 0);
        worker_do(&T, W_ADDR, 0, 0, 0);
        worker_do(&S, W_FILL, 0, n, 61);
        worker_do(&T, W_FILL, 0, n, 61);
        /* A child keeps the source's pages: a merge frees none of them, each shared page is one more. */
        tap(worker_do(&S, W_HOLD_FORK, 0, 0, 0) == 0, "a child of the source holds its pages");
        /*
         * The fork made the source's stack copy-on-write as well: what it does below must not need a
         * page once its cgroup is full, or the cgroup's OOM killer would end it for its own fault.
         * Doing it once now copies those pages.
         */
        worker_do(&S, W_ADDR, 0, 0, 0);
        worker_do(&S, W_CHECK, 0, n, 61);

        drain_charge_caches("kh-src");
        cur = read_long("/sys/fs/cgroup/kh-src/memory.current");
        snprintf(text, sizeof(text), "%ld\n", cur);
        tap(cur > 0 && write_file("/sys/fs/cgroup/kh-src/memory.max", text),
            "the source's memory cgroup is full: memory.max = memory.current = %ld kB", cur / 1024);
        oom_kills0 = keyed_value("/proc/vmstat", "oom_kill");
        nomem0 = helper_stat(s, KSMD_HELPER_STAT_NO_MEMORY);

        it = pair_items(&T, &S, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        events_oom = keyed_value("/sys/fs/cgroup/kh-src/memory.events", "oom");
        events_kill = keyed_value("/sys/fs/cgroup/kh-src/memory.events", "oom_kill");
        events_max = keyed_value("/sys/fs/cgroup/kh-src/memory.events", "max");
        nomem1 = helper_stat(s, KSMD_HELPER_STAT_NO_MEMORY);
        printf("# memory.events of the source's cgroup: max %ld oom %ld oom_kill %ld; "
               "memory.current %ld kB\n", events_max, events_oom, events_kill,
               read_long("/sys/fs/cgroup/kh-src/memory.current") / 1024);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_NO_MEMORY] >= (long) n * 3 / 4,
            "with the source's cgroup at memory.max, merges needing a new page are NO_MEMORY (%ld of %zu; "
            "%ld merged on what the cgroup had left)",
            t.by_result[KSMD_HELPER_RESULT_NO_MEMORY], n, t.by_result[KSMD_HELPER_RESULT_MERGED]);
        tap(t.by_result[KSMD_HELPER_RESULT_NO_MEMORY] + t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n,
            "no other result than NO_MEMORY and MERGED");
        tap(nomem1 - nomem0 == (uint64_t) t.by_result[KSMD_HELPER_RESULT_NO_MEMORY],
            "INFO counts the NO_MEMORY results (%llu)", (unsigned long long) (nomem1 - nomem0));
        tap(events_oom == 0 && events_kill == 0,
            "the cgroup's OOM killer was not invoked (oom %ld, oom_kill %ld)", events_oom, events_kill);
        tap(keyed_value("/proc/vmstat", "oom_kill") == oom_kills0, "no process was OOM-killed anywhere");
        tap(worker_alive(&S) && worker_alive(&T), "source and target are alive");
        tap(worker_do(&S, W_CHECK, 0, n, 61) == 0 && worker_do(&T, W_CHECK, 0, n, 61) == 0,
            "both read exactly what they wrote");

        /* Memory comes back: the same merges go through. */
        again = calloc(n, sizeof(*again));
        for (size_t i = 0; i < n; i++)
                if (it[i].result == KSMD_HELPER_RESULT_NO_MEMORY)
                        again[n_again++] = it[i];
        src_before = read_long("/sys/fs/cgroup/kh-src/memory.current");
        tap(write_file("/sys/fs/cgroup/kh-src/memory.max", "max\n"),
            "memory.max of the source's cgroup is lifted");
        r = run_items(s, again, n_again, 0, 20, &t);
        src_after = read_long("/sys/fs/cgroup/kh-src/memory.current");
        printf("# the source's cgroup: %ld -> %ld kB for %ld new shared pages\n", src_before / 1024,
               src_after / 1024, t.by_result[KSMD_HELPER_RESULT_MERGED]);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n_again,
            "with memory back, every merge that was NO_MEMORY succeeds (%ld)",
            t.by_result[KSMD_HELPER_RESULT_MERGED]);
        tap(src_after - src_before >= (long) (n_again * PG) * 9 / 10,
            "the new shared pages are charged to the source's cgroup");
        tap(worker_do(&S, W_CHECK, 0, n, 61) == 0 && worker_do(&T, W_CHECK, 0, n, 61) == 0,
            "both read exactly what they wrote after the merges");
        tap(keyed_value("/proc/vmstat", "oom_kill") == oom_kills0, "still no OOM kill");

        free(it);
        free(again);
        worker_do(&S, W_HOLD_RELEASE, 0, 0, 0);
        worker_stop(&S);
        worker_stop(&T);
        rmdir("/sys/fs/cgroup/kh-src");
        rmdir("/sys/fs/cgroup/kh-tgt");
        return tap_end();
}

/* Pages of w in [a, b) whose soft-dirty bit is not set exactly in [dirty_from, dirty_to). */
static size_t soft_dirty_wrong(Worker *w, size_t a, size_t b, size_t dirty_from, size_t dirty_to) {
        size_t wrong = 0;

        for (size_t i = a; i < b; i++) {
                bool sd = pagemap(w->pid, (uintptr_t) w->base + i * PG) & PM_SOFT_DIRTY;

                if (sd != (i >= dirty_from && i < dirty_to))
                        wrong++;
        }
        return wrong;
}

static size_t pages_with(Worker *w, size_t a, size_t b, uint64_t mask, uint64_t want) {
        size_t k = 0;

        for (size_t i = a; i < b; i++)
                if ((pagemap(w->pid, (uintptr_t) w->base + i * PG) & mask) == want)
                        k++;
        return k;
}

static size_t pages_on_pfn(Worker *w, size_t a, size_t b, uint64_t pfn) {
        size_t k = 0;

        for (size_t i = a; i < b; i++) {
                uint64_t e = pagemap(w->pid, (uintptr_t) w->base + i * PG);

                if ((e & PM_PRESENT) && (e & PM_PFN_MASK) == pfn)
                        k++;
        }
        return k;
}

static int test_soft_dirty(KgSock *s, size_t n) {
        uint64_t zpfn = zero_pfn();
        size_t q = n / 4, kept = 0, refused = 0, merged = 0;
        Worker T, S, Z, U;
        KgItem *it;
        Tally t;
        int r;

        printf("# zero page pfn %#llx\n", (unsigned long long) zpfn);
        start_filled(&T, n, 0, 71);
        start_filled(&S, n, 0, 71);
        start_filled(&Z, n, 0, 0);
        /* Clean every page, then write some again, with the same bytes: those alone are dirty. */
        tap(clear_soft_dirty(T.pid) && clear_soft_dirty(S.pid) && clear_soft_dirty(Z.pid),
            "clear_refs 4 clears the soft-dirty bits");
        worker_do(&T, W_FILL, 0, 2 * q, 71);
        worker_do(&S, W_FILL, q, 3 * q, 71);
        worker_do(&Z, W_FILL, 0, 2 * q, 0);
        tap(soft_dirty_wrong(&T, 0, n, 0, 2 * q) == 0 && soft_dirty_wrong(&S, 0, n, q, 3 * q) == 0 &&
            soft_dirty_wrong(&Z, 0, n, 0, 2 * q) == 0,
            "before merging, exactly the pages written after the clear are soft-dirty");

        it = pair_items(&T, &S, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n &&
            pages_with(&T, 0, n, PM_PRESENT | PM_FILE, PM_PRESENT | PM_FILE) == n &&
            pages_with(&S, 0, n, PM_PRESENT | PM_FILE, PM_PRESENT | PM_FILE) == n,
            "MERGE maps the shared pages in place of both processes' pages");
        tap(soft_dirty_wrong(&T, 0, n, 0, 2 * q) == 0,
            "the target's merged pages keep their soft-dirty bits (%zu dirty, %zu clean)", 2 * q, n - 2 * q);
        tap(soft_dirty_wrong(&S, 0, n, q, 3 * q) == 0,
            "the source's merged pages keep their soft-dirty bits (%zu dirty, %zu clean)", 2 * q, n - 2 * q);

        it = pair_items(&Z, &Z, 0, n);
        r = run_items(s, it, n, 1, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n &&
            pages_on_pfn(&Z, 0, n, zpfn) == n,
            "MERGE_ZERO maps the zero page in place of every zero page");
        tap(soft_dirty_wrong(&Z, 0, n, 0, 2 * q) == 0,
            "zero-merged pages keep their soft-dirty bits (%zu dirty, %zu clean)", 2 * q, n - 2 * q);

        tap(worker_do(&T, W_CHECK, 0, n, 71) == 0 && worker_do(&S, W_CHECK, 0, n, 71) == 0 &&
            worker_do(&Z, W_CHECK, 0, n, 0) == 0, "every process reads exactly what it wrote");
        /* Tracking goes on: a write to a merged page copies it and marks the copy. */
        tap(clear_soft_dirty(T.pid) && worker_do(&T, W_FILL, 0, q, 72) == 0 &&
            soft_dirty_wrong(&T, 0, n, 0, q) == 0 && worker_do(&T, W_CHECK, 0, q, 72) == 0,
            "after another clear, writes to merged pages are the only soft-dirty ones");

        /* userfaultfd write protection: refused while registered; after that, where a PTE keeps the bit. */
        start_filled(&U, q, 0, 71);
        r = (int) worker_do(&U, W_UFFD_WP, 0, q, 0);
        tap(r == 0, "userfaultfd write-protects a process's pages (%s)", strerror(r));
        it = pair_items(&U, &S, 0, q);
        r = run_items(s, it, q, 0, 20, &t);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_UNSUPPORTED] == (long) q &&
            t.by_reason[KSMD_HELPER_REASON_LOCKED_VMA] == (long) q,
            "pages write-protected by userfaultfd are refused (UNSUPPORTED, LOCKED_VMA)");
        worker_do(&U, W_UFFD_CLOSE, 0, 0, 0);
        for (size_t i = 0; i < q; i++)
                if (pagemap(U.pid, (uintptr_t) U.base + i * PG) & PM_UFFD_WP)
                        kept++;
        r = run_items(s, it, q, 0, 20, &t);
        for (size_t i = 0; i < q; i++) {
                if (it[i].result == KSMD_HELPER_RESULT_UNSUPPORTED &&
                    it[i].reason == KSMD_HELPER_REASON_LOCKED_VMA)
                        refused++;
                else if (it[i].result == KSMD_HELPER_RESULT_MERGED)
                        merged++;
        }
        free(it);
        printf("# after the userfaultfd closed: %zu pages kept the uffd-wp bit; %zu refused, %zu merged\n",
               kept, refused, merged);
        tap(r == 0 && refused == kept && merged == q - kept,
            "after the userfaultfd closed, just the pages still marked uffd-wp are refused, the rest merge");
        tap(worker_do(&U, W_CHECK, 0, q, 71) == 0, "the userfaultfd process reads exactly what it wrote");

        worker_stop(&T);
        worker_stop(&S);
        worker_stop(&Z);
        worker_stop(&U);
        return tap_end();
}

static int test_sparse_unmerge(KgSock *s) {
        const size_t n = RES_WINDOW * RES_WINDOWS;
        uint64_t count = 0;
        double t0, ms;
        Worker T, S;
        KgItem *it;
        Tally t;
        long addr;
        int r;

        start_filled(&S, RES_WINDOW, 0, 81);
        worker_start(&T, 1, 0);
        addr = worker_do(&T, W_RESERVE, 0, 0, 81);
        tap(addr > 0, "a process reserves 64 TiB PROT_NONE/NORESERVE with 3 read-write windows");
        if (addr <= 0)
                goto out;
        T.base = (char *) (uintptr_t) addr;

        it = calloc(n, sizeof(*it));
        for (size_t k = 0; k < n; k++) {
                it[k].pidfd = T.pidfd;
                it[k].addr = (uintptr_t) T.base + (res_window_page[k / RES_WINDOW] + k % RES_WINDOW) * PG;
                it[k].src_pidfd = S.pidfd;
                it[k].src_addr = (uintptr_t) S.base + (k % RES_WINDOW) * PG;
        }
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n,
            "the windows' %zu pages merge at the start, middle and end of the reservation", n);

        t0 = now_ms();
        r = kg_unmerge(s, T.pidfd, (uintptr_t) T.base, RES_BYTES, &count);
        ms = now_ms() - t0;
        printf("# UNMERGE of the 64 TiB reservation: %.1f ms (guest time), %llu pages made private: %s %s\n",
               ms, (unsigned long long) count, strerror(-r), kg_extack);
        tap(r == 0 && count == n,
            "UNMERGE of the whole 64 TiB reservation makes the %zu merged pages private", n);
        /* 2^34 pages one by one would take hours; a walk that skips empty tables takes milliseconds. */
        tap(ms < 1000, "it finishes in %.1f ms of guest time, well under a second", ms);
        tap(worker_do(&T, W_CHECK_RESERVE, 0, 0, 81) == 0, "the windows read exactly what they held");

        t0 = now_ms();
        r = kg_unmerge(s, T.pidfd, PG, (UINT64_C(1) << 47) - 2 * PG, &count);
        ms = now_ms() - t0;
        printf("# UNMERGE of the whole user address space: %.1f ms, %llu pages\n", ms,
               (unsigned long long) count);
        tap(r == 0 && count == 0 && ms < 1000,
            "UNMERGE of the whole 128 TiB user address space: nothing left, %.1f ms", ms);
        r = kg_unmerge(s, S.pidfd, (uintptr_t) S.base, RES_WINDOW * PG, &count);
        tap(r == 0 && count == RES_WINDOW && worker_do(&S, W_CHECK, 0, RES_WINDOW, 81) == 0,
            "the source's pages unmerge too, intact");
out:
        worker_stop(&T);
        worker_stop(&S);
        return tap_end();
}

/* Whether this kernel predates 6.2, whose GUP unshares any page of a COW mapping on a R/O long-term pin. */
static bool kernel_before_6_2(void) {
        struct utsname u;
        int major = 0, minor = 0;

        if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
                return true;
        return major < 6 || (major == 6 && minor < 2);
}

static int test_pinned(KgSock *s) {
        /*
         * P's pages: [0,16) pinned, [16,32) targets, [32,48) merged before the pin, [48,56) sources,
         * [56,64) zero.
         */
        bool old = kernel_before_6_2();
        Worker P, S;
        KgItem *it;
        Tally t;
        int r;

        printf("# kernel %s 6.2: expect %s\n", old ? "before" : "at or after",
               old ? "no page of a process with pins merges (PINNED)" : "merges; pinned pages BUSY");
        start_filled(&P, 64, 0, 91);
        start_filled(&S, 64, 0, 91);
        worker_do(&P, W_FILL, 56, 64, 0);

        it = pair_items(&P, &S, 32, 48);
        r = run_items(s, it, 16, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 16, "pages of a process without pins merge");

        r = (int) worker_do(&P, W_PIN, 0, 16, 0);
        tap(r == 0, "the process registers io_uring fixed buffers, a long-term pin (%s)", strerror(r));

        it = pair_items(&P, &S, 16, 32);
        r = run_items(s, it, 16, 0, 20, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 16,
                    "6.1: its pages are refused as targets (UNSUPPORTED, PINNED)");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 16,
                    "its other pages merge as targets");

        it = pair_items(&S, &P, 48, 56);
        r = run_items(s, it, 8, 0, 20, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 8,
                    "6.1: its pages are refused as sources (PINNED)");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 8,
                    "its other pages merge as sources");

        it = pair_items(&P, &P, 56, 64);
        r = run_items(s, it, 8, 1, 20, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 8,
                    "6.1: its zero pages are refused for the zero page (PINNED)");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 8,
                    "its zero pages merge into the zero page");

        it = pair_items(&P, &S, 0, 16);
        r = run_items(s, it, 16, 0, 5, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 16,
                    "6.1: the pinned pages are refused");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_BUSY] == 16,
                    "the pinned pages themselves are BUSY: their extra references are seen");

        tap(worker_do(&P, W_CHECK, 0, 56, 91) == 0 && worker_do(&P, W_CHECK, 56, 64, 0) == 0 &&
            worker_do(&S, W_CHECK, 0, 64, 91) == 0, "both processes read exactly what they wrote");

        /* The pins go: the kernel's counts of them drop a moment after the ring closes. */
        worker_do(&P, W_UNPIN, 0, 0, 0);
        it = pair_items(&P, &S, 16, 32);
        for (int tries = 0; tries < 50; tries++) {
                r = run_items(s, it, 16, 0, 20, &t);
                if (r < 0 || t.by_reason[KSMD_HELPER_REASON_PINNED] == 0)
                        break;
                usleep(100000);
        }
        free(it);
        if (old)
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 16,
                    "6.1: once it holds no pin any more, its pages merge again");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_ALREADY] == 16,
                    "once it holds no pin, its merged pages stay merged");
        worker_do(&P, W_FILL, 0, 64, 92);
        tap(worker_do(&P, W_CHECK, 0, 64, 92) == 0 && worker_do(&S, W_CHECK, 0, 64, 91) == 0,
            "writes after that stay private");
        worker_stop(&P);
        worker_stop(&S);
        return tap_end();
}

/*
 * A device that reads a process's memory by DMA through vfio behind an IOMMU
 * (QEMU's edu device and intel-iommu): what it reads once the process wrote.
 * W's pages: [0,16) merged, then pinned read-only; [16,32) targets once W has
 * pins; [32,48) pinned read-only, then offered for merging; [60,64) pinned
 * read-write, where the device writes what it read.
 */
static int test_dma_pin(KgSock *s, unsigned group) {
        bool old = kernel_before_6_2();
        size_t own;
        Worker W, S;
        KgItem *it;
        Tally t;
        int r;

        start_filled(&W, 64, 0, 111);
        start_filled(&S, 64, 0, 111);
        it = pair_items(&W, &S, 0, 16);
        r = run_items(s, it, 16, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 16 &&
            pages_with(&W, 0, 16, PM_PRESENT | PM_FILE, PM_PRESENT | PM_FILE) == 16,
            "pages of a process without pins merge");

        r = (int) worker_do(&W, W_VFIO_OPEN, 0, 0, group);
        tap(r == 0, "the process opens the edu device through vfio behind the IOMMU (%s)", strerror(r));
        r = (int) worker_do(&W, W_VFIO_MAP, 0, 16, VFIO_DMA_MAP_FLAG_READ);
        tap(r == 0, "it maps the merged pages for the device to read: a read-only long-term pin (%s)",
            strerror(r));
        own = pages_with(&W, 0, 16, PM_PRESENT | PM_FILE | PM_EXCLUSIVE, PM_PRESENT | PM_EXCLUSIVE);
        if (r != 0)
                tap(false, "the pin of merged pages, unshared or not (no pin)");
        else if (old)
                tap(own == 0,
                    "6.1: the pin leaves the shared pages mapped (%zu of 16 unshared), as documented", own);
        else
                tap(own == 16,
                    "the pin unshares them first: the process maps pages of its own (%zu of 16)", own);
        r = (int) worker_do(&W, W_VFIO_MAP, 60, 64, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
        tap(r == 0, "it maps pages for the device to write (%s)", strerror(r));

        worker_do(&W, W_FILL, 0, 16, 112);
        r = (int) worker_do(&W, W_DMA_COPY, 0, 60, 0);
        tap(r == 0, "the device copies a pinned page by DMA (%s)", strerror(r));
        if (old)
                tap(worker_do(&W, W_CHECK_CONST, 60, 61, w_pattern(111, 0)) == 0,
                    "6.1: the device reads the bytes from before the process's write, the reason 6.1 "
                    "refuses processes with pins");
        else
                tap(worker_do(&W, W_CHECK_CONST, 60, 61, w_pattern(112, 0)) == 0,
                    "the device reads what the process wrote after the pin");

        it = pair_items(&W, &S, 16, 32);
        r = run_items(s, it, 16, 0, 20, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 16,
                    "6.1: once the process has pins, none of its pages merge (PINNED)");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == 16,
                    "once the process has pins, its other pages still merge");

        r = (int) worker_do(&W, W_VFIO_MAP, 32, 48, VFIO_DMA_MAP_FLAG_READ);
        it = pair_items(&W, &S, 32, 48);
        r |= run_items(s, it, 16, 0, 5, &t);
        free(it);
        if (old)
                tap(r == 0 && t.by_reason[KSMD_HELPER_REASON_PINNED] == 16,
                    "6.1: pages pinned read-only are refused (PINNED)");
        else
                tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_BUSY] == 16,
                    "pages pinned read-only are BUSY: the pin's references are seen");
        worker_do(&W, W_FILL, 32, 48, 113);
        r = (int) worker_do(&W, W_DMA_COPY, 40, 61, 0);
        tap(r == 0 && worker_do(&W, W_CHECK_CONST, 61, 62, w_pattern(113, 40)) == 0,
            "the device reads what the process last wrote to a page pinned before any merge");

        tap(worker_do(&W, W_CHECK, 0, 16, 112) == 0 && worker_do(&W, W_CHECK, 16, 32, 111) == 0 &&
            worker_do(&W, W_CHECK, 32, 48, 113) == 0 && worker_do(&S, W_CHECK, 0, 64, 111) == 0,
            "both processes read exactly what they wrote");
        worker_stop(&W);
        worker_stop(&S);
        return tap_end();
}

/* The NUMA node of page i of w, by move_pages(2) without moving it; -1 for a failure. */
static int page_node(Worker *w, size_t i) {
        void *page = w->base + i * PG;
        int status = -1;

        if (syscall(SYS_move_pages, w->pid, 1, &page, NULL, &status, 0) < 0)
                return -1;
        return status;
}

static size_t pages_on_node(Worker *w, size_t a, size_t b, int node) {
        size_t k = 0;

        for (size_t i = a; i < b; i++)
                if (page_node(w, i) == node)
                        k++;
        return k;
}

typedef struct {
        Worker *w;
        atomic_bool stop;
        long moves, failures;
} Migrator;

/* Moves the worker's first THP back and forth between nodes 0 and 1 until told to stop. */
static void *migrate_loop(void *arg) {
        Migrator *m = arg;

        for (int node = 1; !atomic_load(&m->stop); node ^= 1) {
                void *page = m->w->base;
                int status = -1;

                if (syscall(SYS_move_pages, m->w->pid, 1, &page, &node, &status, MPOL_MF_MOVE) < 0 ||
                    status < 0)
                        m->failures++;
                else
                        m->moves++;
        }
        return NULL;
}

static int test_numa(KgSock *s) {
        const size_t n = 64;
        Worker T1, S0, T0, S1, H, D;
        long thp_before, thp_after, no_page = 0, busy = 0, other = 0, rounds = 0;
        Migrator mig = {};
        pthread_t thread;
        cpu_set_t set;
        double t0;
        KgItem *it;
        Tally t;
        int r;

        tap(access("/sys/devices/system/node/node1", F_OK) == 0, "the guest has two NUMA nodes");
        /* The caller on node 0 (CPU 0): an allocation on the caller's node would land there. */
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        tap(sched_setaffinity(0, sizeof(set), &set) == 0, "the test runs on CPU 0, node 0");

        worker_start(&T1, n, 0);
        worker_start(&S0, n, 0);
        worker_start(&T0, n, 0);
        worker_start(&S1, n, 0);
        for (Worker *w = &T1; w; w = w == &T1 ? &S0 : w == &S0 ? &T0 : w == &T0 ? &S1 : NULL) {
                worker_do(w, W_ADDR, 0, 0, 0);
                r = (int) worker_do(w, W_BIND, 0, 0, w == &T1 || w == &S1 ? 1 : 0);
                if (r)
                        printf("# mbind: %s\n", strerror(r));
                worker_do(w, W_FILL, 0, n, 101);
        }
        tap(pages_on_node(&T1, 0, n, 1) == n && pages_on_node(&S0, 0, n, 0) == n &&
            pages_on_node(&T0, 0, n, 0) == n && pages_on_node(&S1, 0, n, 1) == n,
            "each process's pages are on the node it is bound to");

        it = pair_items(&T1, &S0, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n,
            "MERGE of a node-1 target with a node-0 source");
        tap(pages_on_node(&T1, 0, n, 1) == n,
            "the shared pages are on node 1, the target page's node (%zu of %zu)",
            pages_on_node(&T1, 0, n, 1), n);
        it = pair_items(&T0, &S1, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n &&
            pages_on_node(&T0, 0, n, 0) == n && pages_on_node(&S1, 0, n, 0) == n,
            "with a node-0 target and a node-1 source they are on node 0");
        {
                KgInfo info;
                bool ok = kg_info(s, &info) == 0;

                for (uint32_t node = 0; ok && node < 2; node++) {
                        const uint64_t *f = kg_pool_node(&info, node)->f;

                        printf("# pool on node %" PRIu32 ": blocks %" PRIu64 " used %" PRIu64
                               " taken %" PRIu64 " fallbacks %" PRIu64 "\n", node,
                               f[KSMD_HELPER_POOL_A_BLOCKS], f[KSMD_HELPER_POOL_A_USED_PAGES],
                               f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN], f[KSMD_HELPER_POOL_A_FALLBACKS]);
                        ok = f[KSMD_HELPER_POOL_A_BLOCKS] == 1 && f[KSMD_HELPER_POOL_A_USED_PAGES] == n &&
                             f[KSMD_HELPER_POOL_A_FALLBACKS] == 0;
                }
                tap(ok, "each node's pool holds its targets' %zu shared pages in one block of its own", n);
        }
        tap(worker_do(&T1, W_CHECK, 0, n, 101) == 0 && worker_do(&T0, W_CHECK, 0, n, 101) == 0 &&
            worker_do(&S0, W_CHECK, 0, n, 101) == 0 && worker_do(&S1, W_CHECK, 0, n, 101) == 0,
            "every process reads exactly what it wrote");

        /* A THP moving between the nodes, against different bytes. */
        start_filled(&H, 512, 1, 102);
        start_filled(&D, 512, 0, 103);
        thp_before = anon_huge_kb(H.pid);
        printf("# THP process maps %ld kB of AnonHugePages\n", thp_before);
        tap(thp_before >= 2048, "a process on a transparent huge page");
        mig.w = &H;
        pthread_create(&thread, NULL, migrate_loop, &mig);
        it = pair_items(&H, &D, 0, 512);
        t0 = now_ms();
        run_items_quiet = true;
        while (now_ms() - t0 < 10000) {
                r = run_items(s, it, 512, 0, 0, &t);
                if (r < 0)
                        break;
                rounds++;
                no_page += t.by_result[KSMD_HELPER_RESULT_NO_PAGE];
                busy += t.by_result[KSMD_HELPER_RESULT_BUSY];
                other += 512 - t.by_result[KSMD_HELPER_RESULT_DIFFERS] -
                         t.by_result[KSMD_HELPER_RESULT_BUSY] - t.by_result[KSMD_HELPER_RESULT_CHANGED] -
                         t.by_result[KSMD_HELPER_RESULT_NO_PAGE];
        }
        run_items_quiet = false;
        atomic_store(&mig.stop, true);
        pthread_join(thread, NULL);
        free(it);
        thp_after = anon_huge_kb(H.pid);
        printf("# %ld rounds of 512 merges against %ld migrations (%ld failed): busy %ld no-page %ld "
               "other %ld; AnonHugePages %ld -> %ld kB\n", rounds, mig.moves, mig.failures, busy, no_page,
               other, thp_before, thp_after);
        tap(r == 0 && rounds > 0 && mig.moves > 0, "merges ran while the THP migrated");
        tap(busy > 0, "merges met the page while it migrated (BUSY %ld)", busy);
        tap(no_page == 0, "a page under migration is never reported NO_PAGE");
        tap(other == 0, "every result is DIFFERS, or BUSY or CHANGED while the page moved");
        tap(thp_after >= thp_before, "bytes that differ never split the THP");
        tap(worker_do(&H, W_CHECK, 0, 512, 102) == 0, "the THP process reads exactly what it wrote");

        for (Worker *w = &T1; w; w = w == &T1 ? &S0 : w == &S0 ? &T0 : w == &T0 ? &S1 : NULL)
                worker_stop(w);
        worker_stop(&H);
        worker_stop(&D);
        return tap_end();
}

/* The pool on node 0 as INFO reports it now, printed; false if INFO failed. */
static bool pool_now(KgSock *s, KgPoolNode *ret, const char *when) {
        KgInfo info;
        const uint64_t *f;

        if (kg_info(s, &info) < 0)
                return false;
        *ret = *kg_pool_node(&info, 0);
        f = ret->f;
        printf("# pool %s: blocks %" PRIu64 " used %" PRIu64 " free %" PRIu64 " single %" PRIu64
               " taken %" PRIu64 " returned %" PRIu64 " reused %" PRIu64 " fallbacks %" PRIu64
               "; owned %" PRIu64 "\n", when, f[KSMD_HELPER_POOL_A_BLOCKS], f[KSMD_HELPER_POOL_A_USED_PAGES],
               f[KSMD_HELPER_POOL_A_FREE_PAGES], f[KSMD_HELPER_POOL_A_SINGLE_PAGES],
               f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN], f[KSMD_HELPER_POOL_A_BLOCKS_RETURNED],
               f[KSMD_HELPER_POOL_A_REUSED], f[KSMD_HELPER_POOL_A_FALLBACKS],
               info.stats[KSMD_HELPER_STAT_PAGES_OWNED]);
        return true;
}

/* The distinct 2 MiB pageblocks (pfn >> 9) pages [a, b) of w map; 0 if a pfn cannot be read. */
static size_t pageblocks_of(Worker *w, size_t a, size_t b) {
        uint64_t *blocks = calloc(b - a, sizeof(*blocks));
        size_t n = 0;

        for (size_t i = a; blocks && i < b; i++) {
                uint64_t pfn = pagemap(w->pid, (uintptr_t) w->base + i * PG) & PM_PFN_MASK;
                bool seen = false;

                if (!pfn) {
                        n = 0;
                        break;
                }
                for (size_t k = 0; k < n && !seen; k++)
                        seen = blocks[k] == pfn >> 9;
                if (!seen)
                        blocks[n++] = pfn >> 9;
        }
        free(blocks);
        return n;
}

static int test_pool(KgSock *s) {
        const size_t n = 600, again = 100, block = 512;
        uint64_t count_t = 0, count_s = 0;
        size_t blocks_t, blocks_s;
        KgPoolNode p0 = {}, p1 = {}, p2 = {}, p3 = {};
        Worker T, S;
        KgInfo info;
        bool ok;
        double t0;
        KgItem *it;
        Tally t;
        int r;

        tap(kg_info(s, &info) == 0 && (info.features & KSMD_HELPER_FEATURE_POOL),
            "INFO says shared pages come from the pool");
        ok = pool_now(s, &p0, "at load");
        tap(ok && p0.f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN] == 0 &&
            p0.f[KSMD_HELPER_POOL_A_FALLBACKS] == 0, "the module holds no block before any merge");

        start_filled(&T, n, 0, 301);
        start_filled(&S, n, 0, 301);
        it = pair_items(&T, &S, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n, "%zu pairs merge", n);
        ok = pool_now(s, &p1, "after the merges");
        tap(ok && p1.f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN] == 2 &&
            p1.f[KSMD_HELPER_POOL_A_BLOCKS] == 2 && p1.f[KSMD_HELPER_POOL_A_USED_PAGES] == n &&
            p1.f[KSMD_HELPER_POOL_A_USED_PAGES] + p1.f[KSMD_HELPER_POOL_A_FREE_PAGES] == 2 * block,
            "they took two whole blocks and use %zu of their pages", n);
        tap(p1.f[KSMD_HELPER_POOL_A_FALLBACKS] == 0 && p1.f[KSMD_HELPER_POOL_A_SINGLE_PAGES] == 0,
            "no single page was needed");
        blocks_t = pageblocks_of(&T, 0, n);
        blocks_s = pageblocks_of(&S, 0, n);
        tap(blocks_t == 2 && blocks_s == 2,
            "the %zu shared pages lie in two pageblocks (target: %zu, source: %zu)", n, blocks_t, blocks_s);

        /* Both sides private again: nothing maps those shared pages, and their slots are free. */
        r = kg_unmerge(s, T.pidfd, (uintptr_t) T.base, again * PG, &count_t);
        if (r == 0)
                r = kg_unmerge(s, S.pidfd, (uintptr_t) S.base, again * PG, &count_s);
        tap(r == 0 && count_t == again && count_s == again,
            "UNMERGE of %zu pages on both sides (%" PRIu64 ", %" PRIu64 ")", again, count_t, count_s);
        ok = pool_now(s, &p2, "after UNMERGE");
        tap(ok && p2.f[KSMD_HELPER_POOL_A_USED_PAGES] == n - again &&
            p2.f[KSMD_HELPER_POOL_A_FREE_PAGES] == 2 * block - (n - again) &&
            p2.f[KSMD_HELPER_POOL_A_BLOCKS] == 2, "their %zu slots are free, both blocks still held", again);

        it = pair_items(&T, &S, 0, again);
        r = run_items(s, it, again, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) again, "the %zu pairs merge again",
            again);
        ok = pool_now(s, &p3, "after merging again");
        tap(ok && p3.f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN] == 2 &&
            p3.f[KSMD_HELPER_POOL_A_USED_PAGES] == n &&
            p3.f[KSMD_HELPER_POOL_A_REUSED] - p2.f[KSMD_HELPER_POOL_A_REUSED] >= again,
            "they reused the freed slots (%" PRIu64 "), no new block was taken",
            p3.f[KSMD_HELPER_POOL_A_REUSED] - p2.f[KSMD_HELPER_POOL_A_REUSED]);
        tap(pageblocks_of(&T, 0, n) == 2, "all %zu shared pages still lie in two pageblocks", n);
        tap(worker_do(&T, W_CHECK, 0, n, 301) == 0 && worker_do(&S, W_CHECK, 0, n, 301) == 0,
            "both processes read exactly what they wrote");

        /*
         * Both rewrite every page (copy-on-write breaks: the old shared pages are mapped by nobody, but
         * freed only when the collector runs) and are merged again at once, with the new contents.
         */
        tap(worker_do(&T, W_FILL, 0, n, 302) == 0 && worker_do(&S, W_FILL, 0, n, 302) == 0,
            "both processes rewrite their %zu pages", n);
        it = pair_items(&T, &S, 0, n);
        r = run_items(s, it, n, 0, 20, &t);
        free(it);
        tap(r == 0 && t.by_result[KSMD_HELPER_RESULT_MERGED] == (long) n, "the %zu new pairs merge", n);
        ok = pool_now(s, &p3, "after the rewrite and the merges");
        tap(ok && p3.f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN] == 2 && p3.f[KSMD_HELPER_POOL_A_BLOCKS] == 2 &&
            p3.f[KSMD_HELPER_POOL_A_USED_PAGES] == n,
            "they took the slots of the pages the writes freed, no new block (%" PRIu64 " taken in all)",
            p3.f[KSMD_HELPER_POOL_A_BLOCKS_TAKEN]);
        tap(pageblocks_of(&T, 0, n) == 2 && worker_do(&T, W_CHECK, 0, n, 302) == 0 &&
            worker_do(&S, W_CHECK, 0, n, 302) == 0,
            "they lie in the same two pageblocks and both processes read exactly what they wrote");

        worker_stop(&T);
        worker_stop(&S);
        ok = pool_now(s, &p1, "after the exits");
        tap(ok && p1.f[KSMD_HELPER_POOL_A_USED_PAGES] == 0 &&
            p1.f[KSMD_HELPER_POOL_A_BLOCKS] + p1.f[KSMD_HELPER_POOL_A_BLOCKS_RETURNED] == 2,
            "once nothing maps them, no page of theirs is in use (%" PRIu64 " blocks kept empty a while)",
            p1.f[KSMD_HELPER_POOL_A_BLOCKS]);
        t0 = now_ms();
        while (now_ms() - t0 < 30000 && pool_now(s, &p1, "waiting") && p1.f[KSMD_HELPER_POOL_A_BLOCKS] > 0)
                sleep(2);
        tap(p1.f[KSMD_HELPER_POOL_A_BLOCKS] == 0 && p1.f[KSMD_HELPER_POOL_A_FREE_PAGES] == 0 &&
            p1.f[KSMD_HELPER_POOL_A_BLOCKS_RETURNED] == 2,
            "the empty blocks go back, within %.0f s", (now_ms() - t0) / 1000);
        return tap_end();
}

/* Fills memory until MemAvailable is about leave_mib and keeps it there until stdin closes. */
static int hog(long leave_mib) {
        enum { CHUNK = 1 << 20, MAX_CHUNKS = 1 << 16 };
        static char *chunks[MAX_CHUNKS];
        size_t n = 0, peak = 0;
        bool ready = false;

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (;;) {
                struct pollfd p = { .fd = 0, .events = POLLIN };
                long avail = proc_kb("/proc/meminfo", "MemAvailable") / 1024;

                if (avail > leave_mib && n < MAX_CHUNKS) {
                        /* Half the way at a time: /proc/meminfo is slow to read under TCG. */
                        long batch = (avail - leave_mib + 1) / 2;
                        bool grew = false;

                        for (; batch > 0 && n < MAX_CHUNKS; batch--) {
                                /* Populated by the kernel: far fewer faults to emulate. */
                                char *c = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

                                if (c == MAP_FAILED)
                                        break;
                                /* Different bytes in every page: nothing here merges. */
                                for (size_t o = 0; o < CHUNK; o += PG)
                                        *(uint64_t *) (c + o) = ((uint64_t) n << 32) | o | 1;
                                chunks[n++] = c;
                                peak = n > peak ? n : peak;
                                grew = true;
                        }
                        if (grew)
                                continue;
                }
                /* Something else needs memory now: give it back before the kernel has to kill. */
                while (avail < leave_mib / 2 && n > 0) {
                        munmap(chunks[--n], CHUNK);
                        avail = proc_kb("/proc/meminfo", "MemAvailable") / 1024;
                }
                if (!ready && avail <= leave_mib) {
                        printf("ready %zu MiB held, MemAvailable %ld MiB\n", n, avail);
                        ready = true;
                }
                if (poll(&p, 1, 50) > 0)
                        break;
        }
        printf("released %zu MiB (peak %zu MiB)\n", n, peak);
        return 0;
}

int main(int argc, char *argv[]) {
        const char *mode = argc > 1 ? argv[1] : "";
        size_t n = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
        KgSock s;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (strcmp(mode, "hog") == 0)
                return hog(n ? (long) n : 64);

        r = kg_open(&s);
        tap(r == 0, "the ksmd_helper family resolves");
        if (r < 0)
                return tap_end();
        if (strcmp(mode, "memcg") == 0)
                return test_memcg(&s, n ? n : 1024);
        if (strcmp(mode, "soft-dirty") == 0)
                return test_soft_dirty(&s, n ? n : 256);
        if (strcmp(mode, "sparse-unmerge") == 0)
                return test_sparse_unmerge(&s);
        if (strcmp(mode, "pinned") == 0)
                return test_pinned(&s);
        if (strcmp(mode, "dma-pin") == 0)
                return test_dma_pin(&s, (unsigned) n);
        if (strcmp(mode, "numa") == 0)
                return test_numa(&s);
        if (strcmp(mode, "pool") == 0)
                return test_pool(&s);
        tap(false, "unknown mode '%s'", mode);
        return tap_end();
}
