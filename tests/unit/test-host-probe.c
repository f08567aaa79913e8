/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host probe's judgement (host_probe_evaluate) fed with what each kind of
 * kernel shows, so that every path runs on any host; then the probe of this
 * host, held to what its answers imply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-probe.h"
#include "macro.h"
#include "proc-reader.h"
#include "scanner.h"

#define P PAGEMAP_PRESENT
#define X PAGEMAP_EXCLUSIVE
#define F PAGEMAP_FILE_OR_SHARED
#define S PAGEMAP_SWAPPED
#define D PAGEMAP_SOFT_DIRTY
#define ZERO_PFN UINT64_C(0x3b34)
#define HUGE_ZERO_PFN UINT64_C(0x148400)

/* Debian 12's 6.1 cloud kernel as root: soft-dirty, the zero page, THP, zram swap; no PAGEMAP_SCAN. */
static HostObservations kernel_6_1(void) {
        return (HostObservations) {
                .release = "6.1.0-57-cloud-amd64",
                .written = P | X | D | 0x1a2b3,
                .read_fault = { P | D | ZERO_PFN, P | D | ZERO_PFN },
                .fork_shared = P | D | 0x1f000,
                .shared_anon = P | F | D | 0x2c000,
                .swap_active = true,
                .paged_out_asked = true,
                .paged_out = S | D | 0x4200,
                .thp_enabled = "madvise",
                .huge_pages = 512,
                .thp = { P | X | D | 0x40000, P | X | D | 0x40001, P | X | D | 0x401ff },
                .huge_read_fault = { P | F | D | HUGE_ZERO_PFN, P | F | D | HUGE_ZERO_PFN },
                .scan_error = -ENOTTY,
                .soft_dirty_cleared = P | X | 0x1a2b3,
                .soft_dirty_rewritten = P | X | D | 0x1a2b3,
                .vm_read_content = true,
                .vm_read_partial_pages = 2,
        };
}

/*
 * A 6.18 kernel without CONFIG_MEM_SOFT_DIRTY whose read faults map fresh
 * pages (the host of issue 13): PAGEMAP_SCAN, no swap. PAGE_IS_WRITTEN is set
 * on every page, as it is without a userfaultfd.
 */
static HostObservations kernel_6_18_fresh_pages(void) {
        const uint64_t w = PROC_PAGE_IS_WRITTEN;

        return (HostObservations) {
                .release = "6.18.44-fc-v657",
                .written = P | X | 0x144a25,
                .read_fault = { P | X | 0x165b30, P | X | 0x1f930d },
                .fork_shared = P | 0x174d3c,
                .shared_anon = P | F | 0x121e06,
                .thp_enabled = "madvise",
                .huge_pages = 512,
                .thp = { P | X | 0x24e200, P | X | 0x24e201, P | X | 0x24e3ff },
                .huge_read_fault = { P | X | 0x250000, P | X | 0x252000 },
                .scan_known = 0x1ff,
                .scan_untouched = w,
                .scan_written = w | PROC_PAGE_IS_PRESENT,
                .scan_read_fault = w | PROC_PAGE_IS_PRESENT,
                .scan_shared_anon = w | PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_FILE,
                .scan_thp = w | PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_HUGE,
                .scan_huge_read_fault = w | PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_HUGE,
                .soft_dirty_cleared = P | X | 0x144a25,
                .soft_dirty_rewritten = P | X | 0x144a25,
                .vm_read_content = true,
                .vm_read_partial_pages = 2,
        };
}

/* This kind of host as it really is: 6.18 whose read faults map the zero page. */
static HostObservations kernel_6_18_zero_page(void) {
        HostObservations o = kernel_6_18_fresh_pages();

        o.read_fault[0] = o.read_fault[1] = P | ZERO_PFN;
        o.scan_read_fault = PROC_PAGE_IS_WRITTEN | PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_PFNZERO;
        o.huge_read_fault[0] = o.huge_read_fault[1] = P | F | HUGE_ZERO_PFN;
        o.scan_huge_read_fault |= PROC_PAGE_IS_PFNZERO;
        return o;
}

