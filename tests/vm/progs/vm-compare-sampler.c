/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm-compare-sampler: one system's run of the VM comparison benchmark
 * (bench/vm-compare, scenario bench-vm-compare.sh). Not a test: it prints
 * what it measured as "# bench ..." lines and asserts nothing.
 *
 *   vm-compare-sampler --label NAME --expected PAGES --start CMD
 *                      (--cpu-pid PID | --cpu-pid-file FILE) [--stop CMD]
 *                      [--scan-on-s S --scanned-cmd CMD [--scan-on-start CMD]
 *                       [--scan-on-end CMD] [--scanned-counter NAME]]
 *                      [--touch-counter FILE] [--baseline-s 5] [--interval-ms 500]
 *                      [--max-s 150] [--steady-s 15] [--goal 0.95]
 *                      [--window-s S] [--mark-cmd CMD] [--goal-cmd CMD]
 *                      PID ADDR PAGES [PID ADDR PAGES...]
 *
 * It counts the physical pages backing the ranges (distinct PFNs from
 * /proc/PID/pagemap, the zero page excluded, as ksmd-probe pages does),
 * measures the workload's memory-touching throughput for --baseline-s with no
 * deduplication running, runs CMD (which starts the deduplicator), then
 * samples the saving, the deduplicator's CPU time (utime+stime of the pid
 * given or written to FILE by CMD) and the touching throughput until the
 * saving reaches --goal of PAGES or --max-s passes, and for --steady-s more.
 * The goal line and the scanning-on line also give the CPU time apart, user
 * and system (utime, stime). --goal-cmd CMD runs CMD once the goal is reached
 * (after its figures are taken; its time falls in the steady window) and
 * prints each line it writes as "# bench at-goal NAME goal LINE".
 * With --scan-on-s, if the goal was reached, it then measures how fast the
 * deduplicator scans with nothing changing: it runs --scan-on-start CMD
 * (which stops whatever writes the ranges, keeps the deduplicator from
 * resting and waits until it has scanned since; its failure is reported as
 * settled=0), reads the pages examined so far (the number --scanned-cmd CMD
 * prints) and the CPU time, and reads both again at the first change of that
 * count after S seconds, so that a count which moves a full scan at a time is
 * exact; it prints "# bench scanon" and runs --scan-on-end CMD.
 * With --stop it then runs CMD (which stops the deduplicator) and measures the
 * touching throughput alone once more, for --baseline-s.
 *
 * --window-s S samples exactly S seconds from the start instead, whether or
 * not the goal is reached and when: every system so gets the same window,
 * whose part after the goal is reported as steady. --mark-cmd CMD runs CMD
 * just before the start command and again just after the last sample, and
 * prints each line it writes as "# bench mark NAME start|end LINE": counters
 * read over exactly the sampled window (a workload's COW breaks, the helper's
 * merges).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "host-probe.h"
#include "proc-reader.h"
#include "ranges.h"

#define TOUCH_SLOTS 256

static struct {
        const char *label, *start, *stop, *cpu_pid_file, *touch_counter, *mark_cmd, *goal_cmd;
        pid_t cpu_pid;
        uint64_t expected;
        double baseline_s, max_s, steady_s, goal, window_s;
        unsigned interval_ms;
} opt = {
        .baseline_s = 5,
        .max_s = 150,
        .steady_s = 15,
        .goal = 0.95,
        .interval_ms = 500,
};

static uint64_t zero_pfn, huge_zero_pfn, *pfns;
static size_t pfns_cap;
static const volatile uint64_t *touch;
/* The scanning-on window (--scan-on-s; none if seconds is 0). */
static struct {
        const char *start, *end, *scanned, *counter;
        double seconds;
} scan_on = {
        .counter = "pages",
};

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
        struct timespec ts = { .tv_sec = (time_t) s, .tv_nsec = (long) ((s - (double) (time_t) s) * 1e9) };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Physical pages backing all ranges: distinct PFNs other than the zero pages. */
static int64_t distinct_pages(void) {
        size_t n = 0;
        int64_t distinct = 0;

        for (size_t i = 0; i < n_ranges; i++) {
                uint64_t entries[512];

                for (uint64_t done = 0; done < ranges[i].pages;) {
                        size_t k = (size_t) MIN(ranges[i].pages - done, (uint64_t) ELEMENTSOF(entries));

                        if (proc_pagemap_read(ranges[i].fd, ranges[i].addr + done * 4096, k, entries) < 0)
                                return -1;
                        for (size_t j = 0; j < k; j++) {
                                uint64_t e = entries[j], pfn = e & PAGEMAP_PFN_MASK;

                                if (!(e & PAGEMAP_PRESENT) || pfn == zero_pfn ||
                                    (huge_zero_pfn && pfn >= huge_zero_pfn && pfn < huge_zero_pfn + 512))
                                        continue;
                                pfns[n++] = pfn;
                        }
                        done += k;
                }
        }
        qsort(pfns, n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n; i++)
                if (i == 0 || pfns[i] != pfns[i - 1])
                        distinct++;
        return distinct;
}

