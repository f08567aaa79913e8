/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The region registry: what the daemon was asked to deduplicate. A region is
 * (process, address range) or a whole process; either way it is tied to its
 * process by a pidfd taken at registration, so it dies with the process and a
 * reused pid never aliases it. A region is split into areas, one per private
 * anonymous mapping inside it, re-read from /proc/PID/maps at the start of
 * every full scan: a whole-process region follows new and removed mappings.
 * Each area owns the PageSlot array of its pages (see index.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index.h"
#include "macro.h"
#include "stats.h"

/* Hard limits; the control plane may lower them, never raise them. */
#define REGION_MAX_REGIONS 65536u
#define REGION_NOTE_MAX 256u
/* An operator's label for a region (a VM name): 1..REGION_NAME_MAX printable ASCII characters. */
#define REGION_NAME_MAX 64u

typedef struct RegionArea {
        uint64_t start;                  /* bytes, page aligned */
        uint64_t n_pages;
        PageSlot *slots;                 /* n_pages slots; NULL while untracked (memory bound, new) */
        uint32_t base_id;                /* page id of slots[0] this pass, when attached */
        bool attached;
} RegionArea;

typedef struct Region {
        uint32_t id;                     /* unique for the daemon's lifetime, > 0 */
        pid_t pid;
        int pidfd;
        bool whole_process;
        uint64_t start;                  /* bytes; 0 for a whole process */
        uint64_t end;                    /* bytes, exclusive; UINT64_MAX for a whole process */
        char name[REGION_NAME_MAX + 1];  /* the registrant's label, "" if none; see region_name_is_valid() */

        RegionArea *areas;               /* ascending, non-overlapping */
        size_t n_areas;

        bool gone;                       /* the process exited; to be dropped */
        bool soft_dirty_tracking;        /* its process's soft-dirty bits were cleared by us */
        uint64_t soft_dirty_pass;        /* the scanner's pass that last decided on clearing them */
        uint64_t dirty_waste_pages;      /* reads since the last clear that a clear would have saved */

        ScanCounters pass;               /* the running full scan */
        ScanCounters last;               /* the last completed full scan */
        uint64_t merge_results[__KSMD_HELPER_RESULT_MAX];

        /* Why (some of) the region cannot be merged, for "why was nothing merged?"; "" if no reason. */
        char note[REGION_NOTE_MAX];      /* from its mappings, rebuilt every full scan */
        char merge_note[REGION_NOTE_MAX];/* the helper's last UNSUPPORTED reason, kept */
        uint32_t logged_note_hash;       /* the manager logs a note once, not every pass */
} Region;

typedef struct RegionRegistry {
        Region **regions;                /* ascending by id */
        size_t n_regions;
        size_t max_regions;
        uint32_t next_id;
} RegionRegistry;

int region_registry_new(size_t max_regions, RegionRegistry **ret);
RegionRegistry *region_registry_free(RegionRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(RegionRegistry *, region_registry_free);

/*
 * Registers [start, start + length) of pid (whole_process: start and length
 * are ignored). Returns 0 and a borrowed pointer in *ret (optional).
 * -EINVAL: unaligned, empty or wrapping range; -ESRCH: no such process;
 * -EEXIST: overlaps a region of the same process; -ENOSPC: max_regions reached.
 */
int region_registry_add(RegionRegistry *reg, pid_t pid, uint64_t start, uint64_t length, bool whole_process,
                        Region **ret);

/* Drops a region. -ENOENT if unknown. */
int region_registry_remove(RegionRegistry *reg, uint32_t id);

/* The region with this id, or NULL. */
Region *region_registry_find(RegionRegistry *reg, uint32_t id);

/* The first region with id >= id, or NULL: a cursor that survives removals. */
Region *region_registry_next(RegionRegistry *reg, uint32_t id);

/* 1 if the region's process runs, 0 once it has exited (see pidfd_is_alive()). */
int region_alive(const Region *r);

/*
 * Re-reads the process's mappings and rebuilds the areas: areas that did not
 * move keep their slots; changed ones of at most max_pages pages keep the
 * slots of the pages they still cover; new ones get no slots (slots == NULL)
 * until region_area_alloc_slots(), which the caller calls only once its
 * memory bound allows it. Parts of a range region that are not private
 * anonymous memory are described in note. -ESRCH if the process is gone.
 */
int region_refresh_areas(Region *r, uint64_t max_pages);

/* Gives an area without slots its (zeroed) slot array. -ENOMEM. */
int region_area_alloc_slots(RegionArea *a);

/* The slot of the page at addr, or NULL if addr is in no tracked area. */
PageSlot *region_slot_at(Region *r, uint64_t addr);

/*
 * true if name may label a region: 1..REGION_NAME_MAX characters, each
 * printable ASCII (0x20..0x7e), so it is safe in log lines, JSON and a terminal.
 */
bool region_name_is_valid(const char *name);
/* Labels the region; NULL clears the label. -EINVAL (nothing changed) if the name is not valid. */
int region_set_name(Region *r, const char *name);

/* Records why pages could not be merged (first reason wins until region_clear_note()). */
void region_set_note(Region *r, const char *format, ...) _printf_(2, 3);
void region_clear_note(Region *r);
/* Records the helper's reason for refusing a page of the region (the latest wins). */
void region_set_merge_note(Region *r, const char *format, ...) _printf_(2, 3);

/* Pages covered by the region's areas. */
uint64_t region_pages(const Region *r);
