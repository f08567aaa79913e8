/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "escape.h"
#include "parse-util.h"
#include "region.h"
#include "scan-worker.h"
#include "settings.h"
#include "strv.h"

#define SETTINGS_MAX_LIST 256u           /* entries per list key */
/* A value a reason quotes came from a file or a caller: escaped (escape.h), cut to this many bytes. */
#define SETTINGS_QUOTE_MAX 256u

#define NUMBER(sec, k, knd, flg, lo, hi, dflt, field, text)                                                 \
        {                                                                                                   \
                .section = sec, .key = k, .kind = knd, .flags = flg, .min = lo, .max = hi, .def = dflt,     \
                .offset = offsetof(Settings, field), .help = text,                                          \
        }
#define LIST(sec, k, knd, field, text)                                                                      \
        {                                                                                                   \
                .section = sec, .key = k, .kind = knd, .flags = 0,                                          \
                .offset = offsetof(Settings, field), .offset_n = offsetof(Settings, n_##field),             \
                .help = text,                                                                               \
        }

static const char *const scan_mode_table[_SCAN_MODE_MAX] = {
        [SCAN_MODE_AUTO] = "auto",
        [SCAN_MODE_ESTIMATE] = "estimate",
};

static const char *const merge_policy_table[_MERGE_POLICY_MAX] = {
        [MERGE_POLICY_FIRST_PASS] = "first-pass",
        [MERGE_POLICY_STABLE] = "stable",
};

static const char *const domain_policy_table[_DOMAIN_POLICY_MAX] = {
        [DOMAIN_POLICY_HOST] = "host",
        [DOMAIN_POLICY_OWNER] = "owner",
        [DOMAIN_POLICY_REGION] = "region",
};

const Setting settings_table[] = {
        { .section = "Scan", .key = "Mode", .kind = SETTING_ENUM, .flags = SETTING_AT_START,
          .def = SCAN_MODE_AUTO, .names = scan_mode_table, .n_names = _SCAN_MODE_MAX,
          .offset = offsetof(Settings, mode),
          .help = "auto: merge when the helper module is loaded; estimate: never merge" },
        { .section = "Scan", .key = "MergePolicy", .kind = SETTING_ENUM, .def = MERGE_POLICY_FIRST_PASS,
          .names = merge_policy_table, .n_names = _MERGE_POLICY_MAX,
          .offset = offsetof(Settings, merge_policy),
          .help = "first-pass: merge a duplicate when first read; stable: once it held still a pass" },
        NUMBER("Scan", "PagesToScan", SETTING_COUNT, SETTING_WRITABLE, 1, 1000000, 4096, pages_to_scan,
               "Pages examined per batch (KSM's pages_to_scan)"),
        NUMBER("Scan", "Sleep", SETTING_TIME, SETTING_WRITABLE, 0, 60 * USEC_PER_SEC, 20 * USEC_PER_MSEC,
               sleep_usec, "Pause between batches (KSM's sleep_millisecs)"),
        NUMBER("Scan", "TargetScanTime", SETTING_TIME, SETTING_WRITABLE | SETTING_OFF, USEC_PER_SEC,
               USEC_PER_DAY, 0, target_scan_time_usec,
               "Adapt the rate so that a full scan takes this long..."),
        NUMBER("Scan", "MaxCPU", SETTING_PERCENT, SETTING_WRITABLE, 1, 100 * SCAN_THREADS_MAX, 20,
               max_cpu_percent, "...using at most this share of one CPU, all scan threads together"),
        NUMBER("Scan", "ScanThreads", SETTING_COUNT, SETTING_WRITABLE, 0, SCAN_THREADS_MAX, 0, scan_threads,
               "Threads that read and hash pages; 0: one per 100 % of MaxCPU=, at most the online CPUs"),
        NUMBER("Scan", "IdleSleep", SETTING_TIME, SETTING_WRITABLE | SETTING_OFF, 0, USEC_PER_HOUR,
               10 * USEC_PER_SEC, idle_sleep_usec, "Rest after a full scan that found almost nothing new"),
        NUMBER("Scan", "IdleMaxCPU", SETTING_CENTIPERCENT, SETTING_WRITABLE, 1, 10000, 5, idle_max_cpu_bp,
               "Lengthen rests so that scans and rests use at most this share of one CPU"),
        NUMBER("Limits", "MaxMetadata", SETTING_SIZE, SETTING_WRITABLE, UINT64_C(1) << 20, UINT64_C(1) << 40,
               UINT64_C(256) << 20, max_metadata_bytes,
               "Memory for the page index (16 bytes per tracked page)"),
        NUMBER("Limits", "MaxRegions", SETTING_COUNT, SETTING_WRITABLE, 1, REGION_MAX_REGIONS, 4096,
               max_regions, "Registered regions in total"),
        NUMBER("Limits", "MaxRegionsPerClient", SETTING_COUNT, SETTING_WRITABLE, 1, REGION_MAX_REGIONS, 256,
               max_regions_per_client, "Regions one user other than root may register"),
        NUMBER("Limits", "MaxPagesPerOwner", SETTING_COUNT, SETTING_WRITABLE, 1, UINT32_MAX, 4194304,
               max_pages_per_owner, "Tracked pages of the regions of one user other than root"),
        NUMBER("Limits", "CowReserve", SETTING_SIZE_OR_PERCENT, SETTING_WRITABLE | SETTING_OFF, 0,
               UINT64_C(1) << 40, 0, cow_reserve,
               "Headroom kept for unmerging: below it no new page is merged (a size, or % of memory)"),
        NUMBER("Limits", "MaxConnections", SETTING_COUNT, SETTING_WRITABLE, 1, 4096, 64, max_connections,
               "Concurrent connections to the control socket of users other than root"),
        NUMBER("Limits", "MaxConnectionsPerUser", SETTING_COUNT, SETTING_WRITABLE, 1, 4096, 8,
               max_connections_per_user, "Concurrent connections of one user other than root"),
        { .section = "Control", .key = "Socket", .kind = SETTING_SOCKET, .flags = SETTING_AT_START,
          .def_string = "/run/ksmd/ksmd.sock", .offset = offsetof(Settings, socket_path),
          .help = "Serve the D-Bus API on this unix socket" },
        { .section = "Control", .key = "SocketGroup", .kind = SETTING_GROUP, .def = 0,
          .offset = offsetof(Settings, socket_group),
          .help = "The group that may connect to the socket besides root (mode 0660)" },
        { .section = "Control", .key = "SystemBus", .kind = SETTING_BOOL, .flags = SETTING_AT_START,
          .def = false, .offset = offsetof(Settings, system_bus),
          .help = "Also serve org.ksmd.Manager1 on the system bus" },
        LIST("Control", "AllowGroups", SETTING_GROUPS, allow_groups,
             "Groups whose members may call the API besides root"),
        LIST("Control", "OperatorGroups", SETTING_GROUPS, operator_groups,
             "Groups whose members may also pause, resume, reload and change settings"),
        { .section = "Domains", .key = "DomainPolicy", .kind = SETTING_ENUM, .def = DOMAIN_POLICY_OWNER,
          .names = domain_policy_table, .n_names = _DOMAIN_POLICY_MAX,
          .offset = offsetof(Settings, domain_policy),
          .help = "The merge domain of regions root or AutoRegister registers: host, owner or region" },
        LIST("AutoRegister", "User", SETTING_USERS, users,
             "Register only processes of these users (with Group=: or of these groups)"),
        LIST("AutoRegister", "Group", SETTING_GROUPS, groups,
             "Register only processes of these groups (with User=: or of these users)"),
        LIST("AutoRegister", "Cgroup", SETTING_CGROUP_PATTERNS, cgroup_patterns,
             "Register processes whose cgroup matches this pattern"),
        LIST("AutoRegister", "Executable", SETTING_EXECUTABLE_PATTERNS, executable_patterns,
             "Register processes whose executable's file name matches this pattern"),
};

const size_t settings_table_size = ELEMENTSOF(settings_table);

const char *scan_mode_to_string(ScanMode m) {
        return m >= 0 && m < _SCAN_MODE_MAX ? scan_mode_table[m] : NULL;
}

const char *merge_policy_to_string(MergePolicy p) {
        return p >= 0 && p < _MERGE_POLICY_MAX ? merge_policy_table[p] : NULL;
}

const char *domain_policy_to_string(DomainPolicy p) {
        return p >= 0 && p < _DOMAIN_POLICY_MAX ? domain_policy_table[p] : NULL;
}

ScanMode scan_mode_from_string(const char *s) {
        for (int i = 0; i < _SCAN_MODE_MAX; i++)
                if (strcmp(s, scan_mode_table[i]) == 0)
                        return i;
        return _SCAN_MODE_INVALID;
}

static char *reasonf(const char *format, ...) _printf_(1, 2);
static char *reasonf(const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

/* "'auto' or 'estimate'", "'host', 'owner' or 'region'"; static storage, for messages. */
static const char *enum_names_text(const Setting *s) {
        static __thread char buf[128];
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < s->n_names && n < sizeof(buf); i++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s'%s'",
                                       i == 0 ? "" : i + 1 == s->n_names ? " or " : ", ", s->names[i]);
        return buf;
}

const Setting *setting_find(const char *key) {
        for (size_t i = 0; i < settings_table_size; i++)
                if (strcmp(settings_table[i].key, key) == 0)
                        return &settings_table[i];
        return NULL;
}

const char *setting_option_name(const Setting *s, char *buf, size_t size) {
        size_t n = 0;

        for (const char *p = s->key; *p && n + 2 < size; p++) {
                /* A capital starts a word, except inside an acronym: MaxCPU -> max-cpu. */
                if (isupper((unsigned char) *p) && p != s->key && !isupper((unsigned char) p[-1]))
                        buf[n++] = '-';
                buf[n++] = (char) tolower((unsigned char) *p);
        }
        buf[n] = '\0';
        return buf;
}

const Setting *setting_find_option(const char *option) {
        char buf[64];

        for (size_t i = 0; i < settings_table_size; i++)
                if (strcmp(setting_option_name(&settings_table[i], buf, sizeof(buf)), option) == 0)
                        return &settings_table[i];
        return NULL;
}

const char *setting_property_name(const Setting *s, char *buf, size_t size) {
        snprintf(buf, size, "%s%s", s->key, s->kind == SETTING_TIME ? "USec" : "");
        return buf;
}

bool setting_is_number(const Setting *s) {
        return IN_SET(s->kind, SETTING_COUNT, SETTING_TIME, SETTING_SIZE, SETTING_PERCENT,
                      SETTING_CENTIPERCENT, SETTING_SIZE_OR_PERCENT);
}

bool setting_is_list(const Setting *s) {
        return IN_SET(s->kind, SETTING_GROUPS, SETTING_USERS, SETTING_CGROUP_PATTERNS,
                      SETTING_EXECUTABLE_PATTERNS);
}

const char *setting_property_type(const Setting *s) {
        switch (s->kind) {
        case SETTING_BOOL:
                return "b";
        case SETTING_ENUM:
        case SETTING_SOCKET:
        case SETTING_SIZE_OR_PERCENT:
                return "s";
        case SETTING_GROUP:
                return "u";
        case SETTING_GROUPS:
        case SETTING_USERS:
                return "au";
        case SETTING_CGROUP_PATTERNS:
        case SETTING_EXECUTABLE_PATTERNS:
                return "as";
        default:
                return "t";
        }
}

static void *field(const Setting *s, const Settings *settings) {
        return (uint8_t *) settings + s->offset;
}

static size_t *field_n(const Setting *s, const Settings *settings) {
        return (size_t *) ((uint8_t *) settings + s->offset_n);
}

const void *setting_get_list(const Setting *s, const Settings *settings, size_t *ret_n) {
        assert(setting_is_list(s));
        *ret_n = *field_n(s, settings);
        return *(void *const *) field(s, settings);
}

const char *setting_get_enum_name(const Setting *s, const Settings *settings) {
        assert(s->kind == SETTING_ENUM);
        return s->names[*(const int *) field(s, settings)];
}

uint64_t setting_get_number(const Setting *s, const Settings *settings) {
        assert(setting_is_number(s));
        return *(uint64_t *) field(s, settings);
}

gid_t setting_get_group(const Setting *s, const Settings *settings) {
        assert(s->kind == SETTING_GROUP);
        return *(const gid_t *) field(s, settings);
}

void setting_set_number(const Setting *s, Settings *settings, uint64_t value) {
        assert(setting_is_number(s));
        *(uint64_t *) field(s, settings) = value;
}

/* The largest unit that writes v exactly. */
static const char *format_scaled(uint64_t v, const char *const *suffixes, const uint64_t *factors, size_t n,
                                 char *buf, size_t size) {
        for (size_t i = n; i > 0; i--)
                if (v >= factors[i - 1] && v % factors[i - 1] == 0) {
                        snprintf(buf, size, "%" PRIu64 "%s", v / factors[i - 1], suffixes[i - 1]);
                        return buf;
                }
        snprintf(buf, size, "%" PRIu64 "%s", v, suffixes[0]);
        return buf;
}

const char *setting_format_number(const Setting *s, uint64_t value, char *buf, size_t size) {
        static const char *const time_suffixes[] = { "us", "ms", "s", "min", "h", "d" };
        static const uint64_t time_factors[] = { 1, USEC_PER_MSEC, USEC_PER_SEC, USEC_PER_MINUTE,
                                                 USEC_PER_HOUR, USEC_PER_DAY };
        static const char *const size_suffixes[] = { "", "K", "M", "G", "T" };
        static const uint64_t size_factors[] = { 1, UINT64_C(1) << 10, UINT64_C(1) << 20, UINT64_C(1) << 30,
                                                 UINT64_C(1) << 40 };

        if (s->kind == SETTING_SIZE_OR_PERCENT && (value & SETTING_PERCENT_BIT)) {
                static const Setting percent = { .kind = SETTING_CENTIPERCENT };

                return setting_format_number(&percent, value & ~SETTING_PERCENT_BIT, buf, size);
        }
        if (value == 0 && (s->flags & SETTING_OFF) && (s->min > 0 || s->kind == SETTING_SIZE_OR_PERCENT))
                snprintf(buf, size, "off");
        else if (value == 0 && s->kind != SETTING_CENTIPERCENT)
                snprintf(buf, size, "0");
        else if (s->kind == SETTING_TIME)
                return format_scaled(value, time_suffixes, time_factors, ELEMENTSOF(time_factors), buf,
                                     size);
        else if (s->kind == SETTING_SIZE || s->kind == SETTING_SIZE_OR_PERCENT)
                return format_scaled(value, size_suffixes, size_factors, ELEMENTSOF(size_factors), buf,
                                     size);
        else if (s->kind == SETTING_PERCENT)
                snprintf(buf, size, "%" PRIu64 "%%", value);
        else if (s->kind == SETTING_CENTIPERCENT && value % 100 == 0)
                snprintf(buf, size, "%" PRIu64 "%%", value / 100);
        else if (s->kind == SETTING_CENTIPERCENT)
                snprintf(buf, size, "%" PRIu64 ".%0*" PRIu64 "%%", value / 100, value % 10 == 0 ? 1 : 2,
                         value % 10 == 0 ? value % 100 / 10 : value % 100);
        else
                snprintf(buf, size, "%" PRIu64, value);
        return buf;
}

const char *setting_format_range(const Setting *s, char *buf, size_t size) {
        char lo[32], hi[32], size_max[32];

        if (s->kind == SETTING_SIZE_OR_PERCENT) {
                snprintf(buf, size, "a size up to %s or a percentage from %s to %s, or off",
                         setting_format_number(s, s->max, size_max, sizeof(size_max)),
                         setting_format_number(s, SETTING_PERCENT_BIT | SETTING_PERCENT_MIN, lo, sizeof(lo)),
                         setting_format_number(s, SETTING_PERCENT_BIT | SETTING_PERCENT_MAX, hi,
                                               sizeof(hi)));
                return buf;
        }
        snprintf(buf, size, "from %s to %s%s", setting_format_number(s, s->min, lo, sizeof(lo)),
                 setting_format_number(s, s->max, hi, sizeof(hi)),
                 (s->flags & SETTING_OFF) && s->min > 0 ? ", or off" : "");
        return buf;
}

const char *setting_value_name(const Setting *s) {
        static const char *const names[_SETTING_KIND_MAX] = {
                [SETTING_COUNT] = "N",
                [SETTING_TIME] = "TIME",
                [SETTING_SIZE] = "SIZE",
                [SETTING_PERCENT] = "PCT",
                [SETTING_CENTIPERCENT] = "PCT",
                [SETTING_SIZE_OR_PERCENT] = "SIZE|PCT",
                [SETTING_ENUM] = "NAME",
                [SETTING_BOOL] = "BOOL",
                [SETTING_SOCKET] = "PATH",
                [SETTING_GROUP] = "GROUP",
                [SETTING_GROUPS] = "GROUPS",
                [SETTING_USERS] = "USERS",
                [SETTING_CGROUP_PATTERNS] = "PATTERN",
                [SETTING_EXECUTABLE_PATTERNS] = "PATTERN",
        };

        return names[s->kind];
}

const char *setting_format_default(const Setting *s, char *buf, size_t size) {
        if (setting_is_number(s))
                return setting_format_number(s, s->def, buf, size);
        if (s->kind == SETTING_ENUM)
                return s->names[s->def];
        if (s->kind == SETTING_BOOL)
                return s->def ? "yes" : "no";
        if (s->kind == SETTING_SOCKET)
                return s->def_string;
        if (s->kind == SETTING_GROUP) {
                snprintf(buf, size, "%" PRIu64, s->def);
                return buf;
        }
        return "empty";
}

static const char *number_noun(const Setting *s) {
        switch (s->kind) {
        case SETTING_TIME:
                return "a time span";
        case SETTING_SIZE:
                return "a size";
        case SETTING_PERCENT:
        case SETTING_CENTIPERCENT:
                return "a percentage";
        case SETTING_SIZE_OR_PERCENT:
                return "any of";
        default:
                return "a whole number";
        }
}

static const char *number_example(const Setting *s) {
        switch (s->kind) {
        case SETTING_TIME:
                return " (e.g. 20ms, 1.5s, 5min)";
        case SETTING_SIZE:
                return " (e.g. 256M, 2G)";
        case SETTING_CENTIPERCENT:
                return " with at most two decimals (e.g. 0.25%)";
        case SETTING_SIZE_OR_PERCENT:
                return " (e.g. 512M, 10%, 2.5%)";
        default:
                return "";
        }
}

static char *number_reason(const Setting *s, const char *value) {
        char range[96], q[SETTINGS_QUOTE_MAX];

        setting_format_range(s, range, sizeof(range));
        return reasonf("'%s' is not %s %s%s", escape_str(value, q, sizeof(q)), number_noun(s), range,
                       number_example(s));
}

int setting_check_number(const Setting *s, uint64_t value, char **ret_reason) {
        char buf[32];

        if (s->kind == SETTING_SIZE_OR_PERCENT && (value & SETTING_PERCENT_BIT)) {
                uint64_t cp = value & ~SETTING_PERCENT_BIT;

                if (cp >= SETTING_PERCENT_MIN && cp <= SETTING_PERCENT_MAX)
                        return 0;
        } else if ((value == 0 && (s->flags & SETTING_OFF)) || (value >= s->min && value <= s->max))
                return 0;
        *ret_reason = number_reason(s, setting_format_number(s, value, buf, sizeof(buf)));
        return -ERANGE;
}

/* "0.25%", "1", "1.5%": a percentage with at most two decimals, in hundredths of a percent. */
static int parse_centipercent(const char *v, uint64_t *ret) {
        uint64_t whole = 0, frac = 0, digits = 0;
        const char *p = v;

        if (!isdigit((unsigned char) *p))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++)
                if ((whole = whole * 10 + (uint64_t) (*p - '0')) > UINT32_MAX) /* no overflow; the range
                                                                                * is checked later */
                        return -EINVAL;
        if (*p == '.') {
                if (!isdigit((unsigned char) *++p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++, digits++)
                        frac = frac * 10 + (uint64_t) (*p - '0');
                if (digits > 2)
                        return -EINVAL;
                if (digits == 1)
                        frac *= 10;
        }
        if (*p == '%')
                p++;
        if (*p != '\0')
                return -EINVAL;
        *ret = whole * 100 + frac;
        return 0;
}

/* "25%" or "25". */
static int parse_percent(const char *v, uint64_t *ret) {
        char buf[24];
        size_t n = strlen(v);

        if (n > 0 && n < sizeof(buf) && v[n - 1] == '%') {
                memcpy(buf, v, n - 1);
                buf[n - 1] = '\0';
                v = buf;
        }
        return parse_uint64_range(v, 0, UINT64_MAX, ret);
}

static int parse_number(const Setting *s, const char *v, uint64_t *ret) {
        if ((s->flags & SETTING_OFF) && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0)) {
                *ret = 0;
                return 0;
        }
        switch (s->kind) {
        case SETTING_TIME:
                return parse_time_usec(v, ret);
        case SETTING_SIZE:
                return parse_size_bytes(v, ret);
        case SETTING_PERCENT:
                return parse_percent(v, ret);
        case SETTING_CENTIPERCENT:
                return parse_centipercent(v, ret);
        case SETTING_SIZE_OR_PERCENT: {
                size_t n = strlen(v);
                uint64_t cp;

                if (n == 0 || v[n - 1] != '%')
                        return parse_size_bytes(v, ret);
                if (parse_centipercent(v, &cp) < 0 || cp > SETTING_PERCENT_MAX)
                        return -EINVAL;
                *ret = SETTING_PERCENT_BIT | cp;
                return 0;
        }
        default:
                return parse_uint64_range(v, 0, UINT64_MAX, ret);
        }
}

