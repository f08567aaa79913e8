/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Manager with the helper client mocked at its seam (-Wl,--wrap=
 * helper_client_*); /proc and process_vm_readv are real, against a forked
 * child with known content (needs root; skipped otherwise).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helper-client.h"
#include "manager.h"
#include "macro.h"
#include "proc-process.h"

#define CHILD_PAGES 64

static struct {
        int new_result;
        uint32_t abi;
        int merge_result;                /* request-level result of MERGE */
        int info_result;                 /* request-level result of INFO */
        size_t merge_calls;
        size_t merge_items;
        size_t new_pairs;                /* page merges without a handle: a new shared page */
        uint32_t mapcount;               /* GET_PAGES: mappers of the one shared page, 0x77 */
        size_t get_pages_calls;
        bool counters_frozen;            /* INFO's counters stay put whatever is merged */
        size_t foreign_pidfds;           /* items whose pidfds do not name the child */
        size_t unmerge_calls;
        size_t unmerge_foreign_pidfds;   /* UNMERGE calls whose pidfd does not name the child */
        int unmerge_pidfd;               /* the last one's */
} helper;

static pid_t child;
static uint64_t child_addr;

/* The live process a pidfd names, or -1 if fd is no open pidfd of one. */
static pid_t pid_of_pidfd(int fd) {
        pid_t pid;

        return fd >= 0 && proc_pidfd_get_pid(fd, &pid) >= 0 ? pid : -1;
}

static HelperClient *const fake_helper = (HelperClient *) 0x1;

int __wrap_helper_client_new(HelperClient **ret);
int __wrap_helper_client_new(HelperClient **ret) {
        if (helper.new_result < 0)
                return helper.new_result;
        *ret = fake_helper;
        return 0;
}

HelperClient *__wrap_helper_client_free(HelperClient *c);
HelperClient *__wrap_helper_client_free(HelperClient *c) {
        assert_true(c == NULL || c == fake_helper);
        return NULL;
}

int __wrap_helper_client_info(HelperClient *c, HelperInfo *ret);
int __wrap_helper_client_info(HelperClient *c, HelperInfo *ret) {
        if (helper.info_result < 0)
                return helper.info_result;
        *ret = (HelperInfo) {
                .abi_version = helper.abi,
                .module_version = "test",
                .kernel_release = "test",
                .max_batch = 32,
                .features = KSMD_HELPER_FEATURE_GET_PAGES,
        };
        ret->stats[KSMD_HELPER_STAT_BYTES_SAVED] = 12345 * 4096;
        ret->stats[KSMD_HELPER_STAT_PAGES_OWNED] = 1;
        ret->stats[KSMD_HELPER_STAT_PAGES_MAPPED] = helper.mapcount;
        ret->stats[KSMD_HELPER_STAT_MERGED] = helper.counters_frozen ? 0 : helper.merge_items;
        return 0;
}

int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results);
int __wrap_helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                               HelperMergeResult *results) {
        helper.merge_calls++;
        if (helper.merge_result < 0)
                return helper.merge_result;
        helper.merge_items += n;
        for (size_t i = 0; i < n; i++) {
                if (!zero && items[i].handle == 0) {
                        helper.new_pairs++;
                        if (pid_of_pidfd(items[i].src_pidfd) != child)
                                helper.foreign_pidfds++;
                }
                if (pid_of_pidfd(items[i].pidfd) != child)
                        helper.foreign_pidfds++;
        }
        for (size_t i = 0; i < n; i++)
                results[i] = (HelperMergeResult) { .result = KSMD_HELPER_RESULT_MERGED, .handle = 0x77 };
        return 0;
}

int __wrap_helper_client_get_pages(HelperClient *c, HelperPage **ret, size_t *ret_n);
int __wrap_helper_client_get_pages(HelperClient *c, HelperPage **ret, size_t *ret_n) {
        assert_true(c == fake_helper);
        helper.get_pages_calls++;
        *ret = calloc(1, sizeof(HelperPage));
        assert_non_null(*ret);
        **ret = (HelperPage) { .handle = 0x77, .mapcount = helper.mapcount };
        *ret_n = 1;
        return 0;
}

int __wrap_helper_client_unmerge(HelperClient *c, int pidfd, uint64_t addr, uint64_t length,
                                 uint64_t *ret_count);
