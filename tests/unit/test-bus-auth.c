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

static TargetIds own_process(void) {
        return (TargetIds) {
                .uid = 1000, .euid = 1000, .suid = 1000,
                .gid = 1000, .egid = 1000, .sgid = 1000,
                .dumpable = true, .descends_from_caller = true,
        };
}

static void test_root_may_always_call(void **state) {
        PeerCreds root = { .uid = 0, .gid = 0 };

        assert_true(bus_auth_may_call(&root, NULL, 0));
}

static void test_user_needs_an_allowed_group(void **state) {
        const gid_t kvm[] = { 64055 }, other[] = { 4242 }, primary[] = { 1000 };

        assert_false(bus_auth_may_call(&user, NULL, 0));
        assert_false(bus_auth_may_call(&user, other, ELEMENTSOF(other)));
        assert_true(bus_auth_may_call(&user, kvm, ELEMENTSOF(kvm)));        /* supplementary */
        assert_true(bus_auth_may_call(&user, primary, ELEMENTSOF(primary))); /* primary */
}

static void test_root_may_access_any_process(void **state) {
        PeerCreds root = { .uid = 0 };
        TargetIds t = { .uid = 5, .euid = 6, .dumpable = false, .cap_permitted = ~UINT64_C(0) };
        const char *reason = NULL;

        assert_int_equal(bus_auth_may_access(&root, &t, 3, &reason), 0);
}

static void test_user_may_access_its_own_process(void **state) {
        TargetIds t = own_process();
        const char *reason = NULL;

        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), 0);
        assert_int_equal(bus_auth_may_access(&user, &t, 1, &reason), 0);
}

static void test_user_may_not_access_another_users_process(void **state) {
        const char *reason = NULL;
        TargetIds t;

        t = own_process();
        t.uid = 0;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), -EPERM);
        assert_string_equal(reason, "the process runs as another user");

        /* A setuid program keeps the caller's real uid but not its effective one. */
        t = own_process();
        t.euid = 0;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), -EPERM);
        t = own_process();
        t.suid = 0;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), -EPERM);

        t = own_process();
        t.egid = 42;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), -EPERM);
        assert_string_equal(reason, "the process runs with another group");
}

static void test_non_dumpable_process_is_refused(void **state) {
        TargetIds t = own_process();
        const char *reason = NULL;

        t.dumpable = false;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), -EPERM);
        assert_string_equal(reason, "the process is not dumpable (setuid, or PR_SET_DUMPABLE 0)");
}

static void test_process_with_more_capabilities_is_refused(void **state) {
        TargetIds t = own_process();
        PeerCreds caller = user;
        const char *reason = NULL;

        t.cap_permitted = UINT64_C(1) << 12; /* CAP_NET_ADMIN */
        assert_int_equal(bus_auth_may_access(&caller, &t, 0, &reason), -EPERM);
        assert_string_equal(reason, "the process holds capabilities the caller lacks");
        caller.cap_permitted = UINT64_C(1) << 12;
        assert_int_equal(bus_auth_may_access(&caller, &t, 0, &reason), 0);
}

static void test_yama_scopes(void **state) {
        TargetIds t = own_process();
        const char *reason = NULL;

        t.descends_from_caller = false;
        assert_int_equal(bus_auth_may_access(&user, &t, 0, &reason), 0);
        assert_int_equal(bus_auth_may_access(&user, &t, 1, &reason), -EPERM);
        assert_string_equal(reason, "Yama ptrace_scope 1 lets a caller attach only to its own descendants");
        t.descends_from_caller = true;
        assert_int_equal(bus_auth_may_access(&user, &t, 2, &reason), -EPERM);
        assert_int_equal(bus_auth_may_access(&user, &t, 3, &reason), -EPERM);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_root_may_always_call),
                cmocka_unit_test(test_user_needs_an_allowed_group),
                cmocka_unit_test(test_root_may_access_any_process),
                cmocka_unit_test(test_user_may_access_its_own_process),
                cmocka_unit_test(test_user_may_not_access_another_users_process),
                cmocka_unit_test(test_non_dumpable_process_is_refused),
                cmocka_unit_test(test_process_with_more_capabilities_is_refused),
                cmocka_unit_test(test_yama_scopes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
