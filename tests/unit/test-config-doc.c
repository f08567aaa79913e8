/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The man page ksmd.conf(5) documents every key the parser knows, in its section, and no other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static char *read_man_page(void) {
        const char *root = getenv("KSMD_SOURCE_ROOT");
        char path[512];
        char *text;
        FILE *f;
        long n;

        assert_non_null(root);
        snprintf(path, sizeof(path), "%s/man/ksmd.conf.5.scd", root);
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

/* The text of "# [Section] SECTION" up to the next "# " heading. */
static char *section_text(const char *man, const char *section) {
        char heading[64];
        const char *start, *end;

        snprintf(heading, sizeof(heading), "\n# [%s] SECTION\n", section);
        start = strstr(man, heading);
        if (!start)
                return NULL;
        start += strlen(heading);
        end = strstr(start, "\n# ");
        return strndup(start, end ? (size_t) (end - start) : strlen(start));
}

static void test_every_key_is_documented_in_its_section(void **state) {
        _cleanup_free_ char *man = read_man_page();

        for (size_t i = 0; i < config_n_keys; i++) {
                _cleanup_free_ char *sec = section_text(man, config_keys[i].section);
                char entry[128];

                if (!sec)
                        fail_msg("ksmd.conf.5.scd has no '# [%s] SECTION'", config_keys[i].section);
                snprintf(entry, sizeof(entry), "\n*%s=*\n", config_keys[i].name);
                if (!strstr(sec, entry))
                        fail_msg("ksmd.conf.5.scd does not document %s= under [%s]", config_keys[i].name,
                                 config_keys[i].section);
        }
}

static void test_every_documented_key_exists(void **state) {
        _cleanup_free_ char *man = read_man_page();
        const char *p = man;

        /* Entries are lines of the form "*Name=*". */
        while ((p = strstr(p, "\n*"))) {
                const char *name = p + 2, *eq = strstr(name, "=*\n"), *nl = strchr(name, '\n');
                bool found = false;

                p = name;
                if (!eq || (nl && nl < eq))
                        continue;
                for (size_t i = 0; i < config_n_keys; i++)
                        if (strlen(config_keys[i].name) == (size_t) (eq - name) &&
                            strncmp(config_keys[i].name, name, (size_t) (eq - name)) == 0)
                                found = true;
                if (!found)
                        fail_msg("ksmd.conf.5.scd documents %.*s=, which the parser does not know",
                                 (int) (eq - name), name);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_key_is_documented_in_its_section),
                cmocka_unit_test(test_every_documented_key_exists),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
