/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cow-storm: the two sides of a COW storm, for the COW guard's VM test.
 *
 *   cow-storm hold MIB    maps MIB of private anonymous memory whose pages
 *                         all hold the same bytes (ksmd merges all but one),
 *                         prints "pid PID addr ADDR pages N" and "ready".
 *                         On SIGUSR1 it writes every page at once (a COW
 *                         storm: each merged page is copied back), so that
 *                         each holds its own index, reads every page back
 *                         and prints "stormed N pages in MS ms: intact" (or
 *                         "... CORRUPT"). SIGTERM ends it.
 *   cow-storm fill MIB    a tenant that uses what looks free: allocates
 *                         and writes 4 MiB chunks of distinct pages while
 *                         MemAvailable stays above MIB, prints "ready" once
 *                         it got there, and keeps doing so every 20 ms (so
 *                         it takes what merging frees) until SIGTERM.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define PATTERN UINT64_C(0x5a17c0a7f00dd00d)

static volatile sig_atomic_t got_storm, got_term;

static void on_signal(int sig) {
        if (sig == SIGUSR1)
                got_storm = 1;
        else
                got_term = 1;
}

static uint64_t mem_available_mib(void) {
        char line[256];
        unsigned long long kib = 0;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
                        break;
        fclose(f);
        return kib / 1024;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static int hold(uint64_t mib) {
        size_t pages = (size_t) (mib << 20) / PAGE, words = PAGE / sizeof(uint64_t);
        uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (mem == MAP_FAILED) {
                fprintf(stderr, "cow-storm: mmap of %" PRIu64 " MiB: %s\n", mib, strerror(errno));
                return 1;
        }
        /* Small pages only: ksmd merges 4 KiB pages. */
        (void) madvise(mem, pages * PAGE, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < pages * words; i++)
                mem[i] = PATTERN ^ (i % words);
        printf("pid %d addr %p pages %zu\nready\n", (int) getpid(), (void *) mem, pages);
        fflush(stdout);
        while (!got_term) {
                uint64_t t0;
                size_t bad = 0;

                pause();
                if (!got_storm)
                        continue;
                got_storm = 0;
                t0 = now_ms();
                /* Every page written at once: one store each, so the copies are all the work. */
                for (size_t p = 0; p < pages; p++)
                        mem[p * words] = p;
                for (size_t p = 0; p < pages; p++) {
                        if (mem[p * words] != p)
                                bad++;
                        for (size_t w = 1; w < words; w++)
                                if (mem[p * words + w] != (PATTERN ^ w)) {
                                        bad++;
                                        break;
                                }
                }
                printf("stormed %zu pages in %" PRIu64 " ms: %s\n", pages, now_ms() - t0,
                       bad ? "CORRUPT" : "intact");
                fflush(stdout);
        }
        return 0;
}

static int fill(uint64_t floor_mib) {
        uint64_t chunks = 0, stamp = 1;
        bool ready = false;

        while (!got_term) {
                while (mem_available_mib() > floor_mib + 4) {
                        uint64_t *c = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

                        if (c == MAP_FAILED)
                                break;
                        /* Distinct, non-zero pages: nothing here merges. */
                        for (size_t i = 0; i < (4u << 20) / sizeof(uint64_t); i++)
                                c[i] = stamp++;
                        chunks++;
                }
                if (!ready) {
                        printf("filled %" PRIu64 " MiB, MemAvailable %" PRIu64 " MiB\nready\n", chunks * 4,
                               mem_available_mib());
                        fflush(stdout);
                        ready = true;
                }
                usleep(20000);
        }
        printf("filled %" PRIu64 " MiB in all\n", chunks * 4);
        return 0;
}

int main(int argc, char *argv[]) {
        struct sigaction sa = { .sa_handler = on_signal };
        char *end;
        uint64_t mib;

        if (argc != 3 || (mib = strtoull(argv[2], &end, 10)) == 0 || *end) {
                fprintf(stderr, "usage: cow-storm hold|fill MIB\n");
                return 2;
        }
        sigaction(SIGUSR1, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (strcmp(argv[1], "hold") == 0)
                return hold(mib);
        if (strcmp(argv[1], "fill") == 0)
                return fill(mib);
        fprintf(stderr, "usage: cow-storm hold|fill MIB\n");
        return 2;
}