/* utime + stime of pid in seconds; -1 if it is gone. The two apart in *ret_user and *ret_sys, if given. */
static double cpu_seconds(pid_t pid, double *ret_user, double *ret_sys) {
        char path[64], buf[1024], *p;
        unsigned long long ut, st;
        double hz = (double) sysconf(_SC_CLK_TCK);
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        /* After the comm: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
         * utime stime */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                return -1;
        if (ret_user)
                *ret_user = (double) ut / hz;
        if (ret_sys)
                *ret_sys = (double) st / hz;
        return (double) (ut + st) / hz;
}

static uint64_t touch_ops(void) {
        uint64_t sum = 0;

        if (!touch)
                return 0;
        for (unsigned i = 0; i < TOUCH_SLOTS; i++)
                sum += touch[i];
        return sum;
}

/*
 * The pages the deduplicator examined so far, as --scanned-cmd prints them; -1 if it failed. A second
 * number on the line, another count of the same (KSM's full scans times the pages), goes to *ret_alt
 * (-1 if none).
 */
static int64_t scanned_pages(int64_t *ret_alt) {
        char line[128];
        long long v = -1, alt = -1;
        int status;
        FILE *f = popen(scan_on.scanned, "re");

        *ret_alt = -1;
        if (!f)
                return -1;
        if (!fgets(line, sizeof(line), f) || sscanf(line, "%lld %lld", &v, &alt) < 1) {
                fprintf(stderr, "vm-compare-sampler: '%s' printed no count\n", scan_on.scanned);
                v = -1;
        }
        /* To its end: a writer that finds the pipe closed fails. */
        while (fgets(line, sizeof(line), f))
                ;
        status = pclose(f);
        if (status != 0) {
                fprintf(stderr, "vm-compare-sampler: '%s' failed (status %d)\n", scan_on.scanned, status);
                v = -1;
        }
        if (v >= 0)
                *ret_alt = alt;
        return v;
}

/* Pages examined and CPU spent over --scan-on-s seconds once nothing changes. */
static void scan_on_window(const char *L) {
        double t0, t, cpu0, cpu1, user0 = 0, user1 = 0, sys0 = 0, sys1 = 0;
        int64_t p0, p, p1, a0, a, a1;
        int settled = !scan_on.start || system(scan_on.start) == 0;
        bool have_cpu;

        p0 = scanned_pages(&a0);
        cpu0 = cpu_seconds(opt.cpu_pid, &user0, &sys0);
        t0 = now();
        sleep_s(scan_on.seconds);
        p = scanned_pages(&a);
        do {
                sleep_s(0.05);
                p1 = scanned_pages(&a1);
                t = now() - t0;
        } while (p1 == p && p1 >= 0 && t < scan_on.seconds + 120);
        cpu1 = cpu_seconds(opt.cpu_pid, &user1, &sys1);
        have_cpu = cpu0 >= 0 && cpu1 >= 0;
        printf("# bench scanon %s seconds=%.2f cpu_s=%.3f user_s=%.3f sys_s=%.3f pages=%" PRId64
               " settled=%d counter=%s\n", L, t, have_cpu ? cpu1 - cpu0 : -1.0,
               have_cpu ? user1 - user0 : -1.0, have_cpu ? sys1 - sys0 : -1.0,
               p0 >= 0 && p1 >= 0 ? p1 - p0 : -1, settled, scan_on.counter);
        if (a0 >= 0 && a1 >= 0)
                printf("# bench scanon-alt %s pages=%" PRId64 "\n", L, a1 - a0);
        if (scan_on.end && system(scan_on.end) != 0)
                fprintf(stderr, "vm-compare-sampler: '%s' failed\n", scan_on.end);
}

/* AnonPages + Mapped from /proc/meminfo, in KiB. */
static uint64_t meminfo_kib(void) {
        char line[256];
        uint64_t sum = 0, v;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "AnonPages: %" SCNu64, &v) == 1 ||
                    sscanf(line, "Mapped: %" SCNu64, &v) == 1)
                        sum += v;
        fclose(f);
        return sum;
}

