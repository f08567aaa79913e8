/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ini.h>

#include "config.h"
#include "parse-util.h"
#include "strv.h"

#define CONFIG_MAX_LIST 256             /* entries per list key */
#define CONFIG_MAX_DROPINS 256

/* Reads and parses one file: the state the libinih callbacks share. */
typedef struct ParseState {
        Config *config;
        ConfigErrors *errors;
        const char *path;
        FILE *f;
        unsigned line;                  /* line the reader returned last */
        int n_problems;
} ParseState;

static int add_error(ConfigErrors *e, const char *format, ...) _printf_(2, 3);
static int add_error(ConfigErrors *e, const char *format, ...) {
        char **m, *s;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        m = realloc(e->messages, (e->n + 1) * sizeof(char *));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        e->messages = m;
        e->messages[e->n++] = s;
        return 0;
}

void config_errors_clear(ConfigErrors *e) {
        for (size_t i = 0; i < e->n; i++)
                free(e->messages[i]);
        free(e->messages);
        e->messages = NULL;
        e->n = 0;
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

static const char *const mode_table[_CONFIG_MODE_MAX] = {
        [CONFIG_MODE_AUTO] = "auto",
        [CONFIG_MODE_ESTIMATE] = "estimate",
};

const char *config_mode_to_string(ConfigMode m) {
        return m >= 0 && m < _CONFIG_MODE_MAX ? mode_table[m] : NULL;
}

ConfigMode config_mode_from_string(const char *s) {
        for (int i = 0; i < _CONFIG_MODE_MAX; i++)
                if (strcmp(s, mode_table[i]) == 0)
                        return i;
        return _CONFIG_MODE_INVALID;
}

static int parse_mode(Config *c, const char *v, char **reason) {
        ConfigMode m = config_mode_from_string(v);

        if (m < 0) {
                *reason = reasonf("'%s' is not a mode; use 'auto' or 'estimate'", v);
                return -EINVAL;
        }
        c->mode = m;
        return 0;
}

static int parse_u64_field(const char *v, uint64_t min, uint64_t max, uint64_t *field, char **reason) {
        if (parse_uint64_range(v, min, max, field) < 0) {
                *reason = reasonf("'%s' is not a whole number from %llu to %llu", v,
                                  (unsigned long long) min, (unsigned long long) max);
                return -EINVAL;
        }
        return 0;
}

static int parse_unsigned_field(const char *v, unsigned min, unsigned max, unsigned *field, char **reason) {
        uint64_t x;
        int r;

        r = parse_u64_field(v, min, max, &x, reason);
        if (r < 0)
                return r;
        *field = (unsigned) x;
        return 0;
}

static int parse_time_field(const char *v, uint64_t min, uint64_t max, uint64_t *field, char **reason) {
        uint64_t x;

        if (parse_time_usec(v, &x) < 0 || x < min || x > max) {
                *reason = reasonf("'%s' is not a time span from %llu ms to %llu s (e.g. 20ms, 1.5s, 5min)", v,
                                  (unsigned long long) (min / USEC_PER_MSEC),
                                  (unsigned long long) (max / USEC_PER_SEC));
                return -EINVAL;
        }
        *field = x;
        return 0;
}

static int parse_bool_field(const char *v, bool *field, char **reason) {
        if (parse_boolean(v, field) < 0) {
                *reason = reasonf("'%s' is not a boolean; use yes or no", v);
                return -EINVAL;
        }
        return 0;
}

static int parse_pages_to_scan(Config *c, const char *v, char **reason) {
        return parse_u64_field(v, 1, 1000000, &c->pages_to_scan, reason);
}

static int parse_sleep(Config *c, const char *v, char **reason) {
        return parse_time_field(v, 0, 60 * USEC_PER_SEC, &c->sleep_usec, reason);
}

static int parse_target_scan_time(Config *c, const char *v, char **reason) {
        if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
                c->target_scan_usec = 0;
                return 0;
        }
        return parse_time_field(v, USEC_PER_SEC, USEC_PER_DAY, &c->target_scan_usec, reason);
}

/* "25%" or "25". */
static int parse_percent_field(const char *v, unsigned *field, char **reason) {
        char buf[16];
        size_t n = strlen(v);

        if (n > 0 && n < sizeof(buf) && v[n - 1] == '%') {
                memcpy(buf, v, n - 1);
                buf[n - 1] = '\0';
                v = buf;
        }
        return parse_unsigned_field(v, 1, 100, field, reason);
}

static int parse_max_cpu(Config *c, const char *v, char **reason) {
        return parse_percent_field(v, &c->max_cpu_percent, reason);
}

static int parse_idle_sleep(Config *c, const char *v, char **reason) {
        if (strcmp(v, "off") == 0) {
                c->idle_sleep_usec = 0;
                return 0;
        }
        return parse_time_field(v, 0, 3600 * USEC_PER_SEC, &c->idle_sleep_usec, reason);
}

