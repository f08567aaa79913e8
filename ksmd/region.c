/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "pidfd-util.h"
#include "proc-reader.h"
#include "region.h"

int region_registry_new(size_t max_regions, RegionRegistry **ret) {
        RegionRegistry *reg;

        if (max_regions == 0 || max_regions > REGION_MAX_REGIONS)
                return -EINVAL;
        reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        reg->max_regions = max_regions;
        reg->next_id = 1;
        *ret = reg;
        return 0;
}

static void areas_free(RegionArea *areas, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(areas[i].slots);
        free(areas);
}

static Region *region_free(Region *r) {
        if (!r)
                return NULL;
        areas_free(r->areas, r->n_areas);
        safe_close(r->pidfd);
        free(r);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Region *, region_free);

RegionRegistry *region_registry_free(RegionRegistry *reg) {
        if (!reg)
                return NULL;
        for (size_t i = 0; i < reg->n_regions; i++)
                region_free(reg->regions[i]);
        free(reg->regions);
        free(reg);
        return NULL;
}

int region_alive(const Region *r) {
        return pidfd_is_alive(r->pidfd) > 0;
}

static bool ranges_overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
        return a0 < b1 && b0 < a1;
}

int region_registry_add(RegionRegistry *reg, pid_t pid, uint64_t start, uint64_t length, bool whole_process,
                        Region **ret) {
        _cleanup_(region_freep) Region *r = NULL;
        uint64_t end;
        Region **nr;

        if (pid <= 0)
                return -EINVAL;
        if (whole_process) {
                start = 0;
                end = UINT64_MAX;
        } else {
                if (length == 0 || start % PAGE_SIZE_BYTES || length % PAGE_SIZE_BYTES ||
                    start + length < start)
                        return -EINVAL;
                end = start + length;
        }
        if (reg->n_regions >= reg->max_regions)
                return -ENOSPC;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->pidfd = pidfd_open_pid(pid);
        if (r->pidfd < 0)
                return r->pidfd;
        r->pid = pid;
        r->whole_process = whole_process;
        r->start = start;
        r->end = end;

        for (size_t i = 0; i < reg->n_regions; i++) {
                Region *o = reg->regions[i];

                if (o->pid != pid || o->gone || !region_alive(o))
                        continue;
                if (ranges_overlap(o->start, o->end, start, end))
                        return -EEXIST;
        }

        nr = reallocarray(reg->regions, reg->n_regions + 1, sizeof(Region *));
        if (!nr)
                return -ENOMEM;
        reg->regions = nr;
        r->id = reg->next_id++;
        reg->regions[reg->n_regions++] = r;
        if (ret)
                *ret = r;
        TAKE_PTR(r);
        return 0;
}

static size_t registry_lower_bound(RegionRegistry *reg, uint32_t id) {
        size_t lo = 0, hi = reg->n_regions;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (reg->regions[mid]->id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

Region *region_registry_find(RegionRegistry *reg, uint32_t id) {
        size_t i = registry_lower_bound(reg, id);

        return i < reg->n_regions && reg->regions[i]->id == id ? reg->regions[i] : NULL;
}

Region *region_registry_next(RegionRegistry *reg, uint32_t id) {
        size_t i = registry_lower_bound(reg, id);

        return i < reg->n_regions ? reg->regions[i] : NULL;
}

int region_registry_remove(RegionRegistry *reg, uint32_t id) {
        size_t i = registry_lower_bound(reg, id);

        if (i >= reg->n_regions || reg->regions[i]->id != id)
                return -ENOENT;
        region_free(reg->regions[i]);
        memmove(&reg->regions[i], &reg->regions[i + 1], (reg->n_regions - i - 1) * sizeof(Region *));
        reg->n_regions--;
        return 0;
}

bool region_name_is_valid(const char *name) {
        size_t n = 0;

        if (!name)
                return false;
        for (; name[n]; n++)
                if ((unsigned char) name[n] < 0x20 || (unsigned char) name[n] > 0x7e || n >= REGION_NAME_MAX)
                        return false;
        return n > 0;
}

int region_set_name(Region *r, const char *name) {
        if (!name) {
                r->name[0] = 0;
                return 0;
        }
        if (!region_name_is_valid(name))
                return -EINVAL;
        strcpy(r->name, name);
        return 0;
}

void region_set_note(Region *r, const char *format, ...) {
        va_list ap;

        if (r->note[0])
                return;
        va_start(ap, format);
        (void) vsnprintf(r->note, sizeof(r->note), format, ap);
        va_end(ap);
}

void region_set_merge_note(Region *r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(r->merge_note, sizeof(r->merge_note), format, ap);
        va_end(ap);
}

void region_clear_note(Region *r) {
        r->note[0] = 0;
}

uint64_t region_pages(const Region *r) {
        uint64_t n = 0;

        for (size_t i = 0; i < r->n_areas; i++)
                n += r->areas[i].n_pages;
        return n;
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
                memcpy(&a->slots[(from - a->start) / PAGE_SIZE_BYTES], &o->slots[(from - o->start) / PAGE_SIZE_BYTES],
                       (to - from) / PAGE_SIZE_BYTES * sizeof(PageSlot));
        }
}

int region_refresh_areas(Region *r, uint64_t max_pages) {
        _cleanup_free_ ProcMapping *maps = NULL;
        _cleanup_free_ RegionArea *areas = NULL;
        size_t n_maps = 0, n = 0, cursor = 0, n_unsupported = 0;
        char first_unsupported[160] = "";
        uint64_t covered = 0;
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
                                         proc_mapping_kind_to_string(m->kind), m->name[0] ? " " : "", m->name);
                        continue;
                }
                areas[n++] = (RegionArea) {
                        .start = from,
                        .n_pages = (to - from) / PAGE_SIZE_BYTES,
                };
        }

        for (size_t i = 0; i < n; i++)
                area_inherit(&areas[i], r->areas, r->n_areas, &cursor, max_pages);

        areas_free(r->areas, r->n_areas);
        r->areas = TAKE_PTR(areas);
        r->n_areas = n;

        region_clear_note(r);
        if (n_unsupported > 0)
                region_set_note(r, "%s: only private anonymous memory can be merged (%zu such mapping%s)",
                                first_unsupported, n_unsupported, n_unsupported == 1 ? "" : "s");
        else if (!r->whole_process && covered < r->end - r->start)
                region_set_note(r, "%llu of %llu bytes of the range are not mapped",
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

PageSlot *region_slot_at(Region *r, uint64_t addr) {
        size_t lo = 0, hi = r->n_areas;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                RegionArea *a = &r->areas[mid];

                if (addr < a->start)
                        hi = mid;
                else if (addr >= a->start + a->n_pages * PAGE_SIZE_BYTES)
                        lo = mid + 1;
                else
                        return a->slots ? &a->slots[(addr - a->start) / PAGE_SIZE_BYTES] : NULL;
        }
        return NULL;
}
