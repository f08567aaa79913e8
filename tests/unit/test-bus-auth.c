/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus-auth.h"
#include "macro.h"

static const PeerCreds user = { .pid = 100, .uid = 1000, .gid = 1000, .groups = { 27, 64055 },
                                .n_groups = 2 };

static void test_root_may_always_call_and_operate(void **state) {
        PeerCreds root = { .uid = 0, .gid = 0 };

        assert_true(bus_auth_may_call(&root, NULL, 0, NULL, 0));
        assert_true(bus_auth_may_operate(&root, NULL, 0));
}

static void test_user_needs_an_allowed_group(void **state) {
        const gid_t kvm[] = { 64055 }, other[] = { 4242 }, primary[] = { 1000 };

        assert_false(bus_auth_may_call(&user, NULL, 0, NULL, 0));
        assert_false(bus_auth_may_call(&user, other, ELEMENTSOF(other), NULL, 0));
        assert_true(bus_auth_may_call(&user, kvm, ELEMENTSOF(kvm), NULL, 0));        /* supplementary */
        assert_true(bus_auth_may_call(&user, primary, ELEMENTSOF(primary), NULL, 0)); /* primary */
        /* An operator may call too. */
        assert_true(bus_auth_may_call(&user, other, ELEMENTSOF(other), kvm, ELEMENTSOF(kvm)));
}

static void test_only_operators_act_on_the_whole_host(void **state) {
        const gid_t kvm[] = { 64055 }, other[] = { 4242 }, primary[] = { 1000 };

        /* Allowed to call is not allowed to operate. */
        assert_true(bus_auth_may_call(&user, kvm, ELEMENTSOF(kvm), other, ELEMENTSOF(other)));
        assert_false(bus_auth_may_operate(&user, other, ELEMENTSOF(other)));
        assert_false(bus_auth_may_operate(&user, NULL, 0));
        assert_true(bus_auth_may_operate(&user, kvm, ELEMENTSOF(kvm)));
        assert_true(bus_auth_may_operate(&user, primary, ELEMENTSOF(primary)));
}

static void test_users_share_max_connections_each_within_their_own_cap(void **state) {
        const char *reason = NULL;

        assert_int_equal(bus_auth_may_connect(1000, &(ConnectionCounts) { 9, 9, 7 }, 10, 8, &reason), 0);
        assert_int_equal(bus_auth_may_connect(1000, &(ConnectionCounts) { 9, 9, 8 }, 10, 8, &reason),
                         -EUSERS);
        assert_string_equal(reason, "the user holds MaxConnectionsPerUser= connections");
        /* Another user still gets in, until MaxConnections= are all taken. */
        assert_int_equal(bus_auth_may_connect(1001, &(ConnectionCounts) { 9, 9, 0 }, 10, 8, &reason), 0);
        assert_int_equal(bus_auth_may_connect(1001, &(ConnectionCounts) { 10, 10, 0 }, 10, 8, &reason),
                         -EUSERS);
        assert_string_equal(reason, "MaxConnections= are taken by users other than root");
        /* Root's own connections do not count against others. */
        assert_int_equal(bus_auth_may_connect(1001, &(ConnectionCounts) { 12, 9, 0 }, 10, 8, &reason), 0);
}

static void test_root_has_a_reserve_beyond_max_connections_and_no_per_user_cap(void **state) {
        const char *reason = NULL;
        size_t max = 10;

        /* Every place others may take is taken: root still connects, BUS_AUTH_ROOT_RESERVE times. */
        for (size_t i = 0; i < BUS_AUTH_ROOT_RESERVE; i++)
                assert_int_equal(bus_auth_may_connect(0, &(ConnectionCounts) { max + i, max, i }, max, 1,
                                                      &reason),
                                 0);
        assert_int_equal(bus_auth_may_connect(0,
                                              &(ConnectionCounts) { max + BUS_AUTH_ROOT_RESERVE, max,
                                                                    BUS_AUTH_ROOT_RESERVE },
                                              max, 1, &reason),
                         -EUSERS);
        assert_string_equal(reason, "MaxConnections= and root's reserve are all taken");
        /* Without others root may use all of them. */
        assert_int_equal(bus_auth_may_connect(0, &(ConnectionCounts) { max + 1, 0, max + 1 }, max, 1,
                                              &reason),
                         0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_root_may_always_call_and_operate),
                cmocka_unit_test(test_user_needs_an_allowed_group),
                cmocka_unit_test(test_only_operators_act_on_the_whole_host),
                cmocka_unit_test(test_users_share_max_connections_each_within_their_own_cap),
                cmocka_unit_test(test_root_has_a_reserve_beyond_max_connections_and_no_per_user_cap),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