/* "0.25%", "1", "1.5%": a percentage with at most two decimals, 0.01 to 100, in basis points. */
static int parse_idle_max_cpu(Config *c, const char *v, char **reason) {
        unsigned whole = 0, frac = 0, digits = 0;
        const char *p = v;
        bool ok = *p >= '0' && *p <= '9';

        for (; ok && *p >= '0' && *p <= '9'; p++) {
                whole = whole * 10 + (unsigned) (*p - '0');
                if (whole > 100)
                        ok = false;
        }
        if (ok && *p == '.') {
                p++;
                ok = *p >= '0' && *p <= '9';
                for (; ok && *p >= '0' && *p <= '9'; p++)
                        if (++digits > 2)
                                ok = false;
                        else
                                frac = frac * 10 + (unsigned) (*p - '0');
                if (digits == 1)
                        frac *= 10;
        }
        if (ok && *p == '%')
                p++;
        if (!ok || *p != '\0' || whole * 100 + frac == 0 || whole * 100 + frac > 10000) {
                *reason = reasonf("'%s' is not a percentage from 0.01 to 100 with at most two decimals (e.g. 0.25%%)", v);
                return -EINVAL;
        }
        c->idle_max_cpu_bp = whole * 100 + frac;
        return 0;
}

static int parse_max_metadata(Config *c, const char *v, char **reason) {
        uint64_t x;

        if (parse_size_bytes(v, &x) < 0 || x < (UINT64_C(1) << 20) || x > (UINT64_C(1) << 40)) {
                *reason = reasonf("'%s' is not a size from 1M to 1T (e.g. 256M, 2G)", v);
                return -EINVAL;
        }
        c->max_metadata_bytes = x;
        return 0;
}

static int parse_max_regions(Config *c, const char *v, char **reason) {
        return parse_unsigned_field(v, 1, CONFIG_MAX_REGIONS, &c->max_regions, reason);
}

static int parse_max_regions_per_client(Config *c, const char *v, char **reason) {
        return parse_unsigned_field(v, 1, CONFIG_MAX_REGIONS, &c->max_regions_per_client, reason);
}

static int parse_max_connections(Config *c, const char *v, char **reason) {
        return parse_unsigned_field(v, 1, 4096, &c->max_connections, reason);
}

static int parse_socket(Config *c, const char *v, char **reason) {
        char *p;

        if (v[0] != '/' || strlen(v) >= sizeof_field(struct sockaddr_un, sun_path)) {
                *reason = reasonf("'%s' is not an absolute path shorter than %zu characters", v,
                                  sizeof_field(struct sockaddr_un, sun_path));
                return -EINVAL;
        }
        p = strdup(v);
        if (!p)
                return -ENOMEM;
        free(c->socket_path);
        c->socket_path = p;
        return 0;
}

static int parse_system_bus(Config *c, const char *v, char **reason) {
        return parse_bool_field(v, &c->system_bus, reason);
}

/* Splits a whitespace-separated list; an empty value empties the list. */
static int parse_allow_groups(Config *c, const char *v, char **reason) {
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (v[0] == '\0') {
                free(c->allow_gids);
                c->allow_gids = NULL;
                c->n_allow_gids = 0;
                return 0;
        }
        copy = strdup(v);
        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                struct group grp, *res = NULL;
                char buf[4096];
                uint64_t gid;
                gid_t *g;

                if (parse_uint64_range(w, 0, UINT32_MAX - 1, &gid) < 0) {
                        if (getgrnam_r(w, &grp, buf, sizeof(buf), &res) != 0 || !res) {
                                *reason = reasonf("group '%s' does not exist", w);
                                return -EINVAL;
                        }
                        gid = res->gr_gid;
                }
                if (c->n_allow_gids >= CONFIG_MAX_LIST) {
                        *reason = reasonf("more than %d groups", CONFIG_MAX_LIST);
                        return -EINVAL;
                }
                g = realloc(c->allow_gids, (c->n_allow_gids + 1) * sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                c->allow_gids = g;
                c->allow_gids[c->n_allow_gids++] = (gid_t) gid;
        }
        return 0;
}

static void strv_clear(char ***list, size_t *n) {
        strv_free_n(*list, *n);
        *list = NULL;
        *n = 0;
}

static int strv_push(char ***list, size_t *n, const char *v, char **reason) {
        char **l, *s;

        if (*n >= CONFIG_MAX_LIST) {
                *reason = reasonf("more than %d patterns", CONFIG_MAX_LIST);
                return -EINVAL;
        }
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        l = realloc(*list, (*n + 1) * sizeof(char *));
        if (!l) {
                free(s);
                return -ENOMEM;
        }
        *list = l;
        (*list)[(*n)++] = s;
        return 0;
}

