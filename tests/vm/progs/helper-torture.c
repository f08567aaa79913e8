/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-torture: proves that merges never lose a write and never show a
 * process another's data. PROCS processes with WRITERS threads each keep
 * writing and verifying random pages of their own region, with values
 * from {0, 1, 2} so that identical and zero pages are common, while
 * MERGERS threads request random MERGE (cross and intra process, by pair
 * and by handle), MERGE_ZERO, UNMERGE and GET_PAGES for SECS seconds.
 * Each page belongs to one writer thread, which knows what it holds. A
 * churn thread per process forks readers and pushes pages to swap. TAP.
 *
 * With 0 MERGERS something else merges: ksmd, which --hook registers.
 * Each writer then reads its page's pagemap entry before it checks and
 * writes it, and counts the checks of merged pages (the module's shared
 * page or the zero page) and the writes that broke such a merge.
 *
 *   helper-torture [OPTIONS] [SECS [PROCS [WRITERS [MERGERS [PAGES]]]]]
 *
 * SECS counts from the start of the first process.
 *   --hook=PROGRAM       run "PROGRAM register PID" for each process once it
 *                        is ready, and "PROGRAM unregister PID" or "PROGRAM
 *                        unmerge PID" where --cycle-secs says; each must exit 0
 *   --cycle-secs=N       every N s (or at once after a cycle that took longer)
 *                        until N s before the end, one process in turn (0
 *                        MERGERS only, with --hook), in turn: is unregistered
 *                        and registered again 1 s later; exits, checking all
 *                        its pages, and a new one takes its place; is unmerged
 *                        and registered again
 *   --write-pause-usec=N each writer pauses this long after each write
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "helper-genl.h"
#include "helper-worker.h"
#include "tap.h"

#define MAX_PROCS 16

#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_FILE_OR_SHARED (UINT64_C(1) << 61)
#define PM_PFN_MASK ((UINT64_C(1) << 55) - 1)

typedef struct {
        atomic_int stop;
        atomic_int quit[MAX_PROCS];     /* this slot's process alone stops */
        atomic_int ready[MAX_PROCS];
        pid_t pid[MAX_PROCS];
        uint64_t base[MAX_PROCS];
        atomic_ulong writes, checks, errors;
        atomic_ulong merged_checks, merged_breaks, zero_breaks;
        atomic_ulong results[__KSMD_HELPER_RESULT_MAX];
        atomic_ulong requests, request_errors, unmerged, dumps, forks, pageouts;
} Shared;

static Shared *sh;
static int pidfds[MAX_PROCS];   /* the processes, as the merger threads name them */
static int secs = 60, procs = 4, writers = 3, mergers = 2;
static size_t pages = 512;
static const char *hook;
static unsigned cycle_secs, write_pause_usec;

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* One torture process, as its threads see it. */
typedef struct {
        int idx;
        char *base;
        int pagemap;            /* /proc/self/pagemap when no merger runs (ksmd merges), else -1 */
        uint64_t zero_pfn;      /* the zero page's PFN, 0 if hidden */
} Proc;

typedef struct {
        const Proc *proc;
        int id;
} WriterArg;

typedef enum {
        PAGE_OWN,               /* a private page, or not known */
        PAGE_MERGED,            /* the module's shared page: not anonymous in an anonymous mapping */
        PAGE_MERGED_ZERO,       /* the zero page, which only a merge maps here (every page was written) */
} PageState;

static PageState page_state(const Proc *p, const char *addr) {
        uint64_t e;

        if (p->pagemap < 0 ||
            pread(p->pagemap, &e, sizeof(e), (off_t) ((uintptr_t) addr / PG * sizeof(e))) != sizeof(e) ||
            !(e & PM_PRESENT))
                return PAGE_OWN;
        if (e & PM_FILE_OR_SHARED)
                return PAGE_MERGED;
        if (p->zero_pfn && (e & PM_PFN_MASK) == p->zero_pfn)
                return PAGE_MERGED_ZERO;
        return PAGE_OWN;
}

/* The zero page's PFN, from a page only read; 0 if pagemap hides PFNs. */
static uint64_t zero_pfn(int pagemap) {
        volatile char *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint64_t e = 0;

        if (p == MAP_FAILED)
                return 0;
        (void) p[0];
        if (pread(pagemap, &e, sizeof(e), (off_t) ((uintptr_t) p / PG * sizeof(e))) != sizeof(e) ||
            !(e & PM_PRESENT))
                e = 0;
        munmap((void *) p, PG);
        return e & PM_PFN_MASK;
}

