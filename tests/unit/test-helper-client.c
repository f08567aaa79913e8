/* SPDX-License-Identifier: GPL-2.0-or-later */
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
                cmocka_unit_test(test_every_reason_has_a_name),
                cmocka_unit_test(test_free_accepts_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
