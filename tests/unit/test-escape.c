/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escape.h"
#include "macro.h"

/*
 * An independent UTF-8 decoder, by the bit patterns: the code point of the
 * character at p, its length in *ret_len, or -1 if it is not well-formed.
 */
static int32_t ref_decode(const uint8_t *p, size_t n, size_t *ret_len) {
        static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        uint32_t cp;
        size_t k;

        if (p[0] < 0x80)
                k = 1, cp = p[0];
        else if ((p[0] & 0xe0) == 0xc0)
                k = 2, cp = p[0] & 0x1f;
        else if ((p[0] & 0xf0) == 0xe0)
                k = 3, cp = p[0] & 0x0f;
        else if ((p[0] & 0xf8) == 0xf0)
                k = 4, cp = p[0] & 0x07;
        else
                return -1;
        if (k > n)
                return -1;
        for (size_t j = 1; j < k; j++) {
                if ((p[j] & 0xc0) != 0x80)
                        return -1;
                cp = cp << 6 | (p[j] & 0x3f);
        }
        if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return -1;
        *ret_len = k;
        return (int32_t) cp;
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* What every result must be: valid UTF-8, no control character, every backslash an escape. */
static void check_escaped(const char *out) {
        const uint8_t *p = (const uint8_t *) out;
        size_t n = strlen(out), k;

        for (size_t i = 0; i < n; i += k) {
                int32_t cp = ref_decode(p + i, n - i, &k);

                if (cp < 0)
                        fail_msg("not valid UTF-8 at byte %zu of \"%s\"", i, out);
                if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
                        fail_msg("control character U+%04X at byte %zu of \"%s\"", (unsigned) cp, i, out);
                if (cp == '\\' &&
                    !(i + 3 < n && out[i + 1] == 'x' && is_hex(out[i + 2]) && is_hex(out[i + 3])))
                        fail_msg("a backslash that starts no escape at byte %zu of \"%s\"", i, out);
        }
        assert_true(utf8_is_valid(out, n));
}

/* Reads the original bytes back from an escaped string; returns their number. */
static size_t unescape(const char *s, uint8_t *out) {
        size_t n = 0;

        for (size_t i = 0; s[i];) {
                if (s[i] == '\\') {
                        char hex[3] = { s[i + 2], s[i + 3], 0 };

                        out[n++] = (uint8_t) strtoul(hex, NULL, 16);
                        i += 4;
                } else
                        out[n++] = (uint8_t) s[i++];
        }
        return n;
}

static void check_round_trip(const void *in, size_t n) {
        char out[ESCAPE_SIZE_MAX(64)], again[ESCAPE_SIZE_MAX(64)];
        uint8_t back[64];

        assert_true(n <= 64);
        escape_mem(in, n, out, sizeof(out));
        check_escaped(out);
        assert_int_equal(unescape(out, back), n);
        assert_memory_equal(back, in, n);
        /* Escaped text passes escape_text() unchanged. */
        assert_string_equal(escape_text(out, again, sizeof(again)), out);
}

static void test_table_of_inputs_and_outputs(void **state) {
        static const struct {
                const char *in, *out;
        } table[] = {
                { "", "" },
                { "/var/lib/libvirt/images/guest-1.qcow2", "/var/lib/libvirt/images/guest-1.qcow2" },
                { "x\n<0>ksmd: forged", "x\\x0a<0>ksmd: forged" },
                { "tab\there\r", "tab\\x09here\\x0d" },
                { "\x1b[31mred", "\\x1b[31mred" },
                { "del\x7f", "del\\x7f" },
                { "back\\slash", "back\\x5cslash" },
                { "\\x0a is not an escape in the input", "\\x5cx0a is not an escape in the input" },
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
                { "\xc2\x80\xc2\x9b\xc2\x9f", "\\xc2\\x80\\xc2\\x9b\\xc2\\x9f" },     /* C1 controls */
                { "\xc2\xa0\xc2\xbf", "\xc2\xa0\xc2\xbf" },                            /* no longer C1 */
                { "\xc0\xaf\xc1\xbf", "\\xc0\\xaf\\xc1\\xbf" },                       /* overlong 2-byte */
                { "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },                                /* overlong 3-byte */
                { "\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf" },                       /* overlong 4-byte */
                { "\xed\xa0\x80\xed\xbf\xbf", "\\xed\\xa0\\x80\\xed\\xbf\\xbf" },     /* surrogates */
                { "\xed\x9f\xbf", "\xed\x9f\xbf" },                                    /* U+D7FF */
                { "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" },                            /* U+10FFFF */
                { "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" },                       /* U+110000 */
                { "\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80" },
                { "ab\xe2\x82", "ab\\xe2\\x82" },                                      /* truncated */
                { "\xe2\x82x", "\\xe2\\x82x" },
                { "\xf0\x9f\x98", "\\xf0\\x9f\\x98" },
                { "\x80\xbf", "\\x80\\xbf" },                                          /* stray bytes */
                { "\xff\xfe", "\\xff\\xfe" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char out[256];

                escape_str(table[i].in, out, sizeof(out));
                if (strcmp(out, table[i].out) != 0)
                        fail_msg("entry %zu: got \"%s\", want \"%s\"", i, out, table[i].out);
                check_escaped(out);
                check_round_trip(table[i].in, strlen(table[i].in));
        }
}

static void test_nul_and_null(void **state) {
        char out[32], *d;

        assert_string_equal(escape_mem("a\0b", 3, out, sizeof(out)), "a\\x00b");
        assert_string_equal(escape_str(NULL, out, sizeof(out)), "");
        d = escape_strdup("a\nb\\");
        assert_non_null(d);
        assert_string_equal(d, "a\\x0ab\\x5c");
        free(d);
}

static void test_every_byte_value(void **state) {
        for (unsigned b = 0; b < 256; b++) {
                uint8_t in = (uint8_t) b;
                char out[8], want[8];

                escape_mem(&in, 1, out, sizeof(out));
                if (b >= 0x20 && b < 0x7f && b != '\\')
                        snprintf(want, sizeof(want), "%c", b);
                else
                        snprintf(want, sizeof(want), "\\x%02x", b);
                assert_string_equal(out, want);
                check_round_trip(&in, 1);
        }
}

static void test_every_pair_of_bytes(void **state) {
        for (unsigned v = 0; v < 0x10000; v++) {
                uint8_t in[2] = { (uint8_t) (v >> 8), (uint8_t) v };
                char out[16];
                size_t k;

                check_round_trip(in, 2);
                /* A well-formed 2-byte character that is not a C1 control is copied. */
                if (ref_decode(in, 2, &k) >= 0xa0 && k == 2)
                        assert_memory_equal(escape_mem(in, 2, out, sizeof(out)), in, 2);
        }
}

static uint64_t rng = 0x9e3779b97f4a7c15;

static uint32_t next_random(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t) rng;
}

static void test_random_strings_round_trip(void **state) {
        /* Bytes that make interesting neighbours: leads of every length and their edges, continuations,
         * controls, the backslash and what follows it in an escape. */
        static const uint8_t alphabet[] = { 'a', 'x', '0', 'f', 'F', '\\', '\n', 0, 0x1b, 0x7f, 0x80, 0x8f,
                                            0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed,
                                            0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff };

        for (unsigned t = 0; t < 200000; t++) {
                uint8_t in[12];
                size_t n = next_random() % (sizeof(in) + 1);

                for (size_t i = 0; i < n; i++)
                        in[i] = alphabet[next_random() % sizeof(alphabet)];
                check_round_trip(in, n);
        }
}

/* out is full cut to size: the marker, after a prefix of full that ends on a unit boundary. */
static void check_cut(const char *full, const char *out, size_t size) {
        size_t limit = size - 1, n = strlen(out), marks = MIN((size_t) 3, limit), p = n - marks, next;

        assert_true(n <= limit);
        check_escaped(out);
        if (strlen(full) <= limit) {
                assert_string_equal(out, full);
                return;
        }
        assert_true(n >= marks);
        assert_memory_equal(out + p, "...", marks);
        assert_memory_equal(out, full, p);
        /* The unit after the cut starts there (no character or escape is split) and would not have fit. */
        assert_true(((uint8_t) full[p] & 0xc0) != 0x80);
        for (size_t back = 1; back <= 3 && back <= p; back++)
                if (full[p - back] == '\\')
                        fail_msg("cut after \"%.*s\", inside an escape", (int) p, out);
        next = full[p] == '\\' ? 4 : utf8_char_size(full + p, strlen(full + p));
        assert_true(next > 0);
        if (limit >= 3)
                assert_true(p + next > limit - 3);
}

static void test_every_cut_of_a_string_with_multibyte_characters(void **state) {
        static const char *const inputs[] = {
                "caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 x\n<0>\\ \xff\xc2\x9b \xe2\x82 end",
                "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\n\n\n\xc3\xa9\xc3\xa9\xc3\xa9",
        };

        for (size_t t = 0; t < ELEMENTSOF(inputs); t++) {
                char full[256], out[256];

                escape_str(inputs[t], full, sizeof(full));
                for (size_t size = 1; size <= strlen(full) + 2; size++) {
                        check_cut(full, escape_str(inputs[t], out, size), size);
                        /* Cutting escaped text with escape_text() cuts the same way. */
                        check_cut(full, escape_text(full, out, size), size);
                }
        }
}

static void test_cuts_are_marked(void **state) {
        char out[64];

        assert_string_equal(escape_str("abcdefg", out, 8), "abcdefg");
        assert_string_equal(escape_str("abcdefgh", out, 8), "abcd...");
        assert_string_equal(escape_str("\n\n\n", out, 8), "\\x0a...");
        assert_string_equal(escape_str("ab\xe2\x82\xac", out, 6), "ab\xe2\x82\xac");
        assert_string_equal(escape_str("ab\xe2\x82\xac", out, 5), "a...");
        assert_string_equal(escape_str("abcdef", out, 3), "..");
        assert_string_equal(escape_str("abcdef", out, 1), "");
}

static void test_a_mapping_name_cut_at_47_bytes(void **state) {
        /* ProcMapping.name is 48 bytes: the old cut at byte 47 fell inside this 'é'. */
        char name[64], out[48];

        memset(name, 'a', 46);
        strcpy(name + 46, "\xc3\xa9.img");
        escape_str(name, out, sizeof(out));
        check_escaped(out);
        assert_int_equal(strlen(out), 47);
        assert_string_equal(out + 44, "...");
}

static void test_escape_text_keeps_escapes_and_escapes_the_rest(void **state) {
        static const struct {
                const char *in, *out;
        } table[] = {
                { "\\x0a stays, \\xFF too", "\\x0a stays, \\xFF too" },
                { "a\nb", "a\\x0ab" },
                { "\\X0a", "\\x5cX0a" },
                { "\\x4", "\\x5cx4" },
                { "\\xzz", "\\x5cxzz" },
                { "\\", "\\x5c" },
                { "bad \xc3 utf-8", "bad \\xc3 utf-8" },
        };
        char out[64], *d;

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                escape_text(table[i].in, out, sizeof(out));
                if (strcmp(out, table[i].out) != 0)
                        fail_msg("entry %zu: got \"%s\", want \"%s\"", i, out, table[i].out);
                check_escaped(out);
        }
        d = escape_text_dup("x\\x0a\x1b");
        assert_non_null(d);
        assert_string_equal(d, "x\\x0a\\x1b");
        free(d);
}

static void test_utf8_char_size(void **state) {
        assert_int_equal(utf8_char_size("a", 1), 1);
        assert_int_equal(utf8_char_size("\xc3\xa9", 2), 2);
        assert_int_equal(utf8_char_size("\xc3\xa9", 1), 0);
        assert_int_equal(utf8_char_size("\xe2\x82\xac", 3), 3);
        assert_int_equal(utf8_char_size("\xf0\x9f\x98\x80", 4), 4);
        assert_int_equal(utf8_char_size("\xf0\x9f\x98\x80", 3), 0);
        assert_int_equal(utf8_char_size("\xc2\x9b", 2), 2); /* well-formed, though escaped as a control */
        assert_false(utf8_is_valid("a\xff", 2));
        assert_true(utf8_is_valid("", 0));
        assert_true(utf8_is_printable("caf\xc3\xa9 \\ \xc2\xa0", 10));
        assert_false(utf8_is_printable("a\nb", 3));
        assert_false(utf8_is_printable("a\x7f", 2));
        assert_false(utf8_is_printable("\xc2\x9b", 2));
        assert_false(utf8_is_printable("\xc3", 1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_of_inputs_and_outputs),
                cmocka_unit_test(test_nul_and_null),
                cmocka_unit_test(test_every_byte_value),
                cmocka_unit_test(test_every_pair_of_bytes),
                cmocka_unit_test(test_random_strings_round_trip),
                cmocka_unit_test(test_every_cut_of_a_string_with_multibyte_characters),
                cmocka_unit_test(test_cuts_are_marked),
                cmocka_unit_test(test_a_mapping_name_cut_at_47_bytes),
                cmocka_unit_test(test_escape_text_keeps_escapes_and_escapes_the_rest),
                cmocka_unit_test(test_utf8_char_size),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