static bool proc_stopping(const Proc *p) {
        return atomic_load(&sh->stop) || atomic_load(&sh->quit[p->idx]);
}

static void *writer(void *p) {
        WriterArg *a = p;
        char *base = a->proc->base;
        uint8_t *expect = calloc(pages, 1);
        uint64_t seed = 0x1234567ULL * (a->id + 1) + getpid();
        unsigned long writes = 0, checks = 0, errors = 0, merged_checks = 0, merged_breaks = 0,
                      zero_breaks = 0;

        /* Pages i with i % writers == id are this thread's; all start zero. */
        while (!proc_stopping(a->proc)) {
                size_t i = rnd(&seed) % pages;
                PageState state;
                uint64_t v;

                i -= i % writers;
                i += a->id;
                if (i >= pages)
                        continue;
                state = page_state(a->proc, base + i * PG);
                if (!w_page_is(base + i * PG, expect[i] * 0x0101010101010101ULL)) {
                        if (errors++ < 5)
                                fprintf(stderr, "# pid %d page %zu: expected %u, read %#llx\n", getpid(), i,
                                        expect[i], (unsigned long long) *(uint64_t *) (base + i * PG));
                }
                checks++;
                merged_checks += state != PAGE_OWN;
                v = rnd(&seed) % 3;
                w_fill(base + i * PG, v * 0x0101010101010101ULL);
                expect[i] = v;
                writes++;
                merged_breaks += state == PAGE_MERGED;
                zero_breaks += state == PAGE_MERGED_ZERO;
                if (write_pause_usec)
                        usleep(write_pause_usec);
        }
        for (size_t i = a->id; i < pages; i += writers) {
                if (!w_page_is(base + i * PG, expect[i] * 0x0101010101010101ULL))
                        errors++;
                checks++;
        }
        atomic_fetch_add(&sh->writes, writes);
        atomic_fetch_add(&sh->checks, checks);
        atomic_fetch_add(&sh->errors, errors);
        atomic_fetch_add(&sh->merged_checks, merged_checks);
        atomic_fetch_add(&sh->merged_breaks, merged_breaks);
        atomic_fetch_add(&sh->zero_breaks, zero_breaks);
        free(expect);
        return NULL;
}

/*
 * Churn beside the writers: fork children that read a few pages and exit
 * (fork copies merged and write-protected PTEs while merges run) and push
 * random ranges to swap, so writers and merges meet swap-cache pages.
 */
static void *churner(void *p) {
        const Proc *proc = p;
        uint64_t seed = 0xabcdefULL + getpid();
        unsigned long forks = 0, pageouts = 0;

        while (!proc_stopping(proc)) {
                size_t first = rnd(&seed) % pages, len = 1 + rnd(&seed) % 32;

                if (first + len > pages)
                        len = pages - first;
                if (rnd(&seed) % 2) {
                        pid_t c = fork();

                        if (c == 0) {
                                volatile uint64_t sum = 0;

                                for (size_t i = first; i < first + len; i++)
                                        sum += *(volatile uint64_t *) (proc->base + i * PG);
                                _exit(0);
                        }
                        if (c > 0) {
                                waitpid(c, NULL, 0);
                                forks++;
                        }
                } else if (madvise(proc->base + first * PG, len * PG, 21 /* MADV_PAGEOUT */) == 0) {
                        pageouts++;
                }
                usleep(2000);
        }
        atomic_fetch_add(&sh->forks, forks);
        atomic_fetch_add(&sh->pageouts, pageouts);
        return NULL;
}

