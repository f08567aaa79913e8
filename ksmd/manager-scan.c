/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Manager's engine: the scan timer, the rate, rests, registration and
 * statistics. See the DOC at the top of manager.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "escape.h"
#include "log.h"
#include "manager.h"
#include "page-hash.h"
#include "proc-process.h"
#include "proc-reader.h"
#include "rate.h"
#include "scan-worker.h"

#define MANAGER_STATUS_INTERVAL_USEC 1000000u
#define MANAGER_MAX_REST_USEC (UINT64_C(24) * 3600 * 1000000)
/* The longest a full scan goes without listing the helper's shared pages (manager_prune_shared()). */
#define MANAGER_PRUNE_MAX_USEC (UINT64_C(10) * 1000000)
#define MANAGER_COW_CHECK_USEC 100000u     /* the COW guard looks at memory at most this often... */
#define MANAGER_COW_CGROUPS_USEC 1000000u  /* ...and at the regions' memory cgroups this often */
#define MANAGER_COW_REST_USEC 5000000u     /* while resting and holding, it looks this often (see
                                            * manager_cow_watching()) */
#define MANAGER_COW_MAX_SCOPES 64u         /* memory cgroups with a limit it follows, besides the host */

static void manager_remove_region(Manager *m, Region *r);
static int manager_watch_region(Manager *m, Region *r);

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void on_merge_result(const MergeRequest *req, const HelperMergeResult *res, void *userdata) {
        Manager *m = userdata;

        scanner_apply_merge_result(m->scanner, req, res);
}

/* The daemon's CPU time: the event loop's and the scan workers' (scan-worker.h). */
static uint64_t process_cpu_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

static int manager_connect_helper(Manager *m, size_t *ret_max_batch) {
        _cleanup_(helper_client_freep) HelperClient *h = NULL;
        int r;

        *ret_max_batch = 1;
        if (m->settings.mode == SCAN_MODE_ESTIMATE) {
                log_notice("Estimate mode (Mode=estimate): scanning and reporting what merging would save; "
                           "nothing is merged.");
                return 0;
        }
        r = helper_client_new(&h);
        if (r == -ENOENT) {
                log_notice("The ksmd_helper kernel module is not loaded "
                           "(generic netlink family \"%s\" not found): "
                           "running in estimate mode, nothing is merged. "
                           "Load it with 'modprobe ksmd_helper' and restart ksmd to merge.",
                           KSMD_HELPER_GENL_NAME);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the ksmd_helper generic netlink family: %m");
        r = helper_client_info(h, &m->helper_info);
        if (r == -EPERM)
                return log_error_errno(r, "ksmd_helper refused INFO: ksmd needs CAP_SYS_ADMIN and "
                                       "CAP_NET_ADMIN in the initial user namespace.");
        if (r < 0)
                return log_error_errno(r, "Failed to query ksmd_helper INFO: %m");
        if (m->helper_info.abi_version != KSMD_HELPER_ABI_VERSION)
                return log_error_errno(-EPROTO, "ksmd_helper speaks ABI %" PRIu32 ", this ksmd needs %d: "
                                       "install matching versions.",
                                       m->helper_info.abi_version, KSMD_HELPER_ABI_VERSION);
        if (m->helper_info.max_batch == 0)
                return log_error_errno(-EPROTO,
                                       "ksmd_helper reports max_batch 0: the module is broken, reload it.");
        log_info("Merging through ksmd_helper %s on %s (max %" PRIu32 " items per request).",
                 m->helper_info.module_version, m->helper_info.kernel_release, m->helper_info.max_batch);
        *ret_max_batch = MIN((size_t) m->helper_info.max_batch, (size_t) 4096);
        m->helper = TAKE_PTR(h);
        return 0;
}

/*
 * Asks the kernel what it does (host-probe.h), logs each feature it lacks
 * once with what ksmd does instead, and says what the scanner may rely on.
 */
static int manager_probe_host(Manager *m, ScannerConfig *sc) {
        const HostProbe *p = &m->host;
        char have[256] = "";
        size_t n = 0;
        int r;

        r = host_probe_run(&m->host);
        if (r < 0)
                return log_error_errno(r, "Failed to probe the host kernel: %m");

        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++) {
                if (host_probe_has(p, f)) {
                        size_t at = MIN(n, sizeof(have));

                        n += (size_t) snprintf(have + at, sizeof(have) - at, "%s%s", n > 0 ? ", " : "",
                                               host_feature_to_string(f));
                        continue;
                }
                /* Missing is news; untested (no swap, THP off) is the host's choice. */
                log_full_errno(p->answer[f] == HOST_ANSWER_NO ? LOG_NOTICE : LOG_INFO, 0,
                               "Host kernel %s: %s %s: %s; instead, %s.", p->release,
                               host_feature_to_string(f),
                               p->answer[f] == HOST_ANSWER_NO ? "is missing" : "is untested", p->seen[f],
                               host_probe_instead(p, f));
        }
        log_info("Host kernel %s has: %s.", p->release, n > 0 ? have : "none of what ksmd probes");

        scanner_config_from_host(sc, p);
        return 0;
}

