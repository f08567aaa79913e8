/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "macro.h"
#include "rate.h"

/* Time one full scan takes under a decision, with the given true cost. */
static uint64_t scan_usec(uint64_t pages, const RateDecision *d, uint64_t cost_nsec) {
        uint64_t batches = (pages + d->pages_per_batch - 1) / d->pages_per_batch;

        return batches * (d->pages_per_batch * cost_nsec / 1000 + d->sleep_usec);
}

static void test_reachable_target_is_met_within_a_batch(void **state) {
        RateDecision d;
        const uint64_t pages = 1 << 20, target = 60 * 1000000ull, cost = 1000;

        assert_int_equal(rate_decide(pages, target, 50, cost, 0, &d), 0);
        assert_false(d.cpu_capped);
        uint64_t t = scan_usec(pages, &d, cost);
        assert_true(t <= target + 20000 && t + 20000 + d.pages_per_batch * cost / 1000 >= target);
        /* About 10 ms of CPU per batch. */
        assert_int_equal(d.pages_per_batch, 10000);
}

static void test_cpu_cap_wins_over_an_unreachable_target(void **state) {
        RateDecision d;
        const uint64_t pages = 1 << 24, cost = 1000;

        /* 16 Mi pages at 1 us each is 16.7 s of CPU: a 10 s scan is impossible under a 10 % cap. */
        assert_int_equal(rate_decide(pages, 10 * 1000000ull, 10, cost, 0, &d), 0);
        assert_true(d.cpu_capped);
        uint64_t cpu = d.pages_per_batch * cost / 1000;
        assert_true(cpu * 100 / (cpu + d.sleep_usec) <= 10);
}

static void test_batch_size_stays_within_limits(void **state) {
        RateDecision d;

        assert_int_equal(rate_decide(100, 1000000, 100, 1, 0, &d), 0);
        assert_int_equal(d.pages_per_batch, RATE_MAX_BATCH_PAGES);
        assert_int_equal(rate_decide(100, 1000000, 100, 10000000, 0, &d), 0);
        assert_int_equal(d.pages_per_batch, RATE_MIN_BATCH_PAGES);
        /* Unknown cost: a conservative default, never zero. */
        assert_int_equal(rate_decide(100, 1000000, 100, 0, 0, &d), 0);
        assert_true(d.pages_per_batch >= RATE_MIN_BATCH_PAGES);
}

static void test_bad_input_is_refused(void **state) {
        RateDecision d = { .pages_per_batch = 7 };

        assert_int_equal(rate_decide(100, 0, 10, 1000, 0, &d), -EINVAL);
        assert_int_equal(rate_decide(100, 1000, 0, 1000, 0, &d), -EINVAL);
        assert_int_equal(rate_decide(100, 1000, RATE_MAX_CPU_PERCENT + 1, 1000, 0, &d), -EINVAL);
        assert_int_equal(d.pages_per_batch, 7);
}

/* CPU share of a batch and its sleep, in percent of one core: CPU over wall time. */
static uint64_t share_percent(const RateDecision *d, uint64_t cost_nsec, uint64_t busy_nsec) {
        uint64_t cpu = d->pages_per_batch * cost_nsec / 1000, busy = d->pages_per_batch * busy_nsec / 1000;

        return cpu * 100 / (busy + d->sleep_usec);
}

static void test_cpu_cap_holds_in_total_when_threads_scan_a_batch_in_parallel(void **state) {
        const uint64_t pages = 1 << 24, cost = 1000;
        static const unsigned caps[] = { 5, 20, 50, 100, 150, 200, 400 };
        static const unsigned threads[] = { 1, 2, 4 };
        RateDecision d;

        for (size_t c = 0; c < ELEMENTSOF(caps); c++)
                for (size_t t = 0; t < ELEMENTSOF(threads); t++) {
                        /* n threads: the batch's CPU is the same, its wall time 1/n of it. */
                        uint64_t busy = cost / threads[t], share;

                        assert_int_equal(rate_decide(pages, 1000000, caps[c], cost, busy, &d), 0);
                        share = share_percent(&d, cost, busy);
                        /* Within the cap, and at it when the cap, not the threads, is the limit. */
                        assert_true(share <= caps[c]);
                        if (caps[c] <= 100 * threads[t])
                                assert_true(share + 1 >= caps[c]);
                        else
                                assert_int_equal(d.sleep_usec, 0);
                }
}

static void test_one_thread_sleeps_as_before_threads(void **state) {
        RateDecision a, b;

        /* An unknown wall time, or one longer than the CPU time (preempted), is taken as the CPU time. */
        assert_int_equal(rate_decide(1 << 24, 1000000, 20, 1000, 0, &a), 0);
        assert_int_equal(rate_decide(1 << 24, 1000000, 20, 1000, 3000, &b), 0);
        assert_int_equal(a.pages_per_batch, b.pages_per_batch);
        assert_int_equal(a.sleep_usec, b.sleep_usec);
        assert_int_equal(a.cpu_capped, b.cpu_capped);
        assert_int_equal(a.sleep_usec, a.pages_per_batch * 1000 / 1000 * 80 / 20);
}

static void test_a_target_counts_the_wall_time_of_parallel_batches(void **state) {
        RateDecision one, two;
        const uint64_t pages = 1 << 20, target = 60 * 1000000ull, cost = 1000;

        assert_int_equal(rate_decide(pages, target, 400, cost, 0, &one), 0);
        assert_int_equal(rate_decide(pages, target, 400, cost, cost / 2, &two), 0);
        /* Same period per batch: the batch that takes half the time sleeps that much longer. */
        assert_int_equal(two.sleep_usec - one.sleep_usec, one.pages_per_batch * cost / 2 / 1000);
}

static void test_cost_average_follows_samples(void **state) {
        uint64_t c = rate_update_cost(0, 1000000, 1000);

        assert_int_equal(c, 1000);
        c = rate_update_cost(c, 2000000, 1000);
        assert_int_equal(c, 1250);
        assert_int_equal(rate_update_cost(c, 5, 0), 1250);
        for (int i = 0; i < 50; i++)
                c = rate_update_cost(c, 2000000, 1000);
        assert_true(c >= 1990 && c <= 2000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reachable_target_is_met_within_a_batch),
                cmocka_unit_test(test_cpu_cap_wins_over_an_unreachable_target),
                cmocka_unit_test(test_batch_size_stays_within_limits),
                cmocka_unit_test(test_bad_input_is_refused),
                cmocka_unit_test(test_cpu_cap_holds_in_total_when_threads_scan_a_batch_in_parallel),
                cmocka_unit_test(test_one_thread_sleeps_as_before_threads),
                cmocka_unit_test(test_a_target_counts_the_wall_time_of_parallel_batches),
                cmocka_unit_test(test_cost_average_follows_samples),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