static void process_main(int idx) {
        pthread_t th[17];
        WriterArg args[16];
        Proc proc = { .idx = idx, .pagemap = -1 };
        char *base;

        base = mmap(NULL, pages * PG + (2UL << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
        if (base == MAP_FAILED)
                _exit(2);
        base = (char *) (((uintptr_t) base + (2UL << 20) - 1) & ~((2UL << 20) - 1));
        /* Half the processes leave THP on, so splits race with writers too. */
        if (idx % 2)
                madvise(base, pages * PG, MADV_NOHUGEPAGE);
        memset(base, 0, pages * PG);
        proc.base = base;
        if (mergers == 0) {
                proc.pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
                if (proc.pagemap < 0)
                        _exit(2);
                proc.zero_pfn = zero_pfn(proc.pagemap);
        }
        sh->base[idx] = (uintptr_t) base;
        atomic_store(&sh->ready[idx], 1);
        for (int t = 0; t < writers; t++) {
                args[t] = (WriterArg) { .proc = &proc, .id = t };
                pthread_create(&th[t], NULL, writer, &args[t]);
        }
        pthread_create(&th[writers], NULL, churner, &proc);
        for (int t = 0; t <= writers; t++)
                pthread_join(th[t], NULL);
        _exit(0);
}

static void *merger(void *p) {
        uint64_t seed = 0x9876543ULL + (uintptr_t) p;
        uint64_t handles[64] = { 0 };
        KgItem items[64];
        KgSock s;

        if (kg_open(&s) < 0) {
                atomic_fetch_add(&sh->request_errors, 1);
                return NULL;
        }
        while (!atomic_load(&sh->stop)) {
                int kind = rnd(&seed) % 100;
                size_t n = 1 + rnd(&seed) % 64;
                int zero = kind >= 70 && kind < 90;
                int r;

                if (kind >= 98) {
                        KgDump d = { 0 };

                        r = kg_get_pages(&s, &d);
                        atomic_fetch_add(&sh->dumps, 1);
                        if (r < 0)
                                atomic_fetch_add(&sh->request_errors, 1);
                        continue;
                }
                if (kind >= 90) {
                        int pi = rnd(&seed) % procs;
                        size_t first = rnd(&seed) % pages, len = 1 + rnd(&seed) % 16;
                        uint64_t count = 0;

                        if (first + len > pages)
                                len = pages - first;
                        r = kg_unmerge(&s, pidfds[pi], sh->base[pi] + first * PG, len * PG, &count);
                        if (r < 0)
                                atomic_fetch_add(&sh->request_errors, 1);
                        atomic_fetch_add(&sh->unmerged, count);
                        continue;
                }
                for (size_t k = 0; k < n; k++) {
                        int pa = rnd(&seed) % procs, pb = rnd(&seed) % procs;
                        uint64_t h = handles[rnd(&seed) % 64];

                        items[k] = (KgItem) {
                                .pidfd = pidfds[pa],
                                .addr = sh->base[pa] + (rnd(&seed) % pages) * PG,
                        };
                        if (zero)
                                continue;
                        if (h && kind >= 50) {
                                items[k].handle = h;
                        } else {
                                items[k].src_pidfd = pidfds[pb];
                                items[k].src_addr = sh->base[pb] + (rnd(&seed) % pages) * PG;
                        }
                }
                r = kg_merge(&s, items, n, zero);
                atomic_fetch_add(&sh->requests, 1);
                if (r < 0) {
                        if (atomic_fetch_add(&sh->request_errors, 1) < 3)
                                printf("# request failed: %s (%s)\n", strerror(-r), kg_extack);
                        continue;
                }
                for (size_t k = 0; k < n; k++) {
                        if (items[k].result < __KSMD_HELPER_RESULT_MAX)
                                atomic_fetch_add(&sh->results[items[k].result], 1);
                        if (items[k].out_handle)
                                handles[rnd(&seed) % 64] = items[k].out_handle;
                }
        }
        kg_close(&s);
        return NULL;
}

/* Runs "HOOK VERB PID": 0 if it exits 0, else -1 (and says so). */
static int hook_run(const char *verb, pid_t pid) {
        char arg[16];
        char *argv[] = { (char *) hook, (char *) verb, arg, NULL };
        pid_t child;
        int st;

        snprintf(arg, sizeof(arg), "%d", (int) pid);
        if (posix_spawn(&child, hook, NULL, NULL, argv, environ) != 0 || waitpid(child, &st, 0) < 0 ||
            !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                printf("# %s %s %d failed\n", hook, verb, (int) pid);
                return -1;
        }
        return 0;
}

/* Starts the process of slot idx and waits until it writes; 0 or -errno. */
static int proc_start(int idx) {
        pid_t p;
        int st;

        atomic_store(&sh->quit[idx], 0);
        atomic_store(&sh->ready[idx], 0);
        p = fork();
        if (p < 0)
                return -errno;
        if (p == 0)
                process_main(idx);
        sh->pid[idx] = p;
        pidfds[idx] = kg_pidfd_open(p);
        if (pidfds[idx] < 0)
                return pidfds[idx];
        while (!atomic_load(&sh->ready[idx])) {
                if (waitpid(p, &st, WNOHANG) == p)
                        return -ECHILD;
                usleep(10000);
        }
        return 0;
}

/* Stops the process of slot idx, which checks all its pages first: true if it exited cleanly. */
static bool proc_end(int idx) {
        int st;

        atomic_store(&sh->quit[idx], 1);
        close(pidfds[idx]);
        return waitpid(sh->pid[idx], &st, 0) == sh->pid[idx] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

typedef struct {
        unsigned hooks, hook_errors, reregistered, unmerged, replaced;
        bool proc_failed;
} Cycles;

static uint64_t now_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Cycle n of --cycle-secs: one process in turn, one of three things in turn. */
static void cycle(Cycles *c, unsigned n) {
        int idx = n % procs;
        pid_t pid = sh->pid[idx];
        uint64_t t0 = now_msec();
        const char *first = NULL;

        switch (n % 3) {
        case 0:
                /* It keeps writing, unregistered, merged pages and all, for a second. */
                first = "unregister";
                c->reregistered++;
                break;
        case 1:
                c->proc_failed |= !proc_end(idx);
                if (proc_start(idx) < 0) {
                        c->proc_failed = true;
                        return;
                }
                c->replaced++;
                printf("# process %d exited, %d took its place", (int) pid, (int) sh->pid[idx]);
                pid = sh->pid[idx];
                break;
        default:
                first = "unmerge";
                c->unmerged++;
        }
        if (first) {
                c->hooks++;
                c->hook_errors += hook_run(first, pid) < 0;
                printf("# %s process %d", first, (int) pid);
                sleep(1);
        }
        c->hooks++;
        c->hook_errors += hook_run("register", pid) < 0;
        printf(", registered (%" PRIu64 " ms)\n", now_msec() - t0);
}

static void sleep_until(uint64_t msec) {
        uint64_t now = now_msec();

        if (now < msec)
                usleep((useconds_t) ((msec - now) * 1000));
}

static int parse_options(int argc, char *argv[]) {
        static const struct option options[] = {
                { "hook", required_argument, NULL, 'H' },
                { "cycle-secs", required_argument, NULL, 'c' },
                { "write-pause-usec", required_argument, NULL, 'p' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'H':
                        hook = optarg;
                        break;
                case 'c':
                        cycle_secs = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'p':
                        write_pause_usec = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        return -EINVAL;
                }
        argv += optind;
        argc -= optind;
        if (argc > 0)
                secs = atoi(argv[0]);
        if (argc > 1)
                procs = atoi(argv[1]);
        if (argc > 2)
                writers = atoi(argv[2]);
        if (argc > 3)
                mergers = atoi(argv[3]);
        if (argc > 4)
                pages = strtoul(argv[4], NULL, 0);
        if (procs < 1 || procs > MAX_PROCS || writers < 1 || writers > 16 || mergers < 0 || mergers > 16 ||
            pages < (size_t) writers)
                return -EINVAL;
        /* Merger threads name the processes by slot: none may change under them. */
        if (cycle_secs && (mergers || !hook))
                return -EINVAL;
        return 0;
}

int main(int argc, char *argv[]) {
        pthread_t th[16];
        uint64_t start_msec, end_msec, next_msec;
        Cycles cycles = {};
        KgInfo info;
        KgSock s;
        unsigned long merged, errors;
        bool failed = false;
        int r;

        if (parse_options(argc, argv) < 0) {
                fprintf(stderr, "usage: helper-torture [--hook=PROGRAM [--cycle-secs=N]] "
                        "[--write-pause-usec=N] [SECS [PROCS [WRITERS [MERGERS [PAGES]]]]]\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        start_msec = now_msec();
        end_msec = start_msec + (uint64_t) secs * 1000;

        sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED)
                return 2;
        for (int i = 0; i < procs; i++) {
                r = proc_start(i);
                if (r < 0) {
                        atomic_store(&sh->stop, 1);
                        printf("not ok 1 - start writer process %d: %s\n1..1\n", i, strerror(-r));
                        return 1;
                }
                if (hook) {
                        cycles.hooks++;
                        cycles.hook_errors += hook_run("register", sh->pid[i]) < 0;
                }
        }
        printf("# %d processes x %d writers x %zu pages, %d mergers, %d s, a pause of %u us after each "
               "write; started%s in %" PRIu64 " ms\n", procs, writers, pages, mergers, secs,
               write_pause_usec, hook ? " and registered" : "", now_msec() - start_msec);

        for (int m = 0; m < mergers; m++)
                pthread_create(&th[m], NULL, merger, (void *) (uintptr_t) m);
        next_msec = now_msec() + (uint64_t) cycle_secs * 1000;
        /*
         * A cycle starts cycle_secs after the one before, or at once when that one took longer (a
         * loaded guest runs ksmctl slowly), and only if it has cycle_secs before the end.
         */
        for (unsigned n = 0; cycle_secs && next_msec + (uint64_t) cycle_secs * 1000 <= end_msec; n++) {
                sleep_until(next_msec);
                cycle(&cycles, n);
                next_msec += (uint64_t) cycle_secs * 1000;
        }
        sleep_until(end_msec);
        atomic_store(&sh->stop, 1);
        for (int m = 0; m < mergers; m++)
                pthread_join(th[m], NULL);
        for (int i = 0; i < procs; i++)
                failed |= !proc_end(i);
        printf("# stopped in %" PRIu64 " ms\n", now_msec() - end_msec);

        printf("# writes %lu, checks %lu, forks %lu, pageouts %lu\n", atomic_load(&sh->writes),
               atomic_load(&sh->checks), atomic_load(&sh->forks), atomic_load(&sh->pageouts));
        tap(!failed && !cycles.proc_failed, "writer processes exited cleanly (%u replaced on the way)",
            cycles.replaced);
        if (mergers) {
                printf("# requests %lu (failed %lu), unmerged %lu, dumps %lu\n", atomic_load(&sh->requests),
                       atomic_load(&sh->request_errors), atomic_load(&sh->unmerged),
                       atomic_load(&sh->dumps));
                for (int k = 0; k < __KSMD_HELPER_RESULT_MAX; k++)
                        printf("# %s: %lu\n", kg_result_name(k), atomic_load(&sh->results[k]));
                merged = atomic_load(&sh->results[KSMD_HELPER_RESULT_MERGED]);
                tap(merged > 100, "merges happened while writers ran (%lu)", merged);
                tap(!atomic_load(&sh->request_errors), "no request failed");
        } else {
                printf("# checks of merged pages %lu; writes that broke a merge: %lu to shared pages, "
                       "%lu to the zero page\n", atomic_load(&sh->merged_checks),
                       atomic_load(&sh->merged_breaks), atomic_load(&sh->zero_breaks));
                tap(atomic_load(&sh->merged_checks) > 0,
                    "writers read their pages merged while they ran (%lu)", atomic_load(&sh->merged_checks));
                tap(atomic_load(&sh->merged_breaks) > 0 && atomic_load(&sh->zero_breaks) > 0,
                    "writes broke merges: of shared pages (%lu) and of zero pages (%lu)",
                    atomic_load(&sh->merged_breaks), atomic_load(&sh->zero_breaks));
        }
        if (hook)
                tap(!cycles.hook_errors, "every hook run succeeded (%u: %u unregistered and %u unmerged, "
                    "each then registered again)", cycles.hooks, cycles.reregistered, cycles.unmerged);
        errors = atomic_load(&sh->errors);
        tap(!errors, "zero lost writes and zero foreign data (%lu errors in %lu checks)", errors,
            atomic_load(&sh->checks));

        /* With ksmd merging, its scenario checks this once ksmd has stopped. */
        if (!mergers)
                return tap_end();
        if (kg_open(&s) == 0 && kg_info(&s, &info) == 0) {
                printf("# pages owned %lu\n", (unsigned long) info.stats[KSMD_HELPER_STAT_PAGES_OWNED]);
                tap(!info.stats[KSMD_HELPER_STAT_PAGES_OWNED],
                    "after all processes exit the module owns no page");
                kg_close(&s);
        } else {
                tap(false, "INFO after the run");
        }
        return tap_end();
}
