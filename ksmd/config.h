/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * /etc/ksmd/ksmd.conf and its drop-ins /etc/ksmd/ksmd.conf.d/ *.conf: INI
 * files parsed with libinih into Settings, every key through
 * settings_table[] (settings.h). Files are read in order (the main file,
 * then the drop-ins sorted by name), and then the command line's
 * assignments; a later assignment overrides an earlier one, list keys
 * append, and an empty assignment empties a list.
 */

#include <stdio.h>

#include "settings.h"

/*
 * Errors found while loading, each "FILE:LINE: reason", in file order. They go
 * to the log and out over D-Bus (Reload): escaped text (escape.h), with the
 * file names, keys and values they quote escaped, the values cut to a
 * readable length.
 */
typedef struct ConfigErrors {
        char **messages;
        size_t n;
} ConfigErrors;

#define CONFIG_MAIN_FILE "ksmd.conf"
#define CONFIG_DROPIN_DIR "ksmd.conf.d"

void config_errors_clear(ConfigErrors *e);

/*
 * Loads the defaults, then DIR/ksmd.conf (a missing file changes nothing)
 * and DIR/ksmd.conf.d/ *.conf in name order, then the "Key=Value"
 * overrides (the command line). dir NULL reads no file. Returns 0 and the
 * settings in *ret (to be released with settings_done()), or -EINVAL with
 * every problem in *errors (*ret untouched: a bad file never yields a
 * half-applied configuration), or another -errno when a file cannot be read
 * (also described in *errors).
 */
int config_load(const char *dir, char *const *overrides, size_t n_overrides, Settings *ret,
                ConfigErrors *errors);

/* Parses one file into settings; problems are appended to errors.
 * Returns the number of problems, or -errno. */
int config_parse_file(Settings *settings, const char *path, ConfigErrors *errors);
/* The same for an open stream; name is used in the messages. */
int config_parse_stream(Settings *settings, FILE *f, const char *name, ConfigErrors *errors);
/*
 * One "Key=Value" assignment outside a file (origin names where it came
 * from in the message). Returns 0, 1 if it was refused (the reason is in
 * errors), or -ENOMEM.
 */
int config_parse_assignment(Settings *settings, const char *assignment, const char *origin,
                            ConfigErrors *errors);