int manager_setup_engine(Manager *m) {
        ScannerConfig sc = {};
        size_t max_batch;
        int r;

        r = manager_connect_helper(m, &max_batch);
        if (r < 0)
                return r;

        r = domain_table_new(&m->domains);
        if (r < 0)
                return log_oom();
        r = region_registry_new(m->settings.max_regions, &m->registry);
        if (r < 0)
                return log_error_errno(r, "Failed to create the region registry: %m");
        r = index_new(m->settings.max_metadata_bytes / INDEX_MAX_BYTES_PER_PAGE, &m->index);
        if (r < 0)
                return log_error_errno(r, "Failed to create the page index: %m");
        r = merger_new(m->helper, max_batch, MAX(max_batch, (size_t) 8192), on_merge_result, m, &m->merger);
        if (r < 0)
                return log_error_errno(r, "Failed to create the merge queue: %m");

        r = manager_probe_host(m, &sc);
        if (r < 0)
                return r;
        sc.hash_seed = page_hash_random_seed();

        r = scanner_new(m->registry, m->index, m->merger, &sc, &m->scanner);
        if (r < 0)
                return log_error_errno(r, "Failed to create the scanner: %m");
        manager_set_scan_threads(m, &m->settings);

        scanner_set_max_pages_per_owner(m->scanner, m->settings.max_pages_per_owner);
        scanner_set_merge_policy(m->scanner, m->settings.merge_policy);
        m->stats.live = m->helper != NULL;
        manager_reset_rate(m);
        return 0;
}

void manager_free_engine(Manager *m) {
        m->scan_timer = sd_event_source_disable_unref(m->scan_timer);
        m->scanner = scanner_free(m->scanner);
        m->merger = merger_free(m->merger);
        m->index = index_free(m->index);
        m->registry = region_registry_free(m->registry);
        m->domains = domain_table_free(m->domains);
        m->helper = helper_client_free(m->helper);
        free(m->cow_scopes);
        m->cow_scopes = NULL;
}

bool manager_is_estimate(const Manager *m) {
        return !m->helper;
}

static void log_registration_error(int r, pid_t pid) {
        switch (r) {
        case -ESRCH:
                log_error_errno(r, "Cannot register pid %d: no such process.", (int) pid);
                break;
        case -EEXIST:
                log_error_errno(r, "Cannot register pid %d: the range overlaps a region already registered "
                                "for it; unregister that one first.", (int) pid);
                break;
        case -EINVAL:
                log_error_errno(r, "Cannot register pid %d: the range must be page aligned, "
                                "non-empty and not wrap.", (int) pid);
                break;
        default:
                log_error_errno(r, "Cannot register pid %d: %m", (int) pid);
        }
}

void manager_wake(Manager *m) {
        if (m->rest_until_usec == 0 && !m->waiting_for_regions)
                return;
        m->rest_until_usec = 0;
        m->stats.rest_usec = 0;
        m->waiting_for_regions = false;
        if (m->scan_timer && !m->paused) {
                (void) sd_event_source_set_time_relative(m->scan_timer, 0);
                (void) sd_event_source_set_enabled(m->scan_timer, SD_EVENT_ONESHOT);
        }
}

/*
 * The merge domain of a new region (domains.h): root's choice; the caller's
 * own for a caller other than root; else DomainPolicy=. -ESRCH, -ENOMEM.
 */
static int domain_name_for(Manager *m, const RegionRequest *req, char *buf, size_t size) {
        TargetIds ids;
        int r;

        if (req->domain) {
                snprintf(buf, size, "%s", req->domain);
                return 0;
        }
        if (req->owner_uid != 0) {
                snprintf(buf, size, "uid:%u", (unsigned) req->owner_uid);
                return 0;
        }
        switch (m->settings.domain_policy) {
        case DOMAIN_POLICY_HOST:
                snprintf(buf, size, "host");
                return 0;
        case DOMAIN_POLICY_REGION:
                snprintf(buf, size, "region:%" PRIu32, region_registry_next_id(m->registry));
                return 0;
        default:
                r = proc_read_target_ids(req->pid, &ids);
                if (r < 0)
                        return r;
                snprintf(buf, size, "uid:%u", (unsigned) ids.uid);
                return 0;
        }
}

