/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd: the daemon's main. The configuration (ksmd.conf and drop-ins),
 * command-line options (which override it), the D-Bus control socket and
 * the signals all feed the same Manager calls.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "autoreg.h"
#include "build-config.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "manager.h"
#include "macro.h"
#include "parse-util.h"

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
               "     --idle-sleep-msec=MS       Rest after a full scan that found almost nothing new (default 10000;\n"
               "                                0: never rest)\n"
               "     --target-scan-sec=S        Adapt the rate so a full scan takes S seconds...\n"
               "     --cpu-cap=PCT              ...using at most PCT %% of one CPU (default 20)\n"
               "     --max-tracked-pages=N      Bound on tracked pages and so on index memory (default %" PRIu64 ")\n"
               "     --estimate                 Never merge; report what merging would save\n"
               "     --register=PID[:START:LENGTH]\n"
               "                                Register a range (hex or decimal bytes, page aligned), or\n"
               "                                all private anonymous memory of PID without START:LENGTH\n"
               "     --register-process=PID     Register all private anonymous memory of PID\n"
               "     --scans=N                  Exit after N full scans, printing statistics (no rests)\n"
               "     --config-dir=DIR           Read DIR/ksmd.conf and DIR/ksmd.conf.d/*.conf (default %s)\n"
               "     --check-config             Check the configuration, print every problem, and exit\n"
               "     --socket=PATH              Serve the D-Bus API on PATH (default: Socket= of ksmd.conf)\n"
               "     --no-socket                Do not serve the D-Bus API\n\n"
               "Options override the configuration file. See ksmd(8) and ksmd.conf(5).\n",
               MANAGER_DEFAULT_MAX_TRACKED_PAGES, KSMD_SYSCONFDIR);
}

