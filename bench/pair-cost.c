/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * CPU nanoseconds per 4 KiB page of one piece of a scan worker's work, run
 * alone or beside a second copy of itself (bench/pair-cost runs both), to
 * tell whether two busy threads slow each other because of ksmd or because
 * of the machine. Each mode is one ingredient of scan_job_run():
 *
 *   spin    integer work in registers, no memory: the core alone
 *   hash    page_is_zero() + page_hash() of 64 pages that stay in the cache
 *   memcpy  a copy stream of --mib MiB of this process's own memory, in
 *           --batch pages at a time into one buffer (memory bandwidth)
 *   readv   proc_pagemap_read() + memory_read_pages() of --batch pages at a
 *           time from --pid's --mib MiB at --addr (what a worker reads)
 *   job     readv plus page_is_zero() + page_hash() of every page read: a
 *           worker's whole job
 *   target  holds --mib MiB of distinct non-zero pages for readv and job;
 *           prints "pid addr" and sleeps until killed
 *
 * A measuring mode sets up, prints "ready", waits for a line on stdin (so
 * that two copies start together), works for --seconds and prints one line:
 * pages done, wall and thread-CPU seconds, CPU and wall ns per page,
 * involuntary context switches.
 *
 *     ksmd-pair-cost MODE [--seconds S] [--mib N] [--batch PAGES] [--pid PID --addr ADDR]
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "memory-reader.h"
#include "page-hash.h"
#include "parse-util.h"
#include "proc-reader.h"

#define HASH_BUF_PAGES 64u
#define MAX_MIB UINT64_C(65536)

typedef enum Mode {
        MODE_SPIN,
        MODE_HASH,
        MODE_MEMCPY,
        MODE_READV,
        MODE_JOB,
        MODE_TARGET,
        _MODE_MAX,
        _MODE_INVALID = -EINVAL,
} Mode;

static const char *const mode_names[_MODE_MAX] = {
        [MODE_SPIN] = "spin", [MODE_HASH] = "hash",     [MODE_MEMCPY] = "memcpy",
        [MODE_READV] = "readv", [MODE_JOB] = "job", [MODE_TARGET] = "target",
};

typedef struct Args {
        Mode mode;
        double seconds;
        uint64_t mib;
        uint64_t batch_pages;
        uint64_t offset_mib;
        pid_t pid;
        uint64_t addr;
} Args;

/* Keeps the compiler from dropping work whose result nobody reads. */
static volatile uint64_t sink;

