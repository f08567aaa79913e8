/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "parse-util.h"

static void test_boolean_accepts_the_usual_spellings(void **state) {
        bool b;

        assert_int_equal(parse_boolean("yes", &b), 0);
        assert_true(b);
        assert_int_equal(parse_boolean("On", &b), 0);
        assert_true(b);
        assert_int_equal(parse_boolean("0", &b), 0);
        assert_false(b);
        assert_int_equal(parse_boolean("FALSE", &b), 0);
        assert_false(b);
        b = true;
        assert_int_equal(parse_boolean("maybe", &b), -EINVAL);
        assert_int_equal(parse_boolean("", &b), -EINVAL);
        assert_true(b); /* untouched on failure */
}

static void test_uint64_range_is_strict(void **state) {
        uint64_t v = 7;

        assert_int_equal(parse_uint64_range("42", 1, 100, &v), 0);
        assert_int_equal(v, 42);
        assert_int_equal(parse_uint64_range("0", 1, 100, &v), -ERANGE);
        assert_int_equal(parse_uint64_range("101", 1, 100, &v), -ERANGE);
        assert_int_equal(parse_uint64_range("-1", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_uint64_range(" 1", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_uint64_range("1x", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_uint64_range("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(v, 42);
}

static void test_uint64_auto_takes_decimal_and_hex(void **state) {
        uint64_t v = 7;

        assert_int_equal(parse_uint64_auto("4096", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_uint64_auto("0x7f0000001000", &v), 0);
        assert_int_equal(v, UINT64_C(0x7f0000001000));
        assert_int_equal(parse_uint64_auto("", &v), -EINVAL);
        assert_int_equal(parse_uint64_auto(NULL, &v), -EINVAL);
        assert_int_equal(parse_uint64_auto("-1", &v), -EINVAL);
        assert_int_equal(parse_uint64_auto("12k", &v), -EINVAL);
        assert_int_equal(parse_uint64_auto("0x", &v), -EINVAL);
        assert_int_equal(parse_uint64_auto("99999999999999999999999", &v), -EINVAL);
        assert_int_equal(v, UINT64_C(0x7f0000001000)); /* untouched on failure */
}

static void test_time_units(void **state) {
        uint64_t v = 0;

        assert_int_equal(parse_time_usec("20ms", &v), 0);
        assert_int_equal(v, 20000);
        assert_int_equal(parse_time_usec("1.5s", &v), 0);
        assert_int_equal(v, 1500000);
        assert_int_equal(parse_time_usec("5min", &v), 0);
        assert_int_equal(v, 300 * USEC_PER_SEC);
        assert_int_equal(parse_time_usec("2", &v), 0);
        assert_int_equal(v, 2 * USEC_PER_SEC);
        assert_int_equal(parse_time_usec("250us", &v), 0);
        assert_int_equal(v, 250);
        assert_int_equal(parse_time_usec("1d", &v), 0);
        assert_int_equal(v, USEC_PER_DAY);
        assert_int_equal(parse_time_usec("5 min", &v), -EINVAL);
        assert_int_equal(parse_time_usec("fast", &v), -EINVAL);
        assert_int_equal(parse_time_usec("1.2.3s", &v), -EINVAL);
        assert_int_equal(parse_time_usec("-1s", &v), -EINVAL);
        assert_int_equal(parse_time_usec("10years", &v), -EINVAL);
        assert_int_equal(v, USEC_PER_DAY);
}

static void test_size_units(void **state) {
        uint64_t v = 0;

        assert_int_equal(parse_size_bytes("256M", &v), 0);
        assert_int_equal(v, UINT64_C(256) << 20);
        assert_int_equal(parse_size_bytes("1.5G", &v), 0);
        assert_int_equal(v, UINT64_C(3) << 29);
        assert_int_equal(parse_size_bytes("4096", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_size_bytes("1T", &v), 0);
        assert_int_equal(v, UINT64_C(1) << 40);
        assert_int_equal(parse_size_bytes("9999999999T", &v), -ERANGE);
        assert_int_equal(parse_size_bytes("12Q", &v), -EINVAL);
        assert_int_equal(parse_size_bytes("M", &v), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_boolean_accepts_the_usual_spellings),
                cmocka_unit_test(test_uint64_range_is_strict),
                cmocka_unit_test(test_uint64_auto_takes_decimal_and_hex),
                cmocka_unit_test(test_time_units),
                cmocka_unit_test(test_size_units),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
