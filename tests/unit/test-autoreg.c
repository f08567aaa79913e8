/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "autoreg.h"
#include "proc-process.h"

static char *cgroups[] = { (char *) "/machine.slice/*" };
static char *exes[] = { (char *) "qemu-system-*", (char *) "cloud-hypervisor" };
static uid_t qemu_user[] = { 64055 };
static gid_t kvm_group[] = { 993 };

/* A process of uid/gid in cgroup (root's or not), running exe. */
static AutoregProcess process(const char *cgroup, bool root_owned, const char *exe, uid_t uid, gid_t gid) {
        return (AutoregProcess) { .cgroup = cgroup, .cgroup_root_owned = root_owned, .exe = exe,
                                  .ids_known = true, .uid = uid, .euid = uid, .gid = gid, .egid = gid };
}

static void test_cgroup_pattern_matches_nested_guests_in_roots_cgroups(void **state) {
        Settings s = { .cgroup_patterns = cgroups, .n_cgroup_patterns = 1 };
        AutoregProcess p = process("/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator", true,
                                   "anything", 64055, 64055);

        assert_true(autoreg_match(&s, &p));
        p = process("/system.slice/sshd.service", true, "sshd", 0, 0);
        assert_false(autoreg_match(&s, &p));
        p = process("/machine.slice", true, "x", 0, 0); /* the slice itself holds no guest */
        assert_false(autoreg_match(&s, &p));
}

static void test_a_cgroup_a_user_could_create_never_matches(void **state) {
        Settings s = { .cgroup_patterns = cgroups, .n_cgroup_patterns = 1 };
        AutoregProcess p = process("/machine.slice/evil.scope", false, "qemu-system-x86_64", 1000, 1000);

        assert_false(autoreg_match(&s, &p));
}

static void test_executable_matches_only_processes_of_the_configured_owners(void **state) {
        Settings s = { .executable_patterns = exes, .n_executable_patterns = 2, .users = qemu_user,
                       .n_users = 1 };
        AutoregProcess p = process(NULL, false, "qemu-system-x86_64", 64055, 64055);

        assert_true(autoreg_match(&s, &p));
        p.exe = "cloud-hypervisor";
        assert_true(autoreg_match(&s, &p));
        p.exe = "qemu-img";
        assert_false(autoreg_match(&s, &p));
        /* The name alone proves nothing: another user's program of that name is not registered. */
        p = process(NULL, false, "qemu-system-x86_64", 1000, 1000);
        assert_false(autoreg_match(&s, &p));
        /* Real and effective ids both count. */
        p = process(NULL, false, "qemu-system-x86_64", 64055, 64055);
        p.euid = 0;
        assert_false(autoreg_match(&s, &p));
        /* Without User= or Group=, Executable= matches nothing (the configuration refuses it anyway). */
        s.n_users = 0;
        p = process(NULL, false, "qemu-system-x86_64", 64055, 64055);
        assert_false(autoreg_match(&s, &p));
}

static void test_group_qualifies_an_owner_and_narrows_cgroup_rules(void **state) {
        Settings s = { .cgroup_patterns = cgroups, .n_cgroup_patterns = 1, .executable_patterns = exes,
                       .n_executable_patterns = 2, .groups = kvm_group, .n_groups = 1 };
        AutoregProcess p = process(NULL, false, "qemu-system-aarch64", 5000, 993);

        assert_true(autoreg_match(&s, &p));
        /* With owners configured, a guest's cgroup alone is not enough either. */
        p = process("/machine.slice/x.scope", true, "bash", 5000, 5000);
        assert_false(autoreg_match(&s, &p));
        p = process("/machine.slice/x.scope", true, "bash", 5000, 993);
        assert_true(autoreg_match(&s, &p));
}

static void test_cgroup_paths_stay_under_the_v2_mount(void **state) {
        uint64_t max = 0, current = 0;

        /* Relative paths and ".." never reach the file system. */
        assert_int_equal(proc_cgroup_is_root_owned("machine.slice"), -EINVAL);
        assert_int_equal(proc_cgroup_is_root_owned("/machine.slice/../../etc"), -EINVAL);
        assert_int_equal(proc_read_cgroup_memory("/..", &max, &current), -EINVAL);
        /* The root cgroup is root's; one that does not exist is not found, never "owned". */
        assert_int_equal(proc_cgroup_is_root_owned("/"), 1);
        assert_int_equal(proc_cgroup_is_root_owned("/ksmd-test-no-such-cgroup"), -ENOENT);
        assert_true(proc_read_cgroup_memory("/ksmd-test-no-such-cgroup", &max, &current) < 0);
}

