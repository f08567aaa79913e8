/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

static void test_counters_add_every_field(void **state) {
        ScanCounters a, b;

        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        b.pages_scanned = 1;
        b.pages_sharing = 2;
        b.pages_zero = 3;
        b.pages_shared = 4;
        scan_counters_add(&a, &b);
        scan_counters_add(&a, &b);
        assert_int_equal(a.pages_scanned, 2);
        assert_int_equal(a.pages_sharing, 4);
        assert_int_equal(a.pages_zero, 6);
        assert_int_equal(a.pages_shared, 8);
        assert_int_equal(scan_counters_saving_pages(&a), 10);
}

static void test_saving_is_the_last_scans_sharing_and_zero(void **state) {
        Stats s = {};

        s.last.pages_sharing = 10;
        s.last.pages_zero = 5;
        assert_int_equal(stats_saving_bytes(&s), 15 * 4096);
        /* Live: the daemon's own count, not the helper's since-load total. */
        s.live = true;
        s.helper_bytes_saved = 8192;
        assert_int_equal(stats_saving_bytes(&s), 15 * 4096);
}

static void test_status_line_says_estimate_mode_and_progress(void **state) {
        Stats s = {};
        char buf[256];

        stats_format_status(&s, true, false, 0, buf, sizeof(buf));
        assert_non_null(strstr(buf, "starting the first scan"));

        s.current_scan_pages = 50;
        stats_format_status(&s, true, false, 200, buf, sizeof(buf));
        assert_non_null(strstr(buf, "estimate mode"));
        assert_non_null(strstr(buf, "nothing is merged"));
        assert_non_null(strstr(buf, "25%"));

        s.full_scans = 2;
        s.last_full_scan_usec = 1500000;
        s.last.pages_sharing = 256;
        stats_format_status(&s, true, true, 200, buf, sizeof(buf));
        assert_non_null(strstr(buf, "merging would save 1.0 MiB (256 pages) after 2 scans"));
        assert_non_null(strstr(buf, "1.5 s"));
        assert_non_null(strstr(buf, "paused"));
        /* Mid-scan, only the regions reached so far are attached:
         * progress counts against the last full scan. */
        s.last.pages_scanned = 1000;
        s.current_scan_pages = 150;
        stats_format_status(&s, true, false, 200, buf, sizeof(buf));
        assert_non_null(strstr(buf, "scanning 15%"));
        s.current_scan_pages = 50;

        s.live = true;
        s.last.pages_sharing = 500;
        s.last.pages_zero = 12;
        stats_format_status(&s, false, false, 200, buf, sizeof(buf));
        assert_non_null(strstr(buf, "saving 2.0 MiB (512 pages)"));
        /* After a full scan that found nothing new: when the next one starts. */
        s.current_scan_pages = 0;
        s.rest_usec = 10 * 1000000;
        stats_format_status(&s, false, false, 200, buf, sizeof(buf));
        assert_non_null(strstr(buf, "little new, next scan in 10 s"));
        s.current_scan_pages = 50;
        /* Truncation is safe. */
        assert_true(stats_format_status(&s, false, false, 200, buf, 8) > 7);
        assert_int_equal(strlen(buf), 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counters_add_every_field),
                cmocka_unit_test(test_saving_is_the_last_scans_sharing_and_zero),
                cmocka_unit_test(test_status_line_says_estimate_mode_and_progress),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
