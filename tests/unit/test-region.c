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
#include "proc-reader.h"
#include "region.h"

/* /proc/PID/maps is mocked at its seam (-Wl,--wrap=proc_maps_read). */
static ProcMapping maps[8];
static size_t n_maps;

int __wrap_proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n);
int __wrap_proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n) {
        ProcMapping *copy = calloc(n_maps ? n_maps : 1, sizeof(ProcMapping));

        memcpy(copy, maps, n_maps * sizeof(ProcMapping));
        *ret = copy;
        *ret_n = n_maps;
        return 0;
}

static ProcMapping mapping(uint64_t start, uint64_t pages, ProcMappingKind kind, const char *name) {
        ProcMapping m = {
                .start = start,
                .end = start + pages * PAGE_SIZE_BYTES,
                .readable = true,
                .writable = true,
                .private_ = kind != PROC_MAPPING_SHARED_ANON,
                .kind = kind,
        };
        snprintf(m.name, sizeof(m.name), "%s", name);
        return m;
}

static pid_t child;

/* As the scanner does: refresh, then give every area its slots. */
static int refresh(Region *r) {
        int k = region_refresh_areas(r, 1 << 20);

        for (size_t i = 0; k >= 0 && i < r->n_areas; i++)
                k = region_area_alloc_slots(&r->areas[i]);
        return k;
}

static int setup(void **state) {
        n_maps = 0;
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
        assert_int_equal(region_registry_add(reg, child, 0x1001, 0x1000, false, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, 0x1000, 0, false, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, 0x1000, 0x1001, false, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, child, UINT64_MAX - 0xfff, 0x2000, false, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, 0, 0x1000, 0x1000, false, NULL), -EINVAL);
        assert_int_equal(region_registry_add(reg, 0x7fffff00, 0x1000, 0x1000, false, NULL), -ESRCH);

        assert_int_equal(region_registry_add(reg, child, 0x10000, 0x4000, false, &a), 0);
        assert_int_equal(region_registry_add(reg, child, 0x13000, 0x1000, false, NULL), -EEXIST);
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, NULL), -EEXIST);
        assert_int_equal(region_registry_add(reg, child, 0x14000, 0x1000, false, &b), 0);
        assert_true(b->id > a->id);
        assert_int_equal(region_registry_add(reg, getpid(), 0x1000, 0x1000, false, NULL), -ENOSPC);
        assert_int_equal(region_registry_new(REGION_MAX_REGIONS + 1, &reg), -EINVAL);
}

static void test_find_next_and_remove_by_id(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r[3];

        assert_int_equal(region_registry_new(8, &reg), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(region_registry_add(reg, child, 0x100000 * (uint64_t) (i + 1), 0x1000, false, &r[i]), 0);
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
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, &r), 0);
        assert_int_equal(region_alive(r), 1);
        assert_int_equal(kill(child, SIGKILL), 0);
        assert_int_equal(waitpid(child, NULL, 0), child);
        child = 0;
        /* The pidfd tells: gone, whatever process may get the pid next. */
        assert_int_equal(region_alive(r), 0);
        assert_int_equal(refresh(r), -ESRCH);
}