int __wrap_helper_client_unmerge(HelperClient *c, int pidfd, uint64_t addr, uint64_t length,
                                 uint64_t *ret_count) {
        assert_true(c == fake_helper);
        helper.unmerge_calls++;
        helper.unmerge_pidfd = pidfd;
        if (pid_of_pidfd(pidfd) != child)
                helper.unmerge_foreign_pidfds++;
        *ret_count = length / PAGE_SIZE_BYTES;
        return 0;
}

/* A child with CHILD_PAGES private pages: half one repeated content, half zero. */
static int start_child(void **state) {
        int fds[2];
        uint8_t *mem;
        char ok;

        memset(&helper, 0, sizeof(helper));
        helper.abi = KSMD_HELPER_ABI_VERSION;
        mem = mmap(NULL, CHILD_PAGES * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
        assert_true(mem != MAP_FAILED);
        (void) madvise(mem, CHILD_PAGES * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        child_addr = (uintptr_t) mem;
        assert_int_equal(pipe(fds), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (size_t i = 0; i < CHILD_PAGES; i++)
                        memset(mem + i * PAGE_SIZE_BYTES, i < CHILD_PAGES / 2 ? 0x42 : 0, PAGE_SIZE_BYTES);
                ok = 1;
                if (write(fds[1], &ok, 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(fds[1]);
        assert_int_equal(read(fds[0], &ok, 1), 1);
        close(fds[0]);
        munmap(mem, CHILD_PAGES * PAGE_SIZE_BYTES);
        return 0;
}

static int stop_child(void **state) {
        if (child > 0) {
                (void) kill(child, SIGKILL);
                (void) waitpid(child, NULL, 0);
                child = 0;
        }
        return 0;
}

/*
 * A Manager at 16 pages per batch with no sleep and no rests, no files and
 * no socket, with the settings of extra ("Key=Value", NULL-terminated) on top.
 */
static int new_manager(char *const *extra, Manager **ret) {
        char *overrides[16] = { (char *) "PagesToScan=16", (char *) "Sleep=0", (char *) "IdleSleep=0" };
        size_t n = 3;

        for (; extra && *extra && n < ELEMENTSOF(overrides); extra++)
                overrides[n++] = *extra;
        return manager_new(&(ManagerArgs) { .overrides = overrides, .n_overrides = n, .no_socket = true },
                           ret);
}

/* Registers the child's CHILD_PAGES pages as one range. */
static void register_child(Manager *m) {
        assert_int_equal(manager_register_range(m, child, child_addr, CHILD_PAGES * PAGE_SIZE_BYTES,
                                                NULL), 0);
}

/* A Manager at fast_config()'s rate with the child registered. */
static void new_manager_for_child(Manager **ret) {
        assert_int_equal(new_manager(NULL, ret), 0);
        register_child(*ret);
}

/* Starts the Manager and runs its loop until n_scans full scans are done; its statistics then. */
static void run_scans(Manager *m, unsigned n_scans, Stats *ret) {
        m->exit_after_scans = n_scans;
        assert_int_equal(manager_start(m), 0);
        assert_int_equal(sd_event_loop(m->event), 0);
        manager_get_stats(m, ret);
}

static void test_missing_module_falls_back_to_estimate_mode(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        helper.new_result = -ENOENT;
        new_manager_for_child(&m);
        assert_true(manager_is_estimate(m));
        run_scans(m, 2, &st);
        assert_false(st.live);
        assert_int_equal(st.last.pages_sharing, CHILD_PAGES / 2 - 1);
        assert_int_equal(st.last.pages_zero, CHILD_PAGES / 2);
        assert_int_equal(helper.merge_calls, 0);
}

static void test_present_module_gets_batched_merges(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        new_manager_for_child(&m);
        assert_false(manager_is_estimate(m));
        /* MergePolicy=first-pass (the default): merged in the first full scan. The mocked helper maps
         * nothing, so a second would find every page private again, as if written. */
        run_scans(m, 1, &st);
        assert_true(st.live);
        /* 31 page merges and 32 zero merges, none more than max_batch per request. */
        assert_int_equal(helper.merge_items, CHILD_PAGES - 1);
        assert_true(helper.merge_calls >= DIV_ROUND_UP(CHILD_PAGES - 1, 32));
        assert_int_equal(st.merge.by_result[KSMD_HELPER_RESULT_MERGED], CHILD_PAGES - 1);
        /* Every item names the child, target and source, by the pidfd its region holds. */
        assert_int_equal(helper.foreign_pidfds, 0);
        /* Live savings are the daemon's own count of the last scan, not the helper's since-load total. */
        assert_int_equal(stats_saving_bytes(&st), (CHILD_PAGES - 1) * 4096);
}

static void test_unmerge_names_the_process_by_a_pidfd_that_outlives_its_region(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint64_t pages = 0;
        uint32_t id = 0;
        Stats st;

        assert_int_equal(new_manager(NULL, &m), 0);
        assert_int_equal(manager_register_range(m, child, child_addr, CHILD_PAGES * PAGE_SIZE_BYTES, &id),
                         0);
        run_scans(m, 2, &st);
        assert_int_equal(manager_unmerge_region(m, id, &pages), 0);
        /* Unregistering closes the region's pidfd first; the helper still gets one for the child. */
        assert_null(region_registry_find(m->registry, id));
        assert_true(helper.unmerge_calls >= 1);
        assert_int_equal(helper.unmerge_foreign_pidfds, 0);
        assert_int_equal(pages, CHILD_PAGES);
        /* And it is closed once the unmerge is done. */
        assert_int_equal(pid_of_pidfd(helper.unmerge_pidfd), -1);
        assert_int_equal(manager_unmerge_region(m, id, &pages), -ENOENT);
}

static void test_module_going_away_falls_back_to_estimate_mode(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        new_manager_for_child(&m);
        assert_false(manager_is_estimate(m));
        helper.merge_result = -ENOENT;
        run_scans(m, 3, &st);
        assert_true(manager_is_estimate(m));
        assert_false(st.live);
        /* Nothing is lost: the scan goes on and the estimate is complete. */
        assert_int_equal(scan_counters_saving_pages(&st.last), CHILD_PAGES - 1);
        assert_int_equal(helper.merge_calls, 1);
}

static void test_module_going_away_while_nothing_merges_falls_back_too(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        /* Unloaded before any merge is due: under MergePolicy=stable the first full scan merges nothing,
         * its end asks INFO. */
        assert_int_equal(new_manager(STRV_MAKE("MergePolicy=stable"), &m), 0);
        register_child(m);
        assert_false(manager_is_estimate(m));
        helper.info_result = -ENOENT;
        run_scans(m, 3, &st);
        assert_true(manager_is_estimate(m));
        assert_false(st.live);
        assert_int_equal(helper.merge_calls, 0);
        assert_int_equal(scan_counters_saving_pages(&st.last), CHILD_PAGES - 1);
}

static void test_refused_merge_request_keeps_merge_mode(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        new_manager_for_child(&m);
        helper.merge_result = -EINVAL;
        run_scans(m, 3, &st);
        assert_false(manager_is_estimate(m));
        /* Offered again on every pass after the first, and dropped each time. */
        assert_true(helper.merge_calls >= 2);
        assert_true(st.merge.dropped >= CHILD_PAGES - 1);
}

static void test_helper_with_other_abi_is_refused(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;

        helper.abi = KSMD_HELPER_ABI_VERSION + 1;
        assert_int_equal(new_manager(NULL, &m), -EPROTO);
        assert_null(m);
}

/* Applies s with one number changed; the result of manager_apply_settings(). */
static int apply_number(Manager *m, const char *key, uint64_t value) {
        _cleanup_(settings_done) Settings s = {};

        assert_int_equal(settings_copy(&s, &m->settings), 0);
        setting_set_number(setting_find(key), &s, value);
        return manager_apply_settings(m, &s);
}

static void test_rate_limits_are_enforced(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("PagesToScan=0"), &m), -EINVAL);
        assert_int_equal(new_manager(STRV_MAKE("PagesToScan=1000001"), &m), -EINVAL);
        assert_int_equal(new_manager(STRV_MAKE("Sleep=61s"), &m), -EINVAL);
        assert_null(m);
        assert_int_equal(new_manager(NULL, &m), 0);
        assert_int_equal(apply_number(m, "PagesToScan", 0), -EINVAL);
        assert_int_equal(apply_number(m, "Sleep", 61 * 1000000), -EINVAL);
        assert_int_equal(m->batch_pages, 16);
        assert_int_equal(apply_number(m, "PagesToScan", 100), 0);
        assert_int_equal(m->batch_pages, 100);
        assert_int_equal(m->settings.pages_to_scan, 100);
}

static int on_time_up(sd_event_source *s, uint64_t usec, void *userdata) {
        *(bool *) userdata = true;
        return 0;
}

/* Runs the loop for a while without sd_event_exit(), so it can run again afterwards. */
static void run_for_usec(Manager *m, uint64_t usec) {
        sd_event_source *t = NULL;
        bool up = false;

        assert_int_equal(sd_event_add_time_relative(m->event, &t, CLOCK_MONOTONIC, usec, 1, on_time_up,
                                                    &up), 0);
        while (!up)
                assert_true(sd_event_run(m->event, UINT64_MAX) >= 0);
        sd_event_source_unref(t);
}

static void test_pause_stops_scanning_and_resume_continues(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        helper.new_result = -ENOENT;
        new_manager_for_child(&m);
        manager_pause(m);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 100000);
        manager_get_stats(m, &st);
        assert_int_equal(st.full_scans, 0);
        assert_int_equal(st.current_scan_pages, 0);

        manager_resume(m);
        run_for_usec(m, 100000);
        manager_get_stats(m, &st);
        assert_true(st.full_scans >= 2);
}

static void test_target_scan_time_adapts_the_rate(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("TargetScanTime=200ms", "MaxCPU=100"), &m), -EINVAL);
        assert_int_equal(new_manager(STRV_MAKE("TargetScanTime=1s", "MaxCPU=0"), &m), -EINVAL);
        assert_int_equal(new_manager(STRV_MAKE("TargetScanTime=1s", "MaxCPU=100"), &m), 0);
        /* Below the range a file allows, to keep the test short. */
        assert_int_equal(apply_number(m, "TargetScanTime", 0), 0);
        m->settings.target_scan_time_usec = 200000;
        register_child(m);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 700000);
        manager_get_stats(m, &st);
        /* 64 pages in 200 ms: one batch of at least 64 pages, then a sleep of about the target. */
        assert_true(st.cpu_nsec_per_page > 0);
        assert_true(st.batch_pages >= 64);
        assert_true(st.batch_sleep_usec > 100000 && st.batch_sleep_usec <= 200000);
        print_message("# adapted: %llu pages per batch, %llu us sleep, %llu ns per page, "
                      "%llu scans in 0.7 s\n",
                      (unsigned long long) st.batch_pages, (unsigned long long) st.batch_sleep_usec,
                      (unsigned long long) st.cpu_nsec_per_page, (unsigned long long) st.full_scans);
        assert_true(st.full_scans >= 2 && st.full_scans <= 5);
}

