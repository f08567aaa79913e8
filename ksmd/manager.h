/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The Manager owns the sd_event loop and all state: the region registry, the
 * page index, the merger, the scanner, the helper connection and statistics.
 * It is main-program code (it logs). Everything a control plane needs is a
 * function here: register, unregister, pause, resume, set the rate, read
 * statistics and the regions; command-line options in main.c use the same
 * calls, and the D-Bus API (another issue) will too.
 *
 * Rate: every sleep_usec the scanner examines pages_per_batch pages, with the
 * meaning of KSM's pages_to_scan and sleep_millisecs. Or, with a target
 * full-scan time, the Manager measures its own CPU cost per page and picks
 * both so that a full scan takes the target time, never using more than
 * cpu_cap_percent of a CPU (see rate.h).
 *
 * Rests: a full scan that finds almost nothing new (SCAN_QUIET_FRACTION)
 * is followed by a rest before the next one: idle_sleep_usec, or longer if
 * needed so that scans followed by rests use at most idle_cpu_bp basis
 * points (1/100 %) of a CPU (the rest is at least the scan's CPU time x
 * (10000 - bp) / bp). A registration or a reload (manager_set_idle()) ends
 * a rest; idle_sleep_usec = 0 never rests, and neither do runs with
 * manager_set_exit_after_scans().
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "macro.h"
#include "region.h"
#include "stats.h"

#define MANAGER_MAX_PAGES_PER_BATCH (UINT64_C(1) << 20)
#define MANAGER_MAX_SLEEP_USEC (UINT64_C(3600) * 1000000)
#define MANAGER_DEFAULT_IDLE_CPU_BP 25u         /* 0.25 % of a CPU */
#define MANAGER_MAX_TARGET_USEC (UINT64_C(7) * 24 * 3600 * 1000000)
/* Default bound: 64 Mi pages = 256 GiB of registered memory, about 1 GiB of metadata at most. */
#define MANAGER_DEFAULT_MAX_TRACKED_PAGES (UINT64_C(64) << 20)

typedef struct ManagerConfig {
        uint64_t pages_per_batch;        /* pages examined per batch, 1..MANAGER_MAX_PAGES_PER_BATCH */
        uint64_t sleep_usec;             /* pause between batches, 0..MANAGER_MAX_SLEEP_USEC */
        uint64_t max_tracked_pages;      /* bound on index memory (see index.h) */
        size_t max_regions;              /* 1..REGION_MAX_REGIONS */
        uint64_t target_scan_usec;       /* > 0: adapt the rate to scan everything in this time... */
        unsigned cpu_cap_percent;        /* ...using at most this share of one CPU, 1..100 */
        uint64_t idle_sleep_usec;        /* rest after a full scan that found almost nothing new; 0: none */
        unsigned idle_cpu_bp;            /* 1..10000 (0: MANAGER_DEFAULT_IDLE_CPU_BP): longer rests
                                          * when scans cost more than this */
        bool estimate;                   /* never merge, even if the helper is loaded */
        bool notify;                     /* send sd_notify STATUS= progress lines */
} ManagerConfig;

#define MANAGER_CONFIG_DEFAULT                                          \
        ((ManagerConfig) {                                              \
                .pages_per_batch = 4096,                                \
                .sleep_usec = 20000,                                    \
                .max_tracked_pages = MANAGER_DEFAULT_MAX_TRACKED_PAGES, \
                .max_regions = 4096,                                    \
                .cpu_cap_percent = 20,                                  \
                .idle_cpu_bp = MANAGER_DEFAULT_IDLE_CPU_BP,   \
        })

typedef struct Manager Manager;

/* Connects to the helper (estimate mode, with a notice, when it is absent) and prepares the loop. */
int manager_new(const ManagerConfig *config, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

sd_event *manager_get_event(Manager *m);
bool manager_is_estimate(const Manager *m);
RegionRegistry *manager_get_registry(Manager *m);

/* Registration. -EINVAL, -ESRCH, -EEXIST, -ENOSPC as region_registry_add(). */
int manager_register_range(Manager *m, pid_t pid, uint64_t start, uint64_t length, uint32_t *ret_id);
int manager_register_process(Manager *m, pid_t pid, uint32_t *ret_id);
/*
 * Either of the above (whole: the process, start and length ignored) with a
 * label for the region, shown in ListRegions and the log; NULL for none.
 * -EINVAL also for a name region_name_is_valid() refuses (nothing registered).
 */
int manager_register_named(Manager *m, pid_t pid, bool whole, uint64_t start, uint64_t length, const char *name,
                           uint32_t *ret_id);
int manager_unregister(Manager *m, uint32_t id);

/* Fixed rate. -EINVAL outside the limits above; applies from the next batch and ends a target. */
int manager_set_rate(Manager *m, uint64_t pages_per_batch, uint64_t sleep_usec);
/* Adaptive rate. target_scan_usec 1..MANAGER_MAX_TARGET_USEC, cpu_cap_percent 1..100, else -EINVAL. */
int manager_set_target(Manager *m, uint64_t target_scan_usec, unsigned cpu_cap_percent);
/* Rests after quiet full scans (see above). -EINVAL outside 0..MANAGER_MAX_SLEEP_USEC and 1..10000. */
int manager_set_idle(Manager *m, uint64_t idle_sleep_usec, unsigned idle_cpu_bp);
uint64_t manager_get_idle_sleep(const Manager *m);
void manager_pause(Manager *m);
void manager_resume(Manager *m);

/* Exit the loop (status 0) once n full scans completed; 0: never. */
void manager_set_exit_after_scans(Manager *m, uint64_t n);

/* Arms the scan timer; then run sd_event_loop(manager_get_event(m)). */
int manager_start(Manager *m);

void manager_get_stats(Manager *m, Stats *ret);

bool manager_is_paused(const Manager *m);
/* The helper module's version, or "" in estimate mode. */
const char *manager_get_helper_version(const Manager *m);
/* The one-line progress summary sent as sd_notify STATUS=. */
void manager_format_status(Manager *m, char *buf, size_t size);

/* Called after every full scan (for PropertiesChanged); NULL to clear. */
typedef void (*ManagerScanDone)(Manager *m, void *userdata);
void manager_set_scan_done_callback(Manager *m, ManagerScanDone cb, void *userdata);

/*
 * Backs a region out: every page of it that shares a helper page is made
 * private again, and the region is unregistered so it is not merged anew.
 * *ret_pages: pages made private. -ENOENT: no such region; -EOPNOTSUPP in
 * estimate mode (nothing was merged through the helper).
 */
int manager_unmerge_region(Manager *m, uint32_t id, uint64_t *ret_pages);

/* Lowers or raises the region limit on reload; existing regions stay. */
int manager_set_max_regions(Manager *m, size_t max_regions);
