/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: settings
 *
 * Every setting of the daemon is defined once, in settings_table[]
 * (settings.c): its ksmd.conf section and key, its kind (which says how it
 * is written and its unit), its range, its default, whether a reload
 * applies it and whether it can be changed over D-Bus. One name runs
 * through: the key PagesToScan= is the field pages_to_scan, the command-line
 * option --pages-to-scan= and the D-Bus property PagesToScan; a time span
 * adds its unit, as systemd does (Sleep= is sleep_usec, --sleep=, SleepUSec).
 * The file parser, the command line, the D-Bus properties, --check-config,
 * reload and the man-page test all read the table; no range or default is
 * written anywhere else.
 *
 * Values come from the defaults, then the files, then the command line, a
 * later one winning. A reload reads the files again and applies the command
 * line on top; a change over D-Bus lasts until the next reload. Settings
 * marked SETTING_AT_START (Mode=, Socket=, SystemBus=) keep the value the
 * daemon started with until it restarts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "merge-policy.h"

typedef enum ScanMode {
        SCAN_MODE_AUTO,         /* merge when the helper module is loaded, else estimate */
        SCAN_MODE_ESTIMATE,     /* never merge, only report what merging would save */
        _SCAN_MODE_MAX,
        _SCAN_MODE_INVALID = -EINVAL,
} ScanMode;

/* Which merge domain a region that root or [AutoRegister] registers joins, when root names none. */
typedef enum DomainPolicy {
        DOMAIN_POLICY_HOST,             /* one domain for the host */
        DOMAIN_POLICY_OWNER,            /* one per user that owns the process */
        DOMAIN_POLICY_REGION,           /* one per region */
        _DOMAIN_POLICY_MAX,
        _DOMAIN_POLICY_INVALID = -EINVAL,
} DomainPolicy;

typedef struct Settings {
        /* [Scan] */
        ScanMode mode;
        MergePolicy merge_policy;        /* when a page read is offered for merging (merge-policy.h) */
        uint64_t pages_to_scan;          /* pages per batch */
        uint64_t sleep_usec;             /* pause between batches */
        uint64_t target_scan_time_usec;  /* 0: fixed rate; else adapt to one full scan per this long */
        uint64_t max_cpu_percent;        /* CPU cap of the adaptive rate, % of one core, all threads */
        uint64_t scan_threads;           /* threads that read and hash pages; 0: scan_threads_default() */
        uint64_t idle_sleep_usec;        /* rest after a full scan that found almost nothing new; 0: none */
        uint64_t idle_max_cpu_bp;        /* rests lengthen so that idle scanning stays under this, 1/100 % */

        /* [Limits] */
        uint64_t max_metadata_bytes;     /* daemon memory for the index
                                          * (INDEX_MAX_BYTES_PER_PAGE per page) */
        uint64_t max_regions;
        uint64_t max_regions_per_client;
        uint64_t max_connections;        /* of users other than root; root has a reserve (bus-auth.h) */
        uint64_t max_connections_per_user; /* of one user other than root */
        uint64_t max_pages_per_owner;    /* tracked pages of the regions of one owner other than root */
        uint64_t cow_reserve;            /* the COW guard's headroom (cow-guard.h): bytes, or
                                          * SETTING_PERCENT_BIT | 1/100 % of the memory; 0: off */

        /* [Control] */
        char *socket_path;
        gid_t socket_group;              /* the socket file is 0660 root:socket_group */
        bool system_bus;
        gid_t *allow_groups;             /* members may call the API besides root */
        size_t n_allow_groups;
        gid_t *operator_groups;          /* members may call it too, and act on the whole host */
        size_t n_operator_groups;

        /* [Domains] */
        DomainPolicy domain_policy;

        /* [AutoRegister]: a process matching a rule is registered whole (autoreg.h). */
        uid_t *users;                    /* owners whose processes the rules may match */
        size_t n_users;
        gid_t *groups;
        size_t n_groups;
        char **cgroup_patterns;          /* fnmatch() patterns on the cgroup v2 path */
        size_t n_cgroup_patterns;
        char **executable_patterns;      /* fnmatch() patterns on the executable's file name */
        size_t n_executable_patterns;
} Settings;

typedef enum SettingKind {
        SETTING_COUNT,                   /* a whole number; D-Bus t */
        SETTING_TIME,                    /* a time span in usec ("20ms", "1.5s"); D-Bus t,
                                          * property ends in USec */
        SETTING_SIZE,                    /* bytes ("256M"); D-Bus t */
        SETTING_PERCENT,                 /* whole percent ("20%"); D-Bus t */
        SETTING_CENTIPERCENT,            /* percent with two decimals ("0.25%"), in 1/100 %; D-Bus t */
        SETTING_SIZE_OR_PERCENT,         /* bytes ("256M", min..max) or a share of something ("5%",
                                          * SETTING_PERCENT_MIN..MAX) in 1/100 % with SETTING_PERCENT_BIT;
                                          * D-Bus s, as the file writes it */
        SETTING_ENUM,                    /* one of the names in Setting.names; an int-sized enum; D-Bus s */
        SETTING_BOOL,
        SETTING_SOCKET,                  /* an absolute unix socket path */
        SETTING_GROUP,                   /* one group by name or number; D-Bus u */
        SETTING_GROUPS,                  /* a list of groups by name or number; D-Bus au */
        SETTING_USERS,                   /* a list of users by name or number; D-Bus au */
        SETTING_CGROUP_PATTERNS,         /* a list of patterns starting with /; D-Bus as */
        SETTING_EXECUTABLE_PATTERNS,     /* a list of file name patterns without /; D-Bus as */
        _SETTING_KIND_MAX,
        _SETTING_KIND_INVALID = -EINVAL,
} SettingKind;