/* What a process without CAP_SYS_ADMIN sees: every PFN reads 0. */
static HostObservations without_pfns(HostObservations o) {
        uint64_t *e[] = { &o.untouched, &o.written, &o.read_fault[0], &o.read_fault[1], &o.fork_shared,
                          &o.shared_anon, &o.paged_out, &o.thp[0], &o.thp[1], &o.thp[2],
                          &o.huge_read_fault[0], &o.huge_read_fault[1], &o.soft_dirty_cleared,
                          &o.soft_dirty_rewritten };

        for (size_t i = 0; i < ELEMENTSOF(e); i++)
                if (*e[i] & P)
                        *e[i] &= ~PAGEMAP_PFN_MASK;
        return o;
}

static HostProbe evaluate(HostObservations o) {
        HostProbe p;

        host_probe_evaluate(&o, &p);
        return p;
}

static ScannerConfig config_of(const HostProbe *p) {
        ScannerConfig c = {};

        scanner_config_from_host(&c, p);
        return c;
}

#define assert_answer(p, f, a)                                                                          \
        do {                                                                                            \
                if ((p)->answer[f] != (a))                                                              \
                        fail_msg("%s: %s, expected %s (%s)", host_feature_to_string(f),                 \
                                 host_answer_to_string((p)->answer[f]), host_answer_to_string(a),       \
                                 (p)->seen[f]);                                                         \
        } while (0)

/* Every answer says what was seen, and every missing one what ksmd does instead; no PFN is shown. */
static void assert_explained(const HostProbe *p) {
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++) {
                assert_true(p->seen[f][0] != 0);
                assert_null(strstr(p->seen[f], "3b34"));
                assert_int_equal(host_probe_instead(p, f)[0] != 0, !host_probe_has(p, f));
        }
}

static void test_debian_6_1_has_everything_but_pagemap_scan(void **state) {
        HostProbe p = evaluate(kernel_6_1());
        ScannerConfig c = config_of(&p);

        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                assert_answer(&p, f, f == HOST_PAGEMAP_SCAN ? HOST_ANSWER_NO : HOST_ANSWER_YES);
        assert_string_equal(p.seen[HOST_PAGEMAP_SCAN], "no PAGEMAP_SCAN ioctl: Linux before 6.7");
        assert_true(p.zero_pfn == ZERO_PFN);
        assert_true(p.huge_zero_pfn == HUGE_ZERO_PFN);
        assert_explained(&p);
        assert_non_null(strstr(host_probe_instead(&p, HOST_PAGEMAP_SCAN), "by its PFN"));

        assert_true(c.soft_dirty);
        assert_false(c.pagemap_scan);
        assert_false(c.no_exclusive_bit);
        assert_false(c.no_shared_bit);
        assert_false(c.single_page_reads);
        assert_true(c.zero_pfn == ZERO_PFN && c.huge_zero_pfn == HUGE_ZERO_PFN && c.huge_pages == 512);
}

static void test_fresh_pages_on_read_faults_are_never_taken_for_the_zero_page(void **state) {
        HostProbe p = evaluate(kernel_6_18_fresh_pages());
        ScannerConfig c = config_of(&p);

        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_NO);
        assert_answer(&p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_NO);
        assert_true(p.zero_pfn == 0 && p.huge_zero_pfn == 0);
        assert_answer(&p, HOST_SOFT_DIRTY, HOST_ANSWER_NO);
        assert_string_equal(p.seen[HOST_SOFT_DIRTY],
                            "a write after 4 > clear_refs leaves bit 55 clear: no CONFIG_MEM_SOFT_DIRTY");
        assert_answer(&p, HOST_PAGEMAP_SCAN, HOST_ANSWER_YES);
        assert_answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED);
        assert_answer(&p, HOST_THP, HOST_ANSWER_YES);
        assert_answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_YES);
        assert_explained(&p);
        /* The zero pages the helper maps are still known, through PAGEMAP_SCAN. */
        assert_non_null(strstr(host_probe_instead(&p, HOST_ZERO_PAGE), "private zero-filled pages"));
        assert_non_null(strstr(host_probe_instead(&p, HOST_ZERO_PAGE), "PAGEMAP_SCAN"));
        assert_non_null(strstr(host_probe_instead(&p, HOST_SOFT_DIRTY), "every page is read again"));

        assert_false(c.soft_dirty);
        assert_true(c.pagemap_scan);
        assert_true(c.zero_pfn == 0 && c.huge_zero_pfn == 0);
}

