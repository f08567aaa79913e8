/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "helper-client.h"
#include "index.h"
#include "log.h"
#include "manager.h"
#include "merge.h"
#include "page-hash.h"
#include "proc-reader.h"
#include "rate.h"
#include "scanner.h"

#define MANAGER_IDLE_USEC 100000u          /* wait between checks when no region is registered */
#define MANAGER_STATUS_INTERVAL_USEC 1000000u
#define MANAGER_REST_TICK_USEC 1000000u
#define MANAGER_MAX_REST_USEC (UINT64_C(24) * 3600 * 1000000)

struct Manager {
        ManagerConfig config;
        sd_event *event;
        sd_event_source *scan_timer;

        HelperClient *helper;            /* NULL in estimate mode */
        HelperInfo helper_info;
        RegionRegistry *registry;
        PageIndex *index;
        Merger *merger;
        Scanner *scanner;

        bool paused;
        bool started;
        uint64_t pass_started_usec;
        uint64_t batch_pages;            /* the rate in effect */
        uint64_t sleep_usec;
        uint64_t cost_nsec_per_page;
        uint64_t pass_cpu_nsec;          /* CPU of the running full scan's batches */
        uint64_t rest_until_usec;        /* resting after a quiet full scan until then; 0: not resting */
        bool capped_logged;
        int last_merge_error;            /* logged once until a request succeeds */
        bool bound_hit_this_pass;
        bool bound_hit_last_pass;        /* logged once while it stays hit */
        uint64_t exit_after_scans;
        uint64_t last_status_usec;
        Stats stats;

