/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Manager as the owner of the daemon: its settings and their reload,
 * what it serves and what it registers at start, and the loop with its
 * signals and the service manager's notifications.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "strv.h"

static void log_config_errors(const ConfigErrors *e) {
        for (size_t i = 0; i < e->n; i++)
                log_error("%s", e->messages[i]);
}

int manager_check_config(const ManagerArgs *args) {
        _cleanup_(settings_done) Settings s = {};
        ConfigErrors errors = {};
        int r;

        r = config_load(args->config_dir, args->overrides, args->n_overrides, &s, &errors);
        log_config_errors(&errors);
        config_errors_clear(&errors);
        if (r < 0)
                return log_error_errno(r, "%s: the configuration has problems (listed above).",
                                       args->config_dir ?: "the command line");
        printf("%s: configuration OK\n", args->config_dir ?: "the command line");
        return 0;
}

int manager_apply_settings(Manager *m, const Settings *new) {
        _cleanup_(settings_done) Settings s = {};
        _cleanup_free_ char *reason = NULL;
        int r;

        r = settings_check(new, &reason);
        if (r < 0)
                return log_error_errno(-EINVAL, "Refusing settings out of range: %s.", reason);
        r = settings_copy(&s, new);
        if (r < 0)
                return log_oom();
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];

                if (!(t->flags & SETTING_AT_START) || setting_equal(t, &s, &m->settings))
                        continue;
                log_notice("%s= changed; it takes effect when ksmd restarts.", t->key);
                if (setting_copy(t, &s, &m->settings) < 0)
                        return log_oom();
        }

        if (m->bus && s.socket_group != m->settings.socket_group) {
                r = bus_server_set_socket_group(m->bus, s.socket_group);
                if (r < 0) {
                        log_warning_errno(r, "Failed to give the control socket to group %u "
                                          "(SocketGroup=); it keeps group %u: %m",
                                          (unsigned) s.socket_group, (unsigned) m->settings.socket_group);
                        s.socket_group = m->settings.socket_group;
                } else
                        log_info("The control socket now belongs to group %u (SocketGroup=).",
                                 (unsigned) s.socket_group);
        }
        if (m->bus)
                bus_server_set_limits(m->bus, &(BusLimits) {
                                              .max_connections = s.max_connections,
                                              .max_connections_per_user = s.max_connections_per_user });
        (void) region_registry_set_max_regions(m->registry, s.max_regions);
        index_set_max_tracked_pages(m->index, s.max_metadata_bytes / INDEX_MAX_BYTES_PER_PAGE);
        scanner_set_max_pages_per_owner(m->scanner, s.max_pages_per_owner);
        scanner_set_merge_policy(m->scanner, s.merge_policy);
        manager_set_scan_threads(m, &s);

        settings_done(&m->settings);
        m->settings = s;
        s = (Settings) {};
        /* Whoever the new groups leave out is out now, not at the next connection. */
        if (m->bus)
                (void) bus_server_drop_unadmitted(m->bus);
        manager_reset_rate(m);
        autoreg_rules_changed(m->autoreg);
        /* The COW guard looks again with the new CowReserve= at the next batch. */
        m->cow_checked_usec = 0;
        /* New settings end a rest: the next scan runs with them. */
        manager_wake(m);
        manager_bus_emit_settings(m);
        return 0;
}

int manager_reload(Manager *m, char **ret_message) {
        _cleanup_(settings_done) Settings s = {};
        ConfigErrors errors = {};
        int r;

        r = config_load(m->config_dir, m->overrides, m->n_overrides, &s, &errors);
        if (r < 0) {
                log_error_errno(r, "Reloading the configuration from %s failed; "
                                "the running configuration stays:",
                                m->config_dir ?: "the command line");
                log_config_errors(&errors);
                if (ret_message)
                        *ret_message = strdup(errors.n > 0 ? errors.messages[0] : strerror(-r));
                config_errors_clear(&errors);
                return -EINVAL;
        }
        r = manager_apply_settings(m, &s);
        if (r < 0) {
                if (ret_message)
                        *ret_message = strdup("the new settings could not be applied; see the log");
                return r;
        }
        log_info("Configuration reloaded from %s.", m->config_dir ?: "the command line");
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->notify)
                (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading the configuration...");
        (void) manager_reload(m, NULL);
        if (m->notify)
                (void) sd_notify(false, "READY=1");
        return 0;
}

static int manager_watch_signals(Manager *m) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block SIGTERM/SIGINT/SIGHUP: %m");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGTERM/SIGINT/SIGHUP: %m");
        return 0;
}

static int manager_register_args(Manager *m, const ManagerArgs *args) {
        for (size_t i = 0; i < args->n_registrations; i++) {
                const ManagerRegistration *g = &args->registrations[i];
                int r;

                r = manager_register(m, &(RegionRequest) { .pid = g->pid, .whole = g->whole,
                                                            .start = g->start, .length = g->length }, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

int manager_new(const ManagerArgs *args, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        ConfigErrors errors = {};
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_oom();
        m->notify = args->notify;
        m->exit_after_scans = args->exit_after_scans;
        if (args->config_dir) {
                m->config_dir = strdup(args->config_dir);
                if (!m->config_dir)
                        return log_oom();
        }
        if (strv_copy_n(args->overrides, args->n_overrides, &m->overrides) < 0)
                return log_oom();
        m->n_overrides = args->n_overrides;

        r = config_load(m->config_dir, m->overrides, m->n_overrides, &m->settings, &errors);
        if (r < 0) {
                log_config_errors(&errors);
                config_errors_clear(&errors);
                return log_error_errno(r, "Refusing to start with a bad configuration in %s; "
                                       "fix the problems above (ksmd --check-config lists them).",
                                       m->config_dir ?: "the command line");
        }

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        if (args->handle_signals) {
                r = manager_watch_signals(m);
                if (r < 0)
                        return r;
        }

        r = manager_setup_engine(m);
        if (r < 0)
                return r;

        r = autoreg_new(m, &m->autoreg);
        if (r < 0)
                return log_error_errno(r, "Failed to set up automatic registration: %m");
        if (autoreg_has_rules(&m->settings))
                log_info("Registering processes automatically: %zu cgroup and %zu executable patterns.",
                         m->settings.n_cgroup_patterns, m->settings.n_executable_patterns);

        if (!args->no_socket) {
                r = manager_bus_serve(m);
                if (r < 0)
                        return r;
        }

        r = manager_register_args(m, args);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        autoreg_free(m->autoreg);
        bus_server_free(m->bus);
        manager_free_engine(m);
        sd_event_unref(m->event);
        settings_done(&m->settings);
        strv_free_n(m->overrides, m->n_overrides);
        free(m->config_dir);
        free(m);
        return NULL;
}

int manager_run(Manager *m) {
        int r;

        /* Pings the service manager's watchdog while the loop runs (WatchdogSec=). */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");
        r = manager_start(m);
        if (r < 0)
                return r;
        if (m->notify)
                (void) sd_notifyf(false, "READY=1\nSTATUS=%s",
                                  manager_is_estimate(m) ? "Estimate mode: nothing is merged "
                                                           "(helper module not loaded or Mode=estimate)."
                                                         : "Merging through ksmd_helper.");
        r = sd_event_loop(m->event);
        if (m->notify)
                (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}
