/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus-auth.h"
#include "macro.h"

static const PeerCreds user = { .pid = 100, .uid = 1000, .gid = 1000, .groups = { 27, 64055 },
                                .n_groups = 2 };

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_root_may_always_call),
                cmocka_unit_test(test_user_needs_an_allowed_group),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