static void test_exited_process_loses_its_region(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint32_t id;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(NULL, &m), 0);
        assert_int_equal(manager_register_process(m, child, &id), 0);
        assert_int_equal(manager_register_process(m, child, NULL), -EEXIST);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 20000);
        stop_child(state);
        run_for_usec(m, 50000);
        assert_int_equal(region_registry_count(m->registry), 0);
        assert_int_equal(manager_unregister(m, id), -ENOENT);
}

/*
 * The mock merges nothing for real: the pages the helper "merged" in the
 * first full scan (MergePolicy=first-pass) read as private again in the
 * next, as if written (COW breaks), and are merged again once they held
 * still. If the shared page still has two mappers, they join it; if one,
 * the daemon forgot it after the first scan and pairs them anew.
 */
static void test_shared_pages_with_one_mapper_are_forgotten(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        size_t pairs_scan1;

        /* One scan: its new pairs (until the shared page is known, duplicates pair with the first). */
        helper.mapcount = 2;
        new_manager_for_child(&m);
        run_scans(m, 1, &st);
        pairs_scan1 = helper.new_pairs;
        assert_true(pairs_scan1 > 0);
        m = manager_free(m);

        /* Six scans, two mappers: the pages merged again join the known shared page, no new pair.
         * The list is asked for after a scan that merged (the helper's counters moved), not after
         * every scan. */
        helper.new_pairs = helper.get_pages_calls = helper.merge_items = 0;
        new_manager_for_child(&m);
        run_scans(m, 6, &st);
        assert_in_range(helper.get_pages_calls, 2, 6);
        assert_true(st.cow_breaks > 0);
        assert_true(helper.merge_items > CHILD_PAGES - 1);
        assert_int_equal(helper.new_pairs, pairs_scan1);
        m = manager_free(m);

        /* One mapper: forgotten after the first scan, so the pages merged again pair anew. */
        helper.mapcount = 1;
        helper.new_pairs = helper.get_pages_calls = 0;
        new_manager_for_child(&m);
        run_scans(m, 6, &st);
        assert_in_range(helper.get_pages_calls, 2, 6);
        assert_true(helper.new_pairs > pairs_scan1);
}