static int parse_cgroup(Config *c, const char *v, char **reason) {
        if (v[0] == '\0') {
                strv_clear(&c->cgroup_patterns, &c->n_cgroup_patterns);
                return 0;
        }
        if (v[0] != '/') {
                *reason = reasonf("'%s' is not a cgroup path pattern; it starts with / (e.g. /machine.slice/*)", v);
                return -EINVAL;
        }
        return strv_push(&c->cgroup_patterns, &c->n_cgroup_patterns, v, reason);
}

static int parse_executable(Config *c, const char *v, char **reason) {
        if (v[0] == '\0') {
                strv_clear(&c->executable_patterns, &c->n_executable_patterns);
                return 0;
        }
        if (strchr(v, '/')) {
                *reason = reasonf("'%s' is not a file name pattern; it has no / (e.g. qemu-system-*)", v);
                return -EINVAL;
        }
        return strv_push(&c->executable_patterns, &c->n_executable_patterns, v, reason);
}

const ConfigKey config_keys[] = {
        { "Scan", "Mode", parse_mode },
        { "Scan", "PagesToScan", parse_pages_to_scan },
        { "Scan", "Sleep", parse_sleep },
        { "Scan", "TargetScanTime", parse_target_scan_time },
        { "Scan", "MaxCPU", parse_max_cpu },
        { "Scan", "IdleSleep", parse_idle_sleep },
        { "Scan", "IdleMaxCPU", parse_idle_max_cpu },
        { "Limits", "MaxMetadata", parse_max_metadata },
        { "Limits", "MaxRegions", parse_max_regions },
        { "Limits", "MaxRegionsPerClient", parse_max_regions_per_client },
        { "Limits", "MaxConnections", parse_max_connections },
        { "Control", "Socket", parse_socket },
        { "Control", "SystemBus", parse_system_bus },
        { "Control", "AllowGroups", parse_allow_groups },
        { "AutoRegister", "Cgroup", parse_cgroup },
        { "AutoRegister", "Executable", parse_executable },
};

const size_t config_n_keys = ELEMENTSOF(config_keys);

int config_new(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (Config) {
                .mode = CONFIG_MODE_AUTO,
                .pages_to_scan = 4096,
                .sleep_usec = 20 * USEC_PER_MSEC,
                .target_scan_usec = 0,
                .max_cpu_percent = 20,
                .idle_sleep_usec = 10 * USEC_PER_SEC,
                .idle_max_cpu_bp = 25,
                .max_metadata_bytes = UINT64_C(256) << 20,
                .max_regions = 4096,
                .max_regions_per_client = 256,
                .max_connections = 64,
        };
        c->socket_path = strdup("/run/ksmd/ksmd.sock");
        if (!c->socket_path)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->socket_path);
        free(c->allow_gids);
        strv_clear(&c->cgroup_patterns, &c->n_cgroup_patterns);
        strv_clear(&c->executable_patterns, &c->n_executable_patterns);
        free(c);
        return NULL;
}

static bool line_is_blank_or_comment(const char *s) {
        s += strspn(s, " \t\r\n");
        return *s == '\0' || *s == '#' || *s == ';';
}

/*
 * libinih's line reader, wrapped: it counts lines (libinih's handler does not
 * get them in Debian's build), strips leading blanks so an indented line is
 * never taken as a continuation of the previous value, and turns lines that
 * are too long or not "Key=Value", "[Section]" or a comment into a comment
 * after recording why.
 */
