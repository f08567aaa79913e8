/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "merge.h"

/* The helper client is mocked at its seam (-Wl,--wrap=helper_client_merge). */
static HelperClient *const fake_helper = (HelperClient *) 0x1;

#define MAX_CALLS 64
static struct {
        size_t n_calls;
        size_t sizes[MAX_CALLS];
        bool zero[MAX_CALLS];
        uint64_t first_addr[MAX_CALLS];
        int first_pidfd[MAX_CALLS], first_src_pidfd[MAX_CALLS];
        int fail_with;                        /* request-level error to return, 0: none */
        unsigned busy_given;                  /* BUSY results given so far by busy_twice_for_0x2000() */
        uint32_t (*result_for)(const HelperMergeItem *it, size_t call);
} helper;

static uint32_t all_merged(const HelperMergeItem *it, size_t call) {
        return KSMD_HELPER_RESULT_MERGED;
}

int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results);
int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results) {
        size_t call = helper.n_calls;

        assert_ptr_equal(c, fake_helper);
        assert_true(n >= 1);
        if (helper.fail_with)
                return helper.fail_with;
        assert_true(call < MAX_CALLS);
        helper.sizes[call] = n;
        helper.zero[call] = zero;
        helper.first_addr[call] = items[0].addr;
        helper.first_pidfd[call] = items[0].pidfd;
        helper.first_src_pidfd[call] = items[0].src_pidfd;
        helper.n_calls++;
        for (size_t i = 0; i < n; i++) {
                results[i] = (HelperMergeResult) {
                        .result = helper.result_for(&items[i], call),
                        .reason = KSMD_HELPER_REASON_THP,
                        .handle = 0x100 + items[i].addr,
                };
                /* Processes travel as pidfds; the source as a handle when one is known. */
                assert_true(items[i].pidfd >= 0);
                if (!zero && items[i].handle == 0)
                        assert_true(items[i].src_pidfd >= 0);
        }
        return 0;
}

#define MAX_SEEN 256
static struct {
        size_t n;
        uint64_t addr[MAX_SEEN];
        uint32_t result[MAX_SEEN];
        uint8_t attempts[MAX_SEEN];
} seen;

static void on_result(const MergeRequest *req, const HelperMergeResult *res, void *userdata) {
        assert_true(seen.n < MAX_SEEN);
        seen.addr[seen.n] = req->addr;
        seen.result[seen.n] = res->result;
        seen.attempts[seen.n] = req->attempts;
        seen.n++;
}

static int setup(void **state) {
        memset(&helper, 0, sizeof(helper));
        memset(&seen, 0, sizeof(seen));
        helper.result_for = all_merged;
        return 0;
}

static MergeRequest req(uint64_t addr, bool zero) {
        return (MergeRequest) {
                .region_id = 1,
                .pidfd = 7,
                .addr = addr,
                .hash = 0xabcd00,
                .zero = zero,
                .src_region_id = 1,
                .src_pidfd = 7,
                .src_addr = 0x999000,
        };
}

/*
 * Submits requests for n pages at 0x1000, 0x2000, ...; with zero_every > 0
 * every zero_every-th of them, the first included, asks for the zero page.
 */
static void submit_pages(Merger *m, uint64_t n, unsigned zero_every) {
        for (uint64_t i = 0; i < n; i++) {
                MergeRequest r = req(0x1000 * (i + 1), zero_every > 0 && i % zero_every == 0);
                assert_int_equal(merger_submit(m, &r), 0);
        }
}

static void test_requests_leave_in_batches_of_max_batch(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;

        assert_int_equal(merger_new(fake_helper, 4, 100, on_result, NULL, &m), 0);
        submit_pages(m, 10, 0);
        assert_int_equal(merger_pending(m), 10);
        assert_int_equal(merger_flush(m, 1000), 10);
        assert_int_equal(helper.n_calls, 3);
        assert_int_equal(helper.sizes[0], 4);
        assert_int_equal(helper.sizes[1], 4);
        assert_int_equal(helper.sizes[2], 2);
        /* Request order is kept. */
        assert_true(helper.first_addr[0] == 0x1000 && helper.first_addr[1] == 0x5000);
        assert_int_equal(seen.n, 10);
        for (size_t i = 0; i < 10; i++)
                assert_int_equal(seen.result[i], KSMD_HELPER_RESULT_MERGED);
        assert_int_equal(merger_pending(m), 0);
        assert_int_equal(merger_counters(m)->requests, 3);
        assert_int_equal(merger_counters(m)->by_result[KSMD_HELPER_RESULT_MERGED], 10);
}