static int parse_pid(const char *s, pid_t *ret) {
        uint64_t v;

        if (parse_uint64_auto(s, &v) < 0 || v == 0 || v > INT32_MAX)
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
        else if (!length_s || parse_uint64_auto(start_s, &reg.start) < 0 || parse_uint64_auto(length_s, &reg.length) < 0)
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

/* Bytes of index metadata per tracked page the daemon budgets for MaxMetadata= (index.h: <= 16). */
#define METADATA_BYTES_PER_PAGE 16

/* What the reload handler needs. */
typedef struct Daemon {
        Manager *manager;
        BusServer *bus;
        AutoRegister *autoreg;
        const char *config_dir;
        /* Options given on the command line win over the file, also on reload. */
        bool cli_rate, cli_target, cli_idle, cli_max_tracked;
} Daemon;

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void log_config_errors(const ConfigErrors *e) {
        for (size_t i = 0; i < e->n; i++)
                log_error("%s", e->messages[i]);
}

static void config_to_manager(const Config *c, ManagerConfig *m) {
        m->pages_per_batch = c->pages_to_scan;
        m->sleep_usec = c->sleep_usec;
        m->target_scan_usec = c->target_scan_usec;
        m->cpu_cap_percent = c->max_cpu_percent;
        m->idle_sleep_usec = c->idle_sleep_usec;
        m->idle_cpu_bp = c->idle_max_cpu_bp;
        m->max_tracked_pages = MAX(c->max_metadata_bytes / METADATA_BYTES_PER_PAGE, (uint64_t) 1);
        m->max_regions = c->max_regions;
        m->estimate = c->mode == CONFIG_MODE_ESTIMATE;
}

static BusConfig config_to_bus(const Config *c) {
        return (BusConfig) {
                .max_connections = c->max_connections,
                .max_regions_per_client = c->max_regions_per_client,
                .allow_gids = c->allow_gids,
                .n_allow_gids = c->n_allow_gids,
        };
}

/* Applies what can change at run time; registrations and the index stay. */
static int daemon_reload(Daemon *d, char *message, size_t size) {
        _cleanup_(config_freep) Config *c = NULL;
        ConfigErrors errors = {};
        BusConfig bc;
        int r;

        r = config_load(d->config_dir, &c, &errors);
        if (r < 0) {
                log_error_errno(r, "Reloading the configuration from %s failed; the running configuration stays:",
                                d->config_dir);
                log_config_errors(&errors);
                snprintf(message, size, "%s", errors.n > 0 ? errors.messages[0] : strerror(-r));
                config_errors_clear(&errors);
                return r;
        }
        if (!d->cli_rate && !d->cli_target) {
                r = c->target_scan_usec > 0 ? manager_set_target(d->manager, c->target_scan_usec, c->max_cpu_percent)
                                            : manager_set_rate(d->manager, c->pages_to_scan, c->sleep_usec);
                if (r < 0) {
                        snprintf(message, size, "the scan rate in %s is out of range", d->config_dir);
                        return log_error_errno(r, "Reload: %s.", message);
                }
        }
        r = manager_set_idle(d->manager, d->cli_idle ? manager_get_idle_sleep(d->manager) : c->idle_sleep_usec,
                             c->idle_max_cpu_bp);
        if (r < 0) {
                snprintf(message, size, "IdleSleep= or IdleMaxCPU= in %s is out of range", d->config_dir);
                return log_error_errno(r, "Reload: %s.", message);
        }
        r = manager_set_max_regions(d->manager, c->max_regions);
        if (r < 0) {
                snprintf(message, size, "MaxRegions=%u is out of range", c->max_regions);
                return log_error_errno(r, "Reload: %s.", message);
        }
        if (d->bus) {
                bc = config_to_bus(c);
                r = bus_server_set_config(d->bus, &bc);
                if (r < 0) {
                        snprintf(message, size, "out of memory");
                        return log_oom();
                }
        }
        r = autoreg_set_patterns(d->autoreg, c->cgroup_patterns, c->n_cgroup_patterns, c->executable_patterns,
                                 c->n_executable_patterns);
        if (r < 0) {
                snprintf(message, size, "out of memory");
                return log_oom();
        }
        if (c->mode == CONFIG_MODE_ESTIMATE && !manager_is_estimate(d->manager))
                log_notice("Mode=estimate takes effect when ksmd restarts; it keeps merging until then.");
        log_info("Configuration reloaded from %s.", d->config_dir);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        char message[256];

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading the configuration...");
        (void) daemon_reload(userdata, message, sizeof(message));
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int on_bus_reload(void *userdata, sd_bus_error *error) {
        char message[256] = "";
        int r;

        r = daemon_reload(userdata, message, sizeof(message));
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_CONFIG, "%s", message);
        return 0;
}

static void on_scan_done(Manager *m, void *userdata) {
        Daemon *d = userdata;

        bus_server_emit_changed(d->bus);
}

static int run(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_PAGES,
                ARG_SLEEP,
                ARG_IDLE_SLEEP,
                ARG_MAX_TRACKED,
                ARG_ESTIMATE,
                ARG_REGISTER,
                ARG_REGISTER_PROCESS,
                ARG_SCANS,
                ARG_TARGET,
                ARG_CPU_CAP,
                ARG_CONFIG_DIR,
                ARG_CHECK_CONFIG,
                ARG_SOCKET,
                ARG_NO_SOCKET,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "pages-per-batch", required_argument, NULL, ARG_PAGES },
                { "sleep-msec", required_argument, NULL, ARG_SLEEP },
                { "idle-sleep-msec", required_argument, NULL, ARG_IDLE_SLEEP },
                { "max-tracked-pages", required_argument, NULL, ARG_MAX_TRACKED },
                { "estimate", no_argument, NULL, ARG_ESTIMATE },
                { "register", required_argument, NULL, ARG_REGISTER },
                { "register-process", required_argument, NULL, ARG_REGISTER_PROCESS },
                { "scans", required_argument, NULL, ARG_SCANS },
                { "target-scan-sec", required_argument, NULL, ARG_TARGET },
                { "cpu-cap", required_argument, NULL, ARG_CPU_CAP },
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "no-socket", no_argument, NULL, ARG_NO_SOCKET },
                {}
        };
        _cleanup_free_ Registration *regs = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_(bus_server_freep) BusServer *bus = NULL;
        _cleanup_(autoreg_freep) AutoRegister *autoreg = NULL;
        _cleanup_(config_freep) Config *file = NULL;
        ManagerConfig config = MANAGER_CONFIG_DEFAULT, cli = {};
        ConfigErrors errors = {};
        Daemon daemon = { .config_dir = KSMD_SYSCONFDIR };
        const char *socket_path = NULL;
        bool check_config = false, no_socket = false, cli_estimate = false, cli_pages = false, cli_sleep = false;
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
                        if (parse_uint64_auto(optarg, &v) < 0 || v == 0 || v > MANAGER_MAX_PAGES_PER_BATCH)
                                return log_error_errno(-EINVAL, "--pages-per-batch=%s: expected 1..%" PRIu64 " pages.",
                                                       optarg, MANAGER_MAX_PAGES_PER_BATCH);
                        cli.pages_per_batch = v;
                        daemon.cli_rate = cli_pages = true;
                        break;
                case ARG_SLEEP:
                        if (parse_uint64_auto(optarg, &v) < 0 || v > MANAGER_MAX_SLEEP_USEC / 1000)
                                return log_error_errno(-EINVAL, "--sleep-msec=%s: expected 0..%" PRIu64 " milliseconds.",
                                                       optarg, MANAGER_MAX_SLEEP_USEC / 1000);
                        cli.sleep_usec = v * 1000;
                        daemon.cli_rate = cli_sleep = true;
                        break;
                case ARG_IDLE_SLEEP:
                        if (parse_uint64_auto(optarg, &v) < 0 || v > MANAGER_MAX_SLEEP_USEC / 1000)
                                return log_error_errno(-EINVAL, "--idle-sleep-msec=%s: expected 0..%" PRIu64 " milliseconds.",
                                                       optarg, MANAGER_MAX_SLEEP_USEC / 1000);
                        cli.idle_sleep_usec = v * 1000;
                        daemon.cli_idle = true;
                        break;
                case ARG_TARGET:
                        if (parse_uint64_auto(optarg, &v) < 0 || v == 0 || v > MANAGER_MAX_TARGET_USEC / 1000000)
                                return log_error_errno(-EINVAL, "--target-scan-sec=%s: expected 1..%" PRIu64 " seconds.",
                                                       optarg, MANAGER_MAX_TARGET_USEC / 1000000);
                        cli.target_scan_usec = v * 1000000;
                        daemon.cli_target = true;
                        break;
                case ARG_CPU_CAP:
                        if (parse_uint64_auto(optarg, &v) < 0 || v == 0 || v > 100)
                                return log_error_errno(-EINVAL, "--cpu-cap=%s: expected 1..100 percent of one CPU.", optarg);
                        cli.cpu_cap_percent = (unsigned) v;
                        break;
                case ARG_MAX_TRACKED:
                        if (parse_uint64_auto(optarg, &v) < 0 || v == 0 || v > UINT32_MAX)
                                return log_error_errno(-EINVAL, "--max-tracked-pages=%s: expected 1..%u pages.", optarg,
                                                       UINT32_MAX);
                        cli.max_tracked_pages = v;
                        daemon.cli_max_tracked = true;
                        break;
                case ARG_ESTIMATE:
                        cli_estimate = true;
                        break;
                case ARG_CONFIG_DIR:
                        daemon.config_dir = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        check_config = true;
                        break;
                case ARG_SOCKET:
                        socket_path = optarg;
                        break;
                case ARG_NO_SOCKET:
                        no_socket = true;
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
                        if (parse_uint64_auto(optarg, &scans) < 0 || scans == 0)
                                return log_error_errno(-EINVAL, "--scans=%s: expected a positive number of full scans.", optarg);
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(-EINVAL, "Unhandled option %d.", c);
                }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s': ksmd takes options only, see --help.", argv[optind]);

        r = config_load(daemon.config_dir, &file, &errors);
        if (r < 0) {
                log_config_errors(&errors);
                config_errors_clear(&errors);
                if (check_config)
                        return log_error_errno(r, "%s: the configuration has problems (listed above).", daemon.config_dir);
                return log_error_errno(r, "Refusing to start with a bad configuration in %s; fix the problems above "
                                       "(ksmd --check-config lists them).", daemon.config_dir);
        }
        if (check_config) {
                printf("%s: configuration OK\n", daemon.config_dir);
                return 0;
        }

        config_to_manager(file, &config);
        if (daemon.cli_rate) {
                if (cli_pages)
                        config.pages_per_batch = cli.pages_per_batch;
                if (cli_sleep)
                        config.sleep_usec = cli.sleep_usec;
                if (!daemon.cli_target)
                        config.target_scan_usec = 0;
        }
        if (daemon.cli_target)
                config.target_scan_usec = cli.target_scan_usec;
        if (daemon.cli_idle)
                config.idle_sleep_usec = cli.idle_sleep_usec;
        if (cli.cpu_cap_percent)
                config.cpu_cap_percent = cli.cpu_cap_percent;
        if (daemon.cli_max_tracked)
                config.max_tracked_pages = cli.max_tracked_pages;
        if (cli_estimate)
                config.estimate = true;

        config.notify = true;
        r = manager_new(&config, &m);
        if (r < 0)
                return r;
        daemon.manager = m;

        r = autoreg_new(m, file->cgroup_patterns, file->n_cgroup_patterns, file->executable_patterns,
                        file->n_executable_patterns, &autoreg);
        if (r < 0)
                return log_error_errno(r, "Failed to set up automatic registration: %m");
        daemon.autoreg = autoreg;
        if (file->n_cgroup_patterns + file->n_executable_patterns > 0)
                log_info("Registering processes automatically: %zu cgroup and %zu executable patterns.",
                         file->n_cgroup_patterns, file->n_executable_patterns);

        if (!no_socket) {
                BusConfig bc = config_to_bus(file);
                int listen_fd = -EBADF, n;

                /* Socket activation (ksmd.socket) hands us the listening socket. */
                n = sd_listen_fds(true);
                if (n < 0)
                        return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
                if (n > 1)
                        return log_error_errno(-EINVAL, "systemd passed %d sockets; ksmd.socket must list exactly one.", n);
                if (n == 1)
                        listen_fd = SD_LISTEN_FDS_START;
                if (!socket_path)
                        socket_path = file->socket_path;
                r = bus_server_new(m, socket_path, listen_fd, &bc, on_bus_reload, &daemon, &bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the D-Bus API on %s: %m", socket_path);
                daemon.bus = bus;
                if (file->system_bus) {
                        r = bus_server_attach_system_bus(bus);
                        if (r < 0)
                                log_warning_errno(r, "SystemBus=yes, but ksmd cannot take %s on the system bus (%m); "
                                                  "serving only %s.", BUS_WELL_KNOWN_NAME, socket_path);
                }
                manager_set_scan_done_callback(m, on_scan_done, &daemon);
                log_info("D-Bus API %s served on %s.", BUS_INTERFACE, listen_fd >= 0 ? "the socket from systemd" : socket_path);
        }

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
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block SIGTERM/SIGINT/SIGHUP: %m");
        r = sd_event_add_signal(manager_get_event(m), NULL, SIGTERM, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(manager_get_event(m), NULL, SIGINT, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(manager_get_event(m), NULL, SIGHUP, on_sighup, &daemon);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM/SIGINT/SIGHUP: %m");

        /* Pings the service manager's watchdog while the loop runs (WatchdogSec=). */
        r = sd_event_set_watchdog(manager_get_event(m), true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

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
