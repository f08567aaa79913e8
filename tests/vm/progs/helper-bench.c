/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-bench: merges per second through ksmd_helper for batches of 1, 64
 * and 512 items: new pairs (two private pages become one new shared page),
 * joins (a private page joins an existing shared page by handle) and zero
 * merges. A measurement, not a test: prints one "# bench" line per case and
 * TAP only for "the requests worked".
 *
 *   helper-bench [PAGES]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <time.h>

#include "helper-genl.h"
#include "helper-worker.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

enum { NEW_PAIRS, JOINS, ZEROS };

/* One case on fresh workers; returns merged items per second, or -1. */
static double bench_case(KgSock *s, int kind, size_t batch, size_t n) {
        Worker A = { 0 }, B = { 0 };
        KgItem *items = calloc(n, sizeof(*items));
        uint64_t handle = 0;
        size_t merged = 0;
        double t0, t1;

        worker_start(&A, n, 0);
        worker_start(&B, n, 0);
        worker_do(&A, W_ADDR, 0, 0, 0);
        worker_do(&B, W_ADDR, 0, 0, 0);
        if (kind == ZEROS) {
                worker_do(&B, W_FILL, 0, n, 0);
        } else if (kind == JOINS) {
                /* Every page the same, so one shared page takes them all. */
                KgItem first = { .pidfd = B.pidfd, .addr = (uintptr_t) B.base, .src_pidfd = A.pidfd,
                                 .src_addr = (uintptr_t) A.base };

                worker_do(&A, W_FILL_CONST, 0, 1, 0x5555555555555555ULL);
                worker_do(&B, W_FILL_CONST, 0, n, 0x5555555555555555ULL);
                if (kg_merge(s, &first, 1, 0) < 0 || !first.out_handle)
                        return -1;
                handle = first.out_handle;
        } else {
                worker_do(&A, W_FILL, 0, n, 3);
                worker_do(&B, W_FILL, 0, n, 3);
        }
        for (size_t i = 0; i < n; i++) {
                items[i].pidfd = B.pidfd;
                items[i].addr = (uintptr_t) B.base + i * PG;
                if (kind == NEW_PAIRS) {
                        items[i].src_pidfd = A.pidfd;
                        items[i].src_addr = (uintptr_t) A.base + i * PG;
                } else if (kind == JOINS) {
                        items[i].handle = handle;
                }
        }
        t0 = now_s();
        for (size_t off = 0; off < n; off += batch) {
                size_t m = n - off < batch ? n - off : batch;

                if (kg_merge(s, items + off, m, kind == ZEROS) < 0)
                        return -1;
                for (size_t i = 0; i < m; i++)
                        merged += items[off + i].result == KSMD_HELPER_RESULT_MERGED ||
                                  items[off + i].result == KSMD_HELPER_RESULT_ALREADY;
        }
        t1 = now_s();
        worker_stop(&A);
        worker_stop(&B);
        free(items);
        printf("# merged %zu of %zu\n", merged, n);
        return merged / (t1 - t0);
}

int main(int argc, char *argv[]) {
        static const char *const names[] = { "new-pairs", "joins", "zero" };
        static const size_t batches[] = { 1, 64, 512 };
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 0) : 8192;
        bool ok = true;
        KgSock s;
        int t = 0;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (kg_open(&s) < 0) {
                printf("not ok 1 - the ksmd_helper family resolves\n1..1\n");
                return 1;
        }
        for (int kind = NEW_PAIRS; kind <= ZEROS; kind++)
                for (size_t b = 0; b < 3; b++) {
                        double rate = bench_case(&s, kind, batches[b], n);

                        printf("# bench %s batch %zu: %.0f merges/s\n", names[kind], batches[b], rate);
                        ok &= rate > 0;
                        printf("%s %d - %s with batches of %zu\n", rate > 0 ? "ok" : "not ok", ++t,
                               names[kind], batches[b]);
                }
        kg_close(&s);
        printf("1..%d\n", t);
        return ok ? 0 : 1;
}