static void test_fresh_pages_without_pagemap_scan_say_zero_pages_go_uncounted(void **state) {
        HostObservations o = kernel_6_18_fresh_pages();
        HostProbe p;

        o.scan_error = -ENOTTY;
        p = evaluate(o);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_NO);
        assert_answer(&p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO);
        assert_non_null(strstr(host_probe_instead(&p, HOST_ZERO_PAGE), "count as shared with other"));
        assert_false(config_of(&p).pagemap_scan);
        assert_explained(&p);
}

static void test_zero_page_pfn_is_learnt_only_from_one_shared_frame(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        /* Two read faults, two frames, neither exclusive: not the zero page. */
        o.read_fault[1] = P | 0x5555;
        p = evaluate(o);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_NO);
        assert_true(p.zero_pfn == 0);

        /* One read fault private: a fresh page, whatever the other shows. */
        o = kernel_6_1();
        o.read_fault[0] |= X;
        p = evaluate(o);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_NO);
        assert_true(p.zero_pfn == 0);
}

static void test_pagemap_scan_names_the_zero_page_when_pfns_are_hidden(void **state) {
        HostProbe p = evaluate(without_pfns(kernel_6_18_zero_page()));
        ScannerConfig c = config_of(&p);

        assert_answer(&p, HOST_PFN, HOST_ANSWER_NO);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_YES);
        assert_answer(&p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_YES);
        assert_answer(&p, HOST_THP, HOST_ANSWER_YES);      /* PAGE_IS_HUGE tells the huge page */
        assert_true(p.zero_pfn == 0);
        assert_non_null(strstr(host_probe_instead(&p, HOST_PFN), "through PAGEMAP_SCAN"));
        assert_true(c.pagemap_scan);
        assert_explained(&p);
}

static void test_hidden_pfns_without_pagemap_scan_leave_the_zero_page_untested(void **state) {
        HostProbe p = evaluate(without_pfns(kernel_6_1()));

        assert_answer(&p, HOST_PFN, HOST_ANSWER_NO);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_UNTESTED);
        assert_answer(&p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED);
        assert_answer(&p, HOST_THP, HOST_ANSWER_UNTESTED);
        assert_true(p.zero_pfn == 0 && p.huge_zero_pfn == 0);
        assert_non_null(strstr(host_probe_instead(&p, HOST_PFN), "count as shared with other processes"));
        assert_false(config_of(&p).pagemap_scan);
        assert_explained(&p);
}

static void test_pagemap_scan_is_not_used_when_it_contradicts_pagemap(void **state) {
        HostObservations o = kernel_6_18_zero_page();
        HostProbe p;

        /* The zero page by its PFN, but PAGEMAP_SCAN does not flag it. */
        o.scan_read_fault &= ~PROC_PAGE_IS_PFNZERO;
        p = evaluate(o);
        assert_answer(&p, HOST_ZERO_PAGE, HOST_ANSWER_YES);
        assert_answer(&p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO);

        /* An ioctl that knows no zero-page category. */
        o = kernel_6_18_zero_page();
        o.scan_known &= ~PROC_PAGE_IS_PFNZERO;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO);
        assert_non_null(strstr(p.seen[HOST_PAGEMAP_SCAN], "0x20"));

        /* Untouched memory reported present. */
        o = kernel_6_18_zero_page();
        o.scan_untouched |= PROC_PAGE_IS_PRESENT;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO);
        assert_false(config_of(&p).pagemap_scan);
}

static void test_soft_dirty_needs_a_clear_and_a_set(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        o.clear_refs_error = -EACCES;
        p = evaluate(o);
        assert_answer(&p, HOST_SOFT_DIRTY, HOST_ANSWER_NO);
        assert_non_null(strstr(p.seen[HOST_SOFT_DIRTY], "Permission denied"));

        o = kernel_6_1();
        o.soft_dirty_cleared |= D;
        p = evaluate(o);
        assert_answer(&p, HOST_SOFT_DIRTY, HOST_ANSWER_NO);
        assert_false(config_of(&p).soft_dirty);
}

