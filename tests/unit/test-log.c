/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char output[16384];
static FILE *capture;
static int saved_stderr = -1;

/* stderr goes to a temporary file until end_capture(), which returns what was written. */
static void start_capture(void) {
        capture = tmpfile();
        assert_non_null(capture);
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(saved_stderr >= 0);
        assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

static const char *end_capture(void) {
        size_t n;

        fflush(stderr);
        assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
        close(saved_stderr);
        rewind(capture);
        n = fread(output, 1, sizeof(output) - 1, capture);
        output[n] = '\0';
        fclose(capture);
        return output;
}

static int setup_journal(void **state) {
        setenv("JOURNAL_STREAM", "8:12345", 1);
        unsetenv("KSMD_LOG_LEVEL");
        log_setup();
        return 0;
}

static void test_a_newline_in_an_argument_forges_no_journal_line(void **state) {
        start_capture();
        log_info("Registered %s automatically.", "x\n<0>ksmd: forged");
        assert_string_equal(end_capture(), "<6>Registered x\\x0a<0>ksmd: forged automatically.\n");
}

static void test_control_characters_and_bad_utf8_are_escaped_and_escapes_kept(void **state) {
        start_capture();
        log_warning("%s", "\x1b[2J\r\xff already \\x0a escaped");
        assert_string_equal(end_capture(), "<4>\\x1b[2J\\x0d\\xff already \\x0a escaped\n");
}

static void test_a_long_message_is_one_marked_line(void **state) {
        char *big = malloc(20000);
        const char *out;
        size_t n;

        assert_non_null(big);
        memset(big, '\n', 19999);
        big[19999] = '\0';
        start_capture();
        log_info("%s", big);
        out = end_capture();
        n = strlen(out);
        assert_true(n < 4096 + 4);
        assert_memory_equal(out + n - 4, "...\n", 4);
        assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
        free(big);
}

static void test_errno_formats_still_work(void **state) {
        start_capture();
        assert_int_equal(log_error_errno(-ENOENT, "Failed: %m"), -ENOENT);
        assert_string_equal(end_capture(), "<3>Failed: No such file or directory\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_a_newline_in_an_argument_forges_no_journal_line),
                cmocka_unit_test(test_control_characters_and_bad_utf8_are_escaped_and_escapes_kept),
                cmocka_unit_test(test_a_long_message_is_one_marked_line),
                cmocka_unit_test(test_errno_formats_still_work),
        };

        return cmocka_run_group_tests(tests, setup_journal, NULL);
}