/* After full scan 3, a page table stops mapping the shared page: the helper's PTE count moves. */
static void lose_a_mapping_after_scan_3(Manager *m, void *userdata) {
        unsigned *scans = userdata;

        if (++*scans == 3)
                helper.mapcount = 1;
}

/* The list of shared pages is asked for again only when the helper's counters moved (or 10 s passed). */
static void test_shared_pages_are_listed_only_when_the_helper_counters_move(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        unsigned scans = 0;
        Stats st;

        /* Merges go on, but the counters stay put until after scan 3: the first scan's list, then
         * one more at the end of scan 4, the first that finds the counters moved. */
        helper.mapcount = 2;
        helper.counters_frozen = true;
        new_manager_for_child(&m);
        m->scan_done = lose_a_mapping_after_scan_3;
        m->scan_done_userdata = &scans;
        run_scans(m, 8, &st);
        assert_int_equal(scans, 8);
        assert_true(helper.merge_items > 0);
        assert_int_equal(helper.get_pages_calls, 2);
}

typedef struct RestProbe {
        uint64_t rests[8];
        size_t n;
} RestProbe;

/* Records each full scan's rest; at the first rest, after scan 2, registers the child's zero half,
 * which must end it. */
static void record_rest(Manager *m, void *userdata) {
        RestProbe *p = userdata;
        Stats st;

        manager_get_stats(m, &st);
        p->rests[p->n++] = st.rest_usec;
        if (st.rest_usec > 0 && p->n == 2)
                assert_int_equal(manager_register_range(m, child,
                                                        child_addr + CHILD_PAGES / 2 * PAGE_SIZE_BYTES,
                                                        CHILD_PAGES / 2 * PAGE_SIZE_BYTES, NULL), 0);
        if (p->n == 4)
                (void) sd_event_exit(m->event, 0);
}