        ManagerScanDone scan_done;
        void *scan_done_userdata;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void on_merge_result(const MergeRequest *req, const HelperMergeResult *res, void *userdata) {
        Manager *m = userdata;

        scanner_apply_merge_result(m->scanner, req, res);
}

static uint64_t thread_cpu_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

static int manager_connect_helper(Manager *m, size_t *ret_max_batch) {
        _cleanup_(helper_client_freep) HelperClient *h = NULL;
        int r;

        *ret_max_batch = 1;
        if (m->config.estimate) {
                log_notice("Estimate mode (--estimate): scanning and reporting what merging would save; nothing is merged.");
                return 0;
        }
        r = helper_client_new(&h);
        if (r == -ENOENT) {
                log_notice("The ksmd_helper kernel module is not loaded (generic netlink family \"%s\" not found): "
                           "running in estimate mode, nothing is merged. Load it with 'modprobe ksmd_helper' "
                           "and restart ksmd to merge.", KSMD_HELPER_GENL_NAME);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the ksmd_helper generic netlink family: %m");
        r = helper_client_info(h, &m->helper_info);
        if (r == -EPERM)
                return log_error_errno(r, "ksmd_helper refused INFO: ksmd needs CAP_SYS_ADMIN and CAP_NET_ADMIN "
                                       "in the initial user namespace.");
        if (r < 0)
                return log_error_errno(r, "Failed to query ksmd_helper INFO: %m");
        if (m->helper_info.abi_version != KSMD_HELPER_ABI_VERSION)
                return log_error_errno(-EPROTO, "ksmd_helper speaks ABI %" PRIu32 ", this ksmd needs %d: install matching versions.",
                                       m->helper_info.abi_version, KSMD_HELPER_ABI_VERSION);
        if (m->helper_info.max_batch == 0)
                return log_error_errno(-EPROTO, "ksmd_helper reports max_batch 0: the module is broken, reload it.");
        log_info("Merging through ksmd_helper %s on %s (max %" PRIu32 " items per request).",
                 m->helper_info.module_version, m->helper_info.kernel_release, m->helper_info.max_batch);
        *ret_max_batch = MIN((size_t) m->helper_info.max_batch, (size_t) 4096);
        m->helper = TAKE_PTR(h);
        return 0;
}

int manager_new(const ManagerConfig *config, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ScannerConfig sc = {};
        size_t max_batch;
        int r;

        if (config->pages_per_batch == 0 || config->pages_per_batch > MANAGER_MAX_PAGES_PER_BATCH)
                return log_error_errno(-EINVAL, "Pages per batch must be 1..%" PRIu64 ", got %" PRIu64 ".",
                                       MANAGER_MAX_PAGES_PER_BATCH, config->pages_per_batch);
        if (config->sleep_usec > MANAGER_MAX_SLEEP_USEC)
                return log_error_errno(-EINVAL, "Sleep between batches must be at most %" PRIu64 " ms.",
                                       MANAGER_MAX_SLEEP_USEC / 1000);

        if (config->idle_sleep_usec > MANAGER_MAX_SLEEP_USEC || config->idle_cpu_bp > 10000)
                return log_error_errno(-EINVAL, "The idle sleep must be at most %" PRIu64 " s and its CPU share 0.01..100 %%.",
                                       MANAGER_MAX_SLEEP_USEC / 1000000);
        if (config->target_scan_usec > MANAGER_MAX_TARGET_USEC || config->cpu_cap_percent == 0 ||
            config->cpu_cap_percent > 100)
                return log_error_errno(-EINVAL, "Target scan time must be at most %" PRIu64 " s and the CPU cap 1..100 %%.",
                                       MANAGER_MAX_TARGET_USEC / 1000000);

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_oom();
        m->config = *config;
        if (m->config.idle_cpu_bp == 0)
                m->config.idle_cpu_bp = MANAGER_DEFAULT_IDLE_CPU_BP;
        m->batch_pages = config->pages_per_batch;
        m->sleep_usec = config->sleep_usec;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");

        r = manager_connect_helper(m, &max_batch);
        if (r < 0)
                return r;

        r = region_registry_new(config->max_regions, &m->registry);
        if (r < 0)
                return log_error_errno(r, "Failed to create the region registry (max_regions=%zu, limit %u): %m",
                                       config->max_regions, REGION_MAX_REGIONS);
        r = index_new(config->max_tracked_pages, &m->index);
        if (r < 0)
                return log_error_errno(r, "Failed to create the page index (max_tracked_pages=%" PRIu64 ", must be 1..%u): %m",
                                       config->max_tracked_pages, UINT32_MAX);
        r = merger_new(m->helper, max_batch, MAX(max_batch, (size_t) 8192), on_merge_result, m, &m->merger);
        if (r < 0)
                return log_error_errno(r, "Failed to create the merge queue: %m");

        sc.hash_seed = page_hash_random_seed();
        r = proc_zero_pfns(&sc.zero_pfn, &sc.huge_zero_pfn);
        if (r < 0 || sc.zero_pfn == 0)
                log_notice("Cannot learn the zero page's PFN from /proc/self/pagemap (needs CAP_SYS_ADMIN): "
                           "pages already mapping it are read and recognised by content instead.");
        r = proc_soft_dirty_probe(&sc.soft_dirty);
        if (r < 0 || !sc.soft_dirty)
                log_notice("Soft-dirty tracking does not work here (kernel without CONFIG_MEM_SOFT_DIRTY?): "
                           "every page is re-read on each visit, as the kernel's KSM does.");

        r = scanner_new(m->registry, m->index, m->merger, &sc, &m->scanner);
        if (r < 0)
                return log_error_errno(r, "Failed to create the scanner: %m");

        m->stats.live = m->helper != NULL;
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        sd_event_source_disable_unref(m->scan_timer);
        scanner_free(m->scanner);
        merger_free(m->merger);
        index_free(m->index);
        region_registry_free(m->registry);
        helper_client_free(m->helper);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

sd_event *manager_get_event(Manager *m) {
        return m->event;
}

bool manager_is_estimate(const Manager *m) {
        return !m->helper;
}

RegionRegistry *manager_get_registry(Manager *m) {
        return m->registry;
}

static void log_registration_error(int r, pid_t pid) {
        switch (r) {
        case -ESRCH:
                log_error_errno(r, "Cannot register pid %d: no such process.", (int) pid);
                break;
        case -EEXIST:
                log_error_errno(r, "Cannot register pid %d: the range overlaps a region already registered for it; unregister that one first.", (int) pid);
                break;
        case -EINVAL:
                log_error_errno(r, "Cannot register pid %d: the range must be page aligned, non-empty and not wrap.", (int) pid);
                break;
        default:
                log_error_errno(r, "Cannot register pid %d: %m", (int) pid);
        }
}

/* Ends a rest: new memory is scanned at the configured rate from now on. */
static void manager_wake(Manager *m) {
        if (m->rest_until_usec == 0)
                return;
        m->rest_until_usec = 0;
        m->stats.rest_usec = 0;
        if (m->scan_timer && !m->paused) {
                (void) sd_event_source_set_time_relative(m->scan_timer, 0);
                (void) sd_event_source_set_enabled(m->scan_timer, SD_EVENT_ONESHOT);
        }
}

/* " \"NAME\"" for a named region, "" otherwise: for log lines that say "region ID". */
static const char *region_label(const Region *r, char *buf, size_t size) {
        if (!r->name[0])
                return "";
        (void) snprintf(buf, size, " \"%s\"", r->name);
        return buf;
}

int manager_register_named(Manager *m, pid_t pid, bool whole, uint64_t start, uint64_t length, const char *name,
                           uint32_t *ret_id) {
        char label[REGION_NAME_MAX + 4];
        Region *region;
        int r;

        if (name && !region_name_is_valid(name))
                return log_error_errno(-EINVAL, "Cannot register pid %d: a region name must be 1..%u printable ASCII characters.",
                                       (int) pid, REGION_NAME_MAX);
        r = region_registry_add(m->registry, pid, start, length, whole, &region);
        if (r < 0) {
                if (r == -ENOSPC)
                        log_error_errno(r, "Cannot register pid %d: the limit of %zu regions is reached; unregister one or raise max_regions.",
                                        (int) pid, m->registry->max_regions);
                else
                        log_registration_error(r, pid);
                return r;
        }
        /* Valid, checked above. */
        (void) region_set_name(region, name);
        if (whole)
                log_info("Registered region %" PRIu32 "%s: all private anonymous memory of pid %d.", region->id,
                         region_label(region, label, sizeof(label)), (int) pid);
        else
                log_info("Registered region %" PRIu32 "%s: pid %d, 0x%" PRIx64 "-0x%" PRIx64 ".", region->id,
                         region_label(region, label, sizeof(label)), (int) pid, start, start + length);
        if (ret_id)
                *ret_id = region->id;
        manager_wake(m);
        return 0;
}

int manager_register_range(Manager *m, pid_t pid, uint64_t start, uint64_t length, uint32_t *ret_id) {
        return manager_register_named(m, pid, false, start, length, NULL, ret_id);
}

int manager_register_process(Manager *m, pid_t pid, uint32_t *ret_id) {
        return manager_register_named(m, pid, true, 0, 0, NULL, ret_id);
}

int manager_unregister(Manager *m, uint32_t id) {
        Region *r = region_registry_find(m->registry, id);
        char label[REGION_NAME_MAX + 4];

        if (!r)
                return log_error_errno(-ENOENT, "Cannot unregister region %" PRIu32 ": no such region.", id);
        scanner_forget_region(m->scanner, r);
        log_info("Unregistered region %" PRIu32 "%s (pid %d).", id, region_label(r, label, sizeof(label)), (int) r->pid);
        return region_registry_remove(m->registry, id);
}

int manager_set_rate(Manager *m, uint64_t pages_per_batch, uint64_t sleep_usec) {
        if (pages_per_batch == 0 || pages_per_batch > MANAGER_MAX_PAGES_PER_BATCH || sleep_usec > MANAGER_MAX_SLEEP_USEC)
                return -EINVAL;
        m->config.pages_per_batch = m->batch_pages = pages_per_batch;
        m->config.sleep_usec = m->sleep_usec = sleep_usec;
        m->config.target_scan_usec = 0;
        return 0;
}

int manager_set_target(Manager *m, uint64_t target_scan_usec, unsigned cpu_cap_percent) {
        if (target_scan_usec == 0 || target_scan_usec > MANAGER_MAX_TARGET_USEC || cpu_cap_percent == 0 ||
            cpu_cap_percent > 100)
                return -EINVAL;
        m->config.target_scan_usec = target_scan_usec;
        m->config.cpu_cap_percent = cpu_cap_percent;
        m->capped_logged = false;
        return 0;
}

int manager_set_idle(Manager *m, uint64_t idle_sleep_usec, unsigned idle_cpu_bp) {
        if (idle_sleep_usec > MANAGER_MAX_SLEEP_USEC || idle_cpu_bp == 0 || idle_cpu_bp > 10000)
                return -EINVAL;
        m->config.idle_sleep_usec = idle_sleep_usec;
        m->config.idle_cpu_bp = idle_cpu_bp;
        /* A reload ends a rest: the next scan runs with what was just configured. */
        manager_wake(m);
        return 0;
}

uint64_t manager_get_idle_sleep(const Manager *m) {
        return m->config.idle_sleep_usec;
}

/* The rest after a full scan that found almost nothing new (see manager.h); 0: go on. */
static uint64_t manager_rest_usec(const Manager *m) {
        uint64_t rest, cpu_usec = m->pass_cpu_nsec / 1000;

        if (m->config.idle_sleep_usec == 0 || m->exit_after_scans > 0)
                return 0;
        rest = cpu_usec * (10000 - m->config.idle_cpu_bp) / m->config.idle_cpu_bp;
        return MIN(MAX(rest, m->config.idle_sleep_usec), (uint64_t) MANAGER_MAX_REST_USEC);
}

static int cmp_helper_page(const void *a, const void *b) {
        const HelperPage *x = a, *y = b;

        return x->handle < y->handle ? -1 : x->handle > y->handle;
}

typedef struct OwnedPages {
        HelperPage *pages;               /* sorted by handle */
        size_t n;
} OwnedPages;

static bool shared_page_still_saves(uint64_t handle, void *userdata) {
        const OwnedPages *o = userdata;
        HelperPage key = { .handle = handle };
        const HelperPage *p = bsearch(&key, o->pages, o->n, sizeof(HelperPage), cmp_helper_page);

        return p && p->mapcount >= 2;
}

/*
 * After a full scan: forgets the shared pages the helper no longer owns or
 * that at most one page table maps, so a last mapper costs no index entry.
 */
static void manager_prune_shared(Manager *m) {
        _cleanup_free_ HelperPage *pages = NULL;
        OwnedPages owned;
        size_t n = 0;
        int r;

        if (!m->helper || !(m->helper_info.features & KSMD_HELPER_FEATURE_GET_PAGES))
                return;
        r = helper_client_get_pages(m->helper, &pages, &n);
        if (r < 0) {
                log_debug_errno(r, "Could not list the helper's shared pages (%m): keeping every shared entry.");
                return;
        }
        qsort(pages, n, sizeof(HelperPage), cmp_helper_page);
        owned = (OwnedPages) { .pages = pages, .n = n };
        r = index_shared_prune(m->index, shared_page_still_saves, &owned);
        if (r > 0)
                log_debug("Forgot %d shared pages that at most one page table still maps.", r);
}

/* After each batch: learn the cost per page and, with a target, pick the next batch and sleep. */
static void manager_adapt_rate(Manager *m, uint64_t batch_cpu_nsec, uint64_t batch_pages) {
        RateDecision d;
        IndexUsage u;
        bool first;

        m->cost_nsec_per_page = rate_update_cost(m->cost_nsec_per_page, batch_cpu_nsec, batch_pages);
        if (m->config.target_scan_usec == 0)
                return;
        index_usage(m->index, &u);
        /*
         * The first full scan attaches regions as it reaches them, so the pages it will cover are
         * not known until it ends: it runs at the CPU cap (the shortest time the operator allows),
         * which also merges sooner. Later scans plan from the last one's size.
         */
        first = scanner_passes(m->scanner) <= 1 && scanner_in_pass(m->scanner);
        if (rate_decide(MAX(MAX(u.tracked_pages, m->stats.last.pages_scanned), (uint64_t) 1),
                        first ? 1 : m->config.target_scan_usec, m->config.cpu_cap_percent, m->cost_nsec_per_page, &d) < 0)
                return;
        m->batch_pages = d.pages_per_batch;
        m->sleep_usec = d.sleep_usec;
        if (d.cpu_capped && !first && !m->capped_logged) {
                m->capped_logged = true;
                log_notice("A full scan of %" PRIu64 " pages cannot take %" PRIu64 " s within the CPU cap of %u %% "
                           "(%" PRIu64 " ns per page measured): scanning at the cap. Raise the target or the cap.",
                           u.tracked_pages, m->config.target_scan_usec / 1000000, m->config.cpu_cap_percent,
                           m->cost_nsec_per_page);
        }
}

void manager_pause(Manager *m) {
        if (!m->paused)
                log_info("Scanning paused.");
        m->paused = true;
        if (m->scan_timer)
                (void) sd_event_source_set_enabled(m->scan_timer, SD_EVENT_OFF);
}

void manager_resume(Manager *m) {
        if (m->paused)
                log_info("Scanning resumed.");
        m->paused = false;
        if (m->scan_timer)
                (void) sd_event_source_set_enabled(m->scan_timer, SD_EVENT_ONESHOT);
}

void manager_set_exit_after_scans(Manager *m, uint64_t n) {
        m->exit_after_scans = n;
}

static uint32_t note_hash(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 16777619u;
        return h;
}

/* Says in the log, once per new reason, why a region cannot be (fully) scanned or merged. */
static void manager_log_notes(Manager *m) {
        RegionRegistry *reg = m->registry;
        char label[REGION_NAME_MAX + 4];

        for (size_t i = 0; i < reg->n_regions; i++) {
                Region *r = reg->regions[i];
                uint32_t h = note_hash(r->note) ^ (note_hash(r->merge_note) * 31);

                if (h == r->logged_note_hash)
                        continue;
                r->logged_note_hash = h;
                if (r->note[0])
                        log_warning("Region %" PRIu32 "%s (pid %d): %s.", r->id, region_label(r, label, sizeof(label)),
                                    (int) r->pid, r->note);
                if (r->merge_note[0])
                        log_notice("Region %" PRIu32 "%s (pid %d): the helper refused pages: %s.", r->id,
                                   region_label(r, label, sizeof(label)), (int) r->pid, r->merge_note);
        }
}

static void manager_drop_gone(Manager *m) {
        RegionRegistry *reg = m->registry;
        char label[REGION_NAME_MAX + 4];

        for (size_t i = 0; i < reg->n_regions;) {
                Region *r = reg->regions[i];

                if (!r->gone) {
                        i++;
                        continue;
                }
                log_info("Process %d exited: region %" PRIu32 "%s dropped.", (int) r->pid, r->id,
                         region_label(r, label, sizeof(label)));
                scanner_forget_region(m->scanner, r);
                (void) region_registry_remove(reg, r->id);
        }
}

static void manager_update_stats(Manager *m) {
        IndexUsage u;

        m->stats.last = *scanner_last_counters(m->scanner);
        m->stats.current_scan_pages = scanner_current_pages(m->scanner);
        index_usage(m->index, &u);
        m->stats.tracked_pages = u.tracked_pages;
        m->stats.metadata_bytes = u.metadata_bytes;
        m->stats.merge = *merger_counters(m->merger);
        m->stats.live = m->helper != NULL;
        m->stats.cpu_nsec_per_page = m->cost_nsec_per_page;
        m->stats.pages_per_batch = m->batch_pages;
        m->stats.sleep_usec = m->sleep_usec;
}

static void manager_fall_back_to_estimate(Manager *m, int error) {
        log_warning_errno(error, "The ksmd_helper module stopped answering (%m): falling back to estimate mode. "
                          "Pages merged so far stay merged; load the module and restart ksmd to merge again.");
        merger_set_estimate(m->merger);
        m->helper = helper_client_free(m->helper);
        m->stats.live = false;
}

static void manager_notify_status(Manager *m, uint64_t now, bool force) {
        char buf[256];

        if (!m->config.notify || (!force && now - m->last_status_usec < MANAGER_STATUS_INTERVAL_USEC))
                return;
        m->last_status_usec = now;
        manager_update_stats(m);
        (void) stats_format_status(&m->stats, manager_is_estimate(m), m->paused, m->stats.tracked_pages, buf, sizeof(buf));
        (void) sd_notifyf(false, "STATUS=%s", buf);
}

/* next (usec from now), or sooner if a queued merge is due for its retry. */
static uint64_t until_merge_retry(Manager *m, uint64_t now, uint64_t next) {
        uint64_t retry;

        if (merger_pending(m->merger) == 0)
                return next;
        retry = merger_next_retry_usec(m->merger);
        return MIN(next, retry > now ? retry - now : 0);
}

static int on_scan_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        ScanStepResult res;
        uint64_t now = now_usec(), next;
        int r;

        manager_drop_gone(m);

        if (m->registry->n_regions == 0) {
                next = MAX(m->sleep_usec, (uint64_t) MANAGER_IDLE_USEC);
                goto rearm;
        }

        if (m->rest_until_usec > now) {
                /* Resting: only merge retries are due, and regions of exited processes go once a second. */
                for (size_t i = 0; i < m->registry->n_regions; i++)
                        if (region_alive(m->registry->regions[i]) <= 0)
                                m->registry->regions[i]->gone = true;
                manager_drop_gone(m);
                if (merger_pending(m->merger) > 0)
                        (void) merger_flush(m->merger, now);
                next = until_merge_retry(m, now, MIN(m->rest_until_usec - now, (uint64_t) MANAGER_REST_TICK_USEC));
                goto rearm;
        }
        m->rest_until_usec = 0;

        if (!scanner_in_pass(m->scanner)) {
                m->pass_started_usec = now;
                m->pass_cpu_nsec = 0;
        }
        uint64_t cpu0 = thread_cpu_nsec();
        r = scanner_step(m->scanner, m->batch_pages, now, &res);
        if (r < 0) {
                log_error_errno(r, "Scanning failed: %m");
                return sd_event_exit(m->event, r);
        }
        if (res.limit_hit)
                m->bound_hit_this_pass = true;
        if (res.limit_hit && !m->bound_hit_last_pass) {
                IndexUsage u;

                index_usage(m->index, &u);
                log_warning("The bound on tracked pages is reached (%" PRIu64 " pages, %" PRIu64 " KiB of index metadata): "
                            "pages beyond it are not scanned. Raise MaxMetadata= in ksmd.conf or register less memory.",
                            u.max_tracked_pages, u.metadata_bytes / 1024);
        }

        r = merger_flush(m->merger, now_usec());
        if (r == -ENOENT)
                manager_fall_back_to_estimate(m, r);
        else if (r < 0 && !merge_error_is_transient(r) && r != m->last_merge_error) {
                log_warning_errno(r, "ksmd_helper refused a merge request (%m): its pages are examined again next pass. "
                                  "This is a bug in ksmd or the module if it persists; report it with the kernel log.");
                m->last_merge_error = r;
        } else if (r > 0)
                m->last_merge_error = 0;
        uint64_t batch_cpu_nsec = thread_cpu_nsec() - cpu0;

        m->pass_cpu_nsec += batch_cpu_nsec;
        manager_adapt_rate(m, batch_cpu_nsec, res.pages);

        if (res.pass_done) {
                m->bound_hit_last_pass = m->bound_hit_this_pass;
                m->bound_hit_this_pass = false;
                if (m->helper) {
                        /* Also how an unload is noticed when no merge was due. */
                        r = helper_client_info(m->helper, &m->helper_info);
                        if (r >= 0) {
                                m->stats.helper_bytes_saved = m->helper_info.stats[KSMD_HELPER_STAT_BYTES_SAVED];
                                manager_prune_shared(m);
                        } else if (r == -ENOENT)
                                manager_fall_back_to_estimate(m, r);
                }
                m->stats.full_scans++;
                manager_log_notes(m);
                /* Wall time from the first batch to the end of the last, sleeps included. */
                m->stats.last_full_scan_usec = now_usec() - m->pass_started_usec;
                m->stats.rest_usec = res.pass_quiet ? manager_rest_usec(m) : 0;
                if (m->stats.rest_usec > 0)
                        m->rest_until_usec = now_usec() + m->stats.rest_usec;
                manager_update_stats(m);
                log_debug("Full scan %" PRIu64 " done in %" PRIu64 " ms (%" PRIu64 " ms of CPU): %" PRIu64 " pages scanned, %" PRIu64
                          " read, %" PRIu64 " unchanged by soft-dirty, %" PRIu64 " saveable; %s %" PRIu64 " ms.",
                          m->stats.full_scans, m->stats.last_full_scan_usec / 1000, m->pass_cpu_nsec / 1000000,
                          m->stats.last.pages_scanned, m->stats.last.pages_read, m->stats.last.pages_unchanged,
                          scan_counters_saving_pages(&m->stats.last),
                          m->stats.rest_usec > 0 ? "almost nothing new, resting" : "next batch in",
                          (m->stats.rest_usec > 0 ? m->stats.rest_usec : m->sleep_usec) / 1000);
                manager_notify_status(m, now, true);
                if (m->scan_done)
                        m->scan_done(m, m->scan_done_userdata);
                if (m->exit_after_scans > 0 && m->stats.full_scans >= m->exit_after_scans)
                        return sd_event_exit(m->event, 0);
        } else
                manager_notify_status(m, now, false);

        next = until_merge_retry(m, now, m->rest_until_usec > 0 ? m->stats.rest_usec : m->sleep_usec);
rearm:
        r = sd_event_source_set_time_relative(s, next);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, m->paused ? SD_EVENT_OFF : SD_EVENT_ONESHOT);
        if (r < 0)
                return sd_event_exit(m->event, log_error_errno(r, "Failed to re-arm the scan timer: %m"));
        return 0;
}

int manager_start(Manager *m) {
        int r;

        if (m->started)
                return 0;
        r = sd_event_add_time_relative(m->event, &m->scan_timer, CLOCK_MONOTONIC, 0, 1, on_scan_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the scan timer: %m");
        if (m->paused)
                (void) sd_event_source_set_enabled(m->scan_timer, SD_EVENT_OFF);
        m->started = true;
        manager_notify_status(m, now_usec(), true);
        return 0;
}

void manager_get_stats(Manager *m, Stats *ret) {
        manager_update_stats(m);
        *ret = m->stats;
}

bool manager_is_paused(const Manager *m) {
        return m->paused;
}

const char *manager_get_helper_version(const Manager *m) {
        return m->helper ? m->helper_info.module_version : "";
}

void manager_format_status(Manager *m, char *buf, size_t size) {
        manager_update_stats(m);
        (void) stats_format_status(&m->stats, manager_is_estimate(m), m->paused, m->stats.tracked_pages, buf, size);
}

void manager_set_scan_done_callback(Manager *m, ManagerScanDone cb, void *userdata) {
        m->scan_done = cb;
        m->scan_done_userdata = userdata;
}

int manager_unmerge_region(Manager *m, uint32_t id, uint64_t *ret_pages) {
        Region *region = region_registry_find(m->registry, id);
        _cleanup_free_ ProcMapping *maps = NULL;
        uint64_t start, end, total = 0;
        size_t n_maps = 0;
        pid_t pid;
        int r;

        if (!region)
                return -ENOENT;
        if (!m->helper)
                return -EOPNOTSUPP;
        pid = region->pid;
        start = region->start;
        end = region->end;

        /* The mappings as they are now (they may have moved since the last pass), read while the
         * region's pidfd still vouches for the pid; then stop scanning, so nothing merges again. */
        r = proc_maps_read(pid, &maps, &n_maps);
        if (r < 0 && r != -ESRCH && r != -ENOENT)
                return log_error_errno(r, "Failed to read the mappings of region %" PRIu32 " (pid %d): %m", id, (int) pid);
        if (r >= 0 && region_alive(region) <= 0)
                n_maps = 0;
        r = manager_unregister(m, id);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n_maps; i++) {
                uint64_t a = MAX(maps[i].start, start), b = MIN(maps[i].end, end), n = 0;

                if (maps[i].kind != PROC_MAPPING_ANON || !maps[i].private_ || a >= b)
                        continue;
                r = helper_client_unmerge(m->helper, pid, a, b - a, &n);
                if (r == -ESRCH)
                        break; /* the process is gone: nothing left to back out */
                if (r < 0)
                        return log_error_errno(r, "Failed to unmerge region %" PRIu32 " (pid %d, 0x%" PRIx64 "-0x%" PRIx64 "): %m",
                                               id, (int) pid, a, b);
                total += n;
        }
        log_info("Region %" PRIu32 " (pid %d) backed out: %" PRIu64 " pages made private again.", id, (int) pid, total);
        *ret_pages = total;
        return 0;
}

int manager_set_max_regions(Manager *m, size_t max_regions) {
        if (max_regions == 0 || max_regions > REGION_MAX_REGIONS)
                return -EINVAL;
        m->registry->max_regions = max_regions;
        m->config.max_regions = max_regions;
        return 0;
}
