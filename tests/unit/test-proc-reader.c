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

#include "host-probe.h"
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

/* What this kernel does, asked once (host-probe.h): the tests below hold it to what they see. */
static HostProbe host;

static int probe_host(void **state) {
        assert_int_equal(host_probe_run(&host), 0);
        print_message("# host kernel %s: zero page %s, PFNs %s, soft-dirty %s, PAGEMAP_SCAN %s\n",
                      host.release,
                      host_answer_to_string(host.answer[HOST_ZERO_PAGE]),
                      host_answer_to_string(host.answer[HOST_PFN]),
                      host_answer_to_string(host.answer[HOST_SOFT_DIRTY]),
                      host_answer_to_string(host.answer[HOST_PAGEMAP_SCAN]));
        return 0;
}

static bool all_zero(const volatile uint8_t *p) {
        for (size_t i = 0; i < PAGE_SIZE_BYTES; i++)
                if (p[i] != 0)
                        return false;
        return true;
}

/*
 * Untouched, written and only-read pages, on either kind of kernel: one whose
 * read faults map the shared zero page (the probe learnt its PFN, or PFNs are
 * hidden and PAGEMAP_SCAN flags it) and one whose read faults map a fresh
 * private page, which must read zero and be present and exclusive.
 */
static void test_pagemap_tells_untouched_written_and_read_only_pages_apart(void **state) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t e[3], scan[3];
        volatile uint8_t *p;
        int r;

        p = mmap(NULL, 3 * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        madvise((void *) p, 3 * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        p[PAGE_SIZE_BYTES] = 1;                          /* page 1: private, written */
        (void) p[2 * PAGE_SIZE_BYTES];                   /* page 2: only read */

        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, 3, e), 0);
        assert_false(e[0] & PAGEMAP_PRESENT);
        assert_true(e[1] & PAGEMAP_PRESENT);
        assert_true(e[1] & PAGEMAP_EXCLUSIVE);
        assert_false(e[1] & PAGEMAP_FILE_OR_SHARED);
        assert_true(e[2] & PAGEMAP_PRESENT);
        assert_false(e[2] & PAGEMAP_FILE_OR_SHARED);
        assert_true(all_zero(p + 2 * PAGE_SIZE_BYTES));

        memcpy(scan, e, sizeof(scan));
        r = proc_pagemap_mark_zero_pages(fd, (uintptr_t) p, 3, scan);
        assert_int_equal(r, host_probe_has(&host, HOST_PAGEMAP_SCAN) ? 0 : -ENOTTY);

        switch (host.answer[HOST_ZERO_PAGE]) {
        case HOST_ANSWER_YES:
                assert_false(e[2] & PAGEMAP_EXCLUSIVE);
                if (host_probe_has(&host, HOST_PFN)) {
                        assert_true(host.zero_pfn != 0);
                        assert_true((e[2] & PAGEMAP_PFN_MASK) == host.zero_pfn);
                        assert_true((e[1] & PAGEMAP_PFN_MASK) != host.zero_pfn);
                } else {
                        assert_true(host.zero_pfn == 0);
                        assert_true(host_probe_has(&host, HOST_PAGEMAP_SCAN));
                }
                if (r == 0)
                        assert_true(scan[2] & PAGEMAP_ZERO_PAGE);
                print_message("# a read fault maps the zero page%s\n",
                              host_probe_has(&host, HOST_PFN) ? ", at the PFN the probe learnt" :
                                                                " (PAGEMAP_SCAN says so; PFNs hidden)");
                break;
        case HOST_ANSWER_NO:
                /* A fresh page: private, zero-filled, and never taken for the zero page. */
                assert_true(e[2] & PAGEMAP_EXCLUSIVE);
                assert_true(host.zero_pfn == 0);
                if (host_probe_has(&host, HOST_PFN))
                        assert_true((e[2] & PAGEMAP_PFN_MASK) != (e[1] & PAGEMAP_PFN_MASK));
                if (r == 0)
                        assert_false(scan[2] & PAGEMAP_ZERO_PAGE);
                print_message("# a read fault maps a fresh private page "
                              "(present, exclusive, zero-filled)\n");
                break;
        default:
                /* Only PFNs hidden without PAGEMAP_SCAN leave the probe unsure. */
                assert_false(e[2] & PAGEMAP_EXCLUSIVE);
                assert_false(host_probe_has(&host, HOST_PFN));
                assert_false(host_probe_has(&host, HOST_PAGEMAP_SCAN));
                assert_true(host.zero_pfn == 0);
                print_message("# a read fault maps a shared page the probe cannot name (PFNs hidden)\n");
        }
        munmap((void *) p, 3 * PAGE_SIZE_BYTES);
}