int manager_register(Manager *m, const RegionRequest *req, uint32_t *ret_id) {
        _cleanup_(access_proof_freep) AccessProof *proof = req->proof;
        char label[REGION_LABEL_MAX], domain[DOMAIN_NAME_MAX + 1];
        pid_t pid = req->pid;
        uint32_t domain_id;
        Region *region;
        int r;

        if (req->name && !region_name_is_valid(req->name))
                return log_error_errno(-EINVAL, "Cannot register pid %d: a region name must be "
                                       "1..%u printable ASCII characters.",
                                       (int) pid, REGION_NAME_MAX);
        if (req->domain && !domain_name_is_valid(req->domain))
                return log_error_errno(-EINVAL, "Cannot register pid %d: a domain name must be 1..%u "
                                       "characters of A-Z a-z 0-9 . _ : @ -.",
                                       (int) pid, DOMAIN_NAME_MAX);
        r = domain_name_for(m, req, domain, sizeof(domain));
        if (r < 0) {
                log_registration_error(r, pid);
                return r;
        }
        r = domain_table_ref(m->domains, domain, &domain_id);
        if (r < 0)
                return log_error_errno(r, "Cannot register pid %d: no room for merge domain %s: %m",
                                       (int) pid, domain);
        r = region_registry_add(m->registry, pid, req->start, req->length, req->whole, req->owner_uid,
                                &region);
        if (r < 0) {
                domain_table_unref(m->domains, domain_id);
                if (r == -ENOSPC)
                        log_error_errno(r, "Cannot register pid %d: the limit of %" PRIu64 " regions "
                                        "is reached; unregister one or raise MaxRegions=.",
                                        (int) pid, m->settings.max_regions);
                else
                        log_registration_error(r, pid);
                return r;
        }
        /* Valid, checked above. */
        (void) region_set_name(region, req->name);
        region_set_domain(region, domain_id);
        region_set_proof(region, TAKE_PTR(proof));
        r = manager_watch_region(m, region);
        if (r < 0) {
                log_error_errno(r, "Cannot register pid %d: failed to watch its pidfd for its exit: %m",
                                (int) pid);
                manager_remove_region(m, region);
                return r;
        }
        if (req->whole)
                log_info("Registered region %" PRIu32 "%s in domain %s: all private anonymous memory "
                         "of pid %d.",
                         region->id, region_label(region, label, sizeof(label)), domain, (int) pid);
        else
                log_info("Registered region %" PRIu32 "%s in domain %s: pid %d, 0x%" PRIx64 "-0x%" PRIx64
                         ".",
                         region->id, region_label(region, label, sizeof(label)), domain, (int) pid,
                         req->start, req->start + req->length);
        if (ret_id)
                *ret_id = region->id;
        manager_wake(m);
        return 0;
}

int manager_register_range(Manager *m, pid_t pid, uint64_t start, uint64_t length, uint32_t *ret_id) {
        return manager_register(m, &(RegionRequest) { .pid = pid, .start = start, .length = length },
                                ret_id);
}

int manager_register_process(Manager *m, pid_t pid, uint32_t *ret_id) {
        return manager_register(m, &(RegionRequest) { .pid = pid, .whole = true }, ret_id);
}

/* The one way a region leaves: the scanner forgets it, its domain loses it, the registry drops it
 * (and with it the source on its pidfd, region_set_watch()). */
static void manager_remove_region(Manager *m, Region *r) {
        scanner_forget_region(m->scanner, r);
        domain_table_unref(m->domains, r->domain_id);
        (void) region_registry_remove(m->registry, r->id);
}

static void manager_drop_gone(Manager *m);

/* What watches a region's pidfd: the region's id, not a pointer, so the source never reaches a freed one. */
typedef struct RegionWatch {
        Manager *manager;
        uint32_t region_id;
        sd_event_source *source;
} RegionWatch;

static void region_watch_free(void *p) {
        RegionWatch *w = p;

        if (!w)
                return;
        /* Safe from its own callback: sd-event frees a dispatching source after the callback returns. */
        sd_event_source_disable_unref(w->source);
        free(w);
}

/* A pidfd polls readable once its process has exited: the region goes now, rest or not, scan or not. */
static int on_region_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        RegionWatch *w = userdata;
        Manager *m = w->manager;
        Region *r = region_registry_find(m->registry, w->region_id);

        if (!r) {
                /* Cannot be: the region frees its watch. Level-triggered, so never fire again. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        r->gone = true;
        /* Frees w and this source (after the callback returns): nothing of w is used below. */
        manager_drop_gone(m);
        return 0;
}

/* Adds the source on r's pidfd that drops r when its process exits; r owns it from then on. */
static int manager_watch_region(Manager *m, Region *r) {
        RegionWatch *w;
        int k;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (RegionWatch) { .manager = m, .region_id = r->id };
        k = sd_event_add_io(m->event, &w->source, r->pidfd, EPOLLIN, on_region_exit, w);
        if (k < 0) {
                free(w);
                return k;
        }
        (void) sd_event_source_set_description(w->source, "region-exit");
        region_set_watch(r, w, region_watch_free);
        return 0;
}

int manager_unregister(Manager *m, uint32_t id) {
        Region *r = region_registry_find(m->registry, id);
        char label[REGION_LABEL_MAX];

        if (!r)
                return log_error_errno(-ENOENT, "Cannot unregister region %" PRIu32 ": no such region.", id);
        log_info("Unregistered region %" PRIu32 "%s (pid %d).", id, region_label(r, label, sizeof(label)),
                 (int) r->pid);
        manager_remove_region(m, r);
        return 0;
}

void manager_reset_rate(Manager *m) {
        /* An adaptive rate starts from the fixed one and adapts from the next batch on. */
        m->batch_pages = m->settings.pages_to_scan;
        m->batch_sleep_usec = m->settings.sleep_usec;
        m->capped_logged = false;
}

