/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-merge-test: functional tests of ksmd_helper MERGE, MERGE_ZERO,
 * GET_PAGES and UNMERGE between separate worker processes, and of the
 * kernel semantics merged pages must keep (COW, fork, mremap, mlock,
 * MADV_DONTNEED/FREE, munmap, owner exit, THP, memory pressure). TAP.
 *
 *   helper-merge-test [PAGES] [--pressure]
 *   helper-merge-test --unload    unloads the module with merged pages mapped
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "helper-genl.h"
#include "helper-test.h"
#include "helper-worker.h"
#include "tap.h"

static long status_kb(pid_t pid, const char *key) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        return proc_kb(path, key);
}

static long meminfo_anon_mapped_kb(void) {
        return proc_kb("/proc/meminfo", "AnonPages") + proc_kb("/proc/meminfo", "Mapped");
}

typedef struct {
        long merged, already, differs, busy, other;
        uint64_t first_handle;
} Tally;

/* Run items in batches of up to 512, sending busy ones again a few times. */
static int run_items(KgSock *s, KgItem *items, size_t n, int zero, Tally *t) {
        memset(t, 0, sizeof(*t));
        for (size_t off = 0; off < n; off += 512) {
                size_t m = n - off < 512 ? n - off : 512;
                int r = kg_merge_retrying_busy(s, items + off, m, zero, 19);

                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                switch (items[i].result) {
                case KSMD_HELPER_RESULT_MERGED:
                        t->merged++;
                        break;
                case KSMD_HELPER_RESULT_ALREADY:
                        t->already++;
                        break;
                case KSMD_HELPER_RESULT_DIFFERS:
                        t->differs++;
                        break;
                case KSMD_HELPER_RESULT_BUSY:
                        t->busy++;
                        break;
                default:
                        if (t->other++ < 3)
                                printf("# item %zu: %s reason %u\n", i, kg_result_name(items[i].result),
                                       items[i].reason);
                }
                if (!t->first_handle && items[i].out_handle)
                        t->first_handle = items[i].out_handle;
        }
        printf("# merged %ld already %ld differs %ld busy %ld other %ld\n",
               t->merged, t->already, t->differs, t->busy, t->other);
        return 0;
}

static KgItem *handle_items(Worker *t, size_t a, size_t b, uint64_t handle) {
        KgItem *it = calloc(b - a, sizeof(*it));

        for (size_t i = a; i < b; i++) {
                it[i - a].pidfd = t->pidfd;
                it[i - a].addr = (uintptr_t) t->base + i * PG;
                it[i - a].handle = handle;
        }
        return it;
}

static void test_pressure(void) {
        long avail = proc_kb("/proc/meminfo", "MemAvailable");
        size_t len = (size_t) avail * 1024 / 10 * 11;
        pid_t p = fork();
        int st;

        if (p == 0) {
                char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                if (m == MAP_FAILED)
                        _exit(2);
                for (size_t o = 0; o < len; o += PG)
                        m[o] = (char) (o >> 12) | 1;
                for (size_t o = 0; o < len; o += PG)
                        if (m[o] != ((char) (o >> 12) | 1))
                                _exit(3);
                _exit(0);
        }
        waitpid(p, &st, 0);
        printf("# hog of %zu MiB: status 0x%x\n", len >> 20, st);
        tap(WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "a memory hog of 1.1x MemAvailable completes through swap");
}

