/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The COW guard's decision (cow-guard.h) and CowReserve='s values (settings.h),
 * and the memory figures it reads (proc-process.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cow-guard.h"
#include "proc-process.h"
#include "settings.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static CowScope host(uint64_t total, uint64_t available, uint64_t debt) {
        return (CowScope) { .total_bytes = total, .available_bytes = available, .debt_bytes = debt };
}

static void test_off_reports_debt_and_headroom_and_never_holds(void **state) {
        CowStatus st = {};
        CowScope s = host(4 * GIB, 100 * MIB, 300 * MIB);

        assert_int_equal(cow_guard_evaluate(&st, 0, &s, 1), 0);
        assert_false(st.holding);
        assert_int_equal(st.budget_bytes, UINT64_MAX);
        assert_int_equal(st.debt_bytes, 300 * MIB);
        assert_int_equal(st.available_bytes, 100 * MIB);
        assert_int_equal(st.headroom_bytes, -(int64_t) (200 * MIB));
        assert_int_equal(st.reserve_bytes, 0);
        assert_int_equal(st.trips, 0);
}

static void test_holds_below_the_reserve_and_lets_go_above_it_with_hysteresis(void **state) {
        CowStatus st = {};
        CowScope s = host(4 * GIB, 1 * GIB, 200 * MIB);       /* headroom 824 MiB */
        uint64_t reserve = 512 * MIB;

        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), 0);
        assert_false(st.holding);
        /* New merges may take what is above the reserve until the guard looks again. */
        assert_int_equal(st.budget_bytes, 312 * MIB);
        /* Something took memory: headroom 500 MiB < 512 MiB. */
        s.available_bytes = 700 * MIB;
        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), 1);
        assert_true(st.holding);
        assert_int_equal(st.budget_bytes, 0);
        assert_int_equal(st.trips, 1);
        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), 0);
        /* Back just above the reserve: not yet (a quarter of it more is needed). */
        s.available_bytes = 800 * MIB;
        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), 0);
        assert_true(st.holding);
        s.available_bytes = 200 * MIB + 512 * MIB + 128 * MIB;
        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), -1);
        assert_false(st.holding);
        assert_int_equal(st.trips, 1);
        /* CowReserve=off while holding lets go at once. */
        s.available_bytes = 100 * MIB;
        assert_int_equal(cow_guard_evaluate(&st, reserve, &s, 1), 1);
        assert_int_equal(cow_guard_evaluate(&st, 0, &s, 1), -1);
        assert_int_equal(st.trips, 2);
}

static void test_a_percentage_is_of_each_scopes_memory_and_the_tightest_cgroup_binds(void **state) {
        CowStatus st = {};
        uint64_t ten_percent = SETTING_PERCENT_BIT | 1000;
        CowScope s[3] = {
                host(8 * GIB, 4 * GIB, 1 * GIB),               /* reserve 819 MiB, headroom 3 GiB */
                { .cgroup = "/machine.slice", .total_bytes = 4 * GIB, .available_bytes = 2 * GIB,
                  .debt_bytes = 1 * GIB },                      /* reserve 410 MiB, headroom 1 GiB */
                { .cgroup = "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope", .total_bytes = 1 * GIB,
                  .available_bytes = 600 * MIB, .debt_bytes = 512 * MIB }, /* reserve 102 MiB, headroom 88 */
        };

        assert_int_equal(cow_guard_evaluate(&st, ten_percent, s, 3), 1);
        assert_string_equal(st.cgroup, "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope");
        assert_int_equal(st.headroom_bytes, 88 * MIB);
        assert_int_equal(st.reserve_bytes, GIB / 10);
        assert_int_equal(st.available_bytes, 600 * MIB);
        assert_int_equal(st.debt_bytes, 1 * GIB);     /* the host's: every region's */
        /* The guest's cgroup got room: nothing holds; it is still the tightest. */
        s[2].available_bytes = 1 * GIB;
        assert_int_equal(cow_guard_evaluate(&st, ten_percent, s, 3), -1);
        assert_int_equal(st.headroom_bytes, 512 * MIB);
        /* Its parent's limit is the tighter now. */
        s[1].available_bytes = 1 * GIB + 300 * MIB;
        assert_int_equal(cow_guard_evaluate(&st, ten_percent, s, 3), 1);
        assert_string_equal(st.cgroup, "/machine.slice");
        /* Without figures it does not hold. */
        assert_int_equal(cow_guard_evaluate(&st, ten_percent, s, 0), -1);
        assert_int_equal(st.trips, 2);
}

