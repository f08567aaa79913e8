/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "region.h"

static pid_t child;

static int setup(void **state) {
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        return 0;
}

static int teardown(void **state) {
        if (child > 0) {
                (void) kill(child, SIGKILL);
                (void) waitpid(child, NULL, 0);
        }
        return 0;
}

static void test_registration_checks_range_pid_overlap_and_limit(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *a = NULL, *b = NULL;

        assert_int_equal(region_registry_new(2, &reg), 0);
        assert_int_equal(region_registry_add(reg, child, 0x1001, 0x1000, false, 0, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, 0x1000, 0, false, 0, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, 0x1000, 0x1001, false, 0, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, UINT64_MAX - 0xfff, 0x2000, false, 0, NULL),
                         -EINVAL);
        assert_int_equal(region_registry_add(reg, 0, 0x1000, 0x1000, false, 0, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, 0x7fffff00, 0x1000, 0x1000, false, 0, NULL), -ESRCH);

        assert_int_equal(region_registry_add(reg, child, 0x10000, 0x4000, false, 0, &a), 0);
        assert_int_equal(region_registry_add(reg, child, 0x13000, 0x1000, false, 0, NULL), -EEXIST);
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, 0, NULL), -EEXIST);
        assert_int_equal(region_registry_add(reg, child, 0x14000, 0x1000, false, 0, &b), 0);
        assert_true(b->id > a->id);
        assert_int_equal(region_registry_add(reg, getpid(), 0x1000, 0x1000, false, 0, NULL), -ENOSPC);
        assert_int_equal(region_registry_new(REGION_MAX_REGIONS + 1, &reg), -EINVAL);
}

static void test_find_next_and_remove_by_id(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r[3];

        assert_int_equal(region_registry_new(8, &reg), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(region_registry_add(reg, child, 0x100000 * (uint64_t) (i + 1), 0x1000,
                                                     false, 0, &r[i]), 0);
        uint32_t id1 = r[1]->id, id2 = r[2]->id;
        assert_ptr_equal(region_registry_find(reg, id1), r[1]);
        assert_int_equal(region_registry_remove(reg, id1), 0);
        assert_null(region_registry_find(reg, id1));
        assert_int_equal(region_registry_remove(reg, id1), -ENOENT);
        /* A cursor on a removed id moves on to the next region. */
        assert_ptr_equal(region_registry_next(reg, id1), region_registry_find(reg, id2));
        assert_null(region_registry_next(reg, id2 + 1));
}

static void test_region_dies_with_its_process_not_with_its_pid(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r;

        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, 0, &r), 0);
        assert_int_equal(region_alive(r), 1);
        assert_int_equal(kill(child, SIGKILL), 0);
        assert_int_equal(waitpid(child, NULL, 0), child);
        child = 0;
        /* The pidfd tells: gone, whatever process may get the pid next. */
        assert_int_equal(region_alive(r), 0);
}

static void test_owner_and_whole_process_lookup(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *range, *whole;

        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(region_registry_add(reg, child, 0x10000, 0x1000, false, 1000, &range), 0);
        assert_int_equal(range->owner_uid, 1000);
        assert_null(region_registry_find_whole(reg, child));
        assert_int_equal(region_registry_add(reg, getpid(), 0, 0, true, 0, &whole), 0);
        assert_ptr_equal(region_registry_find_whole(reg, getpid()), whole);
        assert_int_equal(region_registry_count(reg), 2);
        assert_true(region_registry_next_id(reg) > whole->id);
        assert_int_equal(region_registry_set_max_regions(reg, 1), 0);
        assert_int_equal(region_registry_add(reg, child, 0x20000, 0x1000, false, 0, NULL), -ENOSPC);
        assert_int_equal(region_registry_set_max_regions(reg, 0), -EINVAL);
}

static void test_names_are_short_printable_ascii(void **state) {
        char longest[REGION_NAME_MAX + 2], label[REGION_LABEL_MAX];
        Region r = {};

        assert_true(region_name_is_valid("vm-01"));
        assert_true(region_name_is_valid("guest 7 (Windows)"));
        assert_false(region_name_is_valid(NULL));
        assert_false(region_name_is_valid(""));
        assert_false(region_name_is_valid("tab\there"));
        assert_false(region_name_is_valid("line\n"));
        assert_false(region_name_is_valid("del\x7f"));
        assert_false(region_name_is_valid("caf\xc3\xa9"));

        memset(longest, 'x', REGION_NAME_MAX);
        longest[REGION_NAME_MAX] = 0;
        assert_true(region_name_is_valid(longest));
        assert_int_equal(region_set_name(&r, longest), 0);
        assert_string_equal(r.name, longest);
        longest[REGION_NAME_MAX] = 'x';
        longest[REGION_NAME_MAX + 1] = 0;
        assert_false(region_name_is_valid(longest));

        /* A refused name leaves the old one; NULL clears it. */
        assert_int_equal(region_set_name(&r, "vm-01"), 0);
        assert_int_equal(region_set_name(&r, longest), -EINVAL);
        assert_string_equal(r.name, "vm-01");
        assert_int_equal(region_set_name(&r, NULL), 0);
        assert_string_equal(r.name, "");

        /* In a log line, a backslash of the name's is an escape of its own, not the start of one. */
        assert_string_equal(region_label(&r, label, sizeof(label)), "");
        assert_int_equal(region_set_name(&r, "vm\\x0a"), 0);
        assert_string_equal(region_label(&r, label, sizeof(label)), " \"vm\\x5cx0a\"");
        memset(longest, '\\', REGION_NAME_MAX);
        longest[REGION_NAME_MAX] = 0;
        assert_int_equal(region_set_name(&r, longest), 0);
        assert_int_equal(strlen(region_label(&r, label, sizeof(label))), 4 * REGION_NAME_MAX + 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_registration_checks_range_pid_overlap_and_limit, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_find_next_and_remove_by_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_region_dies_with_its_process_not_with_its_pid, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_owner_and_whole_process_lookup, setup, teardown),
                cmocka_unit_test(test_names_are_short_printable_ascii),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
