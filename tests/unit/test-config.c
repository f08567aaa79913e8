/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"
#include "escape.h"
#include "parse-util.h"

/* Each test gets a fresh config directory. */
typedef struct Fixture {
        char dir[64];
        ConfigErrors errors;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/ksmd-test-config-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        config_errors_clear(&f->errors);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void write_file(Fixture *f, const char *name, const char *text) {
        char path[256];
        FILE *o;

        snprintf(path, sizeof(path), "%s/%s", f->dir, name);
        if (strchr(name, '/')) {
                char d[256];

                snprintf(d, sizeof(d), "%s/%s", f->dir, CONFIG_DROPIN_DIR);
                (void) mkdir(d, 0755);
        }
        o = fopen(path, "we");
        assert_non_null(o);
        fputs(text, o);
        fclose(o);
}

/* Loads f->dir expecting failure, and asserts that the one error message is f->dir + want. */
static void assert_single_error(Fixture *f, const char *want) {
        Settings c = {};
        char expected[512];

        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), -EINVAL);
        assert_null(c.socket_path); /* nothing returned */
        snprintf(expected, sizeof(expected), "%s%s", f->dir, want);
        if (f->errors.n != 1 || strcmp(f->errors.messages[0], expected) != 0) {
                for (size_t i = 0; i < f->errors.n; i++)
                        print_message("got: %s\n", f->errors.messages[i]);
                print_message("want: %s\n", expected);
                fail();
        }
}

static void test_missing_files_give_the_defaults(void **state) {
        Fixture *f = *state;
        _cleanup_(settings_done) Settings c = {}, defaults = {};

        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), 0);
        assert_int_equal(f->errors.n, 0);
        assert_int_equal(settings_init(&defaults), 0);
        for (size_t i = 0; i < settings_table_size; i++)
                if (!setting_equal(&settings_table[i], &c, &defaults))
                        fail_msg("%s= is not at its default", settings_table[i].key);
        assert_string_equal(c.socket_path, "/run/ksmd/ksmd.sock");
        assert_int_equal(c.idle_max_cpu_bp, 5);
}

static void test_command_line_comes_after_the_files(void **state) {
        Fixture *f = *state;
        _cleanup_(settings_done) Settings c = {};

        write_file(f, CONFIG_MAIN_FILE, "[Scan]\nPagesToScan=100\nSleep=1s\n"
                   "[AutoRegister]\nUser=0\nExecutable=qemu-*\n");
        assert_int_equal(config_load(f->dir, STRV_MAKE("Sleep=5ms", "Executable=kvm"), 2, &c,
                                     &f->errors), 0);
        assert_int_equal(c.pages_to_scan, 100);
        assert_int_equal(c.sleep_usec, 5000);
        /* A list appends, as a later drop-in would. */
        assert_int_equal(c.n_executable_patterns, 2);
        assert_string_equal(c.executable_patterns[1], "kvm");

        settings_done(&c);
        assert_int_equal(config_load(NULL, STRV_MAKE("Sleep=2h"), 1, &c, &f->errors), -EINVAL);
        assert_int_equal(f->errors.n, 1);
        assert_string_equal(f->errors.messages[0],
                            "command line: Sleep=2h: '2h' is not a time span from 0 to 1min "
                            "(e.g. 20ms, 1.5s, 5min)");
}

