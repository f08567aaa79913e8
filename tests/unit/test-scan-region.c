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

#include "escape.h"
#include "macro.h"
#include "proc-reader.h"
#include "region.h"
#include "scan-region.h"

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

/* The regions are of this process; its maps are the mock's. */
static RegionScan *rs;

/* As the scanner does: refresh, then give every area its slots. */
static int refresh(Region *r) {
        int k = region_scan_refresh(rs, r, 1 << 20);

        for (size_t i = 0; k >= 0 && i < rs->n_areas; i++)
                k = region_area_alloc_slots(&rs->areas[i]);
        return k;
}

static int setup(void **state) {
        n_maps = 0;
        rs = region_scan_new(1);
        assert_non_null(rs);
        return 0;
}

static int teardown(void **state) {
        rs = region_scan_free(rs);
        return 0;
}

static void test_refresh_of_an_exited_process_is_esrch(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        pid_t child = fork();
        Region *r;

        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(region_registry_new(8, &reg), 0);
        assert_int_equal(region_registry_add(reg, child, 0, 0, true, 0, &r), 0);
        assert_int_equal(waitpid(child, NULL, 0), child);
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
        assert_int_equal(region_registry_add(reg, getpid(), 0, 0, true, 0, &r), 0);
        assert_int_equal(refresh(r), 0);
        assert_int_equal(rs->n_areas, 2);
        assert_true(rs->areas[0].start == 0x20000 && rs->areas[0].n_pages == 8);
        assert_true(rs->areas[1].start == 0x50000 && rs->areas[1].n_pages == 4);
        assert_int_equal(region_scan_pages(rs), 12);
        assert_string_equal(rs->note, "");

        /* Remember something about pages, then let the mappings change. */
        rs->areas[0].slots[7] = page_slot_make(0x1234500, PAGE_HASHED, 2, false);
        rs->areas[1].slots[1] = page_slot_make(0xabc00, PAGE_HASHED, 0, false);
        kept = rs->areas[0].slots;
        maps[1] = mapping(0x20000, 8, PROC_MAPPING_ANON, "");        /* unchanged */
        maps[2] = mapping(0x4f000, 6, PROC_MAPPING_ANON, "[heap]");  /* heap grew downwards... */
        maps[3] = mapping(0x60000, 1, PROC_MAPPING_ANON, "");        /* ...and a new mapping */
        n_maps = 4;
        assert_int_equal(refresh(r), 0);
        assert_int_equal(rs->n_areas, 3);
        assert_ptr_equal(rs->areas[0].slots, kept);                  /* not copied */
        assert_true(rs->areas[0].slots[7] == page_slot_make(0x1234500, PAGE_HASHED, 2, false));
        assert_true(rs->areas[1].start == 0x4f000);
        /* Old heap page 1 (0x51000) is page 2 of the new area. */
        assert_true(*region_scan_slot_at(rs, 0x51000) == page_slot_make(0xabc00, PAGE_HASHED, 0, false));
        assert_int_equal(page_slot_state(*region_scan_slot_at(rs, 0x4f000)), PAGE_UNKNOWN);
        assert_non_null(region_scan_slot_at(rs, 0x60000));
        assert_null(region_scan_slot_at(rs, 0x61000));
        assert_null(region_scan_slot_at(rs, 0x10000));

        /* Mappings that go away take their areas along. */
        maps[0] = maps[1];
        n_maps = 1;
        assert_int_equal(refresh(r), 0);
        assert_int_equal(rs->n_areas, 1);
        assert_null(region_scan_slot_at(rs, 0x4f000));
}

static void test_range_reports_why_part_of_it_cannot_be_merged(void **state) {
        _cleanup_(region_registry_freep) RegionRegistry *reg = NULL;
        Region *r;

        maps[0] = mapping(0x10000, 4, PROC_MAPPING_ANON, "");
        maps[1] = mapping(0x14000, 4, PROC_MAPPING_FILE, "/var/lib/guest.img");
        n_maps = 2;
        assert_int_equal(region_registry_new(8, &reg), 0);
        /* The range starts in the middle of the anonymous mapping and covers the file. */
        assert_int_equal(region_registry_add(reg, getpid(), 0x12000, 0x6000, false, 0, &r), 0);
        assert_int_equal(refresh(r), 0);
        assert_int_equal(rs->n_areas, 1);
        assert_true(rs->areas[0].start == 0x12000 && rs->areas[0].n_pages == 2);
        assert_non_null(strstr(rs->note, "0x14000-0x18000 is file-backed /var/lib/guest.img"));
        assert_non_null(strstr(rs->note, "only private anonymous memory can be merged"));

        /* A range that runs past the mappings says how much is unmapped. */
        n_maps = 1;
        assert_int_equal(refresh(r), 0);
        assert_non_null(strstr(rs->note, "16384 of 24576 bytes of the range are not mapped"));
}

static void test_merge_note_keeps_the_latest_reason(void **state) {
        RegionScan s = {};

        region_scan_set_merge_note(&s, "page 0x%x: %s", 0x1000, "hugetlb mapping");
        assert_string_equal(s.merge_note, "page 0x1000: hugetlb mapping");
        region_scan_set_note(&s, "first");
        region_scan_set_note(&s, "second");
        assert_string_equal(s.note, "first");
}

static void test_notes_are_escaped_text_cut_on_a_character_boundary(void **state) {
        RegionScan s = {};
        char long_part[401];
        size_t n;

        /* A part that was not escaped is escaped all the same; escapes already made are kept. */
        region_scan_set_note(&s, "%s and %s", "a\nb\xff", "c\\x0ad");
        assert_string_equal(s.note, "a\\x0ab\\xff and c\\x0ad");

        /* 200 'é's: vsnprintf() alone would cut the note after 255 bytes, in the middle of one. */
        for (size_t i = 0; i < 200; i++)
                memcpy(long_part + 2 * i, "\xc3\xa9", 2);
        long_part[400] = '\0';
        region_scan_clear_note(&s);
        region_scan_set_note(&s, "%s", long_part);
        n = strlen(s.note);
        assert_true(n < sizeof(s.note));
        assert_true(utf8_is_valid(s.note, n));
        assert_string_equal(s.note + n - 3, "...");
        region_scan_set_merge_note(&s, "%s", long_part);
        assert_true(utf8_is_valid(s.merge_note, strlen(s.merge_note)));
}

static void test_each_change_of_the_notes_is_reported_once(void **state) {
        RegionScan s = {};

        assert_false(region_scan_notes_changed(&s));
        region_scan_set_note(&s, "cannot read");
        assert_true(region_scan_notes_changed(&s));
        assert_false(region_scan_notes_changed(&s));
        region_scan_set_merge_note(&s, "page 0x1000: pinned");
        assert_true(region_scan_notes_changed(&s));
        region_scan_clear_note(&s);
        assert_true(region_scan_notes_changed(&s));
        assert_false(region_scan_notes_changed(&s));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_refresh_of_an_exited_process_is_esrch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_whole_process_follows_private_anonymous_mappings, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_range_reports_why_part_of_it_cannot_be_merged, setup,
                                                teardown),
                cmocka_unit_test(test_merge_note_keeps_the_latest_reason),
                cmocka_unit_test(test_notes_are_escaped_text_cut_on_a_character_boundary),
                cmocka_unit_test(test_each_change_of_the_notes_is_reported_once),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
