/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "memory-reader.h"

static uint8_t *map_pages(size_t n) {
        uint8_t *p = mmap(NULL, n * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);

        assert_true(p != MAP_FAILED);
        for (size_t i = 0; i < n; i++)
                memset(p + i * PAGE_SIZE_BYTES, (int) (i + 1), PAGE_SIZE_BYTES);
        return p;
}

static void test_reads_contiguous_and_scattered_pages_in_order(void **state) {
        uint8_t *p = map_pages(8);
        _cleanup_free_ uint8_t *buf = malloc(5 * PAGE_SIZE_BYTES);
        uint64_t addrs[5];
        size_t n = 0;
        const int which[5] = { 0, 1, 2, 5, 7 };

        for (int i = 0; i < 5; i++)
                addrs[i] = (uintptr_t) p + (uint64_t) which[i] * PAGE_SIZE_BYTES;
        assert_int_equal(memory_read_pages(getpid(), addrs, 5, buf, &n), 0);
        assert_int_equal(n, 5);
        for (int i = 0; i < 5; i++)
                assert_memory_equal(buf + i * PAGE_SIZE_BYTES, p + which[i] * PAGE_SIZE_BYTES,
                                    PAGE_SIZE_BYTES);
        munmap(p, 8 * PAGE_SIZE_BYTES);
}

static void test_unmapped_page_ends_the_batch_there(void **state) {
        uint8_t *p = map_pages(4);
        _cleanup_free_ uint8_t *buf = malloc(4 * PAGE_SIZE_BYTES);
        uint64_t addrs[4];
        size_t n = 99;

        for (int i = 0; i < 4; i++)
                addrs[i] = (uintptr_t) p + (uint64_t) i * PAGE_SIZE_BYTES;
        munmap(p + 2 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
        assert_int_equal(memory_read_pages(getpid(), addrs, 4, buf, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(memory_read_pages(getpid(), addrs + 2, 2, buf, &n), 0);
        assert_int_equal(n, 0);
        munmap(p, 4 * PAGE_SIZE_BYTES);
}

static void test_limits_and_missing_process(void **state) {
        uint64_t addr = 0x1000;
        uint8_t buf[PAGE_SIZE_BYTES];
        size_t n = 0;

        assert_int_equal(memory_read_pages(getpid(), &addr, MEMORY_READ_MAX_PAGES + 1, buf, &n), -EINVAL);
        assert_int_equal(memory_read_pages(0x7fffff00, &addr, 1, buf, &n), -ESRCH);
        assert_int_equal(memory_read_pages(getpid(), &addr, 0, buf, &n), 0);
        assert_int_equal(n, 0);
}

static uint64_t ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* Reports (never asserts) the per-page read cost for batches of 512 contiguous pages. */
static void test_report_cost_per_page(void **state) {
        const size_t n = 512, rounds = 64;
        uint8_t *p = map_pages(n);
        _cleanup_free_ uint8_t *buf = aligned_alloc(PAGE_SIZE_BYTES, n * PAGE_SIZE_BYTES);
        uint64_t addrs[512], t0;
        size_t got;

        for (size_t i = 0; i < n; i++)
                addrs[i] = (uintptr_t) p + i * PAGE_SIZE_BYTES;
        assert_int_equal(memory_read_pages(getpid(), addrs, n, buf, &got), 0);
        t0 = ns();
        for (size_t r = 0; r < rounds; r++)
                assert_int_equal(memory_read_pages(getpid(), addrs, n, buf, &got), 0);
        print_message("# process_vm_readv, 512-page batches: %.1f ns/page\n",
                      (double) (ns() - t0) / (double) (n * rounds));
        munmap(p, n * PAGE_SIZE_BYTES);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reads_contiguous_and_scattered_pages_in_order),
                cmocka_unit_test(test_unmapped_page_ends_the_batch_there),
                cmocka_unit_test(test_limits_and_missing_process),
                cmocka_unit_test(test_report_cost_per_page),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