static void test_every_key_is_applied(void **state) {
        Fixture *f = *state;
        _cleanup_(settings_done) Settings c = {};

        write_file(f, CONFIG_MAIN_FILE,
                   "# comment\n"
                   "; another comment\n"
                   "\n"
                   "[Scan]\n"
                   "Mode=estimate\n"
                   "PagesToScan = 5000\n"
                   "Sleep=5ms\n"
                   "TargetScanTime=2min\n"
                   "MaxCPU=50%\n"
                   "IdleSleep=30s\n"
                   "IdleMaxCPU=2.5%\n"
                   "  [Limits]\n"
                   "    MaxMetadata=1G\n"
                   "MaxRegions=10\n"
                   "MaxRegionsPerClient=5\n"
                   "MaxConnections=3\n"
                   "[Control]\n"
                   "Socket=/run/test.sock\n"
                   "SystemBus=yes\n"
                   "AllowGroups=root 4242\n"
                   "[AutoRegister]\n"
                   "Cgroup=/machine.slice/*\n"
                   "Executable=qemu-system-*\n"
                   "Executable=cloud-hypervisor\n"
                   "User=root 64055\n"
                   "Group=0\n"
                   "[Domains]\n"
                   "DomainPolicy=region\n");

        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), 0);
        assert_int_equal(f->errors.n, 0);
        assert_int_equal(c.mode, SCAN_MODE_ESTIMATE);
        assert_int_equal(c.pages_to_scan, 5000);
        assert_int_equal(c.sleep_usec, 5000);
        assert_int_equal(c.target_scan_time_usec, 120 * USEC_PER_SEC);
        assert_int_equal(c.max_cpu_percent, 50);
        assert_int_equal(c.idle_sleep_usec, 30 * USEC_PER_SEC);
        assert_int_equal(c.idle_max_cpu_bp, 250);
        assert_int_equal(c.max_metadata_bytes, UINT64_C(1) << 30);
        assert_int_equal(c.max_regions, 10);
        assert_int_equal(c.max_regions_per_client, 5);
        assert_int_equal(c.max_connections, 3);
        assert_string_equal(c.socket_path, "/run/test.sock");
        assert_true(c.system_bus);
        assert_int_equal(c.n_allow_groups, 2);
        assert_int_equal(c.allow_groups[0], 0);
        assert_int_equal(c.allow_groups[1], 4242);
        assert_int_equal(c.n_cgroup_patterns, 1);
        assert_string_equal(c.cgroup_patterns[0], "/machine.slice/*");
        assert_int_equal(c.n_executable_patterns, 2);
        assert_string_equal(c.executable_patterns[1], "cloud-hypervisor");
        assert_int_equal(c.n_users, 2);
        assert_int_equal(c.users[0], 0);
        assert_int_equal(c.users[1], 64055);
        assert_int_equal(c.n_groups, 1);
        assert_int_equal(c.domain_policy, DOMAIN_POLICY_REGION);
}

static void test_executable_without_owners_is_refused(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "[AutoRegister]\nExecutable=qemu-system-*\n");
        assert_single_error(f, ": Executable= of [AutoRegister] needs User= or Group= as well: a file name "
                            "alone proves nothing, anyone can run a program of any name");
}

static void test_dropins_override_in_name_order_and_lists_reset(void **state) {
        Fixture *f = *state;
        _cleanup_(settings_done) Settings c = {};

        write_file(f, CONFIG_MAIN_FILE,
                   "[Scan]\nPagesToScan=100\n[AutoRegister]\nExecutable=qemu-*\nGroup=0\n");
        write_file(f, CONFIG_DROPIN_DIR "/20-late.conf", "[Scan]\nPagesToScan=300\n");
        write_file(f, CONFIG_DROPIN_DIR "/10-early.conf",
                   "[Scan]\nPagesToScan=200\n[AutoRegister]\nExecutable=\nExecutable=kvm\n");
        write_file(f, CONFIG_DROPIN_DIR "/30-ignored.txt", "this is not a drop-in\n");

        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), 0);
        assert_int_equal(c.pages_to_scan, 300);
        assert_int_equal(c.n_executable_patterns, 1);
        assert_string_equal(c.executable_patterns[0], "kvm");
}

static void test_unknown_key_names_file_and_line(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "[Scan]\n\nPagesToScan=10\nPagesToScann=10\n");
        assert_single_error(f, "/ksmd.conf:4: unknown key PagesToScann= in [Scan]");
}

static void test_unknown_section(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "[Scanner]\nPagesToScan=10\n");
        assert_single_error(f, "/ksmd.conf:2: unknown section [Scanner]");
}

static void test_key_outside_section(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "PagesToScan=10\n");
        assert_single_error(f, "/ksmd.conf:1: PagesToScan= is outside any section; put it under [Scan]");
        config_errors_clear(&f->errors);
        write_file(f, CONFIG_MAIN_FILE, "Bogus=10\n");
        assert_single_error(f, "/ksmd.conf:1: unknown key Bogus= outside any section");
}

static void test_line_without_equals(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "[Scan]\nPagesToScan 10\n");
        assert_single_error(f, "/ksmd.conf:2: expected 'Key=Value', a [Section] header or a comment");
}

