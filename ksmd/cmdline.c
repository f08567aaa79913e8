/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "cmdline.h"
#include "log.h"
#include "parse-util.h"
#include "strv.h"

#define CMDLINE_MAX_REGISTRATIONS 1024
#define ARG_SETTING 0x200                /* + the setting's index in settings_table */

enum {
        ARG_VERSION = 0x100,
        ARG_CONFIG_DIR,
        ARG_CHECK_CONFIG,
        ARG_NO_SOCKET,
        ARG_REGISTER,
        ARG_REGISTER_PROCESS,
        ARG_SCANS,
};

static const struct option fixed_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
        { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
        { "no-socket", no_argument, NULL, ARG_NO_SOCKET },
        { "register", required_argument, NULL, ARG_REGISTER },
        { "register-process", required_argument, NULL, ARG_REGISTER_PROCESS },
        { "scans", required_argument, NULL, ARG_SCANS },
};

static void help(void) {
        printf("ksmd [OPTIONS...]\n\n"
               "Userspace memory deduplicator: finds identical pages in registered memory and\n"
               "merges them through the ksmd_helper kernel module (or estimates the saving).\n\n"
               "  -h --help                     Show this help\n"
               "     --version                  Show the version\n"
               "     --config-dir=DIR           Read DIR/ksmd.conf and DIR/ksmd.conf.d/*.conf (default %s)\n"
               "     --check-config             Check the configuration, print every problem, and exit\n"
               "     --no-socket                Do not serve the D-Bus API\n"
               "     --register=PID[:START:LENGTH]\n"
               "                                Register a range (hex or decimal bytes, page aligned), or\n"
               "                                all private anonymous memory of PID without START:LENGTH\n"
               "     --register-process=PID     Register all private anonymous memory of PID\n"
               "     --scans=N                  Exit after N full scans, printing statistics (no rests)\n\n"
               "Settings (ksmd.conf(5) keys, written as there; they override the files):\n",
               KSMD_SYSCONFDIR);
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *s = &settings_table[i];
                char opt[64], arg[96];

                snprintf(arg, sizeof(arg), "--%s=%s", setting_option_name(s, opt, sizeof(opt)),
                         setting_value_name(s));
                printf("     %-26s %s (%s=)\n", arg, s->help, s->key);
        }
        printf("\nSee ksmd(8) and ksmd.conf(5).\n");
}

static int parse_pid(const char *s, pid_t *ret) {
        uint64_t v;

        if (parse_uint64_auto(s, &v) < 0 || v == 0 || v > INT32_MAX)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* PID or PID:START:LENGTH. */
static int parse_registration(const char *arg, ManagerRegistration *ret) {
        _cleanup_free_ char *copy = strdup(arg);
        char *pid_s, *start_s, *length_s, *save = NULL;
        ManagerRegistration reg = {};

        if (!copy)
                return -ENOMEM;
        pid_s = strtok_r(copy, ":", &save);
        start_s = strtok_r(NULL, ":", &save);
        length_s = strtok_r(NULL, ":", &save);
        if (!pid_s || parse_pid(pid_s, &reg.pid) < 0 || strtok_r(NULL, ":", &save))
                return -EINVAL;
        if (!start_s)
                reg.whole = true;
        else if (!length_s || parse_uint64_auto(start_s, &reg.start) < 0 ||
                 parse_uint64_auto(length_s, &reg.length) < 0)
                return -EINVAL;
        *ret = reg;
        return 0;
}

/* Checks the value as the file parser would, then keeps it as "Key=Value" for every (re)load. */
static int add_override(CommandLine *c, const Setting *s, const char *value) {
        _cleanup_(settings_done) Settings scratch = {};
        _cleanup_free_ char *reason = NULL, *assignment = NULL;
        char opt[64], **l;
        int r;

        r = settings_init(&scratch);
        if (r < 0)
                return log_oom();
        r = setting_parse(s, &scratch, value, &reason);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "--%s=%s: %s.", setting_option_name(s, opt, sizeof(opt)), value,
                                       reason ?: "invalid value");
        if (asprintf(&assignment, "%s=%s", s->key, value) < 0)
                return log_oom();
        l = reallocarray(c->overrides, c->n_overrides + 1, sizeof(char *));
        if (!l)
                return log_oom();
        c->overrides = l;
        c->overrides[c->n_overrides++] = TAKE_PTR(assignment);
        return 0;
}

