/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Estimate mode on the real kernel of this host, no module needed: forked
 * children hold private anonymous memory whose duplicate and zero pages are
 * known by construction; the daemon's scan (the Manager, in process, and the
 * ksmd binary) must report exactly the saving that merging would give.
 *
 * Every child is started here, killed and reaped by its pid here, and also
 * has PR_SET_PDEATHSIG so it cannot outlive a crashed test.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-probe.h"
#include "manager.h"
#include "macro.h"
#include "proc-reader.h"

#define MAX_CHILDREN 8
#define HUGE_BYTES (UINT64_C(2) << 20)
#define N_VOLATILE 8

typedef struct Child {
        pid_t pid;
        uint64_t start;                  /* registered range */
        uint64_t n_pages;
        bool thp;
        bool volatile_tail;              /* the last N_VOLATILE pages keep changing */
} Child;

static Child children[MAX_CHILDREN];
/* Child c rewrote pages [n/2, n/2 + N_REWRITTEN) with the shared contents 1..N_REWRITTEN. */
#define N_REWRITTEN 16
static bool rewritten[MAX_CHILDREN];
static volatile sig_atomic_t rewrite_requested;
static int ack_fd = -1;
static size_t n_children;
static uint64_t pages_per_child = 1024;  /* KSMD_NATIVE_MIB scales it for measurements */
static const char *ksmd_binary;

/*
 * Content id of page i of child c; 0 = zero page. Per child: 1/4 shared with
 * every other child, 1/8 zero, 1/64 sixteen copies of one child-own content,
 * the rest unique.
 */
static uint64_t content_id(size_t c, uint64_t i) {
        uint64_t n = pages_per_child;

        if (rewritten[c] && i >= n / 2 && i < n / 2 + N_REWRITTEN)
                return 1 + (i - n / 2);
        if (i < n / 4)
                return 1 + i;                                   /* same in every child */
        if (i < n / 4 + n / 8)
                return 0;                                       /* zero */
        if (i < n / 4 + n / 8 + n / 64)
                return (UINT64_C(1) << 32) + c;                 /* repeated inside the child */
        return (UINT64_C(2) << 32) + c * (UINT64_C(1) << 24) + i; /* unique */
}

static void fill_page(uint8_t *p, uint64_t id) {
        if (id == 0) {
                memset(p, 0, PAGE_SIZE_BYTES);                  /* a written, private zero page */
                return;
        }
        memset(p, 0xa5, PAGE_SIZE_BYTES);
        memcpy(p, &id, sizeof(id));
}

static void on_sigusr1(int sig) {
        rewrite_requested = 1;
}

static void child_main(size_t c, uint8_t *mem, int ready_fd) {
        Child *ch = &children[c];
        char ok = 1;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) signal(SIGUSR1, on_sigusr1);
        if (getppid() == 1)
                _exit(1);
        for (uint64_t i = 0; i < ch->n_pages; i++)
                fill_page(mem + i * PAGE_SIZE_BYTES, content_id(c, i));
        if (write(ready_fd, &ok, 1) != 1)
                _exit(1);
        for (uint64_t counter = 1;; counter++) {
                if (rewrite_requested && !rewritten[c]) {
                        rewritten[c] = true;
                        for (uint64_t i = ch->n_pages / 2; i < ch->n_pages / 2 + N_REWRITTEN; i++)
                                fill_page(mem + i * PAGE_SIZE_BYTES, content_id(c, i));
                        if (write(ready_fd, &ok, 1) != 1)
                                _exit(1);
                }
                if (ch->volatile_tail)
                        for (uint64_t i = ch->n_pages - N_VOLATILE; i < ch->n_pages; i++)
                                fill_page(mem + i * PAGE_SIZE_BYTES,
                                          (UINT64_C(3) << 32) + counter * N_VOLATILE + i);
                usleep(ch->volatile_tail ? 200 : 100000);
        }
}

