/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The man pages say what settings_table[] says: ksmd.conf(5) documents every
 * key in its section with its range and default, and no other key; ksmd(8)
 * documents every setting's option; org.ksmd.Manager1(5) every setting's
 * property, and which ones root may change. ksmctl(8) documents every reason
 * a page is or is not merged (reasons.h) and every metric (openmetrics.h);
 * org.ksmd.Manager1(5) every reason too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "openmetrics.h"
#include "reasons.h"
#include "settings.h"

static char *read_man_page(const char *name) {
        const char *root = getenv("KSMD_SOURCE_ROOT");
        char path[512];
        char *text;
        FILE *f;
        long n;

        assert_non_null(root);
        snprintf(path, sizeof(path), "%s/man/%s", root, name);
        f = fopen(path, "re");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        text = calloc(1, (size_t) n + 1);
        assert_non_null(text);
        assert_int_equal(fread(text, 1, (size_t) n, f), (size_t) n);
        fclose(f);
        return text;
}

/*
 * The text after the line head: a heading's up to the next "# " heading,
 * or a definition list entry's up to the next line that starts with '*' or '#'.
 */
static char *text_after(const char *text, const char *head, bool entry) {
        const char *start, *p;
        char h[128];

        snprintf(h, sizeof(h), "\n%s\n", head);
        start = strstr(text, h);
        if (!start)
                return NULL;
        start += strlen(h);
        for (p = start; *p; p++)
                if (p[0] == '\n' && (entry ? p[1] == '*' || p[1] == '#' : p[1] == '#' && p[2] == ' '))
                        break;
        return strndup(start, (size_t) (p - start));
}

/* Blanks, tabs and newlines folded to one blank, so that wrapped text compares. */
static void fold(char *s) {
        char *w = s;

        if (!s)
                return;
        for (char *r = s; *r; r++) {
                char ch = *r == '\n' || *r == '\t' ? ' ' : *r;

                if (ch == ' ' && w > s && w[-1] == ' ')
                        continue;
                *w++ = ch;
        }
        *w = '\0';
}

static void test_every_key_is_documented_in_its_section_with_range_and_default(void **state) {
        _cleanup_free_ char *man = read_man_page("ksmd.conf.5.scd");

        for (size_t i = 0; i < settings_table_size; i++) {
                const Setting *s = &settings_table[i];
                _cleanup_free_ char *sec = NULL, *entry = NULL;
                char heading[64], head[64], want[160], buf[96];

                snprintf(heading, sizeof(heading), "# [%s] SECTION", s->section);
                sec = text_after(man, heading, false);
                if (!sec)
                        fail_msg("ksmd.conf.5.scd has no '%s'", heading);
                snprintf(head, sizeof(head), "*%s=*", s->key);
                entry = text_after(sec, head, true);
                if (!entry)
                        fail_msg("ksmd.conf.5.scd does not document %s= under [%s]", s->key, s->section);
                fold(entry);
                if (setting_is_number(s)) {
                        snprintf(want, sizeof(want), "%s", setting_format_range(s, buf, sizeof(buf)));
                        if (!strstr(entry, want))
                                fail_msg("ksmd.conf.5.scd: %s= does not say its range '%s': %s", s->key,
                                         want, entry);
                }
                snprintf(want, sizeof(want), "Default: *%s*.", setting_format_default(s, buf, sizeof(buf)));
                if (!strstr(entry, want))
                        fail_msg("ksmd.conf.5.scd: %s= does not say '%s': %s", s->key, want, entry);
                if ((s->flags & SETTING_AT_START) && !strstr(entry, "when ksmd restarts"))
                        fail_msg("ksmd.conf.5.scd: %s= does not say that it takes effect when ksmd restarts",
                                 s->key);
        }
}

static void test_every_documented_key_exists(void **state) {
        _cleanup_free_ char *man = read_man_page("ksmd.conf.5.scd");
        const char *p = man;

        /* Entries are lines of the form "*Name=*". */
        while ((p = strstr(p, "\n*"))) {
                const char *name = p + 2, *eq = strstr(name, "=*\n"), *nl = strchr(name, '\n');
                char key[64];

                p = name;
                if (!eq || (nl && nl < eq) || (size_t) (eq - name) >= sizeof(key))
                        continue;
                snprintf(key, sizeof(key), "%.*s", (int) (eq - name), name);
                if (!setting_find(key))
                        fail_msg("ksmd.conf.5.scd documents %s=, which the parser does not know", key);
        }
}

