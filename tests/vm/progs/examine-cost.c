/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * examine-cost: the cost of each of ksmd's scanning primitives alone, on a
 * workload's ranges, in the guest (bench/vm-compare --attribute, scenario
 * bench-vm-compare.sh). Not a test: it prints "# bench prim ..." lines and
 * asserts nothing.
 *
 *   examine-cost --label NAME --when WHEN PID ADDR PAGES [PID ADDR PAGES...]
 *
 * Each primitive is timed over all the ranges, as ksmd calls it, and repeated
 * until at least 0.3 s have passed (at most 50 times), so that the user and
 * system times, which the kernel accounts at its tick, mean something:
 *
 *   syscall     getppid(), once per page: what one system call costs
 *   pagemap     pread() of 512 entries of /proc/PID/pagemap, the descriptor
 *               open (proc_pagemap_read())
 *   pagemap-dup the same with ksmd's per-chunk dup and close of the descriptor
 *               (plan_chunk(): each job owns its descriptor)
 *   maps        /proc/PID/maps read and parsed (proc_maps_read(), once a
 *               region per pass), per call
 *   clear-refs  "4" > /proc/PID/clear_refs (proc_clear_soft_dirty()), per
 *               call; its walk covers the whole process
 *   readv       process_vm_readv of the present pages, up to 512 a call
 *               (memory_read_pages(), ksmd's chunk)
 *   hash        page_hash() of each page read
 *   zero        page_is_zero() of each page read
 *
 * For each, per page (per call for maps and clear-refs): wall, CPU, user and
 * system nanoseconds. hash and zero are timed with the reads they need taken
 * out, over spans shorter than a tick, so their user and system split is the
 * kernel's tick-based apportioning of the process's time, not what ran (both
 * are pure user space): only their CPU and wall figures mean something.
 * readv only reads present pages (pagemap says which), so that no absent page
 * gets the zero page mapped by the read. The workload's
 * memory is not changed, except that clear-refs clears its soft-dirty bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "memory-reader.h"
#include "page-hash.h"
#include "proc-reader.h"
#include "ranges.h"

#define CHUNK_PAGES 512u
#define MIN_SECONDS 0.3
#define MAX_ROUNDS 50

static const char *label = "?", *when = "?";
static uint8_t *buf;
static uint64_t sink;

typedef struct Times {
        double wall, cpu, user, sys;
} Times;

static double ts_s(const struct timespec *ts) {
        return (double) ts->tv_sec + (double) ts->tv_nsec / 1e9;
}

static double tv_s(const struct timeval *tv) {
        return (double) tv->tv_sec + (double) tv->tv_usec / 1e6;
}

static Times times_now(void) {
        struct timespec w, c;
        struct rusage ru;

        clock_gettime(CLOCK_MONOTONIC, &w);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
        getrusage(RUSAGE_SELF, &ru);
        return (Times) { ts_s(&w), ts_s(&c), tv_s(&ru.ru_utime), tv_s(&ru.ru_stime) };
}

/* One round of a primitive over all ranges: adds the units it handled (pages or calls) to *units. */
typedef int (*Primitive)(uint64_t *units, uint64_t *calls, Times *excluded);

static int prim_syscall(uint64_t *units, uint64_t *calls, Times *excluded) {
        for (size_t r = 0; r < n_ranges; r++)
                for (uint64_t p = 0; p < ranges[r].pages; p++)
                        sink += (uint64_t) getppid();
        for (size_t r = 0; r < n_ranges; r++)
                *units += ranges[r].pages, *calls += ranges[r].pages;
        (void) excluded;
        return 0;
}

static int pagemap_round(bool dup, uint64_t *units, uint64_t *calls) {
        uint64_t entries[CHUNK_PAGES];

        for (size_t r = 0; r < n_ranges; r++)
                for (uint64_t done = 0; done < ranges[r].pages;) {
                        size_t k = (size_t) MIN(ranges[r].pages - done, (uint64_t) CHUNK_PAGES);
                        int fd = ranges[r].fd, q;

                        if (dup) {
                                fd = fcntl(ranges[r].fd, F_DUPFD_CLOEXEC, 3);
                                if (fd < 0)
                                        return -errno;
                        }
                        q = proc_pagemap_read(fd, ranges[r].addr + done * PAGE_SIZE_BYTES, k, entries);
                        if (dup)
                                close(fd);
                        if (q < 0)
                                return q;
                        sink += entries[0];
                        done += k;
                        *units += k;
                        (*calls)++;
                }
        return 0;
}

static int prim_pagemap(uint64_t *units, uint64_t *calls, Times *excluded) {
        (void) excluded;
        return pagemap_round(false, units, calls);
}

static int prim_pagemap_dup(uint64_t *units, uint64_t *calls, Times *excluded) {
        (void) excluded;
        return pagemap_round(true, units, calls);
}

static int prim_maps(uint64_t *units, uint64_t *calls, Times *excluded) {
        (void) excluded;
        for (size_t r = 0; r < n_ranges; r++) {
                ProcMapping *maps = NULL;
                size_t n = 0;
                int q = proc_maps_read(ranges[r].pid, &maps, &n);

                if (q < 0)
                        return q;
                sink += n;
                free(maps);
                (*units)++;
                (*calls)++;
        }
        return 0;
}

static int prim_clear_refs(uint64_t *units, uint64_t *calls, Times *excluded) {
        (void) excluded;
        for (size_t r = 0; r < n_ranges; r++) {
                int q = proc_clear_soft_dirty(ranges[r].pid);

                if (q < 0)
                        return q;
                (*units)++;
                (*calls)++;
        }
        return 0;
}

typedef enum ReadWork {
        READ_ONLY,
        READ_HASH,
        READ_ZERO,
} ReadWork;

/*
 * Reads the present pages of every range, a chunk at a time; with work, also hashes (or tests for zero)
 * each, and counts only that: the time of everything else goes to *excluded.
 */
static int read_round(ReadWork work, uint64_t *units, uint64_t *calls, Times *excluded) {
        uint64_t entries[CHUNK_PAGES], addrs[CHUNK_PAGES];

        for (size_t r = 0; r < n_ranges; r++)
                for (uint64_t done = 0; done < ranges[r].pages;) {
                        size_t k = (size_t) MIN(ranges[r].pages - done, (uint64_t) CHUNK_PAGES);
                        size_t n = 0, got = 0;
                        uint64_t start = ranges[r].addr + done * PAGE_SIZE_BYTES;
                        Times t0 = times_now(), t1;
                        int q;

                        q = proc_pagemap_read(ranges[r].fd, start, k, entries);
                        if (q < 0)
                                return q;
                        for (size_t i = 0; i < k; i++)
                                if (entries[i] & PAGEMAP_PRESENT)
                                        addrs[n++] = start + i * PAGE_SIZE_BYTES;
                        if (work != READ_ONLY) {
                                q = memory_read_pages(ranges[r].pid, addrs, n, buf, &got);
                                if (q < 0)
                                        return q;
                        }
                        t1 = times_now();
                        excluded->wall += t1.wall - t0.wall;
                        excluded->cpu += t1.cpu - t0.cpu;
                        excluded->user += t1.user - t0.user;
                        excluded->sys += t1.sys - t0.sys;
                        if (work == READ_ONLY) {
                                q = memory_read_pages(ranges[r].pid, addrs, n, buf, &got);
                                if (q < 0)
                                        return q;
                                (*calls)++;
                        }
                        for (size_t i = 0; work != READ_ONLY && i < got; i++)
                                sink += work == READ_HASH ? page_hash(buf + i * PAGE_SIZE_BYTES, 1) :
                                                            page_is_zero(buf + i * PAGE_SIZE_BYTES);
                        *units += got;
                        done += k;
                }
        return 0;
}

static int prim_readv(uint64_t *units, uint64_t *calls, Times *excluded) {
        return read_round(READ_ONLY, units, calls, excluded);
}

static int prim_hash(uint64_t *units, uint64_t *calls, Times *excluded) {
        return read_round(READ_HASH, units, calls, excluded);
}

static int prim_zero(uint64_t *units, uint64_t *calls, Times *excluded) {
        return read_round(READ_ZERO, units, calls, excluded);
}

static int measure(const char *name, const char *unit, Primitive f) {
        Times t0 = times_now(), t1, ex = {};
        uint64_t units = 0, calls = 0;
        unsigned rounds = 0;
        double u;
        int q;

        do {
                q = f(&units, &calls, &ex);
                if (q < 0) {
                        fprintf(stderr, "examine-cost: %s: %s\n", name, strerror(-q));
                        return q;
                }
                rounds++;
                t1 = times_now();
        } while (t1.wall - t0.wall - ex.wall < MIN_SECONDS && rounds < MAX_ROUNDS);
        u = units ? (double) units : 1;
        printf("# bench prim %s %s op=%s unit=%s units=%" PRIu64 " calls=%" PRIu64 " rounds=%u"
               " wall_ns=%.0f cpu_ns=%.0f user_ns=%.0f sys_ns=%.0f\n",
               label, when, name, unit, units, calls, rounds, (t1.wall - t0.wall - ex.wall) / u * 1e9,
               (t1.cpu - t0.cpu - ex.cpu) / u * 1e9, (t1.user - t0.user - ex.user) / u * 1e9,
               (t1.sys - t0.sys - ex.sys) / u * 1e9);
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "label", required_argument, NULL, 'l' },
                { "when", required_argument, NULL, 'w' },
                {}
        };
        int c, bad = 0;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'l': label = optarg; break;
                case 'w': when = optarg; break;
                default: return 2;
                }
        if (!ranges_args_valid(argc - optind)) {
                fprintf(stderr, "usage: examine-cost --label NAME --when WHEN PID ADDR PAGES...\n");
                return 2;
        }
        if (ranges_parse("examine-cost", argc - optind, argv + optind) < 0)
                return 1;
        buf = aligned_alloc(PAGE_SIZE_BYTES, (size_t) CHUNK_PAGES * PAGE_SIZE_BYTES);
        if (!buf)
                return 1;
        setvbuf(stdout, NULL, _IOLBF, 0);

        bad |= measure("syscall", "page", prim_syscall) < 0;
        bad |= measure("pagemap", "page", prim_pagemap) < 0;
        bad |= measure("pagemap-dup", "page", prim_pagemap_dup) < 0;
        bad |= measure("maps", "call", prim_maps) < 0;
        bad |= measure("readv", "page", prim_readv) < 0;
        bad |= measure("hash", "page", prim_hash) < 0;
        bad |= measure("zero", "page", prim_zero) < 0;
        bad |= measure("clear-refs", "call", prim_clear_refs) < 0;
        /* Against the optimiser: the results are used. */
        if (sink == 42)
                fputc(' ', stderr);
        return bad;
}