/* Maps the region in the parent (not touched here, so every page the child writes is its own). */
static void start_children(size_t n, bool thp_first) {
        int fds[2];

        assert_true(n <= MAX_CHILDREN);
        assert_int_equal(pipe(fds), 0);
        for (size_t c = 0; c < n; c++) {
                uint64_t len = pages_per_child * PAGE_SIZE_BYTES;
                uint8_t *raw, *mem;

                raw = mmap(NULL, len + HUGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
                assert_true(raw != MAP_FAILED);
                mem = (uint8_t *) (((uintptr_t) raw + HUGE_BYTES - 1) & ~(uintptr_t) (HUGE_BYTES - 1));
                children[c] = (Child) {
                        .start = (uintptr_t) mem,
                        .n_pages = pages_per_child,
                        .thp = thp_first && c == 0,
                        .volatile_tail = c == n - 1,
                };
                assert_int_equal(madvise(mem, len, children[c].thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE), 0);

                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        close(fds[0]);
                        child_main(c, mem, fds[1]);
                }
                children[c].pid = pid;
                n_children = c + 1;
                /* The parent's copy of the mapping is never used. */
                assert_int_equal(munmap(raw, len + HUGE_BYTES), 0);
        }
        close(fds[1]);
        for (size_t c = 0; c < n; c++) {
                char ok;
                assert_int_equal(read(fds[0], &ok, 1), 1);
        }
        ack_fd = fds[0];
}

/* Asks child c to rewrite some pages and waits until it has. */
static void rewrite_in_child(size_t c) {
        char ok;

        assert_int_equal(kill(children[c].pid, SIGUSR1), 0);
        assert_int_equal(read(ack_fd, &ok, 1), 1);
        rewritten[c] = true;
}

static int stop_children(void **state) {
        for (size_t c = 0; c < n_children; c++)
                if (children[c].pid > 0) {
                        (void) kill(children[c].pid, SIGKILL);
                        (void) waitpid(children[c].pid, NULL, 0);
                        children[c].pid = 0;
                }
        n_children = 0;
        memset(rewritten, 0, sizeof(rewritten));
        if (ack_fd >= 0)
                close(ack_fd);
        ack_fd = -1;
        return 0;
}

typedef struct Expected {
        uint64_t sharing;                /* pages beyond the first copy of each non-zero content */
        uint64_t shared;                 /* distinct non-zero contents with >= 2 copies */
        uint64_t zero;
        uint64_t pages;                  /* registered pages */
} Expected;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* The truth, from the construction: sort all stable content ids and count. */
static Expected expected(void) {
        Expected e = {};
        uint64_t *ids = calloc(n_children * pages_per_child, sizeof(uint64_t));
        size_t n = 0;

        assert_non_null(ids);
        for (size_t c = 0; c < n_children; c++) {
                uint64_t stable = children[c].n_pages - (children[c].volatile_tail ? N_VOLATILE : 0);

                e.pages += children[c].n_pages;
                for (uint64_t i = 0; i < stable; i++) {
                        uint64_t id = content_id(c, i);
                        if (id == 0)
                                e.zero++;
                        else
                                ids[n++] = id;
                }
        }
        qsort(ids, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 1; i < n; i++)
                if (ids[i] == ids[i - 1]) {
                        e.sharing++;
                        if (i == 1 || ids[i - 1] != ids[i - 2])
                                e.shared++;
                }
        free(ids);
        return e;
}

