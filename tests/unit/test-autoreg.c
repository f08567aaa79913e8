/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "autoreg.h"

static char *const cgroups[] = { (char *) "/machine.slice/*" };
static char *const exes[] = { (char *) "qemu-system-*", (char *) "cloud-hypervisor" };

static void test_cgroup_pattern_matches_nested_guests(void **state) {
        assert_true(autoreg_match(cgroups, 1, NULL, 0,
                                  "/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator",
                                  "anything"));
        assert_false(autoreg_match(cgroups, 1, NULL, 0, "/system.slice/sshd.service", "sshd"));
        assert_false(autoreg_match(cgroups, 1, NULL, 0, "/machine.slice", "x")); /* the slice itself
                                                                                  * holds no guest */
}

static void test_executable_pattern_matches_the_file_name(void **state) {
        assert_true(autoreg_match(NULL, 0, exes, 2, NULL, "qemu-system-x86_64"));
        assert_true(autoreg_match(NULL, 0, exes, 2, NULL, "cloud-hypervisor"));
        assert_false(autoreg_match(NULL, 0, exes, 2, NULL, "qemu-img"));
        assert_false(autoreg_match(NULL, 0, exes, 2, NULL, "cloud-hypervisor-v2"));
}

static void test_either_rule_suffices_and_missing_facts_never_match(void **state) {
        assert_true(autoreg_match(cgroups, 1, exes, 2, "/user.slice", "qemu-system-aarch64"));
        assert_true(autoreg_match(cgroups, 1, exes, 2, "/machine.slice/x.scope", "bash"));
        assert_false(autoreg_match(cgroups, 1, exes, 2, NULL, NULL));
        assert_false(autoreg_match(NULL, 0, NULL, 0, "/machine.slice/x.scope", "qemu-system-x86_64"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cgroup_pattern_matches_nested_guests),
                cmocka_unit_test(test_executable_pattern_matches_the_file_name),
                cmocka_unit_test(test_either_rule_suffices_and_missing_facts_never_match),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