static int list_push(void **list, size_t *n, size_t elem_size, const void *elem, char **ret_reason) {
        void *l;

        if (*n >= SETTINGS_MAX_LIST) {
                *ret_reason = reasonf("more than %u entries", SETTINGS_MAX_LIST);
                return -EINVAL;
        }
        l = realloc(*list, (*n + 1) * elem_size);
        if (!l)
                return -ENOMEM;
        *list = l;
        memcpy((uint8_t *) l + *n * elem_size, elem, elem_size);
        (*n)++;
        return 0;
}

/* AllowGroups= and the like: lists of 32-bit ids (uid_t, gid_t), not strings. */
static bool setting_is_id_list(const Setting *s) {
        return IN_SET(s->kind, SETTING_GROUPS, SETTING_USERS);
}

static void list_clear(const Setting *s, Settings *settings) {
        void **list = field(s, settings);
        size_t *n = field_n(s, settings);

        if (!setting_is_id_list(s))
                strv_free_n(*list, *n);
        else
                free(*list);
        *list = NULL;
        *n = 0;
}

/* A group (SETTING_GROUP, SETTING_GROUPS) or user (SETTING_USERS) by name or number. */
static int parse_id(const Setting *s, const char *w, uint32_t *ret, char **ret_reason) {
        struct passwd pw, *pwr = NULL;
        struct group grp, *grr = NULL;
        char buf[4096], q[SETTINGS_QUOTE_MAX];
        uint64_t id;

        if (parse_uint64_range(w, 0, UINT32_MAX - 1, &id) >= 0) {
                *ret = (uint32_t) id;
                return 0;
        }
        if (s->kind == SETTING_USERS) {
                if (getpwnam_r(w, &pw, buf, sizeof(buf), &pwr) != 0 || !pwr) {
                        *ret_reason = reasonf("user '%s' does not exist", escape_str(w, q, sizeof(q)));
                        return -EINVAL;
                }
                *ret = pwr->pw_uid;
                return 0;
        }
        if (getgrnam_r(w, &grp, buf, sizeof(buf), &grr) != 0 || !grr) {
                *ret_reason = reasonf("group '%s' does not exist", escape_str(w, q, sizeof(q)));
                return -EINVAL;
        }
        *ret = grr->gr_gid;
        return 0;
}