static uint64_t cpu_usec(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
               (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* AnonHugePages of a child's registered mapping, from its smaps (test code, not the daemon). */
static uint64_t child_thp_kib(const Child *ch) {
        char path[64], line[256];
        uint64_t kib = 0;
        bool in = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps", (int) ch->pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long s, e, v;

                if (sscanf(line, "%llx-%llx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
                        in = s <= ch->start && ch->start < e;
                else if (in && sscanf(line, "AnonHugePages: %llu kB", &v) == 1)
                        kib += v;
        }
        fclose(f);
        return kib;
}

/* An estimate-mode Manager at 256 pages per batch, no sleep, no rests, no files, no socket. */
static int new_estimate_manager_threads(const char *scan_threads, Manager **ret) {
        return manager_new(&(ManagerArgs) { .overrides = STRV_MAKE("Mode=estimate", "PagesToScan=256",
                                                                    "Sleep=0", "IdleSleep=0", scan_threads),
                                            .n_overrides = 5,
                                            .no_socket = true },
                           ret);
}

static int new_estimate_manager(Manager **ret) {
        return new_estimate_manager_threads("ScanThreads=1", ret);
}

static void run_manager_and_check_threads(const char *what, const char *scan_threads) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Expected e = expected();
        uint64_t saveable = 0, cpu0;
        Stats st;

        assert_int_equal(new_estimate_manager_threads(scan_threads, &m), 0);
        assert_true(manager_is_estimate(m));
        for (size_t c = 0; c < n_children; c++)
                assert_int_equal(manager_register_range(m, children[c].pid, children[c].start,
                                                        children[c].n_pages * PAGE_SIZE_BYTES, NULL), 0);
        m->exit_after_scans = 3;
        assert_int_equal(manager_start(m), 0);
        cpu0 = cpu_usec();
        assert_int_equal(sd_event_loop(m->event), 0);
        uint64_t cpu = cpu_usec() - cpu0;

        manager_get_stats(m, &st);
        print_message("# %s: %" PRIu64 " pages in %zu processes; expected sharing %" PRIu64
                      " shared %" PRIu64 " zero %" PRIu64 "; got sharing %" PRIu64 " shared %" PRIu64
                      " zero %" PRIu64 " (unshared %" PRIu64 ", volatile %" PRIu64 ")\n",
                      what, e.pages, n_children, e.sharing, e.shared, e.zero, st.last.pages_sharing,
                      st.last.pages_shared, st.last.pages_zero, st.last.pages_unshared,
                      st.last.pages_volatile);
        print_message("# %s: 3 full scans read %" PRIu64 " pages/scan, %.2f us CPU per page scanned "
                      "(%.2f GB scanned per CPU-second), metadata %" PRIu64 " bytes = %.1f bytes/page\n",
                      what, st.last.pages_read, (double) cpu / (3.0 * (double) e.pages),
                      3.0 * (double) e.pages * PAGE_SIZE_BYTES / 1e9 / ((double) cpu / 1e6),
                      st.metadata_bytes, (double) st.metadata_bytes / (double) st.tracked_pages);

        assert_int_equal(st.full_scans, 3);
        assert_int_equal(st.last.pages_scanned, e.pages);
        assert_int_equal(st.last.pages_sharing, e.sharing);
        assert_int_equal(st.last.pages_shared, e.shared);
        assert_int_equal(st.last.pages_zero, e.zero);
        assert_int_equal(st.last.pages_not_present, 0);
        assert_int_equal(stats_saving_bytes(&st), (e.sharing + e.zero) * PAGE_SIZE_BYTES);

        assert_int_equal(region_registry_count(m->registry), n_children);
        REGISTRY_FOREACH(r, m->registry)
                saveable += scan_counters_saving_pages(&scanner_region(m->scanner, r->id)->last);
        assert_int_equal(saveable, e.sharing + e.zero);
}

static void run_manager_and_check(const char *what) {
        run_manager_and_check_threads(what, "ScanThreads=1");
}

/* The same processes' real memory, read by 2 and 4 worker threads: the same exact estimate. */
static void test_estimate_is_exact_with_scan_threads(void **state) {
        start_children(3, false);
        run_manager_and_check_threads("ScanThreads=2", "ScanThreads=2");
        run_manager_and_check_threads("ScanThreads=4", "ScanThreads=4");
}

static void test_estimate_is_exact_for_small_pages(void **state) {
        start_children(3, false);
        run_manager_and_check("small pages");
}

static void test_estimate_is_exact_with_a_transparent_huge_page_process(void **state) {
        start_children(3, true);
        uint64_t kib = child_thp_kib(&children[0]);
        print_message("# THP child maps %" PRIu64 " KiB of AnonHugePages in its range (THP mode %s)\n", kib,
                      kib ? "on" : "unavailable or not used");
        run_manager_and_check("with THP");
}

/* Runs the loop until n more full scans completed (without sd_event_exit, so it can run again). */
static void run_scans(Manager *m, uint64_t n) {
        Stats st;
        uint64_t until;

        manager_get_stats(m, &st);
        until = st.full_scans + n;
        while (st.full_scans < until) {
                assert_true(sd_event_run(m->event, UINT64_MAX) >= 0);
                manager_get_stats(m, &st);
        }
}

static void test_changed_pages_are_found_and_steady_ones_not_reread(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Expected e;
        Stats st;
        bool soft_dirty;

        start_children(3, false);
        assert_int_equal(new_estimate_manager(&m), 0);
        /* What the daemon itself found out about this kernel at start. */
        soft_dirty = host_probe_has(&m->host, HOST_SOFT_DIRTY);
        for (size_t c = 0; c < n_children; c++)
                assert_int_equal(manager_register_range(m, children[c].pid, children[c].start,
                                                        children[c].n_pages * PAGE_SIZE_BYTES, NULL), 0);
        assert_int_equal(manager_start(m), 0);
        run_scans(m, 3);
        manager_get_stats(m, &st);
        e = expected();
        assert_int_equal(st.last.pages_sharing, e.sharing);
        print_message("# steady: scan 3 read %" PRIu64 " of %" PRIu64 " pages, %" PRIu64
                      " proven unchanged by soft-dirty (%s)\n",
                      st.last.pages_read, e.pages, st.last.pages_unchanged,
                      soft_dirty ? "works" : "not available here");
        if (soft_dirty) {
                /* Only the volatile pages are read on steady memory. */
                assert_true(st.last.pages_read <= 2 * N_VOLATILE);
                assert_true(st.last.pages_unchanged >= e.pages - 2 * N_VOLATILE);
        } else {
                /* Nothing is taken for unchanged without soft-dirty: every page is read. */
                assert_int_equal(st.last.pages_unchanged, 0);
                assert_true(st.last.pages_read >= e.pages - N_VOLATILE);
        }

        /* Child 1 turns 16 unique pages into copies of shared content. */
        rewrite_in_child(1);
        e = expected();
        /*
         * Scan 1 sees them changed (volatility 1: read every other scan), scans 2 and 3 each
         * find half of them held still: all are candidates after 3 scans.
         */
        run_scans(m, 3);
        manager_get_stats(m, &st);
        print_message("# after rewriting %d pages: scan read %" PRIu64 " pages; sharing %" PRIu64
                      " (expected %" PRIu64 ")\n",
                      N_REWRITTEN, st.last.pages_read, st.last.pages_sharing, e.sharing);
        assert_int_equal(st.last.pages_sharing, e.sharing);
        assert_int_equal(st.last.pages_zero, e.zero);
        if (soft_dirty)
                assert_true(st.last.pages_read <= N_REWRITTEN + 2 * N_VOLATILE);
}

static uint64_t now_nsec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/*
 * Reports what change tracking costs the scanned process: after a soft-dirty
 * clear, the first write to each page takes a write-protect fault. Measured
 * on this test process itself. Asserts that the written pages' bit 55 is set
 * afterwards exactly when the probe says soft-dirty works here.
 */
static void test_report_soft_dirty_cost_on_the_scanned_process(void **state) {
        const size_t pages = 32768;
        _cleanup_close_ int fd = -EBADF;
        volatile uint8_t *p;
        uint64_t t0, plain = 0, after_clear = 0, e[64];
        HostProbe host;
        bool works;

        assert_int_equal(host_probe_run(&host), 0);
        works = host_probe_has(&host, HOST_SOFT_DIRTY);
        p = mmap(NULL, pages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        (void) madvise((void *) p, pages * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < pages; i++)
                p[i * PAGE_SIZE_BYTES] = 1;
        for (int round = 0; round < 3; round++) {
                t0 = now_nsec();
                for (size_t i = 0; i < pages; i++)
                        p[i * PAGE_SIZE_BYTES]++;
                plain += now_nsec() - t0;
                assert_int_equal(proc_clear_soft_dirty(getpid()), 0);
                t0 = now_nsec();
                for (size_t i = 0; i < pages; i++)
                        p[i * PAGE_SIZE_BYTES]++;
                after_clear += now_nsec() - t0;
        }
        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, ELEMENTSOF(e), e), 0);
        for (size_t i = 0; i < ELEMENTSOF(e); i++)
                assert_int_equal(!!(e[i] & PAGEMAP_SOFT_DIRTY), works);
        print_message("# soft-dirty %s on %s; first write to a page: %.0f ns normally, %.0f ns after a "
                      "clear (%.0f ns per page per clear is the cost to the scanned process; THP off)\n",
                      works ? "works" : "is missing (writes leave bit 55 clear)", host.release,
                      (double) plain / (3.0 * pages), (double) after_clear / (3.0 * pages),
                      ((double) after_clear - (double) plain) / (3.0 * pages));
        (void) munmap((void *) p, pages * PAGE_SIZE_BYTES);
}

static void test_daemon_binary_reports_the_same_estimate(void **state) {
        char cmd[4096];
        size_t len;
        uint64_t sharing = UINT64_MAX, zero = UINT64_MAX;
        char line[4096];
        FILE *f;

        if (!ksmd_binary) {
                print_message("# no ksmd binary given as argument: not run\n");
                return;
        }
        start_children(3, false);
        Expected e = expected();

        len = (size_t) snprintf(cmd, sizeof(cmd),
                                "%s --mode=estimate --scans=3 --sleep=0 --pages-to-scan=512", ksmd_binary);
        for (size_t c = 0; c < n_children; c++)
                len += (size_t) snprintf(cmd + len, sizeof(cmd) - len,
                                         " --register=%d:0x%" PRIx64 ":0x%" PRIx64,
                                         (int) children[c].pid, children[c].start,
                                         children[c].n_pages * PAGE_SIZE_BYTES);
        assert_true(len < sizeof(cmd));
        f = popen(cmd, "r");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                char *p;

                if ((p = strstr(line, "pages_sharing=")) && strncmp(line, "pages_scanned=", 14) == 0)
                        sharing = strtoull(p + 14, NULL, 10);
                if ((p = strstr(line, " pages_zero=")) && strncmp(line, "pages_scanned=", 14) == 0)
                        zero = strtoull(p + 12, NULL, 10);
        }
        assert_int_equal(pclose(f), 0);
        print_message("# ksmd binary: sharing %" PRIu64 " zero %" PRIu64
                      " (expected %" PRIu64 " %" PRIu64 ")\n",
                      sharing, zero, e.sharing, e.zero);
        assert_int_equal(sharing, e.sharing);
        assert_int_equal(zero, e.zero);
}

int main(int argc, char *argv[]) {
        const char *mib = getenv("KSMD_NATIVE_MIB");
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_estimate_is_exact_for_small_pages, stop_children),
                cmocka_unit_test_teardown(test_estimate_is_exact_with_scan_threads, stop_children),
                cmocka_unit_test_teardown(test_estimate_is_exact_with_a_transparent_huge_page_process,
                                          stop_children),
                cmocka_unit_test_teardown(test_changed_pages_are_found_and_steady_ones_not_reread,
                                          stop_children),
                cmocka_unit_test_teardown(test_daemon_binary_reports_the_same_estimate, stop_children),
                cmocka_unit_test(test_report_soft_dirty_cost_on_the_scanned_process),
        };

        if (argc > 1)
                ksmd_binary = argv[1];
        if (mib && atoi(mib) >= 4)
                pages_per_child = (uint64_t) atoi(mib) * 256;
        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root: process_vm_readv and pagemap of other processes\n");
                return 0;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