/* The entry line of a setting's option in ksmd(8): "*--sleep=*_TIME_". */
static bool option_head(const Setting *s, char *buf, size_t size) {
        char opt[64];

        snprintf(buf, size, "*--%s=*_%s_", setting_option_name(s, opt, sizeof(opt)), setting_value_name(s));
        return true;
}

/* The entry line of a setting's property in org.ksmd.Manager1(5), "*SleepUSec* t (writable)";
 * none at start. */
static bool property_head(const Setting *s, char *buf, size_t size) {
        char name[64];

        if (s->flags & SETTING_AT_START)
                return false;
        snprintf(buf, size, "*%s* %s (%s)", setting_property_name(s, name, sizeof(name)),
                 setting_property_type(s), s->flags & SETTING_WRITABLE ? "writable" : "changes");
        return true;
}

/* Every setting for which head() gives an entry line has that entry under heading in the page. */
static void assert_every_setting_has_an_entry(const char *page, const char *heading,
                                              bool (*head)(const Setting *s, char *buf, size_t size)) {
        _cleanup_free_ char *man = read_man_page(page);
        _cleanup_free_ char *text = text_after(man, heading, false);

        assert_non_null(text);
        for (size_t i = 0; i < settings_table_size; i++) {
                _cleanup_free_ char *entry = NULL;
                char line[128];

                if (!head(&settings_table[i], line, sizeof(line)))
                        continue;
                entry = text_after(text, line, true);
                if (!entry)
                        fail_msg("%s does not document %s under '%s'", page, line, heading);
        }
}

static void test_every_option_is_documented(void **state) {
        assert_every_setting_has_an_entry("ksmd.8.scd", "# OPTIONS", option_head);
}

static void test_every_property_is_documented(void **state) {
        assert_every_setting_has_an_entry("org.ksmd.Manager1.5.scd", "# PROPERTIES", property_head);
}

static void test_every_reason_is_documented(void **state) {
        _cleanup_free_ char *ksmctl = read_man_page("ksmctl.8.scd");
        _cleanup_free_ char *api = read_man_page("org.ksmd.Manager1.5.scd");
        _cleanup_free_ char *explain = text_after(ksmctl, "*explain* _ID_", true);

        assert_non_null(explain);
        fold(api);
        for (int r = 0; r < _PAGE_REASON_MAX; r++) {
                char row[64], word[64];

                /* A row of explain's table in ksmctl(8), and a *key* in GetStatistics() of the API. */
                snprintf(row, sizeof(row), "|  %s\n", page_reason_to_string((PageReason) r));
                if (!strstr(ksmctl, row))
                        fail_msg("ksmctl.8.scd: explain's table has no row for the reason %s",
                                 page_reason_to_string((PageReason) r));
                snprintf(word, sizeof(word), "*%s*", page_reason_to_string((PageReason) r));
                if (!strstr(api, word))
                        fail_msg("org.ksmd.Manager1.5.scd does not name the reason %s", word);
        }
}

static void test_every_metric_is_documented(void **state) {
        _cleanup_free_ char *man = read_man_page("ksmctl.8.scd");
        _cleanup_free_ char *metrics = text_after(man, "# METRICS", false);
        size_t n = 0;
        char name[128];

        assert_non_null(metrics);
        for (size_t i = 0; metric_family_sample_name(i, name, sizeof(name)); i++, n++) {
                const char *p = metrics;
                bool found = false;

                /* As a whole word of a row of the table: followed by '{', ',' or the end of the line. */
                while (!found && (p = strstr(p, name))) {
                        p += strlen(name);
                        found = *p == '{' || *p == ',' || *p == '\n';
                }
                if (!found)
                        fail_msg("ksmctl.8.scd: METRICS does not name %s", name);
        }
        assert_true(n > 30);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_key_is_documented_in_its_section_with_range_and_default),
                cmocka_unit_test(test_every_documented_key_exists),
                cmocka_unit_test(test_every_option_is_documented),
                cmocka_unit_test(test_every_property_is_documented),
                cmocka_unit_test(test_every_reason_is_documented),
                cmocka_unit_test(test_every_metric_is_documented),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