static int on_guard(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

static void test_quiet_scans_rest_and_registration_ends_the_rest(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        RestProbe probe = {};

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=1h"), &m), 0);
        m->scan_done = record_rest;
        m->scan_done_userdata = &probe;
        assert_int_equal(manager_register_range(m, child, child_addr, CHILD_PAGES / 2 * PAGE_SIZE_BYTES,
                                                NULL), 0);
        assert_int_equal(manager_start(m), 0);
        /* Only reached if the registration did not end the hour-long rest. */
        assert_true(sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, 60 * 1000000, 0, on_guard,
                                               NULL) >= 0);
        assert_int_equal(sd_event_loop(m->event), 0);
        /* MergePolicy=first-pass: 1: all new, the duplicates counted at once; 2: nothing new, rest. */
        assert_int_equal(probe.rests[0], 0);
        assert_int_equal(probe.rests[1], UINT64_C(3600) * 1000000);
        /* 3: the new region's pages, new; 4: nothing new, rest again. */
        assert_int_equal(probe.rests[2], 0);
        assert_int_equal(probe.rests[3], UINT64_C(3600) * 1000000);
}

typedef struct DropProbe {
        Manager *manager;
        uint64_t killed_usec, dropped_usec;
} DropProbe;

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* When the first rest begins, the child exits. */
static void kill_child_at_rest(Manager *m, void *userdata) {
        DropProbe *p = userdata;
        Stats st;

        manager_get_stats(m, &st);
        if (st.rest_usec == 0 || p->killed_usec)
                return;
        (void) stop_child(NULL);
        p->killed_usec = monotonic_usec();
}