static double clock_seconds(clockid_t id) {
        struct timespec ts;

        (void) clock_gettime(id, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void help(void) {
        printf("ksmd-pair-cost MODE [OPTIONS]\n\n"
               "CPU ns per 4 KiB page of one part of a scan worker's work; run two copies at once with\n"
               "bench/pair-cost to see what a second busy thread costs.\n\n"
               "Modes: spin, hash, memcpy, readv, job (readv + hash), target (holds memory to read)\n\n"
               "  --seconds S      how long to work after the start line (default 5)\n"
               "  --mib N          memory to stream (memcpy) or hold (target), MiB (default 512)\n"
               "  --batch PAGES    pages per copy or read, 1-%u (default 512)\n"
               "  --pid PID        readv, job: the target process\n"
               "  --addr ADDR      readv, job: the target's buffer (as target prints it)\n"
               "  --mib N          readv, job: size of the target's buffer\n"
               "  --offset-mib N   memcpy, readv, job: where in the buffer the stream starts (default 0)\n"
               "  -h, --help       this text\n",
               MEMORY_READ_MAX_PAGES);
}

static Mode mode_from_string(const char *s) {
        for (int i = 0; i < _MODE_MAX; i++)
                if (strcmp(s, mode_names[i]) == 0)
                        return (Mode) i;
        return _MODE_INVALID;
}

/* Says what was wrong with the command line, and returns -EINVAL. */
_printf_(1, 2) static int bad(const char *format, ...) {
        va_list ap;

        fputs("ksmd-pair-cost: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        return -EINVAL;
}

/* Returns 1 to run, 0 after --help, -EINVAL after printing why the arguments are refused. */
static int parse_argv(int argc, char **argv, Args *a) {
        static const struct option options[] = {
                { "seconds", required_argument, NULL, 's' }, { "mib", required_argument, NULL, 'm' },
                { "batch", required_argument, NULL, 'b' },   { "pid", required_argument, NULL, 'p' },
                { "addr", required_argument, NULL, 'a' },    { "offset-mib", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t v;
        int c;

        *a = (Args) { .mode = _MODE_INVALID, .seconds = 5, .mib = 512, .batch_pages = 512 };
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 's': {
                        char *end;

                        errno = 0;
                        a->seconds = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end != '\0' ||
                            !(a->seconds > 0 && a->seconds <= 3600))
                                return bad("--seconds must be in (0, 3600], not '%s'\n", optarg);
                        break;
                }
                case 'm':
                        if (parse_uint64_range(optarg, 1, MAX_MIB, &a->mib) < 0)
                                return bad("--mib must be 1-%" PRIu64 ", not '%s'\n", MAX_MIB, optarg);
                        break;
                case 'b':
                        if (parse_uint64_range(optarg, 1, MEMORY_READ_MAX_PAGES, &a->batch_pages) < 0)
                                return bad("--batch must be 1-%u pages, not '%s'\n", MEMORY_READ_MAX_PAGES,
                                           optarg);
                        break;
                case 'o':
                        if (parse_uint64_range(optarg, 0, MAX_MIB, &a->offset_mib) < 0)
                                return bad("--offset-mib must be 0-%" PRIu64 ", not '%s'\n", MAX_MIB,
                                           optarg);
                        break;
                case 'p':
                        if (parse_uint64_range(optarg, 1, INT32_MAX, &v) < 0)
                                return bad("--pid must be a process id, not '%s'\n", optarg);
                        a->pid = (pid_t) v;
                        break;
                case 'a': {
                        char *end;

                        errno = 0;
                        a->addr = strtoull(optarg, &end, 0);
                        if (errno != 0 || end == optarg || *end != '\0' || a->addr == 0 ||
                            a->addr % PAGE_SIZE_BYTES != 0)
                                return bad("--addr must be a page-aligned address, not '%s'\n", optarg);
                        break;
                }
                default:
                        return bad("see --help\n");
                }
        }
        if (optind != argc - 1) {
                return bad("give exactly one mode (spin, hash, memcpy, readv, job, target); see --help\n");
        }
        a->mode = mode_from_string(argv[optind]);
        if (a->mode < 0) {
                return bad("unknown mode '%s'; see --help\n", argv[optind]);
        }
        if (IN_SET(a->mode, MODE_READV, MODE_JOB) && (a->pid == 0 || a->addr == 0))
                return bad("%s needs --pid and --addr (from 'ksmd-pair-cost target')\n",
                           mode_names[a->mode]);
        if (a->offset_mib >= a->mib)
                return bad("--offset-mib must be less than --mib\n");
        if (a->mib * 256 % a->batch_pages != 0 || a->offset_mib * 256 % a->batch_pages != 0)
                return bad("--batch must divide the pages of --mib and --offset-mib\n");
        return 1;
}

static uint8_t *pages_new(size_t n_pages, bool fill) {
        uint8_t *p;

        p = mmap(NULL, n_pages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        /* No transparent huge pages: ksmd reads 4 KiB pages of ordinary anonymous memory. */
        (void) madvise(p, n_pages * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < n_pages; i++) {
                uint64_t *w = (uint64_t *) (p + i * PAGE_SIZE_BYTES);

                for (size_t j = 0; j < PAGE_SIZE_BYTES / sizeof(uint64_t); j++)
                        w[j] = fill ? (i + 1) * 0x9e3779b97f4a7c15ULL + j : 0;
        }
        return p;
}

static int run_target(const Args *a) {
        size_t n_pages = (size_t) a->mib * 256;
        uint8_t *p = pages_new(n_pages, true);

        if (!p) {
                fprintf(stderr, "ksmd-pair-cost: cannot map %" PRIu64 " MiB: %m\n", a->mib);
                return -ENOMEM;
        }
        printf("%d 0x%" PRIx64 "\n", (int) getpid(), (uint64_t) (uintptr_t) p);
        fflush(stdout);
        for (;;)
                pause();
}

/* One unit of work: pages it stands for. */
typedef struct Work {
        const Args *args;
        uint8_t *src;     /* hash: in-cache pages; memcpy: the stream */
        uint8_t *buf;     /* memcpy, readv, job: the batch's destination */
        uint64_t *pagemap;
        uint64_t *addrs;
        int pagemap_fd;
        size_t next_page; /* memcpy, readv, job: where the stream is */
} Work;

static int work_one(Work *w, size_t *ret_pages) {
        const Args *a = w->args;
        size_t n_pages = (size_t) a->mib * 256, batch = (size_t) a->batch_pages, got = 0;
        uint64_t acc = 0, x;
        int r;

        switch (a->mode) {
        case MODE_SPIN:
                /* About the time of one page's hash, in registers only. */
                x = w->next_page++;
                for (int i = 0; i < 1000; i++)
                        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                sink = x;
                *ret_pages = 1;
                return 0;
        case MODE_HASH:
                for (size_t i = 0; i < HASH_BUF_PAGES; i++) {
                        const uint8_t *page = w->src + i * PAGE_SIZE_BYTES;

                        acc += page_is_zero(page) ? 0 : page_hash(page, i);
                }
                sink = acc;
                *ret_pages = HASH_BUF_PAGES;
                return 0;
        case MODE_MEMCPY:
                memcpy(w->buf, w->src + w->next_page * PAGE_SIZE_BYTES, batch * PAGE_SIZE_BYTES);
                sink = w->buf[(w->next_page * 17) % (batch * PAGE_SIZE_BYTES)];
                w->next_page = (w->next_page + batch) % n_pages;
                *ret_pages = batch;
                return 0;
        case MODE_READV:
        case MODE_JOB: {
                uint64_t start = a->addr + w->next_page * PAGE_SIZE_BYTES;

                r = proc_pagemap_read(w->pagemap_fd, start, batch, w->pagemap);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < batch; i++)
                        w->addrs[i] = start + i * PAGE_SIZE_BYTES;
                r = memory_read_pages(a->pid, w->addrs, batch, w->buf, &got);
                if (r < 0)
                        return r;
                if (got != batch)
                        return -EFAULT;
                if (a->mode == MODE_JOB)
                        for (size_t i = 0; i < got; i++) {
                                const uint8_t *page = w->buf + i * PAGE_SIZE_BYTES;

                                acc += page_is_zero(page) ? 0 : page_hash(page, i);
                        }
                sink = acc + w->pagemap[0];
                w->next_page = (w->next_page + batch) % n_pages;
                *ret_pages = batch;
                return 0;
        }
        default:
                return -EINVAL;
        }
}

static int run_measure(const Args *a) {
        Work w = { .args = a, .pagemap_fd = -EBADF, .next_page = (size_t) a->offset_mib * 256 };
        struct rusage ru0, ru1;
        char line[64];
        uint64_t pages = 0;
        double w0, c0, wall, cpu;
        int r = 0;

        if (a->mode == MODE_HASH)
                w.src = pages_new(HASH_BUF_PAGES, true);
        if (a->mode == MODE_MEMCPY)
                w.src = pages_new((size_t) a->mib * 256, true);
        if (IN_SET(a->mode, MODE_MEMCPY, MODE_READV, MODE_JOB))
                w.buf = pages_new((size_t) a->batch_pages, false);
        if (IN_SET(a->mode, MODE_READV, MODE_JOB)) {
                w.pagemap = calloc((size_t) a->batch_pages, sizeof(uint64_t));
                w.addrs = calloc((size_t) a->batch_pages, sizeof(uint64_t));
                if (!w.pagemap || !w.addrs)
                        return -ENOMEM;
                r = proc_pagemap_open(a->pid, &w.pagemap_fd);
                if (r < 0) {
                        fprintf(stderr, "ksmd-pair-cost: cannot open pid %d's pagemap: %s\n", (int) a->pid,
                                strerror(-r));
                        return r;
                }
        }
        if ((IN_SET(a->mode, MODE_HASH, MODE_MEMCPY) && !w.src) ||
            (IN_SET(a->mode, MODE_MEMCPY, MODE_READV, MODE_JOB) && !w.buf)) {
                fprintf(stderr, "ksmd-pair-cost: cannot map its buffers: %m\n");
                return -ENOMEM;
        }

        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin))
                return -EPIPE;

        (void) getrusage(RUSAGE_SELF, &ru0);
        w0 = clock_seconds(CLOCK_MONOTONIC);
        c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
        do {
                /* Clocks read every 64 units only: a unit of spin is about a microsecond. */
                for (int i = 0; i < 64; i++) {
                        size_t n = 0;

                        r = work_one(&w, &n);
                        if (r < 0) {
                                fprintf(stderr, "ksmd-pair-cost: %s failed: %s\n", mode_names[a->mode],
                                        strerror(-r));
                                return r;
                        }
                        pages += n;
                }
                wall = clock_seconds(CLOCK_MONOTONIC) - w0;
        } while (wall < a->seconds);
        cpu = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - c0;
        (void) getrusage(RUSAGE_SELF, &ru1);

        printf("mode=%s pages=%" PRIu64 " wall_s=%.3f cpu_s=%.3f cpu_ns_per_page=%.1f wall_ns_per_page=%.1f "
               "nivcsw=%ld cpu=%d\n",
               mode_names[a->mode], pages, wall, cpu, cpu * 1e9 / (double) pages,
               wall * 1e9 / (double) pages, ru1.ru_nivcsw - ru0.ru_nivcsw, sched_getcpu());
        return 0;
}

int main(int argc, char **argv) {
        Args a;
        int r;

        r = parse_argv(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = a.mode == MODE_TARGET ? run_target(&a) : run_measure(&a);
        return r < 0 ? 1 : 0;
}