static void test_whole_process_follows_private_anonymous_mappings(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r;
        PageSlot *kept;

        maps[0] = mapping(0x10000, 4, PROC_MAPPING_FILE, "/usr/lib/libc.so.6");
        maps[1] = mapping(0x20000, 8, PROC_MAPPING_ANON, "");
        maps[2] = mapping(0x40000, 2, PROC_MAPPING_SHARED_ANON, "/dev/zero (deleted)");
        maps[3] = mapping(0x50000, 4, PROC_MAPPING_ANON, "[heap]");
        n_maps = 4;
        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, &r), 0);
        assert_int_equal(refresh(r), 0);
        assert_int_equal(r->n_areas, 2);
        assert_true(r->areas[0].start == 0x20000 && r->areas[0].n_pages == 8);
        assert_true(r->areas[1].start == 0x50000 && r->areas[1].n_pages == 4);
        assert_int_equal(region_pages(r), 12);
        assert_string_equal(r->note, "");

        /* Remember something about pages, then let the mappings change. */
        r->areas[0].slots[7] = page_slot_make(0x1234500, PAGE_HASHED, 2, false);
        r->areas[1].slots[1] = page_slot_make(0xabc00, PAGE_HASHED, 0, false);
        kept = r->areas[0].slots;
        maps[1] = mapping(0x20000, 8, PROC_MAPPING_ANON, "");        /* unchanged */
        maps[2] = mapping(0x4f000, 6, PROC_MAPPING_ANON, "[heap]");  /* heap grew downwards... */
        maps[3] = mapping(0x60000, 1, PROC_MAPPING_ANON, "");        /* ...and a new mapping */
        n_maps = 4;
        assert_int_equal(refresh(r), 0);
        assert_int_equal(r->n_areas, 3);
        assert_ptr_equal(r->areas[0].slots, kept);                  /* not copied */
        assert_true(r->areas[0].slots[7] == page_slot_make(0x1234500, PAGE_HASHED, 2, false));
        assert_true(r->areas[1].start == 0x4f000);
        /* Old heap page 1 (0x51000) is page 2 of the new area. */
        assert_true(*region_slot_at(r, 0x51000) == page_slot_make(0xabc00, PAGE_HASHED, 0, false));
        assert_int_equal(page_slot_state(*region_slot_at(r, 0x4f000)), PAGE_UNKNOWN);
        assert_non_null(region_slot_at(r, 0x60000));
        assert_null(region_slot_at(r, 0x61000));
        assert_null(region_slot_at(r, 0x10000));

        /* Mappings that go away take their areas along. */
        maps[0] = maps[1];
        n_maps = 1;
        assert_int_equal(refresh(r), 0);
        assert_int_equal(r->n_areas, 1);
        assert_null(region_slot_at(r, 0x4f000));
}

static void test_range_reports_why_part_of_it_cannot_be_merged(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r;

        maps[0] = mapping(0x10000, 4, PROC_MAPPING_ANON, "");
        maps[1] = mapping(0x14000, 4, PROC_MAPPING_FILE, "/var/lib/guest.img");
        n_maps = 2;
        assert_int_equal(region_registry_new(8, &reg), 0);
        /* The range starts in the middle of the anonymous mapping and covers the file. */
        assert_int_equal(region_registry_add(reg, child, 0x12000, 0x6000, false, &r), 0);
        assert_int_equal(refresh(r), 0);
        assert_int_equal(r->n_areas, 1);
        assert_true(r->areas[0].start == 0x12000 && r->areas[0].n_pages == 2);
        assert_non_null(strstr(r->note, "0x14000-0x18000 is file-backed /var/lib/guest.img"));
        assert_non_null(strstr(r->note, "only private anonymous memory can be merged"));

        /* A range that runs past the mappings says how much is unmapped. */
        n_maps = 1;
        assert_int_equal(refresh(r), 0);
        assert_non_null(strstr(r->note, "16384 of 24576 bytes of the range are not mapped"));
}

static void test_merge_note_keeps_the_latest_reason(void **state) {
        Region r = {};

        region_set_merge_note(&r, "page 0x%x: %s", 0x1000, "hugetlb mapping");
        assert_string_equal(r.merge_note, "page 0x1000: hugetlb mapping");
        region_set_note(&r, "first");
        region_set_note(&r, "second");
        assert_string_equal(r.note, "first");
}

static void test_names_are_short_printable_ascii(void **state) {
        char longest[REGION_NAME_MAX + 2];
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
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_registration_checks_range_pid_overlap_and_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_find_next_and_remove_by_id, setup, teardown),
                cmocka_unit_test_setup_teardown(test_region_dies_with_its_process_not_with_its_pid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_whole_process_follows_private_anonymous_mappings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_range_reports_why_part_of_it_cannot_be_merged, setup, teardown),
                cmocka_unit_test(test_merge_note_keeps_the_latest_reason),
                cmocka_unit_test(test_names_are_short_printable_ascii),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