static int add_registration(CommandLine *c, int opt, const char *value) {
        ManagerRegistration reg = { .whole = true };
        int r;

        if (c->n_registrations >= CMDLINE_MAX_REGISTRATIONS)
                return log_error_errno(-E2BIG, "Too many --register options (at most %d); "
                                       "use the control socket for more.",
                                       CMDLINE_MAX_REGISTRATIONS);
        r = opt == ARG_REGISTER ? parse_registration(value, &reg) : parse_pid(value, &reg.pid);
        if (r < 0)
                return log_error_errno(r, "--%s=%s: expected %s.",
                                       opt == ARG_REGISTER ? "register" : "register-process", value,
                                       opt == ARG_REGISTER ? "PID or PID:START:LENGTH" : "a PID");
        if (!c->registrations) {
                c->registrations = calloc(CMDLINE_MAX_REGISTRATIONS, sizeof(ManagerRegistration));
                if (!c->registrations)
                        return log_oom();
        }
        c->registrations[c->n_registrations++] = reg;
        return 0;
}

/* The fixed options, then one per setting; the names live as long as the program. */
static struct option *build_options(void) {
        static char (*names)[64];
        size_t n = ELEMENTSOF(fixed_options);
        struct option *o;

        o = calloc(n + settings_table_size + 1, sizeof(struct option));
        names = names ?: calloc(settings_table_size, sizeof(*names));
        if (!o || !names) {
                free(o);
                return NULL;
        }
        memcpy(o, fixed_options, sizeof(fixed_options));
        for (size_t i = 0; i < settings_table_size; i++)
                o[n + i] = (struct option) {
                        .name = setting_option_name(&settings_table[i], names[i], sizeof(names[i])),
                        .has_arg = required_argument,
                        .val = ARG_SETTING + (int) i,
                };
        return o;
}

int cmdline_parse(int argc, char *argv[], CommandLine *ret) {
        _cleanup_free_ struct option *options = build_options();
        uint64_t scans;
        int c, r;

        *ret = (CommandLine) { .args = { .config_dir = KSMD_SYSCONFDIR, .notify = true,
                                         .handle_signals = true } };
        if (!options)
                return log_oom();
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                r = 0;
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("ksmd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_CONFIG_DIR:
                        ret->args.config_dir = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        ret->check_config = true;
                        break;
                case ARG_NO_SOCKET:
                        ret->args.no_socket = true;
                        break;
                case ARG_REGISTER:
                case ARG_REGISTER_PROCESS:
                        r = add_registration(ret, c, optarg);
                        break;
                case ARG_SCANS:
                        if (parse_uint64_auto(optarg, &scans) < 0 || scans == 0)
                                return log_error_errno(-EINVAL, "--scans=%s: expected a positive number "
                                                       "of full scans.",
                                                       optarg);
                        ret->args.exit_after_scans = scans;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        if (c < ARG_SETTING || (size_t) (c - ARG_SETTING) >= settings_table_size)
                                return log_error_errno(-EINVAL, "Unhandled option %d.", c);
                        r = add_override(ret, &settings_table[c - ARG_SETTING], optarg);
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc)
                return log_error_errno(-EINVAL,
                                       "Unexpected argument '%s': ksmd takes options only, see --help.",
                                       argv[optind]);
        ret->args.overrides = ret->overrides;
        ret->args.n_overrides = ret->n_overrides;
        ret->args.registrations = ret->registrations;
        ret->args.n_registrations = ret->n_registrations;
        return 1;
}

void cmdline_done(CommandLine *c) {
        strv_free_n(c->overrides, c->n_overrides);
        free(c->registrations);
        *c = (CommandLine) {};
}