static void parse_reserve(const char *text, int want_r, uint64_t want) {
        const Setting *t = setting_find("CowReserve");
        _cleanup_free_ char *reason = NULL;
        Settings s = {};
        char buf[64];
        int r;

        assert_int_equal(settings_init(&s), 0);
        r = setting_parse(t, &s, text, &reason);
        if (r >= 0)
                r = setting_check_number(t, setting_get_number(t, &s), &reason);
        assert_int_equal(r < 0, want_r < 0);
        if (r >= 0) {
                assert_int_equal(setting_get_number(t, &s), want);
                /* Written back as the file would write it. */
                assert_string_equal(setting_format_number(t, want, buf, sizeof(buf)), text);
        } else
                assert_non_null(strstr(reason, "a percentage from 0.01% to 90%"));
        settings_done(&s);
}

static void test_cow_reserve_takes_a_size_or_a_percentage(void **state) {
        const Setting *t = setting_find("CowReserve");
        char buf[128];

        assert_non_null(t);
        assert_string_equal(setting_property_type(t), "s");
        assert_string_equal(setting_format_default(t, buf, sizeof(buf)), "off");
        parse_reserve("off", 0, 0);
        parse_reserve("512M", 0, 512 * MIB);
        parse_reserve("10%", 0, SETTING_PERCENT_BIT | 1000);
        parse_reserve("2.5%", 0, SETTING_PERCENT_BIT | 250);
        parse_reserve("0.01%", 0, SETTING_PERCENT_BIT | 1);
        parse_reserve("95%", -1, 0);
        parse_reserve("0%", -1, 0);
        parse_reserve("2T", -1, 0);
        parse_reserve("ten", -1, 0);
        parse_reserve("1.234%", -1, 0);
        assert_int_equal(setting_size_or_percent_bytes(SETTING_PERCENT_BIT | 1000, 10 * GIB), 1 * GIB);
        assert_int_equal(setting_size_or_percent_bytes(512 * MIB, 10 * GIB), 512 * MIB);
}

static void test_meminfo_and_the_hosts_figures(void **state) {
        uint64_t total, available;

        assert_int_equal(proc_parse_meminfo("MemTotal:        8000000 kB\nMemFree: 1 kB\n"
                                            "MemAvailable:    4000000 kB\n\nBuffers: 1 kB\n",
                                            &total, &available), 0);
        assert_int_equal(total, UINT64_C(8000000) * 1024);
        assert_int_equal(available, UINT64_C(4000000) * 1024);
        assert_int_equal(proc_parse_meminfo("MemTotal: 1 kB\n", &total, &available), -ENODATA);
        /* This host's. */
        assert_int_equal(proc_read_meminfo(&total, &available), 0);
        assert_true(total > 0 && available <= total);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_off_reports_debt_and_headroom_and_never_holds),
                cmocka_unit_test(test_holds_below_the_reserve_and_lets_go_above_it_with_hysteresis),
                cmocka_unit_test(test_a_percentage_is_of_each_scopes_memory_and_the_tightest_cgroup_binds),
                cmocka_unit_test(test_cow_reserve_takes_a_size_or_a_percentage),
                cmocka_unit_test(test_meminfo_and_the_hosts_figures),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
