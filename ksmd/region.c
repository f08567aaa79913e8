/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "macro.h"
#include "pidfd-util.h"
#include "region.h"

struct RegionRegistry {
        Region **regions;                /* ascending by id */
        size_t n_regions;
        size_t max_regions;
        uint32_t next_id;
};

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

static Region *region_free(Region *r) {
        if (!r)
                return NULL;
        region_set_watch(r, NULL, NULL);
        safe_close(r->pidfd);
        access_proof_free(r->proof);
        free(r);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Region *, region_free);

void region_set_domain(Region *r, uint32_t domain_id) {
        r->domain_id = domain_id;
}

void region_set_watch(Region *r, void *watch, void (*watch_free)(void *watch)) {
        if (r->watch && r->watch_free)
                r->watch_free(r->watch);
        r->watch = watch;
        r->watch_free = watch_free;
}

void region_set_proof(Region *r, AccessProof *proof) {
        access_proof_free(r->proof);
        r->proof = proof;
}

RegionRegistry *region_registry_free(RegionRegistry *reg) {
        if (!reg)
                return NULL;
        for (size_t i = 0; i < reg->n_regions; i++)
                region_free(reg->regions[i]);
        free(reg->regions);
        free(reg);
        return NULL;
}

int region_registry_set_max_regions(RegionRegistry *reg, size_t max_regions) {
        if (max_regions == 0 || max_regions > REGION_MAX_REGIONS)
                return -EINVAL;
        reg->max_regions = max_regions;
        return 0;
}

int region_alive(const Region *r) {
        return pidfd_is_alive(r->pidfd) > 0;
}

static bool ranges_overlap(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
        return a0 < b1 && b0 < a1;
}

int region_registry_add(RegionRegistry *reg, pid_t pid, uint64_t start, uint64_t length, bool whole_process,
                        uid_t owner_uid, Region **ret) {
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
        r->owner_uid = owner_uid;

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

static size_t registry_lower_bound(const RegionRegistry *reg, uint32_t id) {
        return LOWER_BOUND(reg->n_regions, id, reg->regions[_i_]->id);
}

Region *region_registry_find(RegionRegistry *reg, uint32_t id) {
        size_t i = registry_lower_bound(reg, id);

        return i < reg->n_regions && reg->regions[i]->id == id ? reg->regions[i] : NULL;
}

Region *region_registry_next(RegionRegistry *reg, uint32_t id) {
        size_t i = registry_lower_bound(reg, id);

        return i < reg->n_regions ? reg->regions[i] : NULL;
}

size_t region_registry_count(const RegionRegistry *reg) {
        return reg->n_regions;
}

uint32_t region_registry_next_id(const RegionRegistry *reg) {
        return reg->next_id;
}

Region *region_registry_find_whole(RegionRegistry *reg, pid_t pid) {
        for (size_t i = 0; i < reg->n_regions; i++)
                if (reg->regions[i]->pid == pid && reg->regions[i]->whole_process && !reg->regions[i]->gone)
                        return reg->regions[i];
        return NULL;
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

const char *region_label(const Region *r, char *buf, size_t size) {
        char name[ESCAPE_SIZE_MAX(REGION_NAME_MAX)];

        if (!r->name[0])
                return "";
        (void) snprintf(buf, size, " \"%s\"", escape_str(r->name, name, sizeof(name)));
        return buf;
}
