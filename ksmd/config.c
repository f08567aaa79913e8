/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"
#include "escape.h"
#include "strv.h"

#define CONFIG_MAX_DROPINS 256
/* Keys, sections and values a message quotes: escaped (escape.h) and cut to this many bytes. */
#define CONFIG_QUOTE_MAX 256

/* Reads and parses one file: the state the libinih callbacks share. */
typedef struct ParseState {
        Settings *settings;
        ConfigErrors *errors;
        const char *path;               /* escaped, for the messages */
        FILE *f;
        unsigned line;                  /* line the reader returned last */
        int n_problems;
} ParseState;

/*
 * Messages reach the log and Reload's D-Bus error: what they quote from a file
 * is escaped where it is quoted, and the whole passes escape_text() in case a
 * part was not.
 */
static int add_error(ConfigErrors *e, const char *format, ...) _printf_(2, 3);
static int add_error(ConfigErrors *e, const char *format, ...) {
        _cleanup_free_ char *raw = NULL;
        char **m, *s;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&raw, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        s = escape_text_dup(raw);
        if (!s)
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
                (void) add_error(st->errors, "%s:%u: line longer than %d characters", st->path, st->line,
                                 num - 2);
                st->n_problems++;
                strcpy(str, "#\n");
                return str;
        }

        skip = strspn(str, " \t");
        memmove(str, str + skip, n - skip + 1);
        s = str;
        if (s[0] == '[' && !strchr(s, ']')) {
                (void) add_error(st->errors, "%s:%u: section header lacks its closing ']'", st->path,
                                 st->line);
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
        const Setting *setting = setting_find(name);
        char name_text[CONFIG_QUOTE_MAX], section_text[CONFIG_QUOTE_MAX];
        bool known_section = false;

        for (size_t i = 0; i < settings_table_size; i++)
                if (strcmp(section, settings_table[i].section) == 0)
                        known_section = true;

        escape_str(name, name_text, sizeof(name_text));
        escape_str(section, section_text, sizeof(section_text));
        if (section[0] == '\0' && setting)
                (void) add_error(st->errors, "%s:%u: %s= is outside any section; put it under [%s]",
                                 st->path, st->line, name_text, setting->section);
        else if (section[0] == '\0')
                (void) add_error(st->errors, "%s:%u: unknown key %s= outside any section", st->path,
                                 st->line, name_text);
        else if (!known_section)
                (void) add_error(st->errors, "%s:%u: unknown section [%s]", st->path, st->line,
                                 section_text);
        else if (!setting || strcmp(setting->section, section) != 0)
                (void) add_error(st->errors, "%s:%u: unknown key %s= in [%s]", st->path, st->line, name_text,
                                 section_text);
        else {
                _cleanup_free_ char *reason = NULL;
                char value_text[CONFIG_QUOTE_MAX];
                int r;

                r = setting_parse(setting, st->settings, value, &reason);
                if (r == -ENOMEM)
                        return 0;
                if (r >= 0)
                        return 1;
                (void) add_error(st->errors, "%s:%u: %s=%s: %s", st->path, st->line, name_text,
                                 escape_str(value, value_text, sizeof(value_text)),
                                 reason ?: "invalid value");
        }
        st->n_problems++;
        return 1;
}

int config_parse_stream(Settings *settings, FILE *f, const char *name, ConfigErrors *errors) {
        _cleanup_free_ char *name_text = escape_strdup(name);
        ParseState st = { .settings = settings, .errors = errors, .path = name_text, .f = f };
        int r;

        if (!name_text)
                return -ENOMEM;
        r = ini_parse_stream(reader, &st, handler, &st);
        if (ferror(f)) {
                r = errno > 0 ? -errno : -EIO;
                (void) add_error(errors, "%s: cannot read: %s", name_text, strerror(-r));
                return r;
        }
        if (r == -2)
                return -ENOMEM;
        if (r > 0 && st.n_problems == 0) {
                /* libinih found a problem our reader did not. */
                (void) add_error(errors, "%s:%d: cannot parse this line", name_text, r);
                st.n_problems++;
        }
        return st.n_problems;
}