/* Runs cmd and prints its output as "# bench WHAT LABEL WHEN ..." lines. */
static void run_marked(const char *cmd, const char *what, const char *when) {
        char line[512];
        FILE *f;

        if (!cmd)
                return;
        f = popen(cmd, "re");
        if (!f) {
                fprintf(stderr, "vm-compare-sampler: cannot run '%s': %m\n", cmd);
                return;
        }
        while (fgets(line, sizeof(line), f))
                printf("# bench %s %s %s %s%s", what, opt.label, when, line, strchr(line, '\n') ? "" : "\n");
        if (pclose(f) != 0)
                fprintf(stderr, "vm-compare-sampler: '%s' failed\n", cmd);
}

/* Runs --mark-cmd and prints its output as "# bench mark LABEL WHEN ..." lines. */
static void mark(const char *when) {
        run_marked(opt.mark_cmd, "mark", when);
}

static int parse_args(int argc, char *argv[]) {
        static const struct option options[] = {
                { "scan-on-s", required_argument, NULL, 'O' },
                { "scan-on-start", required_argument, NULL, 'B' },
                { "scan-on-end", required_argument, NULL, 'E' },
                { "scanned-cmd", required_argument, NULL, 'P' },
                { "scanned-counter", required_argument, NULL, 'N' },
                { "label", required_argument, NULL, 'l' },
                { "expected", required_argument, NULL, 'e' },
                { "start", required_argument, NULL, 'S' },
                { "stop", required_argument, NULL, 'x' },
                { "cpu-pid", required_argument, NULL, 'p' },
                { "cpu-pid-file", required_argument, NULL, 'f' },
                { "touch-counter", required_argument, NULL, 't' },
                { "baseline-s", required_argument, NULL, 'b' },
                { "interval-ms", required_argument, NULL, 'i' },
                { "max-s", required_argument, NULL, 'm' },
                { "steady-s", required_argument, NULL, 's' },
                { "goal", required_argument, NULL, 'g' },
                { "window-s", required_argument, NULL, 'w' },
                { "mark-cmd", required_argument, NULL, 'M' },
                { "goal-cmd", required_argument, NULL, 'G' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'O': scan_on.seconds = atof(optarg); break;
                case 'B': scan_on.start = optarg; break;
                case 'E': scan_on.end = optarg; break;
                case 'P': scan_on.scanned = optarg; break;
                case 'N': scan_on.counter = optarg; break;
                case 'l': opt.label = optarg; break;
                case 'e': opt.expected = strtoull(optarg, NULL, 10); break;
                case 'S': opt.start = optarg; break;
                case 'x': opt.stop = optarg; break;
                case 'p': opt.cpu_pid = (pid_t) atoi(optarg); break;
                case 'f': opt.cpu_pid_file = optarg; break;
                case 't': opt.touch_counter = optarg; break;
                case 'b': opt.baseline_s = atof(optarg); break;
                case 'i': opt.interval_ms = (unsigned) atoi(optarg); break;
                case 'm': opt.max_s = atof(optarg); break;
                case 's': opt.steady_s = atof(optarg); break;
                case 'g': opt.goal = atof(optarg); break;
                case 'w': opt.window_s = atof(optarg); break;
                case 'M': opt.mark_cmd = optarg; break;
                case 'G': opt.goal_cmd = optarg; break;
                default: return -EINVAL;
                }
        }
        if (!opt.label || !opt.start || !opt.expected || (!opt.cpu_pid && !opt.cpu_pid_file) ||
            !ranges_args_valid(argc - optind)) {
                fprintf(stderr, "usage: vm-compare-sampler --label NAME --expected PAGES --start CMD "
                        "(--cpu-pid PID | --cpu-pid-file FILE) [options] PID ADDR PAGES...\n");
                return -EINVAL;
        }
        if (ranges_parse("vm-compare-sampler", argc - optind, argv + optind) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n_ranges; i++)
                pfns_cap += ranges[i].pages;
        return 0;
}