static int on_drop_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        DropProbe *p = userdata;

        if (p->killed_usec && region_registry_count(p->manager->registry) == 0) {
                p->dropped_usec = monotonic_usec();
                return sd_event_exit(sd_event_source_get_event(s), 0);
        }
        assert_int_equal(sd_event_source_set_time_relative(s, 50000), 0);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void test_exited_process_loses_its_region_during_a_rest(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        DropProbe probe = {};

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=1h"), &m), 0);
        probe.manager = m;
        m->scan_done = kill_child_at_rest;
        m->scan_done_userdata = &probe;
        register_child(m);
        assert_int_equal(manager_start(m), 0);
        assert_true(sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, 50000, 0, on_drop_poll,
                                               &probe) >= 0);
        /* The hour-long rest is not waited out: the region goes when its pidfd says the process exited. */
        assert_true(sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, 20 * 1000000, 0, on_guard,
                                               NULL) >= 0);
        assert_int_equal(sd_event_loop(m->event), 0);
        assert_true(probe.killed_usec > 0);
        assert_true(probe.dropped_usec - probe.killed_usec < 3 * 1000000);
}

static void test_exited_process_is_noticed_by_its_pidfd_without_a_scan(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint32_t a, b, mine;
        Stats st;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(NULL, &m), 0);
        /* Two regions of the child, one of this process; never started: no scan timer at all. */
        assert_int_equal(manager_register_range(m, child, child_addr, PAGE_SIZE_BYTES, &a), 0);
        assert_int_equal(manager_register_range(m, child, child_addr + PAGE_SIZE_BYTES, PAGE_SIZE_BYTES, &b),
                         0);
        assert_int_equal(manager_register_range(m, getpid(), 0x10000, 0x1000, &mine), 0);
        /* Unregistered and registered again: the first region's source went with it. */
        assert_int_equal(manager_unregister(m, a), 0);
        assert_int_equal(manager_register_range(m, child, child_addr, PAGE_SIZE_BYTES, &a), 0);
        assert_null(m->scan_timer);
        run_for_usec(m, 20000);
        assert_int_equal(region_registry_count(m->registry), 3);

        stop_child(state);
        run_for_usec(m, 20000);
        assert_null(region_registry_find(m->registry, a));
        assert_null(region_registry_find(m->registry, b));
        assert_non_null(region_registry_find(m->registry, mine));
        manager_get_stats(m, &st);
        assert_int_equal(st.full_scans, 0);
}

static void test_exited_process_is_noticed_while_paused_with_threads(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("ScanThreads=2"), &m), 0);
        register_child(m);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 20000);
        manager_pause(m);
        stop_child(state);
        run_for_usec(m, 20000);
        assert_int_equal(region_registry_count(m->registry), 0);
}

typedef struct CowProbe {
        uint64_t looks_at_rest;          /* the COW guard's looks when the first rest began */
        uint64_t rests;
} CowProbe;

static void record_cow_looks_at_rest(Manager *m, void *userdata) {
        CowProbe *p = userdata;

        if (m->stats.rest_usec == 0)
                return;
        if (p->rests++ == 0)
                p->looks_at_rest = m->cow_looks;
}

static void test_resting_idle_reads_no_memory_figures(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        CowProbe probe = {};
        uint64_t looks;
        Stats st;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=1h", "CowReserve=1M"), &m), 0);
        m->scan_done = record_cow_looks_at_rest;
        m->scan_done_userdata = &probe;
        register_child(m);
        assert_int_equal(manager_start(m), 0);
        /* Longer than the tick a rest used to have (1 s), which read /proc/meminfo each time. */
        run_for_usec(m, 2500000);
        assert_int_equal(probe.rests, 1);
        assert_true(probe.looks_at_rest > 0);
        assert_false(m->cow.holding);
        assert_int_equal(m->cow_looks, probe.looks_at_rest);
        /* Asked for, the figures are read then: a status shows memory as it is, rest or not. */
        looks = m->cow_looks;
        manager_get_stats(m, &st);
        assert_int_equal(m->cow_looks, looks + 1);
        assert_true(st.cow.available_bytes > 0);
}