static void test_zero_and_page_requests_go_in_separate_batches(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;

        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        submit_pages(m, 6, 2);
        assert_int_equal(merger_flush(m, 0), 6);
        assert_int_equal(helper.n_calls, 2);
        assert_int_equal(helper.sizes[0], 3);
        assert_int_equal(helper.sizes[1], 3);
        assert_true(helper.zero[0] != helper.zero[1]);
}

static uint32_t busy_twice_for_0x2000(const HelperMergeItem *it, size_t call) {
        if (it->addr == 0x2000 && helper.busy_given < 2) {
                helper.busy_given++;
                return KSMD_HELPER_RESULT_BUSY;
        }
        return KSMD_HELPER_RESULT_MERGED;
}

static void test_busy_is_retried_after_a_doubling_backoff(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false), b = req(0x2000, false);
        uint64_t t = 1000000;

        helper.result_for = busy_twice_for_0x2000;
        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &a), 0);
        assert_int_equal(merger_submit(m, &b), 0);

        assert_int_equal(merger_flush(m, t), 2);
        assert_int_equal(seen.n, 1);                         /* only 0x1000 is final */
        assert_int_equal(merger_pending(m), 1);
        assert_true(merger_next_retry_usec(m) == t + 2 * MERGE_RETRY_BASE_USEC);

        /* Not before its time. */
        assert_int_equal(merger_flush(m, t + 2 * MERGE_RETRY_BASE_USEC - 1), 0);
        assert_int_equal(merger_flush(m, t + 2 * MERGE_RETRY_BASE_USEC), 1);
        assert_int_equal(merger_pending(m), 1);
        /* The second wait is twice the first. */
        t += 2 * MERGE_RETRY_BASE_USEC;
        assert_true(merger_next_retry_usec(m) == t + 4 * MERGE_RETRY_BASE_USEC);
        assert_int_equal(merger_flush(m, t + 4 * MERGE_RETRY_BASE_USEC), 1);
        assert_int_equal(merger_pending(m), 0);
        assert_int_equal(seen.n, 2);
        assert_true(seen.addr[1] == 0x2000);
        assert_int_equal(seen.result[1], KSMD_HELPER_RESULT_MERGED);
        assert_int_equal(seen.attempts[1], 3);
        assert_int_equal(merger_counters(m)->retries, 2);
}

static uint32_t no_memory_once(const HelperMergeItem *it, size_t call) {
        return call == 0 ? KSMD_HELPER_RESULT_NO_MEMORY : KSMD_HELPER_RESULT_MERGED;
}

static void test_no_memory_is_retried_after_a_longer_backoff(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false);
        uint64_t t = 1000000;

        helper.result_for = no_memory_once;
        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &a), 0);
        assert_int_equal(merger_flush(m, t), 1);
        assert_int_equal(seen.n, 0);
        assert_int_equal(merger_pending(m), 1);
        assert_true(MERGE_RETRY_NO_MEMORY_BASE_USEC > MERGE_RETRY_BASE_USEC);
        assert_true(merger_next_retry_usec(m) == t + 2 * MERGE_RETRY_NO_MEMORY_BASE_USEC);
        /* Not when a busy page would be retried, only when memory may be back. */
        assert_int_equal(merger_flush(m, t + 2 * MERGE_RETRY_BASE_USEC), 0);
        assert_int_equal(merger_flush(m, t + 2 * MERGE_RETRY_NO_MEMORY_BASE_USEC), 1);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.result[0], KSMD_HELPER_RESULT_MERGED);
        assert_int_equal(merger_counters(m)->retries, 1);
}