static void test_exclusive_bit_must_tell_a_fork_shared_page(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        o.fork_shared |= X;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_NO);
        assert_true(config_of(&p).no_exclusive_bit);

        o = kernel_6_1();
        o.written &= ~X;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_NO);
        assert_non_null(strstr(host_probe_instead(&p, HOST_PAGEMAP_EXCLUSIVE), "helper"));
}

/* Bit 61 tells the helper's merged pages (not anonymous) from a fork's copy, where the kernel sets it. */
static void test_merged_pages_are_known_by_the_shared_bit_only_where_the_kernel_sets_it(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        o.shared_anon &= ~F;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SHARED, HOST_ANSWER_NO);
        assert_true(config_of(&p).no_shared_bit);
        assert_false(config_of(&p).no_exclusive_bit);
}

static void test_swap_is_asked_only_where_there_is_swap(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        o.swap_active = false;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED);
        o = kernel_6_1();
        o.paged_out = P | X | 0x4200;           /* the kernel kept it */
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED);
        o.paged_out = 0;                        /* gone without a trace */
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_NO);
        assert_string_equal(host_probe_instead(&p, HOST_PAGEMAP_SWAP),
                            "swapped-out pages count as not present");
}

static void test_thp_off_unallocated_or_shared_subpages(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        snprintf(o.thp_enabled, sizeof(o.thp_enabled), "never");
        p = evaluate(o);
        assert_answer(&p, HOST_THP, HOST_ANSWER_UNTESTED);
        assert_answer(&p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED);
        assert_false(config_of(&p).pagemap_scan);

        o = kernel_6_1();
        o.thp_enabled[0] = 0;
        o.huge_pages = 0;
        p = evaluate(o);
        assert_answer(&p, HOST_THP, HOST_ANSWER_UNTESTED);
        assert_non_null(strstr(p.seen[HOST_THP], "not built"));

        /* Small pages where a huge page was asked for. */
        o = kernel_6_1();
        o.thp[1] = P | X | 0x7777;
        p = evaluate(o);
        assert_answer(&p, HOST_THP, HOST_ANSWER_UNTESTED);
        assert_non_null(strstr(p.seen[HOST_THP], "no huge page was allocated"));

        o = kernel_6_1();
        for (size_t i = 0; i < 3; i++)
                o.thp[i] &= ~X;
        p = evaluate(o);
        assert_answer(&p, HOST_THP, HOST_ANSWER_NO);
        assert_non_null(strstr(host_probe_instead(&p, HOST_THP), "leaves them alone"));
}

static void test_process_vm_readv_batches_or_single_pages(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;

        /* A kernel that fails the whole batch at the unmapped page: one page per call. */
        o.vm_read_partial_pages = 0;
        p = evaluate(o);
        assert_answer(&p, HOST_PROCESS_VM_READV, HOST_ANSWER_NO);
        assert_true(p.pages_readable);
        assert_true(config_of(&p).single_page_reads);
        assert_string_equal(host_probe_instead(&p, HOST_PROCESS_VM_READV),
                            "pages are read one per process_vm_readv call");

        o = kernel_6_1();
        o.vm_read_error = -EPERM;
        o.vm_read_content = false;
        p = evaluate(o);
        assert_answer(&p, HOST_PROCESS_VM_READV, HOST_ANSWER_NO);
        assert_false(p.pages_readable);
        assert_false(config_of(&p).single_page_reads);
        assert_non_null(strstr(host_probe_instead(&p, HOST_PROCESS_VM_READV), "no page can be read"));
}

static void test_no_pagemap_or_no_child_assume_nothing(void **state) {
        HostObservations o = kernel_6_1();
        HostProbe p;
        ScannerConfig c;

        o.pagemap_error = -ENOENT;
        p = evaluate(o);
        assert_answer(&p, HOST_PAGEMAP, HOST_ANSWER_NO);
        assert_answer(&p, HOST_PROCESS_VM_READV, HOST_ANSWER_YES);
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                if (f != HOST_PAGEMAP && f != HOST_PROCESS_VM_READV)
                        assert_answer(&p, f, HOST_ANSWER_UNTESTED);
        assert_explained(&p);

        o = kernel_6_1();
        o.child_error = -EAGAIN;
        p = evaluate(o);
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                assert_answer(&p, f, HOST_ANSWER_UNTESTED);
        assert_non_null(strstr(p.seen[HOST_SOFT_DIRTY], "no probe child"));
        c = config_of(&p);
        assert_false(c.soft_dirty);
        assert_false(c.pagemap_scan);
        assert_true(c.no_exclusive_bit);
        assert_true(c.no_shared_bit);
        assert_true(c.zero_pfn == 0);
        assert_explained(&p);
}