static void test_guard_holding_while_resting_looks_and_letting_go_ends_the_rest(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        CowProbe probe = {};

        helper.new_result = -ENOENT;
        /* More than this host has: the guard holds from its first look. */
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=1h", "CowReserve=1T"), &m), 0);
        m->scan_done = record_cow_looks_at_rest;
        m->scan_done_userdata = &probe;
        register_child(m);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 300000);
        assert_int_equal(probe.rests, 1);
        assert_true(m->cow.holding);
        assert_true(m->rest_until_usec > 0);
        /* Memory "returns" (the reserve goes, unseen by the Manager): its next look lets go and
         * the rest ends, without waiting out the hour. */
        m->settings.cow_reserve = 0;
        /* Its next look is 5 s after the rest began; given up after 15 s. */
        for (unsigned i = 0; i < 150 && probe.rests < 2; i++)
                run_for_usec(m, 100000);
        assert_true(m->cow_looks > probe.looks_at_rest);
        assert_false(m->cow.holding);
        assert_true(probe.rests >= 2);
}

static void test_scans_for_a_count_never_rest(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        Stats st;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=1h"), &m), 0);
        assert_int_equal(manager_register_range(m, child, child_addr, CHILD_PAGES * PAGE_SIZE_BYTES,
                                                NULL), 0);
        m->exit_after_scans = 5;
        assert_int_equal(manager_start(m), 0);
        assert_true(sd_event_add_time_relative(m->event, NULL, CLOCK_MONOTONIC, 60 * 1000000, 0, on_guard,
                                               NULL) >= 0);
        assert_int_equal(sd_event_loop(m->event), 0);
        manager_get_stats(m, &st);
        assert_int_equal(st.full_scans, 5);
        assert_int_equal(st.rest_usec, 0);
}

static void test_idle_limits_are_enforced(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(STRV_MAKE("IdleMaxCPU=100.01%"), &m), -EINVAL);
        assert_int_equal(new_manager(STRV_MAKE("IdleSleep=61min"), &m), -EINVAL);
        assert_int_equal(new_manager(NULL, &m), 0);
        assert_int_equal(m->settings.idle_max_cpu_bp, 5);
        assert_int_equal(apply_number(m, "IdleSleep", UINT64_C(3601) * 1000000), -EINVAL);
        assert_int_equal(apply_number(m, "IdleMaxCPU", 0), -EINVAL);
        assert_int_equal(apply_number(m, "IdleMaxCPU", 10001), -EINVAL);
        assert_int_equal(apply_number(m, "IdleSleep", 0), 0);
        assert_int_equal(m->settings.idle_sleep_usec, 0);
        assert_int_equal(apply_number(m, "IdleSleep", 5000000), 0);
        assert_int_equal(m->settings.idle_sleep_usec, 5000000);
}

static void test_named_registration_keeps_the_name_and_refuses_a_bad_one(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        uint32_t id;

        helper.new_result = -ENOENT;
        assert_int_equal(new_manager(NULL, &m), 0);
        assert_int_equal(manager_register(m, &(RegionRequest) { .pid = child, .whole = true,
                                                                .name = "bad\nname" }, &id),
                         -EINVAL);
        assert_int_equal(region_registry_count(m->registry), 0);
        assert_int_equal(manager_register(m, &(RegionRequest) { .pid = child, .whole = true,
                                                                .name = "vm-01" }, &id), 0);
        assert_string_equal(region_registry_find(m->registry, id)->name, "vm-01");
        assert_int_equal(manager_register_range(m, getpid(), 0x10000, 0x1000, &id), 0);
        assert_string_equal(region_registry_find(m->registry, id)->name, "");
}

