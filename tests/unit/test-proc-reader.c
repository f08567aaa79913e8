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
#include "proc-reader.h"

static void test_parse_plain_anonymous_mapping(void **state) {
        ProcMapping m;

        assert_int_equal(proc_maps_parse_line("7f0000000000-7f0000004000 rw-p 00000000 00:00 0 \n", &m), 0);
        assert_true(m.start == 0x7f0000000000ull);
        assert_true(m.end == 0x7f0000004000ull);
        assert_true(m.readable && m.writable && m.private_);
        assert_int_equal(m.kind, PROC_MAPPING_ANON);
        assert_string_equal(m.name, "");
}

static void test_parse_heap_stack_and_named_anon_are_anonymous(void **state) {
        ProcMapping m;

        assert_int_equal(proc_maps_parse_line("55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0      [heap]",
                                              &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_ANON);
        assert_string_equal(m.name, "[heap]");
        assert_int_equal(proc_maps_parse_line("7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0  [stack]\n",
                                              &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_ANON);
        assert_int_equal(proc_maps_parse_line("7f0000000000-7f0000001000 rw-p 00000000 00:00 0  "
                                              "[anon:guest ram]\n", &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_ANON);
}

static void test_parse_file_shared_and_special_are_not_anonymous(void **state) {
        ProcMapping m;

        assert_int_equal(proc_maps_parse_line("7f1000000000-7f1000002000 r-xp 00001000 fe:01 1234567  "
                                              "/usr/lib/x86_64-linux-gnu/libc.so.6\n", &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_FILE);
        assert_false(m.writable);
        assert_int_equal(proc_maps_parse_line("7f1000000000-7f1000002000 rw-s 00000000 00:01 2048  "
                                              "/dev/zero (deleted)\n", &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_SHARED_ANON);
        assert_int_equal(proc_maps_parse_line("7f1000000000-7f1000002000 rw-s 00000000 00:00 0 \n", &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_SHARED_ANON);
        assert_int_equal(proc_maps_parse_line("7f1000000000-7f1000002000 rw-p 00000000 00:01 77  "
                                              "/memfd:guest (deleted)\n", &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_SHARED_ANON);
        assert_int_equal(proc_maps_parse_line("7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0  [vdso]\n",
                                              &m), 0);
        assert_int_equal(m.kind, PROC_MAPPING_SPECIAL);
}

static void test_parse_long_names_are_cut_and_marked(void **state) {
        ProcMapping m;

        assert_int_equal(proc_maps_parse_line("1000-2000 r--p 00000000 fe:01 1 /a/very/long/path/that"
                                              "/does/not/fit/into/the/name/field/of/the/struct\n", &m), 0);
        assert_string_equal(m.name, "/a/very/long/path/that/does/not/fit/into/the...");
}

static void test_parse_names_are_escaped_and_cut_on_a_character_boundary(void **state) {
        ProcMapping m;

        /* Byte 47, where the name used to be cut, is the second byte of the 'é'. */
        assert_int_equal(proc_maps_parse_line("1000-2000 r--p 00000000 fe:01 1 /tmp/aaaaaaaaaaaaaaaaaaaa"
                                              "aaaaaaaaaaaaaaaaaaaaa\xc3\xa9.img\n", &m), 0);
        assert_string_equal(m.name, "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
        assert_int_equal(m.kind, PROC_MAPPING_FILE);
        assert_int_equal(proc_maps_parse_line("1000-2000 r--p 00000000 fe:01 1 /tmp/\xff\x1b[2J\\x.img\n",
                                              &m), 0);
        assert_string_equal(m.name, "/tmp/\\xff\\x1b[2J\\x5cx.img");
        assert_int_equal(m.kind, PROC_MAPPING_FILE);
}

static void test_parse_malformed_lines_are_refused(void **state) {
        ProcMapping m;

        assert_int_equal(proc_maps_parse_line("", &m), -EBADMSG);
        assert_int_equal(proc_maps_parse_line("garbage\n", &m), -EBADMSG);
        assert_int_equal(proc_maps_parse_line("2000-1000 rw-p 00000000 00:00 0\n", &m), -EBADMSG);
        assert_int_equal(proc_maps_parse_line("1001-2000 rw-p 00000000 00:00 0\n", &m), -EBADMSG);
        assert_int_equal(proc_maps_parse_line("1000-2000 rw 00000000 00:00 0\n", &m), -EBADMSG);
}

static void test_read_own_maps_finds_new_private_anonymous_mapping(void **state) {
        _cleanup_free_ ProcMapping *maps = NULL;
        size_t n = 0;
        bool found = false;
        void *p;

        p = mmap(NULL, 8 * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        assert_int_equal(proc_maps_read(getpid(), &maps, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (maps[i].start <= (uintptr_t) p && maps[i].end >= (uintptr_t) p + 8 * PAGE_SIZE_BYTES &&
                    maps[i].kind == PROC_MAPPING_ANON)
                        found = true;
        assert_true(found);
        munmap(p, 8 * PAGE_SIZE_BYTES);
}

static void test_read_maps_of_missing_process_is_esrch(void **state) {
        ProcMapping *maps = NULL;
        size_t n = 0;
        int fd = -1;

        /* Above the kernel's PID_MAX_LIMIT (4 Mi): no process can have it. */
        assert_int_equal(proc_maps_read(0x7fffff00, &maps, &n), -ESRCH);
        assert_null(maps);
        assert_int_equal(proc_pagemap_open(0x7fffff00, &fd), -ESRCH);
        assert_int_equal(proc_clear_soft_dirty(0x7fffff00), -ESRCH);
}

static void test_pagemap_tells_untouched_written_and_zero_pages_apart(void **state) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t e[3], zero_pfn = 0, huge_zero_pfn = 0;
        volatile uint8_t *p;

        p = mmap(NULL, 3 * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        madvise((void *) p, 3 * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        p[PAGE_SIZE_BYTES] = 1;                          /* page 1: private, written */
        (void) p[2 * PAGE_SIZE_BYTES];                   /* page 2: read fault, maps the zero page */

        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, 3, e), 0);
        assert_false(e[0] & PAGEMAP_PRESENT);
        assert_true(e[1] & PAGEMAP_PRESENT);
        assert_true(e[1] & PAGEMAP_EXCLUSIVE);
        assert_false(e[1] & PAGEMAP_FILE_OR_SHARED);
        assert_true(e[2] & PAGEMAP_PRESENT);
        assert_false(e[2] & PAGEMAP_EXCLUSIVE);

        assert_int_equal(proc_zero_pfns(&zero_pfn, &huge_zero_pfn), 0);
        if (geteuid() == 0) {
                /* With CAP_SYS_ADMIN the PFNs are visible: the zero page is recognisable. */
                assert_true(zero_pfn != 0);
                assert_true((e[2] & PAGEMAP_PFN_MASK) == zero_pfn);
                assert_true((e[1] & PAGEMAP_PFN_MASK) != zero_pfn);
        }
        print_message("# zero pfn 0x%llx, huge zero pfn 0x%llx\n", (unsigned long long) zero_pfn,
                      (unsigned long long) huge_zero_pfn);
        munmap((void *) p, 3 * PAGE_SIZE_BYTES);
}

static void test_pagemap_past_end_reads_as_not_present(void **state) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t e[2] = { 1, 1 };

        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        /* The last user page of a 4-level address space and beyond. */
        assert_int_equal(proc_pagemap_read(fd, (UINT64_C(1) << 47) - PAGE_SIZE_BYTES, 2, e), 0);
        assert_false(e[0] & PAGEMAP_PRESENT);
        assert_false(e[1] & PAGEMAP_PRESENT);
        assert_int_equal(proc_pagemap_read(fd, 123, 1, e), -EINVAL);
}

static void test_soft_dirty_probe_answers(void **state) {
        bool works = true;

        assert_int_equal(proc_soft_dirty_probe(&works), 0);
        /* Report, do not assert: this host's kernel lacks CONFIG_MEM_SOFT_DIRTY, the VM kernels have it. */
        print_message("# soft-dirty tracking works on this kernel: %s\n", works ? "yes" : "no");
}

static uint64_t ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* Reports (never asserts) the cost of pagemap per page, in 512-entry reads as the scanner does. */
static void test_report_pagemap_cost_per_page(void **state) {
        const size_t pages = 16384;
        _cleanup_close_ int fd = -EBADF;
        uint64_t e[512], t0;
        uint8_t *p;

        p = mmap(NULL, pages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        (void) madvise(p, pages * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        for (size_t i = 0; i < pages; i++)
                p[i * PAGE_SIZE_BYTES] = 1;
        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        t0 = ns();
        for (int round = 0; round < 4; round++)
                for (size_t i = 0; i < pages; i += 512)
                        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p + i * PAGE_SIZE_BYTES,
                                                           512, e), 0);
        print_message("# pagemap: %.1f ns per present page\n", (double) (ns() - t0) / (4.0 * pages));
        munmap(p, pages * PAGE_SIZE_BYTES);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_plain_anonymous_mapping),
                cmocka_unit_test(test_parse_heap_stack_and_named_anon_are_anonymous),
                cmocka_unit_test(test_parse_file_shared_and_special_are_not_anonymous),
                cmocka_unit_test(test_parse_long_names_are_cut_and_marked),
                cmocka_unit_test(test_parse_names_are_escaped_and_cut_on_a_character_boundary),
                cmocka_unit_test(test_parse_malformed_lines_are_refused),
                cmocka_unit_test(test_read_own_maps_finds_new_private_anonymous_mapping),
                cmocka_unit_test(test_read_maps_of_missing_process_is_esrch),
                cmocka_unit_test(test_pagemap_tells_untouched_written_and_zero_pages_apart),
                cmocka_unit_test(test_pagemap_past_end_reads_as_not_present),
                cmocka_unit_test(test_soft_dirty_probe_answers),
                cmocka_unit_test(test_report_pagemap_cost_per_page),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
