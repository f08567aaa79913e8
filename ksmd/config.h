/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * /etc/ksmd/ksmd.conf and its drop-ins /etc/ksmd/ksmd.conf.d/ *.conf: INI
 * files parsed with libinih. Files are read in order (the main file, then
 * the drop-ins sorted by name); a later assignment overrides an earlier one,
 * list keys append, and an empty assignment empties a list. Every key, its
 * unit and its default are documented in man/ksmd.conf.5.scd; this file and
 * that page must name the same keys (a test checks).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "macro.h"

typedef enum ConfigMode {
        CONFIG_MODE_AUTO,       /* merge when the helper module is loaded, else estimate */
        CONFIG_MODE_ESTIMATE,   /* never merge, only report what merging would save */
        _CONFIG_MODE_MAX,
        _CONFIG_MODE_INVALID = -EINVAL,
} ConfigMode;

typedef struct Config {
        /* [Scan] */
        ConfigMode mode;
        uint64_t pages_to_scan;         /* pages per batch */
        uint64_t sleep_usec;            /* pause between batches */
        uint64_t target_scan_usec;      /* 0: fixed rate; else adapt to one full scan per this long */
        unsigned max_cpu_percent;       /* CPU cap of the adaptive rate, % of one core */
        uint64_t idle_sleep_usec;       /* rest after a full scan that found almost nothing new; 0: none */
        unsigned idle_max_cpu_bp;       /* rests lengthen so that idle scanning stays under this, 1/100 % */

        /* [Limits] */
        uint64_t max_metadata_bytes;    /* daemon memory for the index */
        unsigned max_regions;
        unsigned max_regions_per_client;
        unsigned max_connections;

        /* [Control] */
        char *socket_path;
        bool system_bus;
        gid_t *allow_gids;              /* members may call the API besides root */
        size_t n_allow_gids;

        /* [AutoRegister]: a process matching any pattern is registered whole. */
        char **cgroup_patterns;         /* fnmatch() patterns on the cgroup v2 path */
        size_t n_cgroup_patterns;
        char **executable_patterns;     /* fnmatch() patterns on the executable's file name */
        size_t n_executable_patterns;
} Config;

/* Errors found while loading, each "FILE:LINE: reason", in file order. */
typedef struct ConfigErrors {
        char **messages;
        size_t n;
} ConfigErrors;

#define CONFIG_MAIN_FILE "ksmd.conf"
#define CONFIG_MAX_REGIONS 65536u       /* the registry's hard limit (region.h) */
#define CONFIG_DROPIN_DIR "ksmd.conf.d"

/* The defaults; allocates socket_path. */
int config_new(Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

void config_errors_clear(ConfigErrors *e);

/*
 * Loads DIR/ksmd.conf (a missing file means the defaults) and then
 * DIR/ksmd.conf.d/ *.conf in name order. Returns 0 and a new Config, or
 * -EINVAL with every problem in *errors (nothing is returned then: a bad file
 * never yields a half-applied configuration), or another -errno when a file
 * cannot be read (also described in *errors).
 */
int config_load(const char *dir, Config **ret, ConfigErrors *errors);

/* Parses one file into c; problems are appended to errors. Returns the number of problems, or -errno. */
int config_parse_file(Config *c, const char *path, ConfigErrors *errors);
/* The same for an open stream; name is used in the messages. */
int config_parse_stream(Config *c, FILE *f, const char *name, ConfigErrors *errors);

const char *config_mode_to_string(ConfigMode m);
ConfigMode config_mode_from_string(const char *s);

/* The keys the parser knows; parse() sets the key's field or returns -errno with *reason set. */
typedef struct ConfigKey {
        const char *section;
        const char *name;
        int (*parse)(Config *c, const char *value, char **reason);
} ConfigKey;

extern const ConfigKey config_keys[];
extern const size_t config_n_keys;
