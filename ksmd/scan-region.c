/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "proc-reader.h"
#include "scan-region.h"

RegionScan *region_scan_new(uint32_t region_id) {
        RegionScan *rs = calloc(1, sizeof(*rs));

        if (rs)
                rs->region_id = region_id;
        return rs;
}

static void areas_free(RegionArea *areas, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(areas[i].slots);
        free(areas);
}

RegionScan *region_scan_free(RegionScan *rs) {
        if (!rs)
                return NULL;
        areas_free(rs->areas, rs->n_areas);
        free(rs);
        return NULL;
}

/* Notes go out over D-Bus, where one that is not valid UTF-8 fails ListRegions: escaped text, cut on a
 * character boundary, whatever the parts. */
_printf_(2, 0) static void format_note(char *note, const char *format, va_list ap) {
        char raw[2 * REGION_NOTE_MAX];

        (void) vsnprintf(raw, sizeof(raw), format, ap);
        escape_text(raw, note, REGION_NOTE_MAX);
}

void region_scan_set_note(RegionScan *rs, const char *format, ...) {
        va_list ap;

        if (rs->note[0])
                return;
        va_start(ap, format);
        format_note(rs->note, format, ap);
        va_end(ap);
}

void region_scan_set_merge_note(RegionScan *rs, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        format_note(rs->merge_note, format, ap);
        va_end(ap);
}

void region_scan_clear_note(RegionScan *rs) {
        rs->note[0] = 0;
}

static uint32_t note_hash(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 16777619u;
        return h;
}

bool region_scan_notes_changed(RegionScan *rs) {
        /* No notes hash to 0, what a new RegionScan starts with. */
        uint32_t h = rs->note[0] || rs->merge_note[0] ?
                (note_hash(rs->note) ^ (note_hash(rs->merge_note) * 31)) | 1 : 0;

        if (h == rs->reported_note_hash)
                return false;
        rs->reported_note_hash = h;
        return true;
}

uint64_t region_scan_pages(const RegionScan *rs) {
        uint64_t n = 0;

        for (size_t i = 0; i < rs->n_areas; i++)
                n += rs->areas[i].n_pages;
        return n;
}

uint64_t region_scan_registered_pages(const RegionScan *rs, const Region *r) {
        if (r->whole_process)
                return region_scan_pages(rs);
        return (r->end - r->start) / PAGE_SIZE_BYTES;
}
/*
 * Copies the slots of old areas that overlap the new area a (both sorted by
 * address). A copy is made only for areas of at most max_pages: the caller's
 * memory bound is checked before anything big is allocated.
 */
static void area_inherit(RegionArea *a, RegionArea *old, size_t n_old, size_t *cursor, uint64_t max_pages) {
        uint64_t a_end = a->start + a->n_pages * PAGE_SIZE_BYTES;

        while (*cursor < n_old && old[*cursor].start + old[*cursor].n_pages * PAGE_SIZE_BYTES <= a->start)
                (*cursor)++;
        for (size_t i = *cursor; i < n_old && old[i].start < a_end; i++) {
                RegionArea *o = &old[i];
                uint64_t o_end = o->start + o->n_pages * PAGE_SIZE_BYTES;
                uint64_t from = MAX(a->start, o->start), to = MIN(a_end, o_end);

                if (!o->slots || from >= to)
                        continue;
                if (o->start == a->start && o->n_pages == a->n_pages && !a->slots) {
                        /* Unchanged area: take the array, no copy. */
                        a->slots = TAKE_PTR(o->slots);
                        return;
                }
                if (!a->slots) {
                        if (a->n_pages > max_pages)
                                return;
                        a->slots = calloc(a->n_pages, sizeof(PageSlot));
                        if (!a->slots)
                                return;
                }
                memcpy(&a->slots[(from - a->start) / PAGE_SIZE_BYTES],
                       &o->slots[(from - o->start) / PAGE_SIZE_BYTES],
                       (to - from) / PAGE_SIZE_BYTES * sizeof(PageSlot));
        }
}

int region_scan_refresh(RegionScan *rs, const Region *r, uint64_t max_pages) {
        _cleanup_free_ ProcMapping *maps = NULL;
        _cleanup_free_ RegionArea *areas = NULL;
        size_t n_maps = 0, n = 0, cursor = 0, n_unsupported = 0;
        char first_unsupported[160] = "";
        uint64_t covered = 0, anon = 0;
        int r_;

        r_ = proc_maps_read(r->pid, &maps, &n_maps);
        if (r_ < 0)
                return r_;
        /* The maps we read may belong to a new process with the same pid: check after reading. */
        if (!region_alive(r))
                return -ESRCH;

        areas = calloc(MAX(n_maps, (size_t) 1), sizeof(RegionArea));
        if (!areas)
                return -ENOMEM;

        for (size_t i = 0; i < n_maps; i++) {
                ProcMapping *m = &maps[i];
                uint64_t from = MAX(m->start, r->start), to = MIN(m->end, r->end);

                if (from >= to)
                        continue;
                covered += to - from;
                if (m->kind != PROC_MAPPING_ANON || !m->readable) {
                        /* A whole process has plenty of these by nature; only ranges report them. */
                        if (!r->whole_process && n_unsupported++ == 0)
                                snprintf(first_unsupported, sizeof(first_unsupported),
                                         "0x%llx-0x%llx is %s%s%s%s",
                                         (unsigned long long) from, (unsigned long long) to,
                                         m->readable ? "" : "unreadable ",
                                         proc_mapping_kind_to_string(m->kind), m->name[0] ? " " : "",
                                         m->name);
                        continue;
                }
                areas[n++] = (RegionArea) {
                        .start = from,
                        .n_pages = (to - from) / PAGE_SIZE_BYTES,
                };
                anon += to - from;
        }

        for (size_t i = 0; i < n; i++)
                area_inherit(&areas[i], rs->areas, rs->n_areas, &cursor, max_pages);

        areas_free(rs->areas, rs->n_areas);
        rs->areas = TAKE_PTR(areas);
        rs->n_areas = n;

        /* What a range holds besides its areas, for its reasons (a whole process is its areas). */
        rs->mapping_pages = r->whole_process ? 0 : (covered - anon) / PAGE_SIZE_BYTES;
        rs->unmapped_pages = r->whole_process ? 0 : (r->end - r->start - covered) / PAGE_SIZE_BYTES;

        region_scan_clear_note(rs);
        if (n_unsupported > 0)
                region_scan_set_note(rs,
                                     "%s: only private anonymous memory can be merged (%zu such mapping%s)",
                                     first_unsupported, n_unsupported, n_unsupported == 1 ? "" : "s");
        else if (!r->whole_process && covered < r->end - r->start)
                region_scan_set_note(rs, "%llu of %llu bytes of the range are not mapped",
                                (unsigned long long) (r->end - r->start - covered),
                                (unsigned long long) (r->end - r->start));
        return 0;
}

int region_area_alloc_slots(RegionArea *a) {
        if (a->slots)
                return 0;
        a->slots = calloc(a->n_pages, sizeof(PageSlot));
        return a->slots ? 0 : -ENOMEM;
}

PageSlot *region_scan_slot_at(RegionScan *rs, uint64_t addr) {
        size_t lo = 0, hi = rs->n_areas;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                RegionArea *a = &rs->areas[mid];

                if (addr < a->start)
                        hi = mid;
                else if (addr >= a->start + a->n_pages * PAGE_SIZE_BYTES)
                        lo = mid + 1;
                else
                        return a->slots ? &a->slots[(addr - a->start) / PAGE_SIZE_BYTES] : NULL;
        }
        return NULL;
}
