/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: the COW guard
 *
 * A merged page costs nothing until it is written: then the kernel copies it
 * back (copy on write). Were every merged page written at once (a COW storm:
 * guests rebooting, a workload rewriting its memory), the memory merging
 * saved would be taken back at once. That is the unmerge debt: the saving.
 * The headroom is what would be left if it were paid: the available memory
 * minus the debt. Merging itself does not change the headroom (a merge frees
 * the page it adds to the debt); what uses memory does, and the saving makes
 * memory look free that is only lent.
 *
 * Between two looks (a tenth of a second) new merges may take no more than
 * the headroom above the reserve (scanner_set_merge_budget()): were all the
 * memory they free used at once, the headroom would still not fall below it.
 *
 * The guard compares the headroom with CowReserve= in every scope where
 * memory runs out: the host (MemAvailable, against the debt of every region)
 * and each memory cgroup with a limit (memory.max) that holds regions
 * (memory.max - memory.current, against the debt of the regions inside it).
 * A percentage in CowReserve= is of the scope's memory (MemTotal or
 * memory.max). When the headroom of any scope falls below its reserve, the
 * guard holds: no new page is merged (scanner_set_merging_held()), pages
 * already merged stay merged. It lets go when every scope has its reserve
 * again, plus COW_GUARD_HYSTERESIS_PERCENT of it, so that it does not flap.
 * CowReserve=off (the default) reports the debt and headroom and never holds.
 *
 * This file is the decision only; the Manager reads the memory figures
 * (proc-process.h) and logs (manager-scan.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The guard lets go at the reserve plus this share of it (and at least COW_GUARD_HYSTERESIS_MIN_BYTES). */
#define COW_GUARD_HYSTERESIS_PERCENT 25
#define COW_GUARD_HYSTERESIS_MIN_BYTES (UINT64_C(1) << 20)

/* One scope where memory can run out. */
typedef struct CowScope {
        const char *cgroup;              /* the memory cgroup's path, or NULL for the host */
        uint64_t total_bytes;            /* MemTotal, or memory.max */
        uint64_t available_bytes;        /* MemAvailable, or memory.max - memory.current (0 if over) */
        uint64_t debt_bytes;             /* the saving of the regions in the scope */
} CowScope;

/* What the guard found last: the scope with the least headroom above its reserve. */
typedef struct CowStatus {
        uint64_t debt_bytes;             /* of every region (the host's scope) */
        uint64_t available_bytes;        /* of the scope that binds */
        int64_t headroom_bytes;          /* available - its debt in the scope that binds; may be negative */
        uint64_t reserve_bytes;          /* CowReserve= in that scope; 0: off */
        char cgroup[256];                /* the scope that binds: a cgroup's path, "" for the host */
        bool holding;
        uint64_t trips;                  /* times the guard started holding */
        uint64_t budget_bytes;           /* new merges may take this much headroom until the next look:
                                          * the least headroom above a reserve; UINT64_MAX when off */
} CowStatus;

/*
 * Decides with reserve (CowReserve=, settings.h: bytes or SETTING_PERCENT_BIT) over the scopes (the
 * host's first) and updates *status. Returns 1 if the guard started holding, -1 if it let go, 0 if
 * neither. With reserve 0 it never holds. n == 0 leaves *status as it was but for letting go.
 */
int cow_guard_evaluate(CowStatus *status, uint64_t reserve, const CowScope *scopes, size_t n);

/* "1.5 GiB", "-200.0 MiB": signed bytes in binary units, one decimal, for the log. */
const char *cow_format_bytes(int64_t bytes, char *buf, size_t size);