static void test_cgroup_file_yields_the_one_v2_path(void **state) {
        char buf[64];

        /* A hybrid host: v1 hierarchies first, then the unified one. */
        assert_int_equal(proc_parse_cgroup("12:pids:/user.slice\n1:name=systemd:/machine.slice/x\n"
                                           "0::/machine.slice/vm-1.scope\n",
                                           buf, sizeof(buf)),
                         0);
        assert_string_equal(buf, "/machine.slice/vm-1.scope");
        assert_int_equal(proc_parse_cgroup("0::/\n", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "/");
        /* v1 only: no v2 path, never a v1 one. */
        assert_int_equal(proc_parse_cgroup("1:name=systemd:/machine.slice/x\n", buf, sizeof(buf)), -ENODATA);
        /* The kernel writes one "0::" line; a second is forged: neither is trusted. */
        assert_int_equal(proc_parse_cgroup("0::/user.slice/evil\n0::/machine.slice/vm\n", buf, sizeof(buf)),
                         -EBADMSG);
        assert_int_equal(proc_parse_cgroup("0::/machine.slice/a-path-longer-than-the-64-bytes-of-the-buffer"
                                           "-given-here\n",
                                           buf, sizeof(buf)),
                         -ENAMETOOLONG);
}

/* autoreg_guest_name() into name, REGION_NAME_MAX + 1 bytes. */
static int guest_name(const char *cgroup, char *name) {
        return autoreg_guest_name(cgroup, name, REGION_NAME_MAX + 1);
}

#define SLICE "/machine.slice/"

static void test_a_guest_is_named_after_its_machine_scope(void **state) {
        static const struct {
                const char *cgroup, *name;
        } cases[] = {
                /* libvirt's guests: systemd-machined's scope, the unit name escaped, "qemu-ID-" gone. */
                { SLICE "machine-qemu\\x2d1\\x2dguest1.scope/libvirt/emulator", "guest1" },
                { SLICE "machine-qemu\\x2d12\\x2dweb\\x2dfront.scope", "web-front" },
                /* A partition of its own (<resource><partition>) is a slice below machine.slice. */
                { SLICE "machine-t1.slice/machine-qemu\\x2d3\\x2ddb.scope/x", "db" },
                /* Upper-case hex digits unescape too; other machines (nspawn's) keep their whole name. */
                { SLICE "machine-build\\x2Dhost.scope/payload", "build-host" },
                /* Only a "qemu-DIGITS-" with something after it is libvirt's prefix. */
                { SLICE "machine-qemu\\x2d1\\x2d.scope", "qemu-1-" },
                { SLICE "machine-qemu\\x2dx\\x2dvm.scope", "qemu-x-vm" },
        };
        char name[REGION_NAME_MAX + 1];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(guest_name(cases[i].cgroup, name), 0);
                assert_string_equal(name, cases[i].name);
        }
        /* Cut to the limit, as executable names are. */
        assert_int_equal(guest_name(SLICE "machine-qemu\\x2d1\\x2d"
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaBBBB.scope",
                                    name),
                         0);
        assert_int_equal(strlen(name), REGION_NAME_MAX);
        assert_int_equal(name[REGION_NAME_MAX - 1], 'a');
}

static void test_a_guest_name_that_is_not_one_is_refused(void **state) {
        static const struct {
                const char *cgroup;
                int error;
        } cases[] = {
                /* No machine scope: the caller names the region after the executable. */
                { "/system.slice/libvirtd.service", -ENOENT },
                { "/machine.slice", -ENOENT },
                { SLICE "machine-.scope", -ENOENT },
                { SLICE "x-machine-vm.scope", -ENOENT },
                { "/", -ENOENT },
                { "", -ENOENT },
                { NULL, -ENOENT },
                /* Escapes that systemd never writes, or that end early. */
                { SLICE "machine-vm\\.scope", -EINVAL },
                { SLICE "machine-vm\\x2.scope", -EINVAL },
                { SLICE "machine-vm\\x2g.scope", -EINVAL },
                { SLICE "machine-vm\\y41.scope", -EINVAL },
                { SLICE "machine-vm\\x00evil.scope", -EINVAL },
                /* Names that unescape to what a region name may not hold: control characters, non-ASCII. */
                { SLICE "machine-qemu\\x2d1\\x2dvm\\x0a\\x3c0\\x3eforged.scope", -EINVAL },
                { SLICE "machine-\\x1b\\x5b2J.scope", -EINVAL },
                { SLICE "machine-g\\xc3\\xa4st.scope", -EINVAL },
                { SLICE "machine-vm\\x7f.scope", -EINVAL },
        };
        char name[REGION_NAME_MAX + 1] = "untouched";

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(guest_name(cases[i].cgroup, name), cases[i].error);
        assert_string_equal(name, "untouched");
}

static void test_missing_facts_never_match(void **state) {
        Settings s = { .cgroup_patterns = cgroups, .n_cgroup_patterns = 1, .executable_patterns = exes,
                       .n_executable_patterns = 2, .users = qemu_user, .n_users = 1 };
        AutoregProcess p = {};

        assert_false(autoreg_match(&s, &p));
        p = process(NULL, false, "qemu-system-x86_64", 64055, 64055);
        p.ids_known = false;
        assert_false(autoreg_match(&s, &p));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cgroup_pattern_matches_nested_guests_in_roots_cgroups),
                cmocka_unit_test(test_a_cgroup_a_user_could_create_never_matches),
                cmocka_unit_test(test_executable_matches_only_processes_of_the_configured_owners),
                cmocka_unit_test(test_group_qualifies_an_owner_and_narrows_cgroup_rules),
                cmocka_unit_test(test_missing_facts_never_match),
                cmocka_unit_test(test_cgroup_file_yields_the_one_v2_path),
                cmocka_unit_test(test_cgroup_paths_stay_under_the_v2_mount),
                cmocka_unit_test(test_a_guest_is_named_after_its_machine_scope),
                cmocka_unit_test(test_a_guest_name_that_is_not_one_is_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