#define SETTING_AT_START  (1u << 0)      /* a reload leaves it alone: it applies when the daemon starts */
#define SETTING_OFF       (1u << 1)      /* "off" (or "0") means 0, outside the range */
#define SETTING_WRITABLE  (1u << 2)      /* root may change it over D-Bus until the next reload */

/* SETTING_SIZE_OR_PERCENT: a value with this bit is a percentage, in 1/100 %, in its low bits. */
#define SETTING_PERCENT_BIT (UINT64_C(1) << 63)
#define SETTING_PERCENT_MIN UINT64_C(1)          /* 0.01% */
#define SETTING_PERCENT_MAX UINT64_C(9000)       /* 90% */

/* SETTING_SIZE_OR_PERCENT: value's bytes, a percentage of total_bytes if it is one. */
static inline uint64_t setting_size_or_percent_bytes(uint64_t value, uint64_t total_bytes) {
        if (!(value & SETTING_PERCENT_BIT))
                return value;
        return (uint64_t) ((unsigned __int128) total_bytes * (value & ~SETTING_PERCENT_BIT) / 10000);
}

typedef struct Setting {
        const char *section;             /* ksmd.conf section, without brackets */
        const char *key;                 /* ksmd.conf key; the option and property derive from it */
        SettingKind kind;
        unsigned flags;
        uint64_t min, max;               /* numbers: the range, in the field's unit */
        uint64_t def;                    /* numbers, enums, booleans and groups: the default */
        const char *const *names;        /* enums: the names of the values 0, 1, ... */
        size_t n_names;
        const char *def_string;          /* Socket=: the default */
        size_t offset;                   /* of the field in Settings */
        size_t offset_n;                 /* lists: of the field that counts the entries */
        const char *help;                /* one line for ksmd --help */
} Setting;

extern const Setting settings_table[];
extern const size_t settings_table_size;

/* The entry for a key (exact, case-sensitive), or NULL. */
const Setting *setting_find(const char *key);
/* The entry whose command-line option is --option (without the dashes), or NULL. */
const Setting *setting_find_option(const char *option);

/* "pages-to-scan" for PagesToScan; buf holds at least 64 bytes. */
const char *setting_option_name(const Setting *s, char *buf, size_t size);
/* "PagesToScan", "SleepUSec" (time spans); buf holds at least 64 bytes. */
const char *setting_property_name(const Setting *s, char *buf, size_t size);
/* The D-Bus signature of the property: "t", "b", "s", "u", "au" or "as" (SETTING_SIZE_OR_PERCENT: s). */
const char *setting_property_type(const Setting *s);
bool setting_is_number(const Setting *s);
bool setting_is_list(const Setting *s);

/* The array a list setting holds in settings (char ** or uint32_t *), and its length. */
const void *setting_get_list(const Setting *s, const Settings *settings, size_t *ret_n);

/* The name of the value an enum setting holds in settings. */
const char *setting_get_enum_name(const Setting *s, const Settings *settings);

/* The number a numeric setting holds in settings. */
uint64_t setting_get_number(const Setting *s, const Settings *settings);

/* The group a SETTING_GROUP setting holds in settings. */
gid_t setting_get_group(const Setting *s, const Settings *settings);

/*
 * Checks a number against the setting's range (and SETTING_OFF). 0 or
 * -ERANGE with a malloc'ed sentence in *ret_reason saying what is allowed.
 */
int setting_check_number(const Setting *s, uint64_t value, char **ret_reason);

/*
 * Parses value as ksmd.conf writes it into the setting's field of settings:
 * numbers, booleans, enums and Socket= replace the value; list keys append,
 * and an empty value empties the list. -EINVAL with a malloc'ed reason in
 * *ret_reason (the field is then unchanged), or -ENOMEM. A reason quotes the
 * value escaped (escape.h) and cut to a readable length.
 */
int setting_parse(const Setting *s, Settings *settings, const char *value, char **ret_reason);

/* Sets a numeric setting after setting_check_number() allowed value. */
void setting_set_number(const Setting *s, Settings *settings, uint64_t value);

/* A number as ksmd.conf would write it: "4096", "20ms", "256M", "20%", "0.25%", "off". */
const char *setting_format_number(const Setting *s, uint64_t value, char *buf, size_t size);

/* "from 1 to 1000000", "from 1s to 1d, or off": the range, as messages and the man page say it. */
const char *setting_format_range(const Setting *s, char *buf, size_t size);
/* The default as ksmd.conf(5) says it: "4096", "20ms", "auto", "no", "/run/ksmd/ksmd.sock", "0", "empty". */
const char *setting_format_default(const Setting *s, char *buf, size_t size);
/* The placeholder of the option's value in --help and ksmd(8): "N", "TIME", "SIZE", "PCT", "PATH"... */
const char *setting_value_name(const Setting *s);

/* true if the setting holds the same value in a and b. */
bool setting_equal(const Setting *s, const Settings *a, const Settings *b);

/* Every setting at its default. -ENOMEM. */
int settings_init(Settings *s);
/* A deep copy of src into a cleared dst. -ENOMEM (dst is then cleared). */
int settings_copy(Settings *dst, const Settings *src);
/* Copies one setting's value from src to dst (deeply). -ENOMEM. */
int setting_copy(const Setting *s, Settings *dst, const Settings *src);
/* Frees what s owns and clears it; s may be cleared already. */
void settings_done(Settings *s);

/* Every number in range: 0, or -ERANGE with the first offending key's reason in *ret_reason (malloc'ed). */
int settings_check(const Settings *s, char **ret_reason);

const char *scan_mode_to_string(ScanMode m);
ScanMode scan_mode_from_string(const char *s);
const char *domain_policy_to_string(DomainPolicy p);
const char *merge_policy_to_string(MergePolicy p);
