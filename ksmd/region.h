/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The region registry: what the daemon was asked to deduplicate, and for
 * whom. A region is (process, address range) or a whole process, tied to
 * its process by a pidfd taken at registration, so it dies with the process
 * and a reused pid never aliases it. The registry holds only identity; what
 * the scanner learns about a region's pages is the scanner's (scan-region.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"
#include "macro.h"

/* Hard limit on regions, whatever MaxRegions= says. */
#define REGION_MAX_REGIONS 65536u
/* An operator's label for a region (a VM name): 1..REGION_NAME_MAX printable ASCII characters. */
#define REGION_NAME_MAX 64u

/* The fields are set by region.c; everyone else reads them. */
typedef struct Region {
        uint32_t id;                     /* unique for the daemon's lifetime, > 0 */
        pid_t pid;
        int pidfd;
        bool whole_process;
        uint64_t start;                  /* bytes; 0 for a whole process */
        uint64_t end;                    /* bytes, exclusive; UINT64_MAX for a whole process */
        char name[REGION_NAME_MAX + 1];  /* the registrant's label, "" if none; see region_name_is_valid() */
        uid_t owner_uid;                 /* whom it is accounted to and who may see it (ledger.h) */
        uint32_t domain_id;              /* its merge domain (domains.h) */
        AccessProof *proof;              /* registered by a caller other than root: its proof of access */
        bool gone;                       /* its process exited, or its proof failed: to be dropped */
        const char *gone_reason;         /* why, when not because it exited: a static sentence for the log */
        void *watch;                     /* what watches its pidfd (region_set_watch()), or NULL */
        void (*watch_free)(void *watch);
} Region;

typedef struct RegionRegistry RegionRegistry;

/* max_regions: 1..REGION_MAX_REGIONS, else -EINVAL. */
int region_registry_new(size_t max_regions, RegionRegistry **ret);
RegionRegistry *region_registry_free(RegionRegistry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(RegionRegistry *, region_registry_free);

/* Lowers or raises the limit; existing regions stay. -EINVAL outside 1..REGION_MAX_REGIONS. */
int region_registry_set_max_regions(RegionRegistry *reg, size_t max_regions);

/*
 * Registers [start, start + length) of pid (whole_process: start and length
 * are ignored) for owner_uid. Returns 0 and a borrowed pointer in *ret
 * (optional). -EINVAL: unaligned, empty or wrapping range; -ESRCH: no such
 * process; -EEXIST: overlaps a region of the same process; -ENOSPC:
 * max_regions reached.
 */
int region_registry_add(RegionRegistry *reg, pid_t pid, uint64_t start, uint64_t length, bool whole_process,
                        uid_t owner_uid, Region **ret);

/* Drops a region. -ENOENT if unknown. */
int region_registry_remove(RegionRegistry *reg, uint32_t id);

/* The region with this id, or NULL. */
Region *region_registry_find(RegionRegistry *reg, uint32_t id);

/* The first region with id >= id, or NULL: a cursor that survives removals. */
Region *region_registry_next(RegionRegistry *reg, uint32_t id);

/* Regions registered now. */
size_t region_registry_count(const RegionRegistry *reg);

/* The id the next region will get: every region registered so far has a smaller one. */
uint32_t region_registry_next_id(const RegionRegistry *reg);

/* The live region registered for the whole of pid's memory, or NULL. */
Region *region_registry_find_whole(RegionRegistry *reg, pid_t pid);

#define REGISTRY_FOREACH(r, reg) \
        for (Region *r = region_registry_next(reg, 0); r; r = region_registry_next(reg, r->id + 1))

/* Puts the region in a merge domain; the caller holds the domain's reference (domains.h). */
void region_set_domain(Region *r, uint32_t domain_id);
/* Gives the region a proof of access (access.h), which it owns from now on. */
void region_set_proof(Region *r, AccessProof *proof);

/* 1 if the region's process runs, 0 once it has exited (see pidfd_is_alive()). */
int region_alive(const Region *r);

/*
 * Ties watch (the Manager's event source on r->pidfd, which polls readable
 * once the process exits) to the region: watch_free(watch) is called when
 * the region is dropped or the registry freed, before the pidfd is closed,
 * so nothing watches a closed or reused descriptor. Replaces (and frees)
 * an earlier watch.
 */
void region_set_watch(Region *r, void *watch, void (*watch_free)(void *watch));

/*
 * true if name may label a region: 1..REGION_NAME_MAX characters, each
 * printable ASCII (0x20..0x7e), so it is safe in log lines, JSON and a terminal.
 */
bool region_name_is_valid(const char *name);
/* Labels the region; NULL clears the label. -EINVAL (nothing changed) if the name is not valid. */
int region_set_name(Region *r, const char *name);

/*
 * " \"NAME\"" for a named region, "" for an unnamed one: for log lines that say "region ID". The name
 * is escaped (escape.h): a backslash of the caller's reads as \x5c, never as an escape. buf holds
 * REGION_LABEL_MAX bytes.
 */
#define REGION_LABEL_MAX (4 * REGION_NAME_MAX + 4)
const char *region_label(const Region *r, char *buf, size_t size);