/* Appends the blank-separated users or groups of v; all or nothing. */
static int parse_ids(const Setting *s, Settings *settings, const char *v, char **ret_reason) {
        _cleanup_free_ char *copy = strdup(v);
        _cleanup_free_ uint32_t *ids = NULL;
        size_t n = 0;
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                uint32_t id;

                r = parse_id(s, w, &id, ret_reason);
                if (r < 0)
                        return r;
                r = list_push((void **) &ids, &n, sizeof(uint32_t), &id, ret_reason);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                r = list_push(field(s, settings), field_n(s, settings), sizeof(uint32_t), &ids[i],
                              ret_reason);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_pattern(const Setting *s, Settings *settings, const char *v, char **ret_reason) {
        char *copy, q[SETTINGS_QUOTE_MAX];
        int r;

        if (s->kind == SETTING_CGROUP_PATTERNS && v[0] != '/') {
                *ret_reason = reasonf("'%s' is not a cgroup path pattern; it starts with / "
                                      "(e.g. /machine.slice/*)",
                                      escape_str(v, q, sizeof(q)));
                return -EINVAL;
        }
        if (s->kind == SETTING_EXECUTABLE_PATTERNS && strchr(v, '/')) {
                *ret_reason = reasonf("'%s' is not a file name pattern; it has no / (e.g. qemu-system-*)",
                                      escape_str(v, q, sizeof(q)));
                return -EINVAL;
        }
        /* Patterns are D-Bus properties, where a string that is not UTF-8 fails every reply that
         * carries it; a control character would reach a terminal. ? and * match such bytes. */
        if (!utf8_is_printable(v, strlen(v))) {
                *ret_reason = reasonf("'%s' holds a control character or a byte that is not UTF-8; "
                                      "match those with ? or *", escape_str(v, q, sizeof(q)));
                return -EINVAL;
        }
        copy = strdup(v);
        if (!copy)
                return -ENOMEM;
        r = list_push(field(s, settings), field_n(s, settings), sizeof(char *), &copy, ret_reason);
        if (r < 0)
                free(copy);
        return r;
}

static int parse_socket(const Setting *s, Settings *settings, const char *v, char **ret_reason) {
        char **path = field(s, settings), *p, q[SETTINGS_QUOTE_MAX];

        if (v[0] != '/' || strlen(v) >= sizeof_field(struct sockaddr_un, sun_path)) {
                *ret_reason = reasonf("'%s' is not an absolute path shorter than %zu characters",
                                      escape_str(v, q, sizeof(q)),
                                      sizeof_field(struct sockaddr_un, sun_path));
                return -EINVAL;
        }
        p = strdup(v);
        if (!p)
                return -ENOMEM;
        free(*path);
        *path = p;
        return 0;
}

int setting_parse(const Setting *s, Settings *settings, const char *value, char **ret_reason) {
        char q[SETTINGS_QUOTE_MAX];
        uint64_t v;
        bool b;

        *ret_reason = NULL;
        if (setting_is_list(s) && value[0] == '\0') {
                list_clear(s, settings);
                return 0;
        }
        switch (s->kind) {
        case SETTING_ENUM:
                for (size_t i = 0; i < s->n_names; i++)
                        if (strcmp(value, s->names[i]) == 0) {
                                *(int *) field(s, settings) = (int) i;
                                return 0;
                        }
                *ret_reason = reasonf("'%s' is not one of %s", escape_str(value, q, sizeof(q)),
                                      enum_names_text(s));
                return -EINVAL;
        case SETTING_BOOL:
                if (parse_boolean(value, &b) < 0) {
                        *ret_reason = reasonf("'%s' is not a boolean; use yes or no",
                                              escape_str(value, q, sizeof(q)));
                        return -EINVAL;
                }
                *(bool *) field(s, settings) = b;
                return 0;
        case SETTING_SOCKET:
                return parse_socket(s, settings, value, ret_reason);
        case SETTING_GROUP: {
                uint32_t g;
                int r;

                r = parse_id(s, value, &g, ret_reason);
                if (r < 0)
                        return r;
                *(gid_t *) field(s, settings) = (gid_t) g;
                return 0;
        }
        case SETTING_GROUPS:
        case SETTING_USERS:
                return parse_ids(s, settings, value, ret_reason);
        case SETTING_CGROUP_PATTERNS:
        case SETTING_EXECUTABLE_PATTERNS:
                return parse_pattern(s, settings, value, ret_reason);
        default:
                if (parse_number(s, value, &v) < 0 || setting_check_number(s, v, ret_reason) < 0) {
                        free(*ret_reason);
                        *ret_reason = number_reason(s, value);
                        return -EINVAL;
                }
                setting_set_number(s, settings, v);
                return 0;
        }
}

bool setting_equal(const Setting *s, const Settings *a, const Settings *b) {
        const void *fa = field(s, a), *fb = field(s, b);

        switch (s->kind) {
        case SETTING_ENUM:
                return *(const int *) fa == *(const int *) fb;
        case SETTING_BOOL:
                return *(const bool *) fa == *(const bool *) fb;
        case SETTING_SOCKET:
                return strcmp(*(char *const *) fa, *(char *const *) fb) == 0;
        case SETTING_GROUP:
                return *(const gid_t *) fa == *(const gid_t *) fb;
        case SETTING_GROUPS:
        case SETTING_USERS:
                return *field_n(s, a) == *field_n(s, b) &&
                       memcmp(*(uint32_t *const *) fa, *(uint32_t *const *) fb,
                              *field_n(s, a) * sizeof(uint32_t)) == 0;
        case SETTING_CGROUP_PATTERNS:
        case SETTING_EXECUTABLE_PATTERNS:
                if (*field_n(s, a) != *field_n(s, b))
                        return false;
                for (size_t i = 0; i < *field_n(s, a); i++)
                        if (strcmp((*(char **const *) fa)[i], (*(char **const *) fb)[i]) != 0)
                                return false;
                return true;
        default:
                return setting_get_number(s, a) == setting_get_number(s, b);
        }
}

int setting_copy(const Setting *s, Settings *dst, const Settings *src) {
        const void *from = field(s, src);
        void *to = field(s, dst);
        size_t n;

        switch (s->kind) {
        case SETTING_ENUM:
                *(int *) to = *(const int *) from;
                return 0;
        case SETTING_BOOL:
                *(bool *) to = *(const bool *) from;
                return 0;
        case SETTING_SOCKET: {
                char *p = *(char *const *) from ? strdup(*(char *const *) from) : NULL;

                if (*(char *const *) from && !p)
                        return -ENOMEM;
                free(*(char **) to);
                *(char **) to = p;
                return 0;
        }
        case SETTING_GROUP:
                *(gid_t *) to = *(const gid_t *) from;
                return 0;
        case SETTING_GROUPS:
        case SETTING_USERS:
        case SETTING_CGROUP_PATTERNS:
        case SETTING_EXECUTABLE_PATTERNS:
                list_clear(s, dst);
                n = *field_n(s, src);
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *reason = NULL;
                        int r;

                        if (setting_is_id_list(s))
                                r = list_push(to, field_n(s, dst), sizeof(uint32_t),
                                              &(*(uint32_t *const *) from)[i], &reason);
                        else
                                r = parse_pattern(s, dst, (*(char **const *) from)[i], &reason);
                        if (r < 0)
                                return -ENOMEM;
                }
                return 0;
        default:
                setting_set_number(s, dst, setting_get_number(s, src));
                return 0;
        }
}

