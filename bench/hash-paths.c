/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * CPU time per 4 KiB page of ksmd's page_hash() and page_is_zero() against
 * XXH64, the function the kernel's KSM checksums pages with (calc_checksum():
 * xxhash(), which is xxh64 on 64-bit). Run natively and under QEMU's TCG by
 * bench/hash-tcg, to tell how much of ksmd's cost in a TCG guest is vector
 * code that TCG emulates slowly.
 *
 *     ksmd-hash-paths [pages]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <xxhash.h>

#include "page-hash.h"

#define N_BUFS 64

static uint8_t bufs[N_BUFS][PAGE_SIZE_BYTES] __attribute__((aligned(4096)));

static double cpu_seconds(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 100000;
        uint64_t acc = 0;
        double t, hash_us, xxh64_us, zero_us;

        if (n <= 0) {
                fprintf(stderr, "ksmd-hash-paths: pages must be a positive number, not '%s'\n", argv[1]);
                return 2;
        }
        for (size_t i = 0; i < N_BUFS; i++)
                for (size_t j = 0; j < PAGE_SIZE_BYTES; j++)
                        bufs[i][j] = (uint8_t) (i * 7 + j * 13);

        t = cpu_seconds();
        for (long i = 0; i < n; i++)
                acc += page_hash(bufs[i % N_BUFS], (uint64_t) i);
        hash_us = (cpu_seconds() - t) / (double) n * 1e6;

        t = cpu_seconds();
        for (long i = 0; i < n; i++)
                acc += XXH64(bufs[i % N_BUFS], PAGE_SIZE_BYTES, (uint64_t) i);
        xxh64_us = (cpu_seconds() - t) / (double) n * 1e6;

        /* A zero page is the zero test's worst case: every byte is compared. */
        for (size_t j = 0; j < PAGE_SIZE_BYTES; j++)
                bufs[0][j] = 0;
        t = cpu_seconds();
        for (long i = 0; i < n; i++)
                acc += page_is_zero(bufs[0]);
        zero_us = (cpu_seconds() - t) / (double) n * 1e6;

        printf("pages=%ld page_hash_us=%.3f xxh64_us=%.3f page_is_zero_us=%.3f check=%llu\n", n, hash_us,
               xxh64_us, zero_us, (unsigned long long) acc);
        return 0;
}