/*
 * PAGEMAP_SCAN's runs say what pagemap says of the same pages, and
 * proc_pagemap_mark_zero_pages() marks exactly the pages only read, where
 * read faults map the zero page; on a kernel without the ioctl, both say so.
 */
static void test_pagemap_scan_agrees_with_pagemap_and_marks_zero_pages(void **state) {
        const size_t n = 64;
        _cleanup_close_ int fd = -EBADF;
        uint64_t plain[64], marked[64], walk_end;
        ProcPageRun runs[64];
        volatile uint8_t *p, *shared;
        size_t n_runs;
        int r;

        p = mmap(NULL, n * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        madvise((void *) p, n * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        /* Runs of each kind: written, untouched, only read, and a hole in the middle. */
        for (size_t i = 0; i < n; i++)
                if (i % 7 < 3)
                        p[i * PAGE_SIZE_BYTES] = (uint8_t) i;
                else if (i % 7 == 5)
                        (void) p[i * PAGE_SIZE_BYTES];
        assert_int_equal(munmap((void *) (p + 30 * PAGE_SIZE_BYTES), 4 * PAGE_SIZE_BYTES), 0);
        shared = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(shared != MAP_FAILED);
        shared[0] = 1;

        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, n, plain), 0);
        memcpy(marked, plain, sizeof(marked));
        r = proc_pagemap_mark_zero_pages(fd, (uintptr_t) p, n, marked);
        if (!host_probe_has(&host, HOST_PAGEMAP_SCAN)) {
                assert_int_equal(r, -ENOTTY);
                print_message("# no PAGEMAP_SCAN on %s: the zero page is known by its PFN only\n",
                              host.release);
                goto done;
        }
        assert_int_equal(r, 0);
        for (size_t i = 0; i < n; i++) {
                bool only_read = i % 7 == 5 && (i < 30 || i >= 34);

                assert_int_equal(marked[i] & ~PAGEMAP_ZERO_PAGE, plain[i]);
                assert_int_equal(!!(marked[i] & PAGEMAP_ZERO_PAGE),
                                 only_read && host.answer[HOST_ZERO_PAGE] == HOST_ANSWER_YES);
        }

        /* Every page, in runs: present exactly where pagemap says so. */
        assert_int_equal(proc_pagemap_scan(fd, (uintptr_t) p, (uintptr_t) p + n * PAGE_SIZE_BYTES, 0,
                                           PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_FILE, runs, ELEMENTSOF(runs),
                                           &n_runs, &walk_end), 0);
        assert_true(walk_end == (uintptr_t) p + n * PAGE_SIZE_BYTES);
        for (size_t j = 0; j < n_runs; j++)
                for (uint64_t a = runs[j].start; a < runs[j].end; a += PAGE_SIZE_BYTES) {
                        size_t i = (a - (uintptr_t) p) / PAGE_SIZE_BYTES;

                        assert_int_equal(!!(runs[j].categories & PROC_PAGE_IS_PRESENT),
                                         !!(plain[i] & PAGEMAP_PRESENT));
                        assert_false(runs[j].categories & PROC_PAGE_IS_FILE);
                }
        assert_int_equal(proc_pagemap_scan(fd, (uintptr_t) shared, (uintptr_t) shared + PAGE_SIZE_BYTES, 0,
                                           PROC_PAGE_IS_FILE, runs, 1, &n_runs, &walk_end), 0);
        assert_int_equal(n_runs, 1);
        assert_true(runs[0].categories & PROC_PAGE_IS_FILE);
        assert_int_equal(proc_pagemap_mark_zero_pages(fd, 123, 1, marked), -EINVAL);
done:
        munmap((void *) p, n * PAGE_SIZE_BYTES);
        munmap((void *) shared, PAGE_SIZE_BYTES);
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

/* Bit 55 follows a write after "4" > clear_refs exactly when the probe says soft-dirty works. */
static void test_soft_dirty_follows_writes_as_the_probe_says(void **state) {
        _cleanup_close_ int fd = -EBADF;
        volatile uint8_t *p;
        uint64_t cleared, written;

        p = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        p[0] = 1;
        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        assert_int_equal(proc_clear_soft_dirty(getpid()), 0);
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, 1, &cleared), 0);
        p[0] = 2;
        assert_int_equal(proc_pagemap_read(fd, (uintptr_t) p, 1, &written), 0);
        assert_false(cleared & PAGEMAP_SOFT_DIRTY);
        assert_int_equal(!!(written & PAGEMAP_SOFT_DIRTY), host_probe_has(&host, HOST_SOFT_DIRTY));
        print_message("# soft-dirty on %s: %s\n", host.release,
                      host_probe_has(&host, HOST_SOFT_DIRTY) ?
                              "a write sets bit 55 again" :
                              "clear_refs 4 is accepted, writes leave bit 55 clear");
        munmap((void *) p, PAGE_SIZE_BYTES);
}