static void test_names_are_distinct(void **state) {
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++) {
                assert_string_not_equal(host_feature_to_string(f), "invalid");
                for (HostFeature g = f + 1; g < _HOST_FEATURE_MAX; g++)
                        assert_string_not_equal(host_feature_to_string(f), host_feature_to_string(g));
        }
        assert_string_equal(host_feature_to_string(_HOST_FEATURE_MAX), "invalid");
        assert_string_equal(host_answer_to_string(HOST_ANSWER_UNTESTED), "untested");
}

/* The probe of this host: whatever it answers, the answers hang together with what the test sees. */
static void test_this_host_is_probed(void **state) {
        struct utsname u;
        HostProbe p;
        uint64_t zero_pfn = 0, huge_zero_pfn = 0;
        int r;

        assert_int_equal(host_probe_run(&p), 0);
        assert_int_equal(uname(&u), 0);
        assert_string_equal(p.release, u.release);
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                print_message("# %-18s %-8s %s%s%s\n", host_feature_to_string(f),
                              host_answer_to_string(p.answer[f]), p.seen[f],
                              host_probe_has(&p, f) ? "" : ": ", host_probe_instead(&p, f));
        assert_explained(&p);
        /* This process can fork, read its child's pagemap and memory (the unit suite runs as root). */
        assert_answer(&p, HOST_PAGEMAP, HOST_ANSWER_YES);
        assert_answer(&p, HOST_PROCESS_VM_READV, HOST_ANSWER_YES);
        assert_answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_YES);
        assert_int_equal(p.zero_pfn != 0,
                         host_probe_has(&p, HOST_ZERO_PAGE) && host_probe_has(&p, HOST_PFN));
        r = host_probe_zero_pfns(&zero_pfn, &huge_zero_pfn);
        if (p.zero_pfn != 0) {
                assert_int_equal(r, 0);
                assert_true(zero_pfn == p.zero_pfn);
                /* Learnt in this process, the same frames as the probe child's. */
                if (p.huge_zero_pfn != 0)
                        assert_true(huge_zero_pfn == p.huge_zero_pfn);
        } else
                assert_int_equal(r, -ENODATA);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_debian_6_1_has_everything_but_pagemap_scan),
                cmocka_unit_test(test_fresh_pages_on_read_faults_are_never_taken_for_the_zero_page),
                cmocka_unit_test(test_fresh_pages_without_pagemap_scan_say_zero_pages_go_uncounted),
                cmocka_unit_test(test_zero_page_pfn_is_learnt_only_from_one_shared_frame),
                cmocka_unit_test(test_pagemap_scan_names_the_zero_page_when_pfns_are_hidden),
                cmocka_unit_test(test_hidden_pfns_without_pagemap_scan_leave_the_zero_page_untested),
                cmocka_unit_test(test_pagemap_scan_is_not_used_when_it_contradicts_pagemap),
                cmocka_unit_test(test_soft_dirty_needs_a_clear_and_a_set),
                cmocka_unit_test(test_exclusive_bit_must_tell_a_fork_shared_page),
                cmocka_unit_test(
                        test_merged_pages_are_known_by_the_shared_bit_only_where_the_kernel_sets_it),
                cmocka_unit_test(test_swap_is_asked_only_where_there_is_swap),
                cmocka_unit_test(test_thp_off_unallocated_or_shared_subpages),
                cmocka_unit_test(test_process_vm_readv_batches_or_single_pages),
                cmocka_unit_test(test_no_pagemap_or_no_child_assume_nothing),
                cmocka_unit_test(test_names_are_distinct),
                cmocka_unit_test(test_this_host_is_probed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
