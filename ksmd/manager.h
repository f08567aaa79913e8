/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: how a page travels
 *
 * A region is registered (D-Bus, AutoRegister or --register; manager_register()) and lands in the
 * registry (region.h). The scan timer (manager-scan.c) calls scanner_step() with a budget of pages;
 * when the cursor reaches the region, the scanner re-reads /proc/PID/maps into areas and attaches
 * their PageSlots to the index (scan-region.h, index.h). Per chunk it reads /proc/PID/pagemap and
 * skips pages that are absent, swapped, zero-mapped, shared or unchanged by soft-dirty; it reads the
 * rest with process_vm_readv and hashes them (page-hash.h). A page read becomes a candidate in
 * that pass unless known volatile (MergePolicy=first-pass), or once its hash held still across a
 * pass (stable; merge-policy.h): index_add_candidate() finds a twin, or the shared table a helper page
 * (zero pages skip the index), and the scanner submits a MergeRequest (merge.h). The merger batches
 * requests, sends them through the helper client (helper-client.h) over generic netlink to the
 * module, which re-compares the bytes under lock and answers per item. BUSY and NO_MEMORY wait in
 * the merge queue; every other result comes back through on_merge_result() to
 * scanner_apply_merge_result(), which marks the slot SHARING, re-examines it or notes why not. At a
 * pass's end the counters become the region's and the Manager's statistics, and a quiet pass rests.
 *
 * The Manager owns the daemon, as systemd-oomd's does: the sd_event loop, the settings and their
 * reload (settings.h, config.h), the D-Bus API (bus-server.h, manager-bus.c), automatic
 * registration (autoreg.h), and the engine above: registry, index, merger, scanner, helper
 * connection, scan rate, rests and statistics. Its fields belong to manager*.c; everything else
 * goes through the functions below. It is main-program code: it logs.
 *
 * Rate: every Sleep= the scanner examines PagesToScan= pages, KSM's pages_to_scan and
 * sleep_millisecs. With TargetScanTime= the Manager measures its own CPU cost per page and picks
 * both so that a full scan takes that long, using at most MaxCPU= of a CPU (rate.h). The CPU is
 * the process's: with ScanThreads= above 1 the workers' CPU counts in every rate, cap and rest, and
 * the sleep after a batch that took less wall time than CPU time makes up for it.
 *
 * Rests: a full scan that finds almost nothing new (SCAN_QUIET_FRACTION) is followed by a rest:
 * IdleSleep=, or longer so that scans and rests use at most IdleMaxCPU= of a CPU (the rest is at
 * least the scan's CPU time x (10000 - bp) / bp). A registration or a change of settings ends a
 * rest; IdleSleep=0 never rests, and neither do runs with exit_after_scans. Resting, the daemon
 * sleeps: the scan timer is set for the rest's end, a region's process exit wakes it through the
 * region's pidfd (an io source, any time), and the COW guard reads memory only if it holds or
 * merges wait in the queue (manager-scan.c, manager_cow_watching()). With no region registered the
 * timer is off until a registration.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "autoreg.h"
#include "domains.h"
#include "bus-server.h"
#include "cow-guard.h"
#include "helper-client.h"
#include "host-probe.h"
#include "index.h"
#include "macro.h"
#include "merge.h"
#include "region.h"
#include "scanner.h"
#include "settings.h"
#include "stats.h"

/* A registration the command line asks for. */
typedef struct ManagerRegistration {
        pid_t pid;
        bool whole;                      /* the whole process; start and length unused */
        uint64_t start, length;          /* bytes */
} ManagerRegistration;

/* How the Manager is started: what the command line says. */
typedef struct ManagerArgs {
        const char *config_dir;          /* ksmd.conf and ksmd.conf.d/ are read here; NULL: no files */
        char *const *overrides;          /* "Key=Value" settings (the command line),
                                          * applied after the files */
        size_t n_overrides;
        bool no_socket;                  /* serve no D-Bus API */
        bool notify;                     /* tell the service manager (sd_notify) about readiness
                                          * and progress */
        bool handle_signals;             /* SIGTERM/SIGINT end the loop, SIGHUP reloads */
        uint64_t exit_after_scans;       /* end the loop after this many full scans (never resting);
                                          * 0: never */
        const ManagerRegistration *registrations;
        size_t n_registrations;
} ManagerArgs;

/* What manager_register() registers. */
typedef struct RegionRequest {
        pid_t pid;
        bool whole;                      /* the whole process; start and length unused */
        uint64_t start, length;          /* bytes, page aligned */
        const char *name;                /* label, see region_name_is_valid(); NULL for none */
        uid_t owner_uid;                 /* whom it is accounted to: the caller, or 0 for root */
        const char *domain;              /* root's choice of merge domain; NULL: DomainPolicy= (root),
                                          * or the caller's own "uid:N" (owner_uid != 0) */
        AccessProof *proof;              /* the caller's proof of access; manager_register() takes it */
} RegionRequest;

/* The helper's counters whose change since the last list of its shared pages asks for a new one. */
#define MANAGER_PRUNE_STATS 5

typedef struct Manager {
        sd_event *event;

        /* The settings (manager.c). */
        char *config_dir;
        char **overrides;
        size_t n_overrides;
        Settings settings;               /* in effect */
        bool notify;

        /* The control plane. */
        BusServer *bus;                  /* NULL without a socket */
        AutoRegister *autoreg;

        /* The engine (manager-scan.c). */
        sd_event_source *scan_timer;
        HostProbe host;                  /* what the kernel does, asked once at start (host-probe.h) */
        HelperClient *helper;            /* NULL in estimate mode */
        HelperInfo helper_info;
        /* The helper's MERGED, UNMERGED, PAGES_OWNED, PAGES_MAPPED and BYTES_SAVED at the last list
         * of its shared pages, and when that was (0: never); see manager_prune_shared(). */
        uint64_t pruned_stats[MANAGER_PRUNE_STATS];
        uint64_t pruned_usec;
        RegionRegistry *registry;
        DomainTable *domains;
        PageIndex *index;
        Merger *merger;
        Scanner *scanner;

        bool paused;
        bool started;
        uint64_t pass_started_usec;
        uint64_t batch_pages;            /* the rate in effect: PagesToScan= or adapted */
        uint64_t batch_sleep_usec;
        uint64_t cost_nsec_per_page;     /* CPU per page, all scan threads together */
        uint64_t busy_nsec_per_page;     /* wall time per page while a batch runs */
        uint64_t pass_cpu_nsec;          /* CPU of the running full scan's batches */
        uint64_t rest_until_usec;        /* resting after a quiet full scan until then; 0: not resting */
        bool capped_logged;
        int last_merge_error;            /* logged once until a request succeeds */
        bool bound_hit_this_pass;
        bool bound_hit_last_pass;        /* logged once while it stays hit */
        uint64_t exit_after_scans;
        uint64_t last_status_usec;
        CowStatus cow;                   /* the COW guard (cow-guard.h), looked at every 100 ms at most,
                                          * while resting only as manager-scan.c says */
        uint64_t cow_checked_usec;
        uint64_t cow_looks;              /* times the guard read the memory figures (for tests) */
        bool waiting_for_regions;        /* none registered: the scan timer is off until one is */
        struct CowScopes *cow_scopes;    /* the memory cgroups that hold regions (manager-scan.c) */
        uint64_t cow_cgroups_usec;       /* when they were last read */
        uint64_t merged_at_pass_end;     /* the helper's MERGED results when the last full scan ended */
        Stats stats;

        void (*scan_done)(struct Manager *m, void *userdata); /* after every full scan; for tests */
        void *scan_done_userdata;
} Manager;

/*
 * Loads the settings (config.h), connects to the helper (estimate mode,
 * with a notice, when it is absent), serves the D-Bus API unless
 * args->no_socket, starts automatic registration and registers what
 * args asks for. -EINVAL: a bad configuration, logged line by line.
 */
int manager_new(const ManagerArgs *args, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Runs the loop until a signal, exit_after_scans or a fatal error; tells the service manager. */
int manager_run(Manager *m);

/* Loads the configuration of args and prints every problem; 0 if there is none. */
int manager_check_config(const ManagerArgs *args);

/*
 * Reads the files again and applies them (and the command line on top).
 * On a problem nothing changes: -EINVAL, with the first problem in
 * *ret_message (malloc'ed, optional; escaped text, see config.h) and every
 * one in the log.
 */
int manager_reload(Manager *m, char **ret_message);

/*
 * Applies new settings (validated through settings_table) to everything
 * that runs: the rate, rests, limits, the bus and automatic registration.
 * Settings marked SETTING_AT_START keep their running values.
 */
int manager_apply_settings(Manager *m, const Settings *s);

bool manager_is_estimate(const Manager *m);

/* Registration. -EINVAL, -ESRCH, -EEXIST, -ENOSPC as region_registry_add(); -EINVAL also for a bad name. */
int manager_register(Manager *m, const RegionRequest *req, uint32_t *ret_id);
int manager_register_range(Manager *m, pid_t pid, uint64_t start, uint64_t length, uint32_t *ret_id);
int manager_register_process(Manager *m, pid_t pid, uint32_t *ret_id);
int manager_unregister(Manager *m, uint32_t id);

/*
 * Backs a region out: every page of it that shares a helper page is made
 * private again, and the region is unregistered so it is not merged anew.
 * *ret_pages: pages made private. -ENOENT: no such region; -EOPNOTSUPP in
 * estimate mode (nothing was merged through the helper).
 */
int manager_unmerge_region(Manager *m, uint32_t id, uint64_t *ret_pages);

void manager_pause(Manager *m);
void manager_resume(Manager *m);

/* Arms the scan timer (manager_run() does); then run sd_event_loop(m->event). */
int manager_start(Manager *m);

void manager_get_stats(Manager *m, Stats *ret);
/* Prints the statistics and every region's figures on stdout, one "key=value ..." line each (--scans). */
void manager_print_stats(Manager *m);
/* The one-line progress summary sent as sd_notify STATUS=. */
void manager_format_status(Manager *m, char *buf, size_t size);

/* Between the manager's files. */
int manager_setup_engine(Manager *m);                   /* manager-scan.c */
void manager_free_engine(Manager *m);                   /* manager-scan.c */
int manager_bus_serve(Manager *m);                      /* manager-bus.c: the socket and the system bus */
void manager_bus_emit_scan_done(Manager *m);            /* manager-bus.c: PropertiesChanged
                                                         * after a full scan */
void manager_bus_emit_settings(Manager *m);             /* manager-bus.c: PropertiesChanged
                                                         * after new settings */

/* Ends a rest: new memory or new settings are scanned from now on (manager-scan.c). */
void manager_wake(Manager *m);
/* The rate in effect after a change of settings (manager-scan.c). */
void manager_reset_rate(Manager *m);
/* The scan threads settings s ask for (ScanThreads=, 0: scan_threads_default()). */
unsigned manager_scan_threads_for(const Settings *s);
/* Gives the scanner the threads s asks for, between batches; on failure it keeps its own (logged). */
void manager_set_scan_threads(Manager *m, const Settings *s);