static void test_a_retry_names_the_same_pidfds(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest b = req(0x2000, false);

        b.pidfd = 12;
        b.src_region_id = 2;
        b.src_pidfd = 13;
        helper.result_for = busy_twice_for_0x2000;
        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &b), 0);
        for (uint64_t t = 0; merger_pending(m) > 0; t = merger_next_retry_usec(m))
                assert_int_equal(merger_flush(m, t), 1);
        assert_int_equal(helper.n_calls, 3);
        for (size_t i = 0; i < helper.n_calls; i++) {
                assert_int_equal(helper.first_pidfd[i], 12);
                assert_int_equal(helper.first_src_pidfd[i], 13);
        }
        assert_int_equal(seen.result[0], KSMD_HELPER_RESULT_MERGED);
}

static uint32_t always_busy(const HelperMergeItem *it, size_t call) {
        return KSMD_HELPER_RESULT_BUSY;
}

static void test_busy_gives_up_after_max_attempts(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false);
        uint64_t t = 0;

        helper.result_for = always_busy;
        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &a), 0);
        for (unsigned i = 0; i < MERGE_MAX_ATTEMPTS; i++) {
                assert_int_equal(merger_flush(m, t), 1);
                t = merger_next_retry_usec(m);
        }
        assert_int_equal(merger_pending(m), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.result[0], KSMD_HELPER_RESULT_BUSY);
        assert_int_equal(seen.attempts[0], MERGE_MAX_ATTEMPTS);
        assert_int_equal(merger_counters(m)->dropped, 1);
        assert_int_equal(helper.n_calls, MERGE_MAX_ATTEMPTS);
}

static uint32_t by_address(const HelperMergeItem *it, size_t call) {
        /* Address 0x1000 * (k + 1) gets result k. */
        return (uint32_t) (it->addr / 0x1000 - 1);
}

static void test_every_final_result_reaches_the_owner_once(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;

        helper.result_for = by_address;
        assert_int_equal(merger_new(fake_helper, 64, 100, on_result, NULL, &m), 0);
        for (uint32_t k = 0; k < __KSMD_HELPER_RESULT_MAX; k++) {
                MergeRequest r = req(0x1000 * (k + 1), false);
                assert_int_equal(merger_submit(m, &r), 0);
        }
        assert_int_equal(merger_flush(m, 0), __KSMD_HELPER_RESULT_MAX);
        /* BUSY and NO_MEMORY wait for a retry; all others are final now. */
        assert_int_equal(seen.n, __KSMD_HELPER_RESULT_MAX - 2);
        for (size_t i = 0; i < seen.n; i++) {
                assert_int_not_equal(seen.result[i], KSMD_HELPER_RESULT_BUSY);
                assert_int_not_equal(seen.result[i], KSMD_HELPER_RESULT_NO_MEMORY);
                assert_true(seen.addr[i] == 0x1000 * (seen.result[i] + 1));
        }
        assert_int_equal(merger_pending(m), 2);
}

static void test_request_level_error_keeps_the_requests(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false);

        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &a), 0);
        helper.fail_with = -ENOENT;
        assert_int_equal(merger_flush(m, 0), -ENOENT);
        assert_int_equal(merger_pending(m), 1);
        assert_int_equal(seen.n, 0);
        helper.fail_with = 0;
        assert_int_equal(merger_flush(m, 0), 1);
        assert_int_equal(seen.n, 1);
}

static void test_refused_request_drops_only_its_batch(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;

        assert_int_equal(merger_new(fake_helper, 2, 100, on_result, NULL, &m), 0);
        submit_pages(m, 3, 0);
        helper.fail_with = -ERANGE;
        assert_int_equal(merger_flush(m, 0), -ERANGE);
        assert_int_equal(merger_pending(m), 1);
        assert_int_equal(merger_counters(m)->dropped, 2);
        helper.fail_with = 0;
        assert_int_equal(merger_flush(m, 0), 1);
        assert_int_equal(seen.n, 1);
        assert_true(seen.addr[0] == 0x3000);
}

