/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ownership ledger against a real registry: regions of the test's own
 * process and of two forked children, owned by root (the daemon's own
 * registrations) and by two other uids. The uids are only labels here: no
 * process runs with them, the ledger only compares numbers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ledger.h"
#include "macro.h"
#include "region.h"

#define ALICE 1000
#define BOB 1001
#define NOBODY 65534

static pid_t children[2];

static int start_children(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(children); i++) {
                children[i] = fork();
                assert_true(children[i] >= 0);
                if (children[i] == 0) {
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        for (;;)
                                pause();
                }
        }
        return 0;
}

static int stop_children(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(children); i++)
                if (children[i] > 0) {
                        (void) kill(children[i], SIGKILL);
                        (void) waitpid(children[i], NULL, 0);
                        children[i] = 0;
                }
        return 0;
}

/* One region per owner: the daemon's (root) of this process, ALICE's and BOB's of a child each. */
static void add_one_each(RegionRegistry *reg, Region **ret_daemon, Region **ret_alice, Region **ret_bob) {
        assert_int_equal(region_registry_add(reg, getpid(), 0, 0, true, 0, ret_daemon), 0);
        assert_int_equal(region_registry_add(reg, children[0], 0x10000, 0x1000, false, ALICE, ret_alice), 0);
        assert_int_equal(region_registry_add(reg, children[1], 0, 0, true, BOB, ret_bob), 0);
}

static void test_root_sees_every_region(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *daemon, *alice, *bob;

        assert_int_equal(region_registry_new(8, &reg), 0);
        add_one_each(reg, &daemon, &alice, &bob);
        assert_true(ledger_may_see(daemon, 0));
        assert_true(ledger_may_see(alice, 0));
        assert_true(ledger_may_see(bob, 0));
}

static void test_owner_sees_only_its_own_regions(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *daemon, *alice, *bob;

        assert_int_equal(region_registry_new(8, &reg), 0);
        add_one_each(reg, &daemon, &alice, &bob);
        assert_true(ledger_may_see(alice, ALICE));
        assert_false(ledger_may_see(bob, ALICE));
        assert_true(ledger_may_see(bob, BOB));
        assert_false(ledger_may_see(alice, BOB));
        /* The daemon's own registrations (command line, AutoRegister) are root's. */
        assert_false(ledger_may_see(daemon, ALICE));
        assert_false(ledger_may_see(daemon, BOB));
}

static void test_other_uid_sees_nothing(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *daemon, *alice, *bob;

        assert_int_equal(region_registry_new(8, &reg), 0);
        add_one_each(reg, &daemon, &alice, &bob);
        REGISTRY_FOREACH(r, reg)
                assert_false(ledger_may_see(r, NOBODY));
        assert_int_equal(ledger_count_regions(reg, NOBODY), 0);
}

static void test_count_follows_registrations_per_owner(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *daemon, *alice, *bob, *more;

        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(ledger_count_regions(reg, ALICE), 0);
        add_one_each(reg, &daemon, &alice, &bob);
        /* A second range of the same child counts; a refused registration (overlapping) does not. */
        assert_int_equal(region_registry_add(reg, children[0], 0x20000, 0x1000, false, ALICE, &more), 0);
        assert_int_equal(region_registry_add(reg, children[1], 0x10000, 0x1000, false, ALICE, NULL),
                         -EEXIST);
        assert_int_equal(ledger_count_regions(reg, ALICE), 2);
        assert_int_equal(ledger_count_regions(reg, BOB), 1);
        assert_int_equal(ledger_count_regions(reg, 0), 1);

        assert_int_equal(region_registry_remove(reg, more->id), 0);
        assert_int_equal(ledger_count_regions(reg, ALICE), 1);
        assert_int_equal(region_registry_remove(reg, bob->id), 0);
        assert_int_equal(ledger_count_regions(reg, BOB), 0);
        assert_int_equal(ledger_count_regions(reg, ALICE), 1);
}

static void test_quota_refuses_at_the_limit(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *first, *second;

        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 2), 0);
        assert_int_equal(region_registry_add(reg, children[0], 0x10000, 0x1000, false, ALICE, &first), 0);
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 2), 0);
        assert_int_equal(region_registry_add(reg, children[0], 0x20000, 0x1000, false, ALICE, &second), 0);
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 2), -EDQUOT);
        /* Above the limit (it was lowered): still refused. */
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 1), -EDQUOT);
        /* Each uid has its own quota. */
        assert_int_equal(ledger_check_region_quota(reg, BOB, 2), 0);
        assert_int_equal(ledger_check_region_quota(reg, BOB, 1), 0);
        /* Unregistering frees a place. */
        assert_int_equal(region_registry_remove(reg, first->id), 0);
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 2), 0);
}

static void test_root_is_not_limited(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;

        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(region_registry_add(reg, getpid(), 0, 0, true, 0, NULL), 0);
        assert_int_equal(region_registry_add(reg, children[0], 0, 0, true, 0, NULL), 0);
        assert_int_equal(region_registry_add(reg, children[1], 0, 0, true, 0, NULL), 0);
        assert_int_equal(ledger_count_regions(reg, 0), 3);
        assert_int_equal(ledger_check_region_quota(reg, 0, 1), 0);
        assert_int_equal(ledger_check_region_quota(reg, 0, 3), 0);
        /* Root's regions count against no one else. */
        assert_int_equal(ledger_check_region_quota(reg, ALICE, 1), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_root_sees_every_region, start_children, stop_children),
                cmocka_unit_test_setup_teardown(test_owner_sees_only_its_own_regions, start_children,
                                                stop_children),
                cmocka_unit_test_setup_teardown(test_other_uid_sees_nothing, start_children, stop_children),
                cmocka_unit_test_setup_teardown(test_count_follows_registrations_per_owner, start_children,
                                                stop_children),
                cmocka_unit_test_setup_teardown(test_quota_refuses_at_the_limit, start_children,
                                                stop_children),
                cmocka_unit_test_setup_teardown(test_root_is_not_limited, start_children, stop_children),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