int settings_init(Settings *s) {
        *s = (Settings) {};
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];

                if (setting_is_number(t))
                        setting_set_number(t, s, t->def);
                else if (t->kind == SETTING_ENUM)
                        *(int *) field(t, s) = (int) t->def;
                else if (t->kind == SETTING_BOOL)
                        *(bool *) field(t, s) = t->def;
                else if (t->kind == SETTING_GROUP)
                        *(gid_t *) field(t, s) = (gid_t) t->def;
                else if (t->kind == SETTING_SOCKET) {
                        char *p = strdup(t->def_string);

                        if (!p) {
                                settings_done(s);
                                return -ENOMEM;
                        }
                        *(char **) field(t, s) = p;
                }
        }
        return 0;
}

int settings_copy(Settings *dst, const Settings *src) {
        *dst = (Settings) {};
        for (size_t i = 0; i < settings_table_size; i++)
                if (setting_copy(&settings_table[i], dst, src) < 0) {
                        settings_done(dst);
                        return -ENOMEM;
                }
        return 0;
}

void settings_done(Settings *s) {
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];

                if (setting_is_list(t))
                        list_clear(t, s);
                else if (t->kind == SETTING_SOCKET) {
                        free(*(char **) field(t, s));
                        *(char **) field(t, s) = NULL;
                }
        }
}

int settings_check(const Settings *s, char **ret_reason) {
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];
                _cleanup_free_ char *reason = NULL;

                if (!setting_is_number(t) || setting_check_number(t, setting_get_number(t, s), &reason) >= 0)
                        continue;
                *ret_reason = reasonf("%s=: %s", t->key, reason ?: "out of range");
                return -ERANGE;
        }
        if (s->n_executable_patterns > 0 && s->n_users == 0 && s->n_groups == 0) {
                *ret_reason = reasonf("Executable= of [AutoRegister] needs User= or Group= as well: "
                                      "a file name alone proves nothing, anyone can run a program of any "
                                      "name");
                return -ERANGE;
        }
        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *t = &settings_table[i];
                int v;

                if (t->kind != SETTING_ENUM)
                        continue;
                v = *(const int *) field(t, s);
                if (v < 0 || (size_t) v >= t->n_names) {
                        *ret_reason = reasonf("%s=%d is not one of %s", t->key, v, enum_names_text(t));
                        return -ERANGE;
                }
        }
        return 0;
}