static void test_full_queue_refuses_with_enobufs(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false);

        assert_int_equal(merger_new(fake_helper, 2, 3, on_result, NULL, &m), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(merger_submit(m, &a), 0);
        assert_int_equal(merger_submit(m, &a), -ENOBUFS);
        assert_int_equal(merger_counters(m)->dropped, 1);
        assert_int_equal(merger_new(fake_helper, 2, MERGE_QUEUE_MAX + 1, on_result, NULL, &m), -EINVAL);
}

static void test_estimate_mode_counts_and_never_calls_the_helper(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;

        assert_int_equal(merger_new(NULL, 8, 100, on_result, NULL, &m), 0);
        assert_true(merger_is_estimate(m));
        submit_pages(m, 1000, 3);
        assert_int_equal(merger_pending(m), 0);
        assert_int_equal(merger_flush(m, 0), 0);
        assert_int_equal(merger_counters(m)->estimated, 1000);
        assert_int_equal(helper.n_calls, 0);
        assert_int_equal(seen.n, 0);
}

static void test_switching_to_estimate_drops_the_queue(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest a = req(0x1000, false);

        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &a), 0);
        merger_set_estimate(m);
        assert_int_equal(merger_pending(m), 0);
        assert_int_equal(merger_counters(m)->dropped, 1);
        assert_int_equal(merger_flush(m, 0), 0);
        assert_int_equal(helper.n_calls, 0);
}

static void test_forgetting_a_region_drops_its_merges_as_target_and_source(void **state) {
        _cleanup_(merger_freep) Merger *m = NULL;
        MergeRequest into = req(0x1000, false), from = req(0x2000, false), zero = req(0x3000, true),
                     other = req(0x4000, false), by_handle = req(0x5000, false);

        /* Region 2's page as target, as source, as a zero merge;
         * region 3 with a handle names no page of 2. */
        into.region_id = 2;
        from.region_id = 3;
        from.src_region_id = 2;
        zero.region_id = 2;
        other.region_id = 3;
        other.src_region_id = 3;
        by_handle.region_id = 3;
        by_handle.src_region_id = 2;
        by_handle.handle = 0x77;

        assert_int_equal(merger_new(fake_helper, 8, 100, on_result, NULL, &m), 0);
        assert_int_equal(merger_submit(m, &into), 0);
        assert_int_equal(merger_submit(m, &from), 0);
        assert_int_equal(merger_submit(m, &zero), 0);
        assert_int_equal(merger_submit(m, &other), 0);
        assert_int_equal(merger_submit(m, &by_handle), 0);
        assert_int_equal(merger_forget_region(m, 2), 3);
        assert_int_equal(merger_pending(m), 2);
        assert_int_equal(merger_flush(m, 0), 2);
        assert_int_equal(helper.n_calls, 1);
        assert_int_equal(seen.n, 2);
        assert_int_equal(seen.addr[0], 0x4000);
        assert_int_equal(seen.addr[1], 0x5000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_requests_leave_in_batches_of_max_batch, setup),
                cmocka_unit_test_setup(test_zero_and_page_requests_go_in_separate_batches, setup),
                cmocka_unit_test_setup(test_busy_is_retried_after_a_doubling_backoff, setup),
                cmocka_unit_test_setup(test_no_memory_is_retried_after_a_longer_backoff, setup),
                cmocka_unit_test_setup(test_a_retry_names_the_same_pidfds, setup),
                cmocka_unit_test_setup(test_busy_gives_up_after_max_attempts, setup),
                cmocka_unit_test_setup(test_every_final_result_reaches_the_owner_once, setup),
                cmocka_unit_test_setup(test_request_level_error_keeps_the_requests, setup),
                cmocka_unit_test_setup(test_refused_request_drops_only_its_batch, setup),
                cmocka_unit_test_setup(test_full_queue_refuses_with_enobufs, setup),
                cmocka_unit_test_setup(test_estimate_mode_counts_and_never_calls_the_helper, setup),
                cmocka_unit_test_setup(test_switching_to_estimate_drops_the_queue, setup),
                cmocka_unit_test_setup(test_forgetting_a_region_drops_its_merges_as_target_and_source,
                                       setup),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