int config_parse_file(Settings *settings, const char *path, ConfigErrors *errors) {
        FILE *f;
        int r;

        f = fopen(path, "re");
        if (!f) {
                _cleanup_free_ char *path_text = NULL;

                r = -errno;
                path_text = escape_strdup(path);
                (void) add_error(errors, "%s: cannot open: %s", path_text ?: "?", strerror(-r));
                return r;
        }
        r = config_parse_stream(settings, f, path, errors);
        fclose(f);
        return r;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int list_dropins(const char *dir, char ***ret, size_t *ret_n, ConfigErrors *errors) {
        _cleanup_free_ char *path = NULL, *path_text = NULL;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        if (asprintf(&path, "%s/%s", dir, CONFIG_DROPIN_DIR) < 0)
                return -ENOMEM;
        path_text = escape_strdup(path);
        if (!path_text)
                return -ENOMEM;
        d = opendir(path);
        if (!d) {
                int r = -errno;

                if (r == -ENOENT) {
                        *ret = NULL;
                        *ret_n = 0;
                        return 0;
                }
                (void) add_error(errors, "%s: cannot open directory: %s", path_text, strerror(-r));
                return r;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char **l, *full;

                if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
                        continue;
                if (n >= CONFIG_MAX_DROPINS) {
                        (void) add_error(errors, "%s: more than %d drop-ins; the rest are ignored",
                                         path_text, CONFIG_MAX_DROPINS);
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
        strv_free_n(names, n);
        return -ENOMEM;
}

int config_parse_assignment(Settings *settings, const char *assignment, const char *origin,
                            ConfigErrors *errors) {
        _cleanup_free_ char *key = NULL, *reason = NULL;
        const char *eq = strchr(assignment, '=');
        char assignment_text[CONFIG_QUOTE_MAX];
        const Setting *setting;
        int r;

        key = eq ? strndup(assignment, (size_t) (eq - assignment)) : NULL;
        if (eq && !key)
                return -ENOMEM;
        setting = key ? setting_find(key) : NULL;
        escape_str(assignment, assignment_text, sizeof(assignment_text));
        if (!setting) {
                (void) add_error(errors, "%s: %s: not a Key=Value assignment of a known key", origin,
                                 assignment_text);
                return 1;
        }
        r = setting_parse(setting, settings, eq + 1, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                (void) add_error(errors, "%s: %s: %s", origin, assignment_text, reason ?: "invalid value");
                return 1;
        }
        return 0;
}

int config_load(const char *dir, char *const *overrides, size_t n_overrides, Settings *ret,
                ConfigErrors *errors) {
        _cleanup_(settings_done) Settings s = {};
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ char *main_path = NULL;
        char **dropins = NULL;
        size_t n_dropins = 0;
        int r, problems = 0;

        r = settings_init(&s);
        if (r < 0)
                return r;

        if (dir) {
                if (asprintf(&main_path, "%s/%s", dir, CONFIG_MAIN_FILE) < 0)
                        return -ENOMEM;
                if (access(main_path, F_OK) == 0) {
                        r = config_parse_file(&s, main_path, errors);
                        if (r < 0)
                                return r;
                        problems += r;
                }

                r = list_dropins(dir, &dropins, &n_dropins, errors);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_dropins; i++) {
                        r = config_parse_file(&s, dropins[i], errors);
                        if (r < 0)
                                break;
                        problems += r;
                }
                strv_free_n(dropins, n_dropins);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < n_overrides; i++) {
                r = config_parse_assignment(&s, overrides[i], "command line", errors);
                if (r < 0)
                        return r;
                problems += r;
        }
        if (problems > 0)
                return -EINVAL;
        r = settings_check(&s, &reason);
        if (r < 0) {
                (void) add_error(errors, "%s: %s", dir ?: "command line", reason ?: "inconsistent settings");
                return -EINVAL;
        }

        *ret = s;
        s = (Settings) {};
        return 0;
}