static void test_colon_is_not_a_separator(void **state) {
        Fixture *f = *state;

        write_file(f, CONFIG_MAIN_FILE, "[Scan]\nPagesToScan: 10 = 3\n");
        assert_single_error(f, "/ksmd.conf:2: key names cannot contain ':'");
}

static void test_unclosed_section(void **state) {
        Fixture *f = *state;

        Settings c = {};

        /* The header is refused, so the key after it has no section: both are reported. */
        write_file(f, CONFIG_MAIN_FILE, "[Scan\nPagesToScan=10\n");
        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), -EINVAL);
        assert_null(c.socket_path); /* nothing returned */
        assert_int_equal(f->errors.n, 2);
        assert_non_null(strstr(f->errors.messages[0], "ksmd.conf:1: section header lacks its closing ']'"));
        assert_non_null(strstr(f->errors.messages[1], "ksmd.conf:2: PagesToScan= is outside any section"));
}

static void test_overlong_line(void **state) {
        Fixture *f = *state;
        char text[1024] = "[Control]\nSocket=/";

        memset(text + strlen(text), 'a', 600);
        strcat(text, "\n[Scan]\nPagesToScan=7\n");
        write_file(f, CONFIG_MAIN_FILE, text);
        assert_single_error(f, "/ksmd.conf:2: line longer than 198 characters");
}

static void test_every_bad_value_is_reported(void **state) {
        static const struct {
                const char *line;
                const char *error;
        } cases[] = {
                { "[Scan]\nMode=fast\n", "Mode=fast: 'fast' is not one of 'auto' or 'estimate'" },
                { "[Scan]\nPagesToScan=0\n", "PagesToScan=0: '0' is not a whole number from 1 to 1000000" },
                { "[Scan]\nPagesToScan=lots\n",
                  "PagesToScan=lots: 'lots' is not a whole number from 1 to 1000000" },
                { "[Scan]\nSleep=2h\n",
                  "Sleep=2h: '2h' is not a time span from 0 to 1min (e.g. 20ms, 1.5s, 5min)" },
                { "[Scan]\nTargetScanTime=10ms\n",
                  "TargetScanTime=10ms: '10ms' is not a time span from 1s to 1d, or off "
                  "(e.g. 20ms, 1.5s, 5min)" },
                { "[Scan]\nMaxCPU=0\n", "MaxCPU=0: '0' is not a percentage from 1% to 6400%" },
                { "[Scan]\nMaxCPU=6500%\n", "MaxCPU=6500%: '6500%' is not a percentage from 1% to 6400%" },
                { "[Scan]\nScanThreads=65\n", "ScanThreads=65: '65' is not a whole number from 0 to 64" },
                { "[Scan]\nIdleSleep=2h\n",
                  "IdleSleep=2h: '2h' is not a time span from 0 to 1h (e.g. 20ms, 1.5s, 5min)" },
                { "[Scan]\nIdleMaxCPU=0\n",
                  "IdleMaxCPU=0: '0' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Scan]\nIdleMaxCPU=0.001\n",
                  "IdleMaxCPU=0.001: '0.001' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Scan]\nIdleMaxCPU=100.5%\n",
                  "IdleMaxCPU=100.5%: '100.5%' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Scan]\nIdleMaxCPU=.5\n",
                  "IdleMaxCPU=.5: '.5' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Scan]\nIdleMaxCPU=1.\n",
                  "IdleMaxCPU=1.: '1.' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Scan]\nIdleMaxCPU=1%%\n",
                  "IdleMaxCPU=1%%: '1%%' is not a percentage from 0.01% to 100% "
                  "with at most two decimals (e.g. 0.25%)" },
                { "[Control]\nSystemBus=perhaps\n",
                  "SystemBus=perhaps: 'perhaps' is not a boolean; use yes or no" },
                { "[Limits]\nMaxMetadata=10K\n",
                  "MaxMetadata=10K: '10K' is not a size from 1M to 1T (e.g. 256M, 2G)" },
                { "[Limits]\nMaxRegions=0\n", "MaxRegions=0: '0' is not a whole number from 1 to 65536" },
                { "[Limits]\nMaxRegionsPerClient=x\n",
                  "MaxRegionsPerClient=x: 'x' is not a whole number from 1 to 65536" },
                { "[Limits]\nMaxConnections=5000\n",
                  "MaxConnections=5000: '5000' is not a whole number from 1 to 4096" },
                { "[Control]\nSocket=relative.sock\n",
                  "Socket=relative.sock: 'relative.sock' is not an absolute path "
                  "shorter than 108 characters" },
                { "[Control]\nSystemBus=2\n", "SystemBus=2: '2' is not a boolean; use yes or no" },
                { "[Control]\nAllowGroups=no-such-group-ksmd\n",
                  "AllowGroups=no-such-group-ksmd: group 'no-such-group-ksmd' does not exist" },
                { "[Domains]\nDomainPolicy=tenant\n",
                  "DomainPolicy=tenant: 'tenant' is not one of 'host', 'owner' or 'region'" },
                { "[AutoRegister]\nCgroup=machine.slice\n",
                  "Cgroup=machine.slice: 'machine.slice' is not a cgroup path pattern; it starts with / "
                  "(e.g. /machine.slice/*)" },
                { "[AutoRegister]\nUser=no-such-user-ksmd\n",
                  "User=no-such-user-ksmd: user 'no-such-user-ksmd' does not exist" },
                { "[AutoRegister]\nExecutable=/usr/bin/qemu\n",
                  "Executable=/usr/bin/qemu: '/usr/bin/qemu' is not a file name pattern; it has no / "
                  "(e.g. qemu-system-*)" },
        };
        Fixture *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char want[512];

                config_errors_clear(&f->errors);
                write_file(f, CONFIG_MAIN_FILE, cases[i].line);
                snprintf(want, sizeof(want), "/ksmd.conf:2: %s", cases[i].error);
                assert_single_error(f, want);
        }
}