static char *reader(char *str, int num, void *userdata) {
        ParseState *st = userdata;
        size_t n, skip;
        char *s;

        if (!fgets(str, num, st->f))
                return NULL;
        st->line++;

        n = strlen(str);
        if (n > 0 && str[n - 1] != '\n' && !feof(st->f)) {
                int ch;

                while ((ch = fgetc(st->f)) != EOF && ch != '\n')
                        ;
                (void) add_error(st->errors, "%s:%u: line longer than %d characters", st->path, st->line, num - 2);
                st->n_problems++;
                strcpy(str, "#\n");
                return str;
        }

        skip = strspn(str, " \t");
        memmove(str, str + skip, n - skip + 1);
        s = str;
        if (s[0] == '[' && !strchr(s, ']')) {
                (void) add_error(st->errors, "%s:%u: section header lacks its closing ']'", st->path, st->line);
                st->n_problems++;
                strcpy(str, "#\n");
        } else if (!line_is_blank_or_comment(s) && s[0] != '[' && !strchr(s, '=')) {
                (void) add_error(st->errors, "%s:%u: expected 'Key=Value', a [Section] header or a comment",
                                 st->path, st->line);
                st->n_problems++;
                strcpy(str, "#\n");
        } else if (s[0] != '[' && !line_is_blank_or_comment(s) && strchr(s, ':') &&
                   strchr(s, ':') < strchr(s, '=')) {
                /* libinih also splits at ':'; we only speak Key=Value. */
                (void) add_error(st->errors, "%s:%u: key names cannot contain ':'", st->path, st->line);
                st->n_problems++;
                strcpy(str, "#\n");
        }
        return str;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        ParseState *st = userdata;
        bool known_section = false;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                _cleanup_free_ char *reason = NULL;
                int r;

                if (strcmp(section, config_keys[i].section) != 0)
                        continue;
                known_section = true;
                if (strcmp(name, config_keys[i].name) != 0)
                        continue;

                r = config_keys[i].parse(st->config, value, &reason);
                if (r == -ENOMEM)
                        return 0;
                if (r < 0) {
                        (void) add_error(st->errors, "%s:%u: %s=%s: %s", st->path, st->line, name, value,
                                         reason ?: "invalid value");
                        st->n_problems++;
                }
                return 1;
        }

        if (section[0] == '\0')
                (void) add_error(st->errors, "%s:%u: %s= is outside any section; put it under [Scan], [Limits], [Control] or [AutoRegister]",
                                 st->path, st->line, name);
        else if (!known_section)
                (void) add_error(st->errors, "%s:%u: unknown section [%s]", st->path, st->line, section);
        else
                (void) add_error(st->errors, "%s:%u: unknown key %s= in [%s]", st->path, st->line, name, section);
        st->n_problems++;
        return 1;
}

int config_parse_stream(Config *c, FILE *f, const char *name, ConfigErrors *errors) {
        ParseState st = { .config = c, .errors = errors, .path = name, .f = f };
        int r;

        r = ini_parse_stream(reader, &st, handler, &st);
        if (ferror(f)) {
                r = errno > 0 ? -errno : -EIO;
                (void) add_error(errors, "%s: cannot read: %s", name, strerror(-r));
                return r;
        }
        if (r == -2)
                return -ENOMEM;
        if (r > 0 && st.n_problems == 0) {
                /* libinih found a problem our reader did not. */
                (void) add_error(errors, "%s:%d: cannot parse this line", name, r);
                st.n_problems++;
        }
        return st.n_problems;
}

int config_parse_file(Config *c, const char *path, ConfigErrors *errors) {
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                (void) add_error(errors, "%s: cannot open: %s", path, strerror(-r));
                return r;
        }
        r = config_parse_stream(c, f, path, errors);
        fclose(f);
        return r;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int list_dropins(const char *dir, char ***ret, size_t *ret_n, ConfigErrors *errors) {
        _cleanup_free_ char *path = NULL;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        if (asprintf(&path, "%s/%s", dir, CONFIG_DROPIN_DIR) < 0)
                return -ENOMEM;
        d = opendir(path);
        if (!d) {
                if (errno == ENOENT) {
                        *ret = NULL;
                        *ret_n = 0;
                        return 0;
                }
                (void) add_error(errors, "%s: cannot open directory: %m", path);
                return -errno;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char **l, *full;

                if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
                        continue;
                if (n >= CONFIG_MAX_DROPINS) {
                        (void) add_error(errors, "%s: more than %d drop-ins; the rest are ignored", path,
                                         CONFIG_MAX_DROPINS);
                        break;
                }
                if (asprintf(&full, "%s/%s", path, de->d_name) < 0)
                        goto oom;
                l = realloc(names, (n + 1) * sizeof(char *));
                if (!l) {
                        free(full);
                        goto oom;
                }
                names = l;
                names[n++] = full;
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof(char *), compare_names);
        *ret = names;
        *ret_n = n;
        return 0;

oom:
        closedir(d);
        strv_clear(&names, &n);
        return -ENOMEM;
}

int config_load(const char *dir, Config **ret, ConfigErrors *errors) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *main_path = NULL;
        char **dropins = NULL;
        size_t n_dropins = 0;
        int r, problems = 0;

        r = config_new(&c);
        if (r < 0)
                return r;
        if (asprintf(&main_path, "%s/%s", dir, CONFIG_MAIN_FILE) < 0)
                return -ENOMEM;

        if (access(main_path, F_OK) == 0) {
                r = config_parse_file(c, main_path, errors);
                if (r < 0)
                        return r;
                problems += r;
        }

        r = list_dropins(dir, &dropins, &n_dropins, errors);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_dropins; i++) {
                r = config_parse_file(c, dropins[i], errors);
                if (r < 0)
                        break;
                problems += r;
        }
        strv_clear(&dropins, &n_dropins);
        if (r < 0)
                return r;
        if (problems > 0)
                return -EINVAL;

        *ret = TAKE_PTR(c);
        return 0;
}
