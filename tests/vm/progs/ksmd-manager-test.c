/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd-manager-test: the daemon's Manager, in process, merging through the
 * real module while registered memory goes away under it. Prints TAP.
 *
 *   exit: three processes are registered; in the second full scan, while the
 *         cursor is inside the second one's region (its merges under way),
 *         that process is killed. The scan must go on, drop exactly that
 *         region, and the two survivors must still reach the full saving
 *         between them with their contents intact.
 *   unregister: the same, but the second region is unregistered instead
 *         (the process lives on). Nothing of that process may be merged
 *         after it was unregistered; the others reach the full saving; all
 *         three read exactly their own content.
 *
 * After each test every process has exited and the module must own nothing.
 * Children are started, killed and reaped here by pid, and have
 * PR_SET_PDEATHSIG so none outlives a crashed test.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helper-client.h"
#include "manager.h"
#include "macro.h"
#include "host-probe.h"
#include "proc-reader.h"
#include "tap.h"

#define N_CHILDREN 3
#define PAGES 2048u                      /* per child */
#define RUN_TIMEOUT_USEC (UINT64_C(120) * 1000000)

typedef struct Child {
        pid_t pid;
        uint64_t start;
        uint32_t region_id;
} Child;

static Child children[N_CHILDREN];
static volatile sig_atomic_t verify_requested;