int main(int argc, char *argv[]) {
        const char *L;
        double t0, t, cpu0, cpu = 0, goal_t = -1, goal_cpu = -1, steady_t0 = -1, steady_cpu0 = 0, end_t;
        double user0 = 0, sys0 = 0, user = 0, sys = 0, goal_user = -1, goal_sys = -1;
        uint64_t ops0, ops, goal_ops = 0, steady_ops0 = 0, mem_before, mem_after;
        int64_t before, d, saved = 0;

        if (parse_args(argc, argv) < 0)
                return 2;
        L = opt.label;
        setvbuf(stdout, NULL, _IOLBF, 0);
        pfns = calloc(pfns_cap ? pfns_cap : 1, sizeof(uint64_t));
        if (!pfns || host_probe_zero_pfns(&zero_pfn, &huge_zero_pfn) < 0) {
                fprintf(stderr, "vm-compare-sampler: cannot learn the zero page's PFN (root needed)\n");
                return 1;
        }
        if (opt.touch_counter) {
                int fd = open(opt.touch_counter, O_RDONLY | O_CLOEXEC);

                if (fd >= 0) {
                        void *m = mmap(NULL, TOUCH_SLOTS * sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);

                        if (m != MAP_FAILED)
                                touch = m;
                        close(fd);
                }
                if (!touch)
                        fprintf(stderr, "vm-compare-sampler: cannot map %s; no throughput\n",
                                opt.touch_counter);
        }

        before = distinct_pages();
        mem_before = meminfo_kib();
        if (before < 0)
                return 1;
        printf("# bench before %s distinct=%" PRId64 " expected=%" PRIu64 " meminfo_kib=%" PRIu64 "\n",
               L, before, opt.expected, mem_before);

        /* The workload's throughput with no deduplication running. */
        ops0 = touch_ops();
        t0 = now();
        sleep_s(opt.baseline_s);
        t = now() - t0;
        printf("# bench baseline %s seconds=%.2f touch_ops_per_s=%.0f\n", L, t,
               (double) (touch_ops() - ops0) / t);

        mark("start");
        if (system(opt.start) != 0) {
                fprintf(stderr, "vm-compare-sampler: '%s' failed\n", opt.start);
                return 1;
        }
        t0 = now();
        if (opt.cpu_pid_file) {
                FILE *f = fopen(opt.cpu_pid_file, "re");

                if (!f || fscanf(f, "%d", &opt.cpu_pid) != 1) {
                        fprintf(stderr, "vm-compare-sampler: no pid in %s\n", opt.cpu_pid_file);
                        return 1;
                }
                fclose(f);
        }
        cpu0 = cpu_seconds(opt.cpu_pid, &user0, &sys0);
        ops0 = touch_ops();
        if (cpu0 < 0) {
                fprintf(stderr, "vm-compare-sampler: pid %d is gone\n", (int) opt.cpu_pid);
                return 1;
        }

        end_t = opt.window_s > 0 ? opt.window_s : opt.max_s;
        for (;;) {
                sleep_s(opt.interval_ms / 1000.0);
                t = now() - t0;
                d = distinct_pages();
                if (d < 0)
                        return 1;
                saved = before - d;
                cpu = cpu_seconds(opt.cpu_pid, &user, &sys) - cpu0;
                ops = touch_ops() - ops0;
                printf("# bench sample %s t=%.2f saved=%" PRId64 " cpu=%.2f touch=%" PRIu64 "\n", L, t,
                       saved, cpu, ops);
                if (goal_t < 0 && (double) saved >= opt.goal * (double) opt.expected) {
                        goal_t = t;
                        goal_cpu = cpu;
                        goal_user = user - user0;
                        goal_sys = sys - sys0;
                        goal_ops = ops;
                        steady_t0 = t;
                        steady_cpu0 = cpu;
                        steady_ops0 = ops;
                        if (opt.window_s <= 0)
                                end_t = t + opt.steady_s;
                        printf("# bench goal %s t=%.2f cpu=%.2f user=%.2f sys=%.2f\n", L, t, cpu, goal_user,
                               goal_sys);
                        run_marked(opt.goal_cmd, "at-goal", "goal");
                }
                if (t >= end_t)
                        break;
        }
        mark("end");
        mem_after = meminfo_kib();
        printf("# bench result %s expected=%" PRIu64 " reached=%d goal_s=%.2f goal_cpu_s=%.2f"
               " conv_touch_ops_per_s=%.0f final_saved=%" PRId64 " meminfo_saved_kib=%" PRId64
               " total_s=%.2f total_cpu_s=%.2f goal_user_s=%.2f goal_sys_s=%.2f",
               L, opt.expected, goal_t >= 0, goal_t, goal_cpu,
               goal_t > 0 ? (double) goal_ops / goal_t : (double) ops / t, saved,
               (int64_t) mem_before - (int64_t) mem_after, t, cpu, goal_user, goal_sys);
        if (steady_t0 >= 0 && t > steady_t0)
                printf(" steady_s=%.2f steady_cpu_s=%.2f steady_touch_ops_per_s=%.0f\n", t - steady_t0,
                       cpu - steady_cpu0, (double) (ops - steady_ops0) / (t - steady_t0));
        else
                printf(" steady_s=0\n");
        if (goal_t >= 0 && scan_on.seconds > 0 && scan_on.scanned)
                scan_on_window(L);

        if (opt.stop) {
                if (system(opt.stop) != 0)
                        fprintf(stderr, "vm-compare-sampler: '%s' failed\n", opt.stop);
                ops0 = touch_ops();
                t0 = now();
                sleep_s(opt.baseline_s);
                t = now() - t0;
                printf("# bench after %s seconds=%.2f touch_ops_per_s=%.0f\n", L, t,
                       (double) (touch_ops() - ops0) / t);
        }
        return 0;
}