static uint64_t ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

typedef int (*PagemapReader)(int fd, uint64_t addr, size_t n_pages, uint64_t *entries);

/*
 * ns per page of reading the entries of pages pages at p in 512-entry reads,
 * as the scanner does: the fastest of 8 rounds, so that a busy machine
 * disturbs it less.
 */
static double pagemap_cost(int fd, const uint8_t *p, size_t pages, PagemapReader reader) {
        uint64_t e[512], best = UINT64_MAX;

        for (int round = 0; round < 8; round++) {
                uint64_t t0 = ns();

                for (size_t i = 0; i < pages; i += 512)
                        assert_int_equal(reader(fd, (uintptr_t) p + i * PAGE_SIZE_BYTES, 512, e), 0);
                best = MIN(best, ns() - t0);
        }
        return (double) best / (double) pages;
}

static int read_and_mark(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        int r = proc_pagemap_read(fd, addr, n_pages, entries);

        return r < 0 ? r : proc_pagemap_mark_zero_pages(fd, addr, n_pages, entries);
}

/* What reading pagemap through PAGEMAP_SCAN instead would cost at least: the runs. */
static int scan_runs(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        ProcPageRun runs[64];
        uint64_t walk_end, at = addr, end = addr + n_pages * PAGE_SIZE_BYTES;
        size_t n;
        int r;

        while (at < end) {
                r = proc_pagemap_scan(fd, at, end, PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_SWAPPED,
                                      PROC_PAGE_SCAN_NEEDED, runs, ELEMENTSOF(runs), &n, &walk_end);
                if (r < 0)
                        return r;
                at = walk_end;
        }
        return 0;
}

/*
 * Reports (never asserts) the cost of pagemap per page, in 512-entry reads as
 * the scanner does, for memory written, never touched and only read; with
 * PAGEMAP_SCAN too where the kernel has it.
 */
static void test_report_pagemap_cost_per_page(void **state) {
        const size_t pages = 16384;
        static const char *const kinds[] = { "written", "untouched", "only read", "every other written" };
        _cleanup_close_ int fd = -EBADF;
        uint8_t *p;

        p = mmap(NULL, pages * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        (void) madvise(p, pages * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        assert_int_equal(proc_pagemap_open(getpid(), &fd), 0);
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                assert_int_equal(madvise(p, pages * PAGE_SIZE_BYTES, MADV_DONTNEED), 0);
                for (size_t i = 0; k != 1 && i < pages; i++)
                        if (k == 0 || (k == 3 && i % 2 == 0))
                                p[i * PAGE_SIZE_BYTES] = 1;
                        else if (k == 2)
                                (void) *(volatile uint8_t *) (p + i * PAGE_SIZE_BYTES);
                print_message("# pagemap, %s pages: %.1f ns per page read", kinds[k],
                              pagemap_cost(fd, p, pages, proc_pagemap_read));
                if (host_probe_has(&host, HOST_PAGEMAP_SCAN))
                        print_message("; %.1f ns read and zero pages marked with PAGEMAP_SCAN; %.1f ns "
                                      "for PAGEMAP_SCAN's runs alone",
                                      pagemap_cost(fd, p, pages, read_and_mark),
                                      pagemap_cost(fd, p, pages, scan_runs));
                print_message("\n");
        }
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
                cmocka_unit_test(test_pagemap_tells_untouched_written_and_read_only_pages_apart),
                cmocka_unit_test(test_pagemap_scan_agrees_with_pagemap_and_marks_zero_pages),
                cmocka_unit_test(test_pagemap_past_end_reads_as_not_present),
                cmocka_unit_test(test_soft_dirty_follows_writes_as_the_probe_says),
                cmocka_unit_test(test_report_pagemap_cost_per_page),
        };

        return cmocka_run_group_tests(tests, probe_host, NULL);
}