/* The rest after a full scan that found almost nothing new (see manager.h); 0: go on. */
static uint64_t manager_rest_usec(const Manager *m) {
        uint64_t rest, cpu_usec = m->pass_cpu_nsec / 1000;

        if (m->settings.idle_sleep_usec == 0 || m->exit_after_scans > 0)
                return 0;
        rest = cpu_usec * (10000 - m->settings.idle_max_cpu_bp) / m->settings.idle_max_cpu_bp;
        return MIN(MAX(rest, m->settings.idle_sleep_usec), (uint64_t) MANAGER_MAX_REST_USEC);
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
 * At the end of a full scan: forgets the shared pages the helper no longer
 * owns or that at most one page table maps, so a last mapper costs no index
 * entry. The list costs a dump of every shared page; it is asked for only if
 * the helper's counters differ from those of the last list (a merge, an
 * unmerge, a page freed or a mapping gained or lost changes one of them), or
 * MANAGER_PRUNE_MAX_USEC has passed since it, for what the sums cannot show
 * (a mapping lost on one shared page while another gained one by fork). Such
 * an entry is never a safety matter: the helper verifies every merge.
 */
static void manager_prune_shared(Manager *m, uint64_t now) {
        _cleanup_free_ HelperPage *pages = NULL;
        const uint64_t *st = m->helper_info.stats;
        const uint64_t sig[MANAGER_PRUNE_STATS] = {
                st[KSMD_HELPER_STAT_MERGED], st[KSMD_HELPER_STAT_UNMERGED], st[KSMD_HELPER_STAT_PAGES_OWNED],
                st[KSMD_HELPER_STAT_PAGES_MAPPED], st[KSMD_HELPER_STAT_BYTES_SAVED],
        };
        OwnedPages owned;
        size_t n = 0;
        int r;

        if (!m->helper || !(m->helper_info.features & KSMD_HELPER_FEATURE_GET_PAGES))
                return;
        if (m->pruned_usec > 0 && now < m->pruned_usec + MANAGER_PRUNE_MAX_USEC &&
            memcmp(sig, m->pruned_stats, sizeof(sig)) == 0)
                return;
        r = helper_client_get_pages(m->helper, &pages, &n);
        if (r < 0) {
                log_debug_errno(r, "Could not list the helper's shared pages (%m): "
                                "keeping every shared entry.");
                return;
        }
        qsort(pages, n, sizeof(HelperPage), cmp_helper_page);
        owned = (OwnedPages) { .pages = pages, .n = n };
        r = index_shared_prune(m->index, shared_page_still_saves, &owned);
        if (r < 0)
                return;
        memcpy(m->pruned_stats, sig, sizeof(sig));
        m->pruned_usec = now;
        if (r > 0)
                log_debug("Forgot %d shared pages that at most one page table still maps.", r);
}

unsigned manager_scan_threads_for(const Settings *s) {
        if (s->scan_threads > 0)
                return (unsigned) s->scan_threads;
        return scan_threads_default(s->max_cpu_percent, sysconf(_SC_NPROCESSORS_ONLN));
}

void manager_set_scan_threads(Manager *m, const Settings *s) {
        unsigned n = manager_scan_threads_for(s), old = scanner_threads(m->scanner);
        int r;

        if (n == old)
                return;
        r = scanner_set_threads(m->scanner, n);
        if (r < 0) {
                log_warning_errno(r, "Failed to start %u scan threads (%m): scanning on with %u.", n, old);
                return;
        }
        log_info("Scanning with %u thread%s%s.", n, n == 1 ? "" : "s",
                 s->scan_threads > 0 ? "" : " (ScanThreads=0: one per 100% of MaxCPU=, at most the CPUs)");
}