static void test_what_messages_quote_from_files_is_escaped(void **state) {
        static const struct {
                const char *text;
                const char *error;
        } cases[] = {
                { "[Scan]\nPagesToScan=12\x1b]0;x\x07\xff\xc3\n",
                  "ksmd.conf:2: PagesToScan=12\\x1b]0;x\\x07\\xff\\xc3: '12\\x1b]0;x\\x07\\xff\\xc3' "
                  "is not a whole number from 1 to 1000000" },
                { "[Sc\x1b[2Jan]\nPagesToScan=1\n", "ksmd.conf:2: unknown section [Sc\\x1b[2Jan]" },
                { "[Scan]\nPages\xc3ToScan=1\n", "ksmd.conf:2: unknown key Pages\\xc3ToScan= in [Scan]" },
                { "\x7f=1\n", "ksmd.conf:1: unknown key \\x7f= outside any section" },
                { "[AutoRegister]\nCgroup=a\\b\n",
                  "ksmd.conf:2: Cgroup=a\\x5cb: 'a\\x5cb' is not a cgroup path pattern; it starts with / "
                  "(e.g. /machine.slice/*)" },
                { "[Scan]\nMode=\xc2\x9b\n",
                  "ksmd.conf:2: Mode=\\xc2\\x9b: '\\xc2\\x9b' is not one of 'auto' or 'estimate'" },
                /* Patterns are D-Bus properties: only printable UTF-8. */
                { "[AutoRegister]\nExecutable=qemu-\xff*\n",
                  "ksmd.conf:2: Executable=qemu-\\xff*: 'qemu-\\xff*' holds a control character or a byte "
                  "that is not UTF-8; match those with ? or *" },
                { "[AutoRegister]\nCgroup=/machine.slice/\x1b*\n",
                  "ksmd.conf:2: Cgroup=/machine.slice/\\x1b*: '/machine.slice/\\x1b*' holds a control "
                  "character or a byte that is not UTF-8; match those with ? or *" },
        };
        Fixture *f = *state;
        _cleanup_(settings_done) Settings s = {};
        char long_value[600], want[512];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                config_errors_clear(&f->errors);
                write_file(f, CONFIG_MAIN_FILE, cases[i].text);
                snprintf(want, sizeof(want), "/%s", cases[i].error);
                assert_single_error(f, want);
        }

        /* A drop-in's file name is quoted escaped too. */
        config_errors_clear(&f->errors);
        write_file(f, CONFIG_MAIN_FILE, "");
        write_file(f, CONFIG_DROPIN_DIR "/bad\nname\xff.conf", "[Scan]\nMode=x\n");
        assert_single_error(f, "/" CONFIG_DROPIN_DIR "/bad\\x0aname\\xff.conf:2: Mode=x: "
                            "'x' is not one of 'auto' or 'estimate'");

        /* So is an assignment from the command line, and a long value is cut on a character boundary. */
        config_errors_clear(&f->errors);
        assert_int_equal(settings_init(&s), 0);
        assert_int_equal(config_parse_assignment(&s, "Mode=\x1b", "command line", &f->errors), 1);
        assert_string_equal(f->errors.messages[0], "command line: Mode=\\x1b: '\\x1b' is not one of "
                            "'auto' or 'estimate'");
        strcpy(long_value, "Mode=");
        for (size_t i = 0; i < 250; i++)
                strcat(long_value, "\xc3\xa9");
        assert_int_equal(config_parse_assignment(&s, long_value, "command line", &f->errors), 1);
        assert_true(utf8_is_valid(f->errors.messages[1], strlen(f->errors.messages[1])));
        assert_non_null(strstr(f->errors.messages[1], "\xc3\xa9...: '\xc3\xa9"));
        assert_non_null(strstr(f->errors.messages[1], "\xc3\xa9...' is not one of"));
}