/* The shared page stays charged to the source's memory cgroup. */
static void test_memcg(KgSock *s, size_t n) {
        long x0, y0, x1, y1;
        Worker X, Y;
        KgInfo info;
        KgItem *it;
        Tally t;
        int r;

        if (kg_info(s, &info) < 0 || !(info.features & KSMD_HELPER_FEATURE_MEMCG) ||
            !write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory") ||
            (mkdir("/sys/fs/cgroup/kh-x", 0755) < 0 && errno != EEXIST) ||
            (mkdir("/sys/fs/cgroup/kh-y", 0755) < 0 && errno != EEXIST)) {
                printf("# no memory cgroup controller: skipping the memcg test\n");
                return;
        }
        worker_start(&X, n, 0);
        worker_start(&Y, n, 0);
        join_cgroup("kh-x", X.pid);
        join_cgroup("kh-y", Y.pid);
        worker_do(&X, W_ADDR, 0, 0, 0);
        worker_do(&Y, W_ADDR, 0, 0, 0);
        worker_do(&X, W_FILL, 0, n, 31);
        worker_do(&Y, W_FILL, 0, n, 31);
        x0 = read_long("/sys/fs/cgroup/kh-x/memory.current");
        y0 = read_long("/sys/fs/cgroup/kh-y/memory.current");
        it = pair_items(&Y, &X, 0, n);
        r = run_items(s, it, n, 0, &t);
        free(it);
        x1 = read_long("/sys/fs/cgroup/kh-x/memory.current");
        y1 = read_long("/sys/fs/cgroup/kh-y/memory.current");
        printf("# memory.current: source %ld -> %ld, target %ld -> %ld kB\n", x0 / 1024, x1 / 1024,
               y0 / 1024, y1 / 1024);
        tap(r == 0 && t.merged == (long) n, "MERGE across memory cgroups");
        tap(x1 >= x0 - (long) (n * PG) / 10 && y0 - y1 >= (long) (n * PG) * 9 / 10,
            "merged pages stay charged to the source's memory cgroup, the target's charge drops");
        tap(worker_do(&X, W_CHECK, 0, n, 31) == 0 && worker_do(&Y, W_CHECK, 0, n, 31) == 0,
            "content intact across cgroups");
        worker_stop(&X);
        worker_stop(&Y);
        rmdir("/sys/fs/cgroup/kh-x");
        rmdir("/sys/fs/cgroup/kh-y");
}

/* Unload the module while merged pages are mapped; they must live on. */
static int test_unload(KgSock *s) {
        size_t n = 512;
        Worker A, B;
        KgItem *it;
        Tally t;
        int r;

        worker_start(&A, n, 0);
        worker_start(&B, n, 0);
        worker_do(&A, W_ADDR, 0, 0, 0);
        worker_do(&B, W_ADDR, 0, 0, 0);
        worker_do(&A, W_FILL, 0, n, 41);
        worker_do(&B, W_FILL, 0, n, 41);
        it = pair_items(&B, &A, 0, n);
        r = run_items(s, it, n, 0, &t);
        free(it);
        tap(r == 0 && t.merged == (long) n, "MERGE before unloading");
        kg_close(s);
        r = syscall(SYS_delete_module, "ksmd_helper", O_NONBLOCK);
        tap(r == 0, "the module unloads while merged pages are mapped (%s)", r ? strerror(errno) : "ok");
        tap(worker_do(&A, W_CHECK, 0, n, 41) == 0 && worker_do(&B, W_CHECK, 0, n, 41) == 0,
            "merged pages keep their content after the unload");
        tap(worker_do(&B, W_FORK_CHECK, 0, n, 41) == 0, "fork after the unload");
        worker_do(&A, W_FILL, 0, n / 2, 42);
        tap(worker_do(&A, W_CHECK, 0, n / 2, 42) == 0 && worker_do(&B, W_CHECK, 0, n, 41) == 0,
            "COW after the unload");
        tap(worker_do(&B, W_DONTNEED, 0, n / 4, 0) == 0 && worker_do(&B, W_CHECK, 0, n / 4, 0) == 0,
            "MADV_DONTNEED after the unload");
        worker_stop(&A);
        worker_stop(&B);
        return tap_end();
}