/* After each batch: learn the cost per page and, with a target, pick the next batch and sleep. */
static void manager_adapt_rate(Manager *m, uint64_t batch_cpu_nsec, uint64_t batch_busy_nsec,
                               uint64_t batch_pages) {
        RateDecision d;
        IndexUsage u;
        bool first;

        m->cost_nsec_per_page = rate_update_cost(m->cost_nsec_per_page, batch_cpu_nsec, batch_pages);
        m->busy_nsec_per_page = rate_update_cost(m->busy_nsec_per_page, batch_busy_nsec, batch_pages);
        if (m->settings.target_scan_time_usec == 0)
                return;
        index_usage(m->index, &u);
        /*
         * The first full scan attaches regions as it reaches them, so the pages it will cover are
         * not known until it ends: it runs at the CPU cap (the shortest time the operator allows),
         * which also merges sooner. Later scans plan from the last one's size.
         */
        first = scanner_passes(m->scanner) <= 1 && scanner_in_pass(m->scanner);
        if (rate_decide(MAX(MAX(u.tracked_pages, m->stats.last.pages_scanned), (uint64_t) 1),
                        first ? 1 : m->settings.target_scan_time_usec, m->settings.max_cpu_percent,
                        m->cost_nsec_per_page, m->busy_nsec_per_page, &d) < 0)
                return;
        m->batch_pages = d.pages_per_batch;
        m->batch_sleep_usec = d.sleep_usec;
        if (d.cpu_capped && !first && !m->capped_logged) {
                m->capped_logged = true;
                log_notice("A full scan of %" PRIu64 " pages cannot take %" PRIu64 " s "
                           "within MaxCPU=%" PRIu64 "%% (%" PRIu64 " ns per page measured): "
                           "scanning at the cap. Raise TargetScanTime= or MaxCPU=.",
                           u.tracked_pages, m->settings.target_scan_time_usec / 1000000,
                           m->settings.max_cpu_percent, m->cost_nsec_per_page);
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

static void manager_log_notes(Manager *m) {
        char label[REGION_LABEL_MAX];

        REGISTRY_FOREACH(r, m->registry) {
                const RegionScan *rs;

                if (!scanner_region_notes_changed(m->scanner, r->id))
                        continue;
                rs = scanner_region(m->scanner, r->id);
                if (rs->note[0])
                        log_warning("Region %" PRIu32 "%s (pid %d): %s.", r->id,
                                    region_label(r, label, sizeof(label)), (int) r->pid, rs->note);
                if (rs->merge_note[0])
                        log_notice("Region %" PRIu32 "%s (pid %d): the helper refused pages: %s.", r->id,
                                   region_label(r, label, sizeof(label)), (int) r->pid, rs->merge_note);
        }
}

static void manager_drop_gone(Manager *m) {
        char label[REGION_LABEL_MAX];

        for (Region *r = region_registry_next(m->registry, 0), *next; r; r = next) {
                next = region_registry_next(m->registry, r->id + 1);
                if (!r->gone)
                        continue;
                if (r->gone_reason)
                        log_notice("Region %" PRIu32 "%s (pid %d) dropped: %s.", r->id,
                                   region_label(r, label, sizeof(label)), (int) r->pid, r->gone_reason);
                else
                        log_info("Process %d exited: region %" PRIu32 "%s dropped.", (int) r->pid, r->id,
                                 region_label(r, label, sizeof(label)));
                manager_remove_region(m, r);
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
        m->stats.cow_breaks = scanner_cow_breaks(m->scanner);
        m->stats.live = m->helper != NULL;
        if (m->helper) {
                const uint64_t *h = m->helper_info.stats;

                m->stats.helper_bytes_saved = h[KSMD_HELPER_STAT_BYTES_SAVED];
                m->stats.helper_pages_owned = h[KSMD_HELPER_STAT_PAGES_OWNED];
                m->stats.helper_pages_mapped = h[KSMD_HELPER_STAT_PAGES_MAPPED];
                m->stats.helper_no_memory = h[KSMD_HELPER_STAT_NO_MEMORY];
                m->stats.n_helper_pool = MIN(m->helper_info.n_pool, (size_t) HELPER_POOL_NODES_MAX);
                memcpy(m->stats.helper_pool, m->helper_info.pool,
                       m->stats.n_helper_pool * sizeof(HelperPoolNode));
        }
        m->stats.cpu_nsec_per_page = m->cost_nsec_per_page;
        m->stats.batch_pages = m->batch_pages;
        m->stats.batch_sleep_usec = m->batch_sleep_usec;
        m->stats.cow = m->cow;
}

static void manager_notify_status(Manager *m, uint64_t now, bool force);

/*
 * The unmerge debt: the saving the last full scan found, plus what the helper merged since (pages
 * written since are still counted: the debt errs high). Nothing is merged in estimate mode.
 */
static uint64_t manager_debt_bytes(Manager *m) {
        uint64_t merged;

        if (!m->helper)
                return 0;
        merged = merger_counters(m->merger)->by_result[KSMD_HELPER_RESULT_MERGED];
        return (scan_counters_saving_pages(scanner_last_counters(m->scanner)) +
                (merged >= m->merged_at_pass_end ? merged - m->merged_at_pass_end : 0)) * PAGE_SIZE_BYTES;
}

/* The COW guard's scopes: the host's first, then the memory cgroups with a limit that hold regions. */
typedef struct CowScopes {
        CowScope scopes[1 + MANAGER_COW_MAX_SCOPES];
        char paths[1 + MANAGER_COW_MAX_SCOPES][256];
        char unlimited[MANAGER_COW_MAX_SCOPES][256];   /* cgroups read that have no limit */
        size_t n, n_unlimited;
} CowScopes;

/* The scope of the limited cgroup path, made if it has a limit and there is room; NULL if none. */
static CowScope *cow_scope_of(CowScopes *c, const char *path) {
        uint64_t max, current;

        for (size_t i = 1; i < c->n; i++)
                if (streq(c->paths[i], path))
                        return &c->scopes[i];
        for (size_t i = 0; i < c->n_unlimited; i++)
                if (streq(c->unlimited[i], path))
                        return NULL;
        if (proc_read_cgroup_memory(path, &max, &current) < 0 || max == UINT64_MAX) {
                if (c->n_unlimited < MANAGER_COW_MAX_SCOPES)
                        snprintf(c->unlimited[c->n_unlimited++], sizeof(c->unlimited[0]), "%s", path);
                return NULL;
        }
        if (c->n >= ELEMENTSOF(c->scopes))
                return NULL;
        snprintf(c->paths[c->n], sizeof(c->paths[0]), "%s", path);
        c->scopes[c->n] = (CowScope) {
                .cgroup = c->paths[c->n],
                .total_bytes = max,
                .available_bytes = max > current ? max - current : 0,
        };
        return &c->scopes[c->n++];
}

/* Adds a region's debt to every memory cgroup with a limit that holds its process. */
static void cow_scopes_add_region(CowScopes *c, const Region *r, uint64_t debt_bytes) {
        char path[256];
        size_t n;

        if (debt_bytes == 0 || proc_read_cgroup(r->pid, path, sizeof(path)) < 0)
                return;
        for (n = strlen(path); n > 1;) {
                CowScope *scope;

                path[n] = '\0';
                scope = cow_scope_of(c, path);
                if (scope)
                        scope->debt_bytes += debt_bytes;
                while (n > 0 && path[n - 1] != '/')
                        n--;
                if (n > 1)
                        n--;
        }
}

/*
 * Whether the COW guard must look at memory now. Its decision only ever stops new merges, so it
 * matters while scanning or while merges wait in the queue. Resting with none queued, nothing
 * merges whatever memory does (pages written by their process are copied by the kernel, not by
 * ksmd, and the guard never unmerges): it looks only if it holds, MANAGER_COW_REST_USEC apart, to
 * end the rest when memory returns and merge what it held back. Otherwise it looks when the rest
 * ends, before the next batch, and when statistics are asked for (manager_get_stats()).
 */
static bool manager_cow_watching(Manager *m, uint64_t now) {
        if (m->rest_until_usec <= now && !m->waiting_for_regions)
                return true;
        return merger_pending(m->merger) > 0 || m->cow.holding;
}

/* The COW guard (cow-guard.h): reads the memory figures, decides, says so, tells the scanner. */
static void manager_cow_check(Manager *m, uint64_t now, bool force) {
        char headroom[32], reserve[32], debt[32], available[32], where[300], text[256];
        CowScopes *c = m->cow_scopes;
        size_t n = 0;
        int change;

        if (!force && now - m->cow_checked_usec < MANAGER_COW_CHECK_USEC)
                return;
        m->cow_checked_usec = now;
        m->cow_looks++;
        if (!c) {
                c = m->cow_scopes = calloc(1, sizeof(*c));
                if (!c)
                        return;
        }
        if (proc_read_meminfo(&c->scopes[0].total_bytes, &c->scopes[0].available_bytes) >= 0) {
                c->scopes[0].debt_bytes = manager_debt_bytes(m);
                /* The cgroups once a second: a file per region; the host's figures every look. */
                if (c->n == 0 || force || now - m->cow_cgroups_usec >= MANAGER_COW_CGROUPS_USEC) {
                        m->cow_cgroups_usec = now;
                        c->n = 1;
                        c->n_unlimited = 0;
                        if (m->helper)
                                REGISTRY_FOREACH(region, m->registry) {
                                        const RegionScan *rs = scanner_region(m->scanner, region->id);

                                        if (rs)
                                                cow_scopes_add_region(c, region, PAGE_SIZE_BYTES *
                                                                      scan_counters_saving_pages(&rs->last));
                                }
                }
                n = c->n;
        }
        change = cow_guard_evaluate(&m->cow, m->settings.cow_reserve, c->scopes, n);
        scanner_set_merging_held(m->scanner, m->cow.holding);
        scanner_set_merge_budget(m->scanner, m->cow.budget_bytes == UINT64_MAX ?
                                                     UINT64_MAX : m->cow.budget_bytes / PAGE_SIZE_BYTES);
        if (change == 0)
                return;
        if (m->cow.cgroup[0])
                snprintf(where, sizeof(where), " in cgroup %s",
                         escape_text(m->cow.cgroup, text, sizeof(text)));
        else
                where[0] = '\0';
        cow_format_bytes(m->cow.headroom_bytes, headroom, sizeof(headroom));
        cow_format_bytes((int64_t) m->cow.reserve_bytes, reserve, sizeof(reserve));
        cow_format_bytes((int64_t) m->cow.debt_bytes, debt, sizeof(debt));
        cow_format_bytes((int64_t) m->cow.available_bytes, available, sizeof(available));
        if (change > 0)
                log_warning("COW guard: headroom %s%s is below CowReserve= (%s): unmerge debt %s, "
                            "available %s. No new page is merged until memory returns; "
                            "merged pages stay merged.", headroom, where, reserve, debt, available);
        else {
                log_notice("COW guard: headroom %s%s is back above CowReserve= (%s): merging resumes.",
                           headroom, where, reserve);
                manager_wake(m);
        }
        manager_notify_status(m, now, true);
}

static void manager_fall_back_to_estimate(Manager *m, int error) {
        log_warning_errno(error, "The ksmd_helper module stopped answering (%m): "
                          "falling back to estimate mode. Pages merged so far stay merged; "
                          "load the module and restart ksmd to merge again.");
        merger_set_estimate(m->merger);
        m->helper = helper_client_free(m->helper);
        m->stats.live = false;
}

static void manager_notify_status(Manager *m, uint64_t now, bool force) {
        char buf[256];

        if (!m->notify || (!force && now - m->last_status_usec < MANAGER_STATUS_INTERVAL_USEC))
                return;
        m->last_status_usec = now;
        manager_update_stats(m);
        (void) stats_format_status(&m->stats, manager_is_estimate(m), m->paused, m->stats.tracked_pages, buf,
                                   sizeof(buf));
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

        if (region_registry_count(m->registry) == 0) {
                /* Nothing to scan: the timer sleeps until a registration (manager_wake()). */
                m->waiting_for_regions = true;
                m->rest_until_usec = 0;
                r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
                if (r < 0)
                        return sd_event_exit(m->event,
                                             log_error_errno(r, "Failed to stop the scan timer: %m"));
                return 0;
        }

        if (m->rest_until_usec > now) {
                /*
                 * Resting: the regions' pidfd sources drop those of exited processes
                 * (manager_watch_region()), so the timer wakes only for the rest's end, a merge retry
                 * that is due, and the COW guard if it holds (manager_cow_watching()).
                 */
                next = m->rest_until_usec - now;
                if (manager_cow_watching(m, now)) {
                        manager_cow_check(m, now, false);
                        if (m->cow.holding)
                                next = MIN(next, (uint64_t) MANAGER_COW_REST_USEC);
                }
                /* The guard letting go ends the rest (manager_wake()). */
                if (m->rest_until_usec == 0)
                        next = 0;
                else if (merger_pending(m->merger) > 0) {
                        (void) merger_flush(m->merger, now);
                        /* Its results may find regions gone: they go now, not at the rest's end. */
                        manager_drop_gone(m);
                }
                next = until_merge_retry(m, now, next);
                goto rearm;
        }
        m->rest_until_usec = 0;
        manager_cow_check(m, now, false);

        if (!scanner_in_pass(m->scanner)) {
                m->pass_started_usec = now;
                m->pass_cpu_nsec = 0;
        }
        uint64_t cpu0 = process_cpu_nsec(), wall0 = now_usec();
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
                log_warning("The bound on tracked pages is reached "
                            "(%" PRIu64 " pages, %" PRIu64 " KiB of index metadata): "
                            "pages beyond it are not scanned. "
                            "Raise MaxMetadata= in ksmd.conf or register less memory.",
                            u.max_tracked_pages, u.metadata_bytes / 1024);
        }

        r = merger_flush(m->merger, now_usec());
        if (r == -ENOENT)
                manager_fall_back_to_estimate(m, r);
        else if (r < 0 && !merge_error_is_transient(r) && r != m->last_merge_error) {
                log_warning_errno(r, "ksmd_helper refused a merge request (%m): "
                                  "its pages are examined again next pass. "
                                  "This is a bug in ksmd or the module if it persists; "
                                  "report it with the kernel log.");
                m->last_merge_error = r;
        } else if (r > 0)
                m->last_merge_error = 0;
        /* Regions the step found gone (exited, or their proof failed) go now: a rest may follow. */
        manager_drop_gone(m);
        uint64_t batch_cpu_nsec = process_cpu_nsec() - cpu0, batch_busy_nsec = (now_usec() - wall0) * 1000;

        m->pass_cpu_nsec += batch_cpu_nsec;
        manager_adapt_rate(m, batch_cpu_nsec, batch_busy_nsec, res.pages);

        if (res.pass_done) {
                m->bound_hit_last_pass = m->bound_hit_this_pass;
                m->bound_hit_this_pass = false;
                if (m->helper) {
                        /* Also how an unload is noticed when no merge was due. */
                        r = helper_client_info(m->helper, &m->helper_info);
                        if (r >= 0)
                                manager_prune_shared(m, now_usec());
                        else if (r == -ENOENT)
                                manager_fall_back_to_estimate(m, r);
                }
                m->stats.full_scans++;
                m->merged_at_pass_end = merger_counters(m->merger)->by_result[KSMD_HELPER_RESULT_MERGED];
                manager_cow_check(m, now, true);
                manager_log_notes(m);
                /* Wall time from the first batch to the end of the last, sleeps included. */
                m->stats.last_full_scan_usec = now_usec() - m->pass_started_usec;
                m->stats.rest_usec = res.pass_quiet ? manager_rest_usec(m) : 0;
                if (m->stats.rest_usec > 0)
                        m->rest_until_usec = now_usec() + m->stats.rest_usec;
                manager_update_stats(m);
                log_debug("Full scan %" PRIu64 " done in %" PRIu64 " ms (%" PRIu64 " ms of CPU): %" PRIu64
                          " pages scanned, %" PRIu64 " read, %" PRIu64 " unchanged by soft-dirty, %" PRIu64
                          " still merged, %" PRIu64 " saveable; %s %" PRIu64 " ms.",
                          m->stats.full_scans, m->stats.last_full_scan_usec / 1000,
                          m->pass_cpu_nsec / 1000000, m->stats.last.pages_scanned, m->stats.last.pages_read,
                          m->stats.last.pages_unchanged, m->stats.last.pages_skipped_merged,
                          scan_counters_saving_pages(&m->stats.last),
                          m->stats.rest_usec > 0 ? "almost nothing new, resting" : "next batch in",
                          (m->stats.rest_usec > 0 ? m->stats.rest_usec : m->batch_sleep_usec) / 1000);
                manager_notify_status(m, now, true);
                manager_bus_emit_scan_done(m);
                if (m->scan_done)
                        m->scan_done(m, m->scan_done_userdata);
                if (m->exit_after_scans > 0 && m->stats.full_scans >= m->exit_after_scans)
                        return sd_event_exit(m->event, 0);
        } else
                manager_notify_status(m, now, false);

        /* A rest that begins here is one wait (and the COW guard's looks if it holds), see above. */
        if (m->rest_until_usec > 0)
                next = m->cow.holding ? MIN(m->stats.rest_usec, (uint64_t) MANAGER_COW_REST_USEC) :
                                        m->stats.rest_usec;
        else
                next = m->batch_sleep_usec;
        next = until_merge_retry(m, now, next);
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
        /* The guard's figures as they are now, also while resting, when it does not look by itself. */
        manager_cow_check(m, now_usec(), false);
        manager_update_stats(m);
        *ret = m->stats;
}

void manager_format_status(Manager *m, char *buf, size_t size) {
        manager_cow_check(m, now_usec(), false);
        manager_update_stats(m);
        (void) stats_format_status(&m->stats, manager_is_estimate(m), m->paused, m->stats.tracked_pages, buf,
                                   size);
}

int manager_unmerge_region(Manager *m, uint32_t id, uint64_t *ret_pages) {
        Region *region = region_registry_find(m->registry, id);
        _cleanup_free_ ProcMapping *maps = NULL;
        _cleanup_close_ int pidfd = -EBADF;
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
        /* The helper is told the process by pidfd; unregistering closes the region's own. */
        pidfd = fcntl(region->pidfd, F_DUPFD_CLOEXEC, 3);
        if (pidfd < 0)
                return log_error_errno(-errno, "Failed to duplicate the pidfd of region %" PRIu32 ": %m",
                                       id);

        /* The mappings as they are now (they may have moved since the last pass), read while the
         * region's pidfd still vouches for the pid; then stop scanning, so nothing merges again. */
        r = proc_maps_read(pid, &maps, &n_maps);
        if (r < 0 && r != -ESRCH && r != -ENOENT)
                return log_error_errno(r, "Failed to read the mappings of region %" PRIu32 " (pid %d): %m",
                                       id, (int) pid);
        if (r >= 0 && region_alive(region) <= 0)
                n_maps = 0;
        r = manager_unregister(m, id);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n_maps; i++) {
                uint64_t a = MAX(maps[i].start, start), b = MIN(maps[i].end, end), n = 0;

                if (maps[i].kind != PROC_MAPPING_ANON || !maps[i].private_ || a >= b)
                        continue;
                r = helper_client_unmerge(m->helper, pidfd, a, b - a, &n);
                if (r == -ESRCH)
                        break; /* the process is gone: nothing left to back out */
                if (r < 0)
                        return log_error_errno(r, "Failed to unmerge region %" PRIu32
                                               " (pid %d, 0x%" PRIx64 "-0x%" PRIx64 "): %m",
                                               id, (int) pid, a, b);
                total += n;
        }
        log_info("Region %" PRIu32 " (pid %d) backed out: %" PRIu64 " pages made private again.", id,
                 (int) pid, total);
        *ret_pages = total;
        return 0;
}

void manager_print_stats(Manager *m) {
        Stats st;

        manager_get_stats(m, &st);
        printf("mode=%s full_scans=%" PRIu64 " last_full_scan_usec=%" PRIu64 " tracked_pages=%" PRIu64
               " metadata_bytes=%" PRIu64 " cpu_nsec_per_page=%" PRIu64 " batch_pages=%" PRIu64
               " batch_sleep_usec=%" PRIu64 " cow_breaks=%" PRIu64 "\n",
               manager_is_estimate(m) ? "estimate" : "merge", st.full_scans, st.last_full_scan_usec,
               st.tracked_pages, st.metadata_bytes, st.cpu_nsec_per_page, st.batch_pages,
               st.batch_sleep_usec, st.cow_breaks);
        printf("pages_scanned=%" PRIu64 " pages_read=%" PRIu64 " pages_unchanged=%" PRIu64
               " pages_skipped_merged=%" PRIu64
               " pages_shared=%" PRIu64 " pages_sharing=%" PRIu64 " pages_unshared=%" PRIu64
               " pages_zero=%" PRIu64 " pages_volatile=%" PRIu64 " pages_not_present=%" PRIu64
               " saving_bytes=%" PRIu64 "\n",
               st.last.pages_scanned, st.last.pages_read, st.last.pages_unchanged,
               st.last.pages_skipped_merged, st.last.pages_shared,
               st.last.pages_sharing, st.last.pages_unshared, st.last.pages_zero, st.last.pages_volatile,
               st.last.pages_not_present, stats_saving_bytes(&st));
        REGISTRY_FOREACH(r, m->registry) {
                static const RegionScan none = {};
                const RegionScan *rs = scanner_region(m->scanner, r->id) ?: &none;

                printf("region=%" PRIu32 " pid=%d pages=%" PRIu64 " saveable_pages=%" PRIu64
                       " sharing=%" PRIu64 " zero=%" PRIu64 " volatile=%" PRIu64 "%s%s%s%s\n",
                       r->id, (int) r->pid, region_scan_pages(rs), scan_counters_saving_pages(&rs->last),
                       rs->last.pages_sharing, rs->last.pages_zero, rs->last.pages_volatile,
                       rs->note[0] ? " note=" : "", rs->note, rs->merge_note[0] ? " merge_note=" : "",
                       rs->merge_note);
        }
        fflush(stdout);
}