static void write_conf(const char *dir, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/ksmd.conf", dir);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_reload_applies_the_files_under_the_command_line(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *message = NULL;
        char dir[] = "/tmp/ksmd-test-manager-XXXXXX", cmd[128];

        helper.new_result = -ENOENT;
        assert_non_null(mkdtemp(dir));
        write_conf(dir, "[Scan]\nPagesToScan=100\nSleep=1s\n[Limits]\nMaxMetadata=1M\n");
        assert_int_equal(manager_new(&(ManagerArgs) { .config_dir = dir, .overrides = STRV_MAKE("Sleep=5ms"),
                                                      .n_overrides = 1, .no_socket = true },
                                     &m),
                         0);
        assert_int_equal(m->settings.pages_to_scan, 100);
        assert_int_equal(m->settings.sleep_usec, 5000);
        assert_int_equal(index_max_tracked_pages(m->index), (1 << 20) / INDEX_MAX_BYTES_PER_PAGE);

        /* Every setting a reload applies is applied, MaxMetadata= too; the command line still wins. */
        write_conf(dir, "[Scan]\nPagesToScan=300\nSleep=2s\nMode=estimate\n"
                   "[Limits]\nMaxMetadata=2M\nMaxRegions=7\n");
        assert_int_equal(manager_reload(m, NULL), 0);
        assert_int_equal(m->settings.pages_to_scan, 300);
        assert_int_equal(m->batch_pages, 300);
        assert_int_equal(m->settings.sleep_usec, 5000);
        assert_int_equal(m->settings.max_regions, 7);
        assert_int_equal(index_max_tracked_pages(m->index), (2 << 20) / INDEX_MAX_BYTES_PER_PAGE);
        /* Mode= applies at the next start only. */
        assert_int_equal(m->settings.mode, SCAN_MODE_AUTO);

        /* A bad file changes nothing and says why. */
        write_conf(dir, "[Scan]\nPagesToScan=0\n");
        assert_int_equal(manager_reload(m, &message), -EINVAL);
        assert_non_null(strstr(message, "ksmd.conf:2: PagesToScan=0"));
        assert_int_equal(m->settings.pages_to_scan, 300);

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_autoreg_sleeps_without_rules_and_a_reload_with_rules_walks_at_once(void **state) {
        _cleanup_(manager_freep) Manager *m = NULL;
        char dir[] = "/tmp/ksmd-test-manager-XXXXXX", cmd[128];

        helper.new_result = -ENOENT;
        assert_non_null(mkdtemp(dir));
        write_conf(dir, "[Scan]\nPagesToScan=16\n");
        assert_int_equal(manager_new(&(ManagerArgs) { .config_dir = dir, .no_socket = true }, &m), 0);
        assert_int_equal(manager_start(m), 0);
        run_for_usec(m, 50000);
        assert_int_equal(region_registry_count(m->registry), 0);
        /* The child is this program, forked; its owner root. Not 5 s later: at once. */
        write_conf(dir, "[AutoRegister]\nExecutable=test-manager\nUser=root\n");
        assert_int_equal(manager_reload(m, NULL), 0);
        run_for_usec(m, 200000);
        assert_non_null(region_registry_find_whole(m->registry, child));

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_missing_module_falls_back_to_estimate_mode, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_present_module_gets_batched_merges, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(
                        test_unmerge_names_the_process_by_a_pidfd_that_outlives_its_region, start_child,
                        stop_child),
                cmocka_unit_test_setup_teardown(test_module_going_away_falls_back_to_estimate_mode,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_module_going_away_while_nothing_merges_falls_back_too,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_refused_merge_request_keeps_merge_mode, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_helper_with_other_abi_is_refused, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_rate_limits_are_enforced, start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_pause_stops_scanning_and_resume_continues, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_target_scan_time_adapts_the_rate, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_exited_process_loses_its_region, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(test_shared_pages_with_one_mapper_are_forgotten, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(
                        test_shared_pages_are_listed_only_when_the_helper_counters_move, start_child,
                        stop_child),
                cmocka_unit_test_setup_teardown(test_quiet_scans_rest_and_registration_ends_the_rest,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_exited_process_loses_its_region_during_a_rest,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_exited_process_is_noticed_by_its_pidfd_without_a_scan,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_exited_process_is_noticed_while_paused_with_threads,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_resting_idle_reads_no_memory_figures, start_child,
                                                stop_child),
                cmocka_unit_test_setup_teardown(
                        test_guard_holding_while_resting_looks_and_letting_go_ends_the_rest, start_child,
                        stop_child),
                cmocka_unit_test_setup_teardown(test_scans_for_a_count_never_rest, start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_idle_limits_are_enforced, start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_named_registration_keeps_the_name_and_refuses_a_bad_one,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(test_reload_applies_the_files_under_the_command_line,
                                                start_child, stop_child),
                cmocka_unit_test_setup_teardown(
                        test_autoreg_sleeps_without_rules_and_a_reload_with_rules_walks_at_once, start_child,
                        stop_child),
        };

        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root: pagemap and process_vm_readv of a child\n");
                return 0;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
