/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helper-client.h"

/* This host cannot load modules, so the family is never registered here. */
static void test_new_without_module_returns_enoent(void **state) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;

        assert_int_equal(helper_client_new(&c), -ENOENT);
        assert_null(c);
}

static void test_every_result_has_a_name(void **state) {
        for (uint32_t r = 0; r < __KSMD_HELPER_RESULT_MAX; r++)
                assert_string_not_equal(helper_result_to_string(r), "unknown");
        assert_string_equal(helper_result_to_string(__KSMD_HELPER_RESULT_MAX), "unknown");
        assert_string_equal(helper_result_to_string(UINT32_MAX), "unknown");
}

/* The names are D-Bus statistics keys (merge_<name>) and documented: they never change. */
static void test_pidfd_results_have_their_documented_names(void **state) {
        assert_string_equal(helper_result_to_string(KSMD_HELPER_RESULT_NO_PROCESS), "no-process");
        assert_string_equal(helper_result_to_string(KSMD_HELPER_RESULT_BAD_PIDFD), "bad-pidfd");
        assert_string_equal(helper_result_to_string(KSMD_HELPER_RESULT_NO_ACCESS), "no-access");
}

/* A negative pidfd is refused before anything is sent (so no client is needed to see it). */
static void test_negative_pidfds_are_refused_before_sending(void **state) {
        HelperMergeItem bad_target = { .pidfd = -1, .addr = 0x1000, .handle = 7 };
        HelperMergeItem bad_source = { .pidfd = 3, .addr = 0x1000, .src_pidfd = -1, .src_addr = 0x2000 };
        HelperMergeItem by_handle = { .pidfd = 3, .addr = 0x1000, .src_pidfd = -1, .handle = 7 };
        HelperMergeItem two[] = { by_handle, bad_source };
        HelperMergeResult res[2];
        uint64_t count;

        assert_int_equal(helper_client_merge(NULL, false, &bad_target, 1, res), -EBADF);
        assert_int_equal(helper_client_merge(NULL, true, &bad_target, 1, res), -EBADF);
        assert_int_equal(helper_client_merge(NULL, false, &bad_source, 1, res), -EBADF);
        /* A handle item needs no source pidfd; the bad one after it still stops the batch. */
        assert_int_equal(helper_client_merge(NULL, false, two, 2, res), -EBADF);
        assert_int_equal(helper_client_unmerge(NULL, -1, 0x1000, 0x1000, &count), -EBADF);
}

static void test_every_reason_has_a_name(void **state) {
        for (uint32_t r = 0; r < __KSMD_HELPER_REASON_MAX; r++)
                assert_string_not_equal(helper_reason_to_string(r), "unknown");
        assert_string_equal(helper_reason_to_string(__KSMD_HELPER_REASON_MAX), "unknown");
}

static void test_free_accepts_null(void **state) {
        assert_null(helper_client_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_without_module_returns_enoent),
                cmocka_unit_test(test_every_result_has_a_name),
                cmocka_unit_test(test_pidfd_results_have_their_documented_names),
                cmocka_unit_test(test_negative_pidfds_are_refused_before_sending),
                cmocka_unit_test(test_every_reason_has_a_name),
                cmocka_unit_test(test_free_accepts_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