int main(int argc, char *argv[]) {
        size_t n = 2048, half;
        bool pressure = false, unload = false;
        Worker A, B, C, Z, H;
        KgSock s;
        KgInfo info;
        KgItem *it;
        Tally t;
        long before, after, anon_b, file_b;
        uint64_t handle, count;
        KgDump d = { 0 };
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--pressure") == 0)
                        pressure = true;
                else if (strcmp(argv[i], "--unload") == 0)
                        unload = true;
                else
                        n = strtoul(argv[i], NULL, 0);
        }
        if (n < 1024)
                n = 1024;       /* the THP and swap parts use pages 3..1023 */
        half = n / 2;
        setvbuf(stdout, NULL, _IOLBF, 0);

        r = kg_open(&s);
        tap(r == 0, "the ksmd_helper family resolves");
        if (r < 0)
                goto finish;
        if (unload)
                return test_unload(&s);

        /* Three processes with identical content, one with zeros. */
        worker_start(&A, n, 0);
        worker_start(&B, n, 0);
        worker_start(&C, n, 0);
        worker_start(&Z, n, 0);
        for (Worker *w = &A; w; w = w == &A ? &B : w == &B ? &C : w == &C ? &Z : NULL) {
                worker_do(w, W_ADDR, 0, 0, 0);
                worker_do(w, W_FILL, 0, n, w == &Z ? 0 : 7);
        }
        worker_do(&Z, W_FILL, n - 1, n, 9);     /* one non-zero page */

        /* Merge B onto A. */
        before = meminfo_anon_mapped_kb();
        anon_b = status_kb(B.pid, "RssAnon");
        file_b = status_kb(B.pid, "RssFile");
        it = pair_items(&B, &A, 0, n);
        r = run_items(&s, it, n, 0, &t);
        tap(r == 0 && t.merged == (long) n, "MERGE of %zu page pairs between two processes: all merged", n);
        after = meminfo_anon_mapped_kb();
        printf("# AnonPages+Mapped %ld -> %ld kB; B RssAnon %ld -> %ld, RssFile %ld -> %ld\n", before, after,
               anon_b, status_kb(B.pid, "RssAnon"), file_b, status_kb(B.pid, "RssFile"));
        /* Other processes' allocations make the system-wide figure noisy. */
        tap(before - after >= (long) n * 4 - 512, "the merge saves about %zu kB (AnonPages+Mapped)", n * 4);
        tap(anon_b - status_kb(B.pid, "RssAnon") >= (long) n * 4 * 9 / 10 &&
            status_kb(B.pid, "RssFile") - file_b >= (long) n * 4 * 9 / 10,
            "merged pages move from RssAnon to RssFile");
        handle = t.first_handle;

        r = run_items(&s, it, n, 0, &t);
        tap(r == 0 && t.already == (long) n && t.first_handle == handle,
            "merging again reports already, with the same handle");
        free(it);
        tap(worker_do(&A, W_CHECK, 0, n, 7) == 0 && worker_do(&B, W_CHECK, 0, n, 7) == 0,
            "both processes read their content after the merge");

        /* A third process joins by handle. */
        it = handle_items(&C, 0, 1, handle);
        r = run_items(&s, it, 1, 0, &t);
        tap(r == 0 && t.merged == 1 && it[0].out_handle == handle,
            "MERGE by handle joins an existing shared page");
        free(it);
        it = handle_items(&C, 1, 2, handle);
        r = run_items(&s, it, 1, 0, &t);
        tap(r == 0 && t.differs == 1, "MERGE by handle with different bytes reports differs");
        free(it);
        it = handle_items(&C, 1, 2, 1ULL << 60);
        r = run_items(&s, it, 1, 0, &t);
        tap(r == 0 && it[0].result == KSMD_HELPER_RESULT_NO_HANDLE,
            "MERGE by unknown handle reports no-handle");
        free(it);
        memset(&d, 0, sizeof(d));
        d.handle_of_interest = handle;
        r = kg_get_pages(&s, &d);
        printf("# GET_PAGES: %lu pages, %lu mappings, handle %lu mapcount %u\n", (unsigned long) d.pages,
               (unsigned long) d.mapped, (unsigned long) handle, d.mapcount_of_interest);
        tap(r == 0 && d.pages == n && d.mapped == 2 * n + 1 && d.mapcount_of_interest == 3,
            "GET_PAGES lists every shared page with its mapcount");

        /* Content that differs. */
        worker_do(&C, W_FILL, 2, 3, 8);
        it = pair_items(&C, &A, 2, 3);
        r = run_items(&s, it, 1, 0, &t);
        tap(r == 0 && t.differs == 1, "MERGE of pages with different bytes reports differs");
        free(it);

        /* COW isolation both ways. */
        worker_do(&A, W_FILL, 0, half, 11);
        worker_do(&B, W_FILL, half, n, 12);
        tap(worker_do(&A, W_CHECK, 0, half, 11) == 0 && worker_do(&A, W_CHECK, half, n, 7) == 0 &&
            worker_do(&B, W_CHECK, 0, half, 7) == 0 && worker_do(&B, W_CHECK, half, n, 12) == 0 &&
            worker_do(&C, W_CHECK, 0, 1, 7) == 0,
            "writes after a merge stay private to the writer (COW both ways)");

        /* Zero pages. */
        before = meminfo_anon_mapped_kb();
        it = pair_items(&Z, &Z, 0, n);
        r = run_items(&s, it, n, 1, &t);
        tap(r == 0 && t.merged == (long) n - 1 && t.differs == 1,
            "MERGE_ZERO replaces all-zero pages and refuses the non-zero one");
        after = meminfo_anon_mapped_kb();
        printf("# AnonPages+Mapped %ld -> %ld kB\n", before, after);
        tap(before - after >= (long) (n - 1) * 4 - 512, "zero merge saves about %zu kB", (n - 1) * 4);
        r = run_items(&s, it, 1, 1, &t);
        tap(r == 0 && t.already == 1, "MERGE_ZERO of the zero page reports already");
        free(it);
        tap(worker_do(&Z, W_CHECK, 0, n - 1, 0) == 0, "zero-merged pages read as zeros");
        worker_do(&Z, W_FILL, 0, half, 13);
        tap(worker_do(&Z, W_CHECK, 0, half, 13) == 0 && worker_do(&Z, W_CHECK, half, n - 1, 0) == 0,
            "writes to zero-merged pages are private");

        /* Re-merge A and B's remaining shared halves for the semantics tests. */
        tap(worker_do(&B, W_FORK_CHECK, 0, half, 7) == 0,
            "a child forked after a merge reads, writes and reads back; the parent is unaffected");
        tap(worker_do(&B, W_MLOCK, 0, half, 0) == 0 && worker_do(&B, W_CHECK, 0, half, 7) == 0 &&
            worker_do(&B, W_MUNLOCK, 0, half, 0) == 0, "mlock and munlock of merged pages");
        tap(worker_do(&B, W_MREMAP, 0, 0, 0) == 0 && worker_do(&B, W_ADDR, 0, 0, 0) &&
            worker_do(&B, W_CHECK, 0, half, 7) == 0 && worker_do(&B, W_CHECK, half, n, 12) == 0,
            "mremap moves merged pages intact");
        tap(worker_do(&B, W_FREE, 0, half / 2, 0) == 0 &&
            worker_do(&B, W_CHECK_OR_ZERO, 0, half / 2, 7) == 0,
            "MADV_FREE on merged pages loses nothing that was not freed");
        tap(worker_do(&B, W_DONTNEED, half / 2, half, 0) == 0 &&
            worker_do(&B, W_CHECK, half / 2, half, 0) == 0 && worker_do(&C, W_CHECK, 0, 1, 7) == 0,
            "MADV_DONTNEED drops merged pages to zeros in that process only");
        /* Left locked until B exits: the free path must clear the mlock. */
        tap(worker_do(&B, W_MLOCK, 0, half / 2, 0) == 0, "mlock of merged pages kept until exit");

        /* UNMERGE C's page. */
        file_b = status_kb(C.pid, "RssFile");
        r = kg_unmerge(&s, C.pidfd, (uintptr_t) C.base, n * PG, &count);
        printf("# UNMERGE: r=%d count=%lu (%s)\n", r, (unsigned long) count, kg_extack);
        tap(r == 0 && count == 1 && worker_do(&C, W_CHECK, 0, 1, 7) == 0 &&
            status_kb(C.pid, "RssFile") < file_b,
            "UNMERGE makes shared pages private again, content intact");

        /* THP-backed memory: H's pages 3..515 against C's (NOHUGEPAGE). */
        worker_start(&H, 1024, 1);
        worker_do(&H, W_ADDR, 0, 0, 0);
        worker_do(&H, W_FILL, 0, 1024, 7);
        printf("# AnonHugePages %ld kB\n", proc_kb("/proc/meminfo", "AnonHugePages"));
        it = pair_items(&H, &C, 3, 515);
        r = run_items(&s, it, 512, 0, &t);
        tap(r == 0 && t.merged == 512, "pages of a transparent huge page merge (the THP is split)");
        free(it);
        tap(worker_do(&H, W_CHECK, 0, 1024, 7) == 0, "the split THP keeps its content");
        worker_do(&H, W_FILL, 3, 515, 14);
        tap(worker_do(&H, W_CHECK, 3, 515, 14) == 0 && worker_do(&C, W_CHECK, 3, 515, 7) == 0,
            "writes to merged THP pages stay private");

        /* Bytes that differ leave a THP whole; pages of one THP merge with each other. */
        {
                Worker D;
                long thp0, thp1;

                worker_start(&D, 1024, 1);
                worker_do(&D, W_ADDR, 0, 0, 0);
                worker_do(&D, W_FILL, 0, 512, 16);
                worker_do(&D, W_FILL_CONST, 512, 1024, 0x5a5a5a5a5a5a5a5aULL);
                thp0 = anon_huge_kb(D.pid);
                it = pair_items(&D, &C, 3, 515);
                r = run_items(&s, it, 512, 0, &t);
                free(it);
                it = pair_items(&D, &D, 0, 512);
                r |= run_items(&s, it, 512, 1, &t);
                free(it);
                thp1 = anon_huge_kb(D.pid);
                printf("# AnonHugePages of the THP process: %ld -> %ld kB\n", thp0, thp1);
                tap(r == 0 && thp0 >= 4096 && thp1 == thp0,
                    "MERGE and MERGE_ZERO of THP pages with other bytes split no huge page");
                it = calloc(256, sizeof(*it));
                for (size_t i = 0; i < 256; i++) {
                        it[i].pidfd = D.pidfd;
                        it[i].addr = (uintptr_t) D.base + (512 + i) * PG;
                        it[i].src_pidfd = D.pidfd;
                        it[i].src_addr = (uintptr_t) D.base + (768 + i) * PG;
                }
                r = run_items(&s, it, 256, 0, &t);
                free(it);
                tap(r == 0 && t.merged == 256 && anon_huge_kb(D.pid) == thp0 - 2048,
                    "pages of one THP merge with each other, its only split");
                tap(worker_do(&D, W_CHECK, 0, 512, 16) == 0 &&
                    worker_do(&D, W_CHECK_CONST, 512, 1024, 0x5a5a5a5a5a5a5a5aULL) == 0,
                    "the THP process reads exactly what it wrote");
                worker_stop(&D);
        }

        if (pressure) {
                test_pressure();
                tap(worker_do(&C, W_CHECK, 3, 515, 7) == 0 && worker_do(&B, W_CHECK, half, n, 12) == 0,
                    "merged and private pages intact after memory pressure");
                /*
                 * Pages pushed to swap, then shared with a forked child, are
                 * read back through the swap cache (zram skips it for swap
                 * entries used once) and stay there while the child lives.
                 */
                before = proc_kb("/proc/meminfo", "SwapCached");
                tap(worker_do(&C, W_PAGEOUT, 515, 1024, 0) == 0 &&
                    worker_do(&H, W_PAGEOUT, 515, 1024, 0) == 0 &&
                    worker_do(&C, W_HOLD_FORK, 0, 0, 0) == 0 && worker_do(&H, W_HOLD_FORK, 0, 0, 0) == 0,
                    "MADV_PAGEOUT pushes pages to swap");
                tap(worker_do(&C, W_CHECK, 515, 1024, 7) == 0 && worker_do(&H, W_CHECK, 515, 1024, 7) == 0,
                    "pages read back from swap are intact");
                printf("# SwapCached %ld -> %ld kB after pageout and read back\n", before,
                       proc_kb("/proc/meminfo", "SwapCached"));
                before = proc_kb("/proc/meminfo", "SwapCached");
                it = pair_items(&H, &C, 515, 1024);
                r = run_items(&s, it, 1024 - 515, 0, &t);
                free(it);
                printf("# SwapCached %ld -> %ld kB\n", before, proc_kb("/proc/meminfo", "SwapCached"));
                tap(r == 0 && t.merged == 1024 - 515, "pages read back from swap merge");
                worker_do(&C, W_HOLD_RELEASE, 0, 0, 0);
                worker_do(&H, W_HOLD_RELEASE, 0, 0, 0);
                worker_do(&C, W_FILL, 515, 600, 15);
                tap(worker_do(&C, W_CHECK, 515, 600, 15) == 0 && worker_do(&H, W_CHECK, 515, 1024, 7) == 0 &&
                    worker_do(&C, W_CHECK, 600, 1024, 7) == 0, "and keep COW semantics");
        }

        test_memcg(&s, n);

        /* The first owner unmaps half and exits while two others still map. */
        {
                Worker E, F, G;
                size_t q = n / 4;

                worker_start(&E, q, 0);
                worker_start(&F, q, 0);
                worker_start(&G, q, 0);
                for (Worker *w = &E; w; w = w == &E ? &F : w == &F ? &G : NULL) {
                        worker_do(w, W_ADDR, 0, 0, 0);
                        worker_do(w, W_FILL, 0, q, 21);
                }
                it = pair_items(&F, &E, 0, q);
                r = run_items(&s, it, q, 0, &t);
                free(it);
                it = pair_items(&G, &F, 0, q);
                r |= run_items(&s, it, q, 0, &t);
                free(it);
                tap(r == 0 && t.merged == (long) q, "a third process joins pages merged from two others");
                tap(worker_do(&E, W_MUNMAP, 0, q / 2, 0) == 0, "munmap of merged pages");
                worker_stop(&E);
                tap(worker_do(&F, W_CHECK, 0, q, 21) == 0 && worker_do(&G, W_CHECK, 0, q, 21) == 0,
                    "after the first owner exits the others still read their content");
                worker_do(&F, W_FILL, 0, q / 2, 22);
                tap(worker_do(&F, W_CHECK, 0, q / 2, 22) == 0 && worker_do(&G, W_CHECK, 0, q, 21) == 0,
                    "and writes after that stay private");
                worker_stop(&F);
                worker_stop(&G);
        }

        worker_stop(&A);
        worker_stop(&B);
        worker_stop(&C);
        worker_stop(&Z);
        worker_stop(&H);
        r = kg_info(&s, &info);
        printf("# pages owned %lu mapped %lu merged %lu zero %lu\n",
               (unsigned long) info.stats[KSMD_HELPER_STAT_PAGES_OWNED],
               (unsigned long) info.stats[KSMD_HELPER_STAT_PAGES_MAPPED],
               (unsigned long) info.stats[KSMD_HELPER_STAT_MERGED],
               (unsigned long) info.stats[KSMD_HELPER_STAT_MERGED_ZERO]);
        tap(r == 0 && info.stats[KSMD_HELPER_STAT_PAGES_OWNED] == 0,
            "after every process exits the module owns no page");
        kg_close(&s);
finish:
        return tap_end();
}
