/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd: the daemon's main. Options for now; the config file and the D-Bus
 * control plane feed the same Manager calls later.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "build-config.h"
#include "log.h"
#include "manager.h"
#include "page-hash.h"

#define MAX_REGISTRATIONS 1024

typedef struct Registration {
        pid_t pid;
        uint64_t start, length;
        bool whole;
} Registration;

static void help(void) {
        printf("ksmd [OPTIONS...]\n\n"
               "Userspace memory deduplicator: finds identical pages in registered memory and\n"
               "merges them through the ksmd_helper kernel module (or estimates the saving).\n\n"
               "  -h --help                     Show this help\n"
               "     --version                  Show the version\n"
               "     --pages-per-batch=N        Pages examined per batch (default 4096; KSM's pages_to_scan)\n"
               "     --sleep-msec=MS            Sleep between batches (default 20; KSM's sleep_millisecs)\n"
               "     --target-scan-sec=S        Adapt the rate so a full scan takes S seconds...\n"
               "     --cpu-cap=PCT              ...using at most PCT %% of one CPU (default 20)\n"
               "     --max-tracked-pages=N      Bound on tracked pages and so on index memory (default %" PRIu64 ")\n"
               "     --estimate                 Never merge; report what merging would save\n"
               "     --register=PID[:START:LENGTH]\n"
               "                                Register a range (hex or decimal bytes, page aligned), or\n"
               "                                all private anonymous memory of PID without START:LENGTH\n"
               "     --register-process=PID     Register all private anonymous memory of PID\n"
               "     --scans=N                  Exit after N full scans, printing statistics\n",
               MANAGER_DEFAULT_MAX_TRACKED_PAGES);
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_pid(const char *s, pid_t *ret) {
        uint64_t v;

        if (parse_u64(s, &v) < 0 || v == 0 || v > INT32_MAX)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* PID or PID:START:LENGTH. */
static int parse_registration(const char *arg, Registration *ret) {
        _cleanup_free_ char *copy = strdup(arg);
        char *pid_s, *start_s, *length_s, *save = NULL;
        Registration reg = {};

        if (!copy)
                return -ENOMEM;
        pid_s = strtok_r(copy, ":", &save);
        start_s = strtok_r(NULL, ":", &save);
        length_s = strtok_r(NULL, ":", &save);
        if (parse_pid(pid_s, &reg.pid) < 0 || strtok_r(NULL, ":", &save))
                return -EINVAL;
        if (!start_s)
                reg.whole = true;
        else if (!length_s || parse_u64(start_s, &reg.start) < 0 || parse_u64(length_s, &reg.length) < 0)
                return -EINVAL;
        *ret = reg;
        return 0;
}

static void print_stats(Manager *m) {
        RegionRegistry *reg = manager_get_registry(m);
        Stats st;

        manager_get_stats(m, &st);
        printf("mode=%s full_scans=%" PRIu64 " last_full_scan_usec=%" PRIu64 " tracked_pages=%" PRIu64
               " metadata_bytes=%" PRIu64 " cpu_nsec_per_page=%" PRIu64 " pages_per_batch=%" PRIu64
               " sleep_usec=%" PRIu64 "\n",
               manager_is_estimate(m) ? "estimate" : "merge", st.full_scans, st.last_full_scan_usec,
               st.tracked_pages, st.metadata_bytes, st.cpu_nsec_per_page, st.pages_per_batch, st.sleep_usec);
        printf("pages_scanned=%" PRIu64 " pages_read=%" PRIu64 " pages_unchanged=%" PRIu64 " pages_shared=%" PRIu64
               " pages_sharing=%" PRIu64 " pages_unshared=%" PRIu64 " pages_zero=%" PRIu64 " pages_volatile=%" PRIu64
               " pages_not_present=%" PRIu64 " saving_bytes=%" PRIu64 "\n",
               st.last.pages_scanned, st.last.pages_read, st.last.pages_unchanged, st.last.pages_shared,
               st.last.pages_sharing, st.last.pages_unshared, st.last.pages_zero, st.last.pages_volatile,
               st.last.pages_not_present, stats_saving_bytes(&st));
        for (size_t i = 0; i < reg->n_regions; i++) {
                const Region *r = reg->regions[i];

                printf("region=%" PRIu32 " pid=%d pages=%" PRIu64 " saveable_pages=%" PRIu64 " sharing=%" PRIu64
                       " zero=%" PRIu64 " volatile=%" PRIu64 "%s%s%s%s\n",
                       r->id, (int) r->pid, region_pages(r), scan_counters_saving_pages(&r->last),
                       r->last.pages_sharing, r->last.pages_zero, r->last.pages_volatile,
                       r->note[0] ? " note=" : "", r->note, r->merge_note[0] ? " merge_note=" : "", r->merge_note);
        }
        fflush(stdout);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int run(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_PAGES,
                ARG_SLEEP,
                ARG_MAX_TRACKED,
                ARG_ESTIMATE,
                ARG_REGISTER,
                ARG_REGISTER_PROCESS,
                ARG_SCANS,
                ARG_TARGET,
                ARG_CPU_CAP,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "pages-per-batch", required_argument, NULL, ARG_PAGES },
                { "sleep-msec", required_argument, NULL, ARG_SLEEP },
                { "max-tracked-pages", required_argument, NULL, ARG_MAX_TRACKED },
                { "estimate", no_argument, NULL, ARG_ESTIMATE },
                { "register", required_argument, NULL, ARG_REGISTER },
                { "register-process", required_argument, NULL, ARG_REGISTER_PROCESS },
                { "scans", required_argument, NULL, ARG_SCANS },
                { "target-scan-sec", required_argument, NULL, ARG_TARGET },
                { "cpu-cap", required_argument, NULL, ARG_CPU_CAP },
                {}
        };
        _cleanup_free_ Registration *regs = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        ManagerConfig config = MANAGER_CONFIG_DEFAULT;
        size_t n_regs = 0;
        uint64_t scans = 0, v;
        int c, r;

        regs = calloc(MAX_REGISTRATIONS, sizeof(Registration));
        if (!regs)
                return log_oom();

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("ksmd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_PAGES:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > MANAGER_MAX_PAGES_PER_BATCH)
                                return log_error_errno(-EINVAL, "--pages-per-batch=%s: expected 1..%" PRIu64 " pages.",
                                                       optarg, MANAGER_MAX_PAGES_PER_BATCH);
                        config.pages_per_batch = v;
                        break;
                case ARG_SLEEP:
                        if (parse_u64(optarg, &v) < 0 || v > MANAGER_MAX_SLEEP_USEC / 1000)
                                return log_error_errno(-EINVAL, "--sleep-msec=%s: expected 0..%" PRIu64 " milliseconds.",
                                                       optarg, MANAGER_MAX_SLEEP_USEC / 1000);
                        config.sleep_usec = v * 1000;
                        break;
                case ARG_TARGET:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > MANAGER_MAX_TARGET_USEC / 1000000)
                                return log_error_errno(-EINVAL, "--target-scan-sec=%s: expected 1..%" PRIu64 " seconds.",
                                                       optarg, MANAGER_MAX_TARGET_USEC / 1000000);
                        config.target_scan_usec = v * 1000000;
                        break;
                case ARG_CPU_CAP:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > 100)
                                return log_error_errno(-EINVAL, "--cpu-cap=%s: expected 1..100 percent of one CPU.", optarg);
                        config.cpu_cap_percent = (unsigned) v;
                        break;
                case ARG_MAX_TRACKED:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > UINT32_MAX)
                                return log_error_errno(-EINVAL, "--max-tracked-pages=%s: expected 1..%u pages.", optarg,
                                                       UINT32_MAX);
                        config.max_tracked_pages = v;
                        break;
                case ARG_ESTIMATE:
                        config.estimate = true;
                        break;
                case ARG_REGISTER:
                case ARG_REGISTER_PROCESS:
                        if (n_regs >= MAX_REGISTRATIONS)
                                return log_error_errno(-E2BIG, "Too many --register options (at most %d); use the control socket for more.",
                                                       MAX_REGISTRATIONS);
                        r = c == ARG_REGISTER ? parse_registration(optarg, &regs[n_regs])
                                              : parse_pid(optarg, &regs[n_regs].pid);
                        if (r < 0)
                                return log_error_errno(r, "--%s=%s: expected %s.",
                                                       c == ARG_REGISTER ? "register" : "register-process", optarg,
                                                       c == ARG_REGISTER ? "PID or PID:START:LENGTH" : "a PID");
                        if (c == ARG_REGISTER_PROCESS)
                                regs[n_regs].whole = true;
                        n_regs++;
                        break;
                case ARG_SCANS:
                        if (parse_u64(optarg, &scans) < 0 || scans == 0)
                                return log_error_errno(-EINVAL, "--scans=%s: expected a positive number of full scans.", optarg);
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(-EINVAL, "Unhandled option %d.", c);
                }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s': ksmd takes options only, see --help.", argv[optind]);

        config.notify = true;
        r = manager_new(&config, &m);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n_regs; i++) {
                if (regs[i].whole)
                        r = manager_register_process(m, regs[i].pid, NULL);
                else
                        r = manager_register_range(m, regs[i].pid, regs[i].start, regs[i].length, NULL);
                if (r < 0)
                        return r;
        }
        if (scans > 0)
                manager_set_exit_after_scans(m, scans);

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block SIGTERM/SIGINT: %m");
        r = sd_event_add_signal(manager_get_event(m), NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(manager_get_event(m), NULL, SIGINT, on_signal, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM/SIGINT: %m");

        r = manager_start(m);
        if (r < 0)
                return r;

        (void) sd_notifyf(false, "READY=1\nSTATUS=%s",
                          manager_is_estimate(m) ? "Estimate mode: nothing is merged (helper module not loaded or --estimate)."
                                                 : "Merging through ksmd_helper.");

        r = sd_event_loop(manager_get_event(m));
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        if (scans > 0)
                print_stats(m);
        return r;
}

int main(int argc, char *argv[]) {
        int r;

        log_setup();
        r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
