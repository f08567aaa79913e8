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
 *   helper-torture [SECS [PROCS [WRITERS [MERGERS [PAGES]]]]]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "helper-genl.h"
#include "helper-worker.h"

#define MAX_PROCS 16

typedef struct {
        atomic_int stop;
        atomic_int ready;
        pid_t pid[MAX_PROCS];
        uint64_t base[MAX_PROCS];
        atomic_ulong writes, checks, errors;
        atomic_ulong results[__KSMD_HELPER_RESULT_MAX];
        atomic_ulong requests, request_errors, unmerged, dumps, forks, pageouts;
} Shared;

static Shared *sh;
static int pidfds[MAX_PROCS];   /* the processes, as the merger threads name them */
static int secs = 60, procs = 4, writers = 3, mergers = 2;
static size_t pages = 512;

static uint64_t rnd(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

typedef struct {
        char *base;
        int id;
} WriterArg;

static void *writer(void *p) {
        WriterArg *a = p;
        uint8_t *expect = calloc(pages, 1);
        uint64_t seed = 0x1234567ULL * (a->id + 1) + getpid();
        unsigned long writes = 0, checks = 0, errors = 0;

        /* Pages i with i % writers == id are this thread's; all start zero. */
        while (!atomic_load(&sh->stop)) {
                size_t i = rnd(&seed) % pages;
                uint64_t v;

                i -= i % writers;
                i += a->id;
                if (i >= pages)
                        continue;
                if (!w_page_is(a->base + i * PG, expect[i] * 0x0101010101010101ULL)) {
                        if (errors++ < 5)
                                fprintf(stderr, "# pid %d page %zu: expected %u, read %#llx\n", getpid(), i,
                                        expect[i],
                                        (unsigned long long) *(uint64_t *) (a->base + i * PG));
                }
                checks++;
                v = rnd(&seed) % 3;
                w_fill(a->base + i * PG, v * 0x0101010101010101ULL);
                expect[i] = v;
                writes++;
        }
        for (size_t i = a->id; i < pages; i += writers) {
                if (!w_page_is(a->base + i * PG, expect[i] * 0x0101010101010101ULL))
                        errors++;
                checks++;
        }
        atomic_fetch_add(&sh->writes, writes);
        atomic_fetch_add(&sh->checks, checks);
        atomic_fetch_add(&sh->errors, errors);
        free(expect);
        return NULL;
}

/*
 * Churn beside the writers: fork children that read a few pages and exit
 * (fork copies merged and write-protected PTEs while merges run) and push
 * random ranges to swap, so writers and merges meet swap-cache pages.
 */
static void *churner(void *p) {
        char *base = p;
        uint64_t seed = 0xabcdefULL + getpid();
        unsigned long forks = 0, pageouts = 0;

        while (!atomic_load(&sh->stop)) {
                size_t first = rnd(&seed) % pages, len = 1 + rnd(&seed) % 32;

                if (first + len > pages)
                        len = pages - first;
                if (rnd(&seed) % 2) {
                        pid_t c = fork();

                        if (c == 0) {
                                volatile uint64_t sum = 0;

                                for (size_t i = first; i < first + len; i++)
                                        sum += *(volatile uint64_t *) (base + i * PG);
                                _exit(0);
                        }
                        if (c > 0) {
                                waitpid(c, NULL, 0);
                                forks++;
                        }
                } else if (madvise(base + first * PG, len * PG, 21 /* MADV_PAGEOUT */) == 0) {
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
        sh->base[idx] = (uintptr_t) base;
        atomic_fetch_add(&sh->ready, 1);
        for (int t = 0; t < writers; t++) {
                args[t] = (WriterArg) { .base = base, .id = t };
                pthread_create(&th[t], NULL, writer, &args[t]);
        }
        pthread_create(&th[writers], NULL, churner, base);
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

int main(int argc, char *argv[]) {
        pthread_t th[16];
        KgInfo info;
        KgSock s;
        int failed = 0, n = 0, st;
        unsigned long merged;

        if (argc > 1)
                secs = atoi(argv[1]);
        if (argc > 2)
                procs = atoi(argv[2]);
        if (argc > 3)
                writers = atoi(argv[3]);
        if (argc > 4)
                mergers = atoi(argv[4]);
        if (argc > 5)
                pages = strtoul(argv[5], NULL, 0);
        if (procs < 1 || procs > MAX_PROCS || writers < 1 || writers > 16 || mergers < 1 || mergers > 16)
                return 2;
        setvbuf(stdout, NULL, _IOLBF, 0);

        sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        for (int i = 0; i < procs; i++) {
                pid_t p = fork();

                if (p == 0)
                        process_main(i);
                sh->pid[i] = p;
                pidfds[i] = kg_pidfd_open(p);
                if (pidfds[i] < 0) {
                        printf("not ok 1 - pidfd_open of a writer process: %s\n1..1\n",
                               strerror(-pidfds[i]));
                        return 1;
                }
        }
        while (atomic_load(&sh->ready) < procs)
                usleep(10000);
        printf("# %d processes x %d writers x %zu pages, %d mergers, %d s\n", procs, writers, pages, mergers,
               secs);

        for (int m = 0; m < mergers; m++)
                pthread_create(&th[m], NULL, merger, (void *) (uintptr_t) m);
        sleep(secs);
        atomic_store(&sh->stop, 1);
        for (int m = 0; m < mergers; m++)
                pthread_join(th[m], NULL);
        for (int i = 0; i < procs; i++) {
                waitpid(sh->pid[i], &st, 0);
                if (!WIFEXITED(st) || WEXITSTATUS(st))
                        failed = 1;
        }

        printf("# requests %lu (failed %lu), writes %lu, checks %lu, "
               "unmerged %lu, dumps %lu, forks %lu, pageouts %lu\n",
               atomic_load(&sh->requests), atomic_load(&sh->request_errors), atomic_load(&sh->writes),
               atomic_load(&sh->checks), atomic_load(&sh->unmerged), atomic_load(&sh->dumps),
               atomic_load(&sh->forks), atomic_load(&sh->pageouts));
        for (int r = 0; r < __KSMD_HELPER_RESULT_MAX; r++)
                printf("# %s: %lu\n", kg_result_name(r), atomic_load(&sh->results[r]));
        merged = atomic_load(&sh->results[KSMD_HELPER_RESULT_MERGED]);

        printf("%s %d - writer processes exited cleanly\n", failed ? "not ok" : "ok", ++n);
        printf("%s %d - merges happened while writers ran (%lu)\n", merged > 100 ? "ok" : "not ok", ++n,
               merged);
        failed |= merged <= 100;
        printf("%s %d - no request failed\n", atomic_load(&sh->request_errors) ? "not ok" : "ok", ++n);
        failed |= atomic_load(&sh->request_errors) != 0;
        printf("%s %d - zero lost writes and zero foreign data (%lu errors in %lu checks)\n",
               atomic_load(&sh->errors) ? "not ok" : "ok", ++n, atomic_load(&sh->errors),
               atomic_load(&sh->checks));
        failed |= atomic_load(&sh->errors) != 0;

        if (kg_open(&s) == 0 && kg_info(&s, &info) == 0) {
                printf("# pages owned %lu\n", (unsigned long) info.stats[KSMD_HELPER_STAT_PAGES_OWNED]);
                printf("%s %d - after all processes exit the module owns no page\n",
                       info.stats[KSMD_HELPER_STAT_PAGES_OWNED] ? "not ok" : "ok", ++n);
                failed |= info.stats[KSMD_HELPER_STAT_PAGES_OWNED] != 0;
                kg_close(&s);
        } else {
                printf("not ok %d - INFO after the run\n", ++n);
                failed = 1;
        }
        printf("1..%d\n", n);
        return failed;
}