static void test_all_problems_are_reported_and_nothing_is_applied(void **state) {
        Fixture *f = *state;
        Settings c = {};

        write_file(f, CONFIG_MAIN_FILE, "[Scan]\nPagesToScan=0\nSleep=1s\nBogus=1\n");
        write_file(f, CONFIG_DROPIN_DIR "/50-x.conf", "[Limits]\nMaxRegions=-3\n");
        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), -EINVAL);
        assert_null(c.socket_path); /* nothing returned */
        assert_int_equal(f->errors.n, 3);
        assert_non_null(strstr(f->errors.messages[0], "ksmd.conf:2: PagesToScan=0"));
        assert_non_null(strstr(f->errors.messages[1], "ksmd.conf:4: unknown key Bogus="));
        assert_non_null(strstr(f->errors.messages[2], "50-x.conf:2: MaxRegions=-3"));
}

static void test_unreadable_file_is_an_error(void **state) {
        Fixture *f = *state;
        Settings c = {};
        char path[256];

        /* A directory where the file should be: open works, reading fails. */
        snprintf(path, sizeof(path), "%s/%s", f->dir, CONFIG_MAIN_FILE);
        assert_int_equal(mkdir(path, 0755), 0);
        assert_int_equal(config_load(f->dir, NULL, 0, &c, &f->errors), -EISDIR);
        assert_null(c.socket_path); /* nothing returned */
        assert_int_equal(f->errors.n, 1);
        assert_non_null(strstr(f->errors.messages[0], "cannot read"));
}

static void test_mode_names_round_trip(void **state) {
        for (ScanMode m = 0; m < _SCAN_MODE_MAX; m++)
                assert_int_equal(scan_mode_from_string(scan_mode_to_string(m)), m);
        assert_int_equal(scan_mode_from_string("merge"), _SCAN_MODE_INVALID);
        assert_null(scan_mode_to_string(_SCAN_MODE_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_missing_files_give_the_defaults, setup, teardown),
                cmocka_unit_test_setup_teardown(test_command_line_comes_after_the_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_key_is_applied, setup, teardown),
                cmocka_unit_test_setup_teardown(test_executable_without_owners_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dropins_override_in_name_order_and_lists_reset, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_unknown_key_names_file_and_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_section, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_outside_section, setup, teardown),
                cmocka_unit_test_setup_teardown(test_line_without_equals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_colon_is_not_a_separator, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unclosed_section, setup, teardown),
                cmocka_unit_test_setup_teardown(test_overlong_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_bad_value_is_reported, setup, teardown),
                cmocka_unit_test_setup_teardown(test_what_messages_quote_from_files_is_escaped, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_all_problems_are_reported_and_nothing_is_applied, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_unreadable_file_is_an_error, setup, teardown),
                cmocka_unit_test(test_mode_names_round_trip),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
