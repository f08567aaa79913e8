/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <xxh_x86dispatch.h>

#include "page-hash.h"

static _Alignas(4096) uint8_t page[PAGE_SIZE_BYTES];

static void test_zero_page_is_zero(void **state) {
        memset(page, 0, sizeof(page));
        assert_true(page_is_zero(page));
}

static void test_any_nonzero_byte_makes_page_nonzero(void **state) {
        for (size_t i = 0; i < PAGE_SIZE_BYTES; i += 61) {
                memset(page, 0, sizeof(page));
                page[i] = 0x80;
                assert_false(page_is_zero(page));
        }
        memset(page, 0, sizeof(page));
        page[PAGE_SIZE_BYTES - 1] = 1;
        assert_false(page_is_zero(page));
}

static void test_hash_is_xxh3_dispatch_with_seed(void **state) {
        memset(page, 0x5a, sizeof(page));
        assert_true(page_hash(page, 42) == XXH3_64bits_withSeed_dispatch(page, PAGE_SIZE_BYTES, 42));
        assert_true(page_hash(page, 42) == page_hash(page, 42));
        assert_true(page_hash(page, 42) != page_hash(page, 43));
}

static void test_hash_covers_the_whole_page(void **state) {
        uint64_t base;

        memset(page, 0x11, sizeof(page));
        base = page_hash(page, 7);
        for (size_t i = 0; i < PAGE_SIZE_BYTES; i += 509) {
                page[i] ^= 1;
                assert_true(page_hash(page, 7) != base);
                page[i] ^= 1;
        }
}

static void test_random_seeds_differ(void **state) {
        assert_true(page_hash_random_seed() != page_hash_random_seed());
}

static uint64_t ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* Reports (never asserts) the per-page costs on this machine. */
static void test_report_cost_per_page(void **state) {
        const int n = 200000;
        volatile uint64_t sink = 0;
        uint64_t t0, t1, t2;

        memset(page, 0x33, sizeof(page));
        t0 = ns();
        for (int i = 0; i < n; i++) {
                page[0] = (uint8_t) i;
                sink += page_hash(page, 1);
        }
        t1 = ns();
        memset(page, 0, sizeof(page));
        for (int i = 0; i < n; i++)
                sink += page_is_zero(page);
        t2 = ns();
        print_message("# page_hash: %.1f ns/page, page_is_zero (all-zero page): %.1f ns/page\n",
                      (double) (t1 - t0) / n, (double) (t2 - t1) / n);
        (void) sink;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_zero_page_is_zero),
                cmocka_unit_test(test_any_nonzero_byte_makes_page_nonzero),
                cmocka_unit_test(test_hash_is_xxh3_dispatch_with_seed),
                cmocka_unit_test(test_hash_covers_the_whole_page),
                cmocka_unit_test(test_random_seeds_differ),
                cmocka_unit_test(test_report_cost_per_page),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