/* " (reason)" for a failed call, "" for a successful one: for test descriptions. */
static const char *why(int r) {
        static char buf[128];

        if (r >= 0)
                return "";
        snprintf(buf, sizeof(buf), " (%s)", strerror(-r));
        return buf;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Content of page i of child c; 0 = all zero. The first half is the same in
 * every child, then a quarter zero pages, then a quarter unique pages.
 */
static uint64_t content_id(unsigned c, uint64_t i) {
        if (i < PAGES / 2)
                return 1 + i;
        if (i < PAGES / 2 + PAGES / 4)
                return 0;
        return (UINT64_C(1) << 32) + ((uint64_t) c << 20) + i;
}

static void fill_page(uint8_t *p, uint64_t id) {
        memset(p, 0, PAGE_SIZE_BYTES);
        if (id == 0)
                return;
        for (size_t k = 0; k < PAGE_SIZE_BYTES / sizeof(uint64_t); k++)
                ((uint64_t *) p)[k] = id * 0x9e3779b97f4a7c15ull + k;
}

/* Theoretical saving between the given number of children:
 * the duplicate half beyond one copy, all zero pages. */
static uint64_t expected_distinct(unsigned n) {
        return PAGES / 2 + n * (PAGES / 4);
}

static void on_sigusr1(int sig) {
        verify_requested = 1;
}

static _noreturn_ void child_main(unsigned c, uint8_t *mem, int ready_fd) {
        uint8_t expect[PAGE_SIZE_BYTES];
        uint64_t bad = 0;
        sigset_t mask, old;
        char ok = 1;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        (void) sigprocmask(SIG_BLOCK, &mask, &old);
        (void) signal(SIGUSR1, on_sigusr1);
        if (getppid() == 1)
                _exit(3);
        for (uint64_t i = 0; i < PAGES; i++)
                fill_page(mem + i * PAGE_SIZE_BYTES, content_id(c, i));
        if (write(ready_fd, &ok, 1) != 1)
                _exit(3);
        close(ready_fd);
        while (!verify_requested)
                sigsuspend(&old);
        for (uint64_t i = 0; i < PAGES; i++) {
                fill_page(expect, content_id(c, i));
                if (memcmp(expect, mem + i * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES) != 0) {
                        if (bad++ < 5)
                                fprintf(stderr, "child %u: page %" PRIu64 " does not hold what it wrote\n",
                                        c, i);
                }
        }
        _exit(bad ? 1 : 0);
}

static int start_children(void) {
        int fds[2];

        if (pipe(fds) < 0)
                return -errno;
        for (unsigned c = 0; c < N_CHILDREN; c++) {
                uint64_t len = (uint64_t) PAGES * PAGE_SIZE_BYTES;
                uint8_t *mem;
                pid_t pid;

                mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (mem == MAP_FAILED)
                        return -errno;
                (void) madvise(mem, len, MADV_NOHUGEPAGE);
                pid = fork();
                if (pid < 0)
                        return -errno;
                if (pid == 0) {
                        close(fds[0]);
                        child_main(c, mem, fds[1]);
                }
                children[c] = (Child) { .pid = pid, .start = (uintptr_t) mem };
                (void) munmap(mem, len);
        }
        close(fds[1]);
        for (unsigned c = 0; c < N_CHILDREN; c++) {
                char ok;

                if (read(fds[0], &ok, 1) != 1) {
                        close(fds[0]);
                        return -EIO;
                }
        }
        close(fds[0]);
        return 0;
}

/* Asks child c to verify its content and reaps it. True if it read exactly what it wrote. */
static bool verify_child(unsigned c) {
        int status;

        if (children[c].pid <= 0 || kill(children[c].pid, SIGUSR1) < 0)
                return false;
        if (waitpid(children[c].pid, &status, 0) < 0)
                return false;
        children[c].pid = 0;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void kill_child(unsigned c) {
        if (children[c].pid <= 0)
                return;
        (void) kill(children[c].pid, SIGKILL);
        (void) waitpid(children[c].pid, NULL, 0);
        children[c].pid = 0;
}

static void stop_children(void) {
        for (unsigned c = 0; c < N_CHILDREN; c++)
                kill_child(c);
}

typedef struct Backing {
        uint64_t distinct;               /* physical pages other than the zero page, each once */
        uint64_t zero;                   /* entries mapping the zero page */
        uint64_t not_private;            /* present, and zero or not exclusively mapped anonymous */
} Backing;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* What physically backs the regions of the children whose bit is set in mask. */
static int backing(unsigned mask, Backing *ret) {
        static uint64_t pfns[N_CHILDREN * PAGES];
        uint64_t zero_pfn, huge_zero_pfn, entries[PAGES];
        Backing b = {};
        size_t n = 0;
        int r;

        r = host_probe_zero_pfns(&zero_pfn, &huge_zero_pfn);
        if (r < 0)
                return r;
        for (unsigned c = 0; c < N_CHILDREN; c++) {
                _cleanup_close_ int fd = -EBADF;

                if (!(mask & (1u << c)))
                        continue;
                r = proc_pagemap_open(children[c].pid, &fd);
                if (r < 0)
                        return r;
                r = proc_pagemap_read(fd, children[c].start, PAGES, entries);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < PAGES; i++) {
                        uint64_t e = entries[i], pfn = e & PAGEMAP_PFN_MASK;

                        if (!(e & PAGEMAP_PRESENT))
                                continue;
                        if (pfn == zero_pfn) {
                                b.zero++;
                                b.not_private++;
                                continue;
                        }
                        if (!(e & PAGEMAP_EXCLUSIVE) || (e & PAGEMAP_FILE_OR_SHARED))
                                b.not_private++;
                        pfns[n++] = pfn;
                }
        }
        qsort(pfns, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (i == 0 || pfns[i] != pfns[i - 1])
                        b.distinct++;
        *ret = b;
        return 0;
}

static int module_pages_owned(uint64_t *ret) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;
        HelperInfo info;
        int r;

        r = helper_client_new(&c);
        if (r < 0)
                return r;
        r = helper_client_info(c, &info);
        if (r < 0)
                return r;
        *ret = info.stats[KSMD_HELPER_STAT_PAGES_OWNED];
        return 0;
}

typedef bool (*Condition)(Manager *m, void *userdata);

/* Runs the Manager's loop until cond holds. 0, or -ETIMEDOUT, or the loop's error. */
static int run_until(Manager *m, Condition cond, void *userdata) {
        sd_event *e = m->event;
        uint64_t deadline = now_usec() + RUN_TIMEOUT_USEC;

        while (!cond(m, userdata)) {
                int r;

                if (now_usec() > deadline)
                        return -ETIMEDOUT;
                r = sd_event_run(e, 100000);
                if (r < 0)
                        return r;
                if (sd_event_get_state(e) == SD_EVENT_FINISHED) {
                        int code = 0;

                        (void) sd_event_get_exit_code(e, &code);
                        return code < 0 ? code : -ECANCELED;
                }
        }
        return 0;
}

typedef struct Point {
        uint64_t full_scans;             /* completed full scans */
        uint64_t pages;                  /* pages examined in the running scan */
} Point;

static bool reached(Manager *m, void *userdata) {
        const Point *p = userdata;
        Stats st;

        manager_get_stats(m, &st);
        return st.full_scans > p->full_scans ||
               (st.full_scans == p->full_scans && st.current_scan_pages >= p->pages);
}

/* A Manager over the children whose bit is set in mask, started. */
static int new_manager(unsigned mask, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        /* Small batches, so that a full scan spans many loop iterations; no rests, no files, no socket. */
        r = manager_new(&(ManagerArgs) { .overrides = STRV_MAKE("PagesToScan=128", "Sleep=1ms",
                                                                 "IdleSleep=0"),
                                         .n_overrides = 3,
                                         .no_socket = true },
                        &m);
        if (r < 0)
                return r;
        for (unsigned c = 0; c < N_CHILDREN; c++) {
                if (!(mask & (1u << c)))
                        continue;
                r = manager_register_range(m, children[c].pid, children[c].start,
                                           (uint64_t) PAGES * PAGE_SIZE_BYTES, &children[c].region_id);
                if (r < 0)
                        return r;
        }
        r = manager_start(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* Inside the second child's region, during the second full scan (the first one that merges). */
static const Point mid_second_region = { .full_scans = 1, .pages = PAGES + PAGES / 4 };

/*
 * How both tests begin: the children start and a Manager merging over them
 * runs into the second child's region in the second full scan; test names
 * the test in the TAP descriptions. A Manager that cannot be made is
 * reported and *ret stays NULL. Otherwise returns what running until that
 * point returned, with the statistics then in *ret_stats.
 */
static int start_until_mid_second_region(const char *test, Manager **ret, Stats *ret_stats) {
        int r;

        r = start_children();
        tap(r == 0, "%s: three processes start%s", test, why(r));
        r = new_manager(1u << 0 | 1u << 1 | 1u << 2, ret);
        tap(r == 0 && !manager_is_estimate(*ret), "%s: the Manager merges through the module%s", test,
            why(r));
        if (r < 0)
                return r;
        r = run_until(*ret, reached, (void *) &mid_second_region);
        manager_get_stats(*ret, ret_stats);
        return r;
}

/*
 * Whether the children of mask (two of them) reach the full saving between them; who names them in a comment
 * (NULL: none).
 */
static bool children_reach_full_saving(unsigned mask, const char *who) {
        Backing b = {};
        int r;

        r = backing(mask, &b);
        if (who)
                printf("# %s: %" PRIu64 " physical pages (expected %" PRIu64 "), %" PRIu64
                       " zero-page entries\n",
                       who, b.distinct, expected_distinct(2), b.zero);
        return r == 0 && b.distinct == expected_distinct(2) && b.zero == 2 * (PAGES / 4);
}

/* How both tests end, every child gone: the Manager is freed and the module must own nothing. */
static void check_module_owns_nothing(const char *test, Manager **m) {
        uint64_t owned = UINT64_MAX;
        int r;

        *m = manager_free(*m);
        r = module_pages_owned(&owned);
        printf("# module pages owned after the processes exited: %" PRIu64 "\n", owned);
        tap(r == 0 && owned == 0, "%s: the module owns no page once every process exited", test);
}

static void test_process_exits_mid_scan(void) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Point p;
        Stats st;
        int r;

        r = start_until_mid_second_region("exit", &m, &st);
        if (!m)
                goto out;
        printf("# killing pid %d at scan %" PRIu64 ", page %" PRIu64 " of the scan; %" PRIu64
               " items merged so far\n",
               (int) children[1].pid, st.full_scans + 1, st.current_scan_pages,
               st.merge.by_result[KSMD_HELPER_RESULT_MERGED]);
        tap(r == 0 && st.full_scans == 1 && st.merge.by_result[KSMD_HELPER_RESULT_MERGED] > 0,
            "exit: the second scan reached the second process with merges under way");
        kill_child(1);

        p = (Point) { .full_scans = 4 };
        r = run_until(m, reached, &p);
        tap(r == 0, "exit: the scan goes on to 4 full scans after the process exited%s", why(r));
        manager_get_stats(m, &st);
        printf("# after 4 scans: %" PRIu64 " regions, merged %" PRIu64 ", no_process %" PRIu64
               ", no_page %" PRIu64 ", changed %" PRIu64 ", module saving %" PRIu64 " bytes\n",
               (uint64_t) region_registry_count(m->registry), st.merge.by_result[KSMD_HELPER_RESULT_MERGED],
               st.merge.by_result[KSMD_HELPER_RESULT_NO_PROCESS],
               st.merge.by_result[KSMD_HELPER_RESULT_NO_PAGE],
               st.merge.by_result[KSMD_HELPER_RESULT_CHANGED], st.helper_bytes_saved);
        tap(region_registry_count(m->registry) == 2 &&
            !region_registry_find(m->registry, children[1].region_id) &&
            region_registry_find(m->registry, children[0].region_id) &&
            region_registry_find(m->registry, children[2].region_id),
            "exit: exactly the exited process's region was dropped");

        tap(children_reach_full_saving(1u << 0 | 1u << 2, "survivors"),
            "exit: the survivors reach the full saving between them");

        tap(verify_child(0) && verify_child(2),
            "exit: every surviving process reads exactly its own content");
        check_module_owns_nothing("exit", &m);
out:
        stop_children();
}

static void test_region_unregistered_mid_scan(void) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Backing at_unregister = {}, later = {};
        Point p;
        Stats st;
        int r, k;

        r = start_until_mid_second_region("unregister", &m, &st);
        if (!m)
                goto out;
        tap(r == 0 && st.full_scans == 1 && st.merge.by_result[KSMD_HELPER_RESULT_MERGED] > 0,
            "unregister: the second scan reached the second region with merges under way");
        r = manager_unregister(m, children[1].region_id);
        k = backing(1u << 1, &at_unregister);
        printf("# unregistered region %" PRIu32 " at page %" PRIu64 " of scan %" PRIu64 "; %" PRIu64
               " of its pages were merged by then\n",
               children[1].region_id, st.current_scan_pages, st.full_scans + 1, at_unregister.not_private);
        tap(r == 0 && k == 0 && !region_registry_find(m->registry, children[1].region_id),
            "unregister: the region is unregistered mid-scan");

        p = (Point) { .full_scans = 4 };
        r = run_until(m, reached, &p);
        tap(r == 0, "unregister: the scan goes on to 4 full scans%s", why(r));

        k = backing(1u << 1, &later);
        printf("# unregistered process: %" PRIu64 " pages merged at unregistration, %" PRIu64 " now\n",
               at_unregister.not_private, later.not_private);
        tap(k == 0 && later.not_private == at_unregister.not_private,
            "unregister: nothing of the unregistered process is merged after it was unregistered");

        tap(children_reach_full_saving(1u << 0 | 1u << 2, "others"),
            "unregister: the other processes reach the full saving between them");

        tap(verify_child(0) && verify_child(1) && verify_child(2),
            "unregister: every process, the unregistered one too, reads exactly its own content");
        check_module_owns_nothing("unregister", &m);
out:
        stop_children();
}

static bool two_full_saving(Manager *m, void *userdata) {
        return children_reach_full_saving(*(const unsigned *) userdata, NULL);
}

/*
 * A process exits and leaves the other's merged pages each the last mapper
 * of its shared page, which ksmd forgets after the next full scan. A process
 * with the same content registered then (as criu restores one beside a
 * survivor) must join those shared pages: before, its duplicates found no
 * partner, ever (seen in ksmd-criu).
 */
static void test_newcomer_joins_the_last_mappers(void) {
        static const unsigned first_two = 1u << 0 | 1u << 1, survivor_and_newcomer = 1u << 0 | 1u << 2;
        _cleanup_(manager_freep) Manager *m = NULL;
        Point p;
        Stats st;
        int r;

        r = start_children();
        tap(r == 0, "last mapper: three processes start%s", why(r));
        r = new_manager(first_two, &m);
        tap(r == 0 && !manager_is_estimate(m), "last mapper: the Manager merges two of them%s", why(r));
        if (r < 0)
                goto out;
        r = run_until(m, two_full_saving, (void *) &first_two);
        tap(r == 0 && children_reach_full_saving(first_two, "the first two"),
            "last mapper: the two reach the full saving%s", why(r));

        kill_child(1);
        manager_get_stats(m, &st);
        p = (Point) { .full_scans = st.full_scans + 2 };
        r = run_until(m, reached, &p);
        tap(r == 0 && region_registry_count(m->registry) == 1,
            "last mapper: two more full scans drop the exited process%s", why(r));

        r = manager_register_range(m, children[2].pid, children[2].start, (uint64_t) PAGES * PAGE_SIZE_BYTES,
                                   &children[2].region_id);
        tap(r == 0, "last mapper: a third process with the same content is registered%s", why(r));
        r = run_until(m, two_full_saving, (void *) &survivor_and_newcomer);
        (void) children_reach_full_saving(survivor_and_newcomer, "survivor and newcomer");
        manager_get_stats(m, &st);
        printf("# merged %" PRIu64 " items in all\n", st.merge.by_result[KSMD_HELPER_RESULT_MERGED]);
        tap(r == 0, "last mapper: it joins the survivor's shared pages, the full saving between them%s",
            why(r));
        tap(verify_child(0) && verify_child(2),
            "last mapper: both processes read exactly their own content");
        check_module_owns_nothing("last mapper", &m);
out:
        stop_children();
}

int main(int argc, char *argv[]) {
        /* The Manager logs to stderr; keep it in the TAP stream as comments. */
        (void) dup2(STDOUT_FILENO, STDERR_FILENO);
        setvbuf(stdout, NULL, _IOLBF, 0);

        test_process_exits_mid_scan();
        test_region_unregistered_mid_scan();
        test_newcomer_joins_the_last_mappers();
        return tap_end();
}
