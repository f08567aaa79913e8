/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the scanner knows of one region: its areas, one per private
 * anonymous mapping inside it, re-read from /proc/PID/maps when the scanner
 * reaches the region in a full scan (a whole-process region follows new and
 * removed mappings), each with the PageSlot array of its pages (index.h);
 * its soft-dirty bookkeeping; the counters of the running and the last full
 * scan; the helper's results; and why (some of) it cannot be merged. The
 * scanner owns one RegionScan per registered region, keyed by region id.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "macro.h"
#include "region.h"
#include "stats.h"

#define REGION_NOTE_MAX 256u

typedef struct RegionArea {
        uint64_t start;                  /* bytes, page aligned */
        uint64_t n_pages;
        PageSlot *slots;                 /* n_pages slots; NULL while untracked (memory bound, new) */
        uint32_t base_id;                /* page id of slots[0] this pass, when attached */
        bool attached;
} RegionArea;

typedef struct RegionScan {
        uint32_t region_id;
        Region *region;                  /* the registry's, while registered (the scanner's to set) */
        RegionArea *areas;               /* ascending, non-overlapping */
        size_t n_areas;

        bool soft_dirty_tracking;        /* its process's soft-dirty bits were cleared by us */
        uint64_t soft_dirty_pass;        /* the scanner's pass that last decided on clearing them */
        uint64_t dirty_waste_pages;      /* reads since the last clear that a clear would have saved */

        uint64_t mapping_pages;          /* a range's pages in mappings that cannot be merged */
        uint64_t unmapped_pages;         /* a range's pages no mapping covers */

        ScanCounters pass;               /* the running full scan */
        ScanCounters last;               /* the last completed full scan */
        uint64_t merge_results[__KSMD_HELPER_RESULT_MAX];
        uint64_t cow_breaks;             /* its merged pages found written since it was registered */

        /* Why (some of) the region cannot be merged, for "why was nothing merged?"; "" if no reason. */
        char note[REGION_NOTE_MAX];      /* from its mappings, rebuilt every full scan */
        char merge_note[REGION_NOTE_MAX];/* the helper's last refusal of a page (see scanner.c), kept */
        uint32_t reported_note_hash;     /* the notes last reported by region_scan_notes_changed() */
} RegionScan;

RegionScan *region_scan_new(uint32_t region_id);
RegionScan *region_scan_free(RegionScan *rs);
DEFINE_TRIVIAL_CLEANUP_FUNC(RegionScan *, region_scan_free);

/*
 * Re-reads the mappings of r's process and rebuilds the areas: areas that
 * did not move keep their slots; changed ones of at most max_pages pages
 * keep the slots of the pages they still cover; new ones get no slots
 * (slots == NULL) until region_area_alloc_slots(), which the caller calls
 * only once its memory bound allows it. Parts of a range region that are
 * not private anonymous memory are described in the note. -ESRCH if the
 * process is gone.
 */
int region_scan_refresh(RegionScan *rs, const Region *r, uint64_t max_pages);

/* Gives an area without slots its (zeroed) slot array. -ENOMEM. */
int region_area_alloc_slots(RegionArea *a);

/* The slot of the page at addr, or NULL if addr is in no tracked area. */
PageSlot *region_scan_slot_at(RegionScan *rs, uint64_t addr);

/* Pages covered by the region's areas. */
uint64_t region_scan_pages(const RegionScan *rs);

/*
 * The region's pages that its reasons (reasons.h) add up to: every page of a
 * range; the pages of a whole process's private anonymous mappings. As the
 * last region_scan_refresh() found them.
 */
uint64_t region_scan_registered_pages(const RegionScan *rs, const Region *r);

/*
 * Records why pages could not be merged (first reason wins until region_scan_clear_note()). Notes are
 * escaped text (escape.h), cut to REGION_NOTE_MAX on a character boundary: a part that comes from
 * outside, such as a mapping's name, is escaped before it is put in.
 */
void region_scan_set_note(RegionScan *rs, const char *format, ...) _printf_(2, 3);
void region_scan_clear_note(RegionScan *rs);
/* Records the helper's reason for refusing a page of the region (the latest wins). */
void region_scan_set_merge_note(RegionScan *rs, const char *format, ...) _printf_(2, 3);

/* true once per change of the notes since the last call, so that each new reason is logged once. */
bool region_scan_notes_changed(RegionScan *rs);
