/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "macro.h"

static bool is_continuation(uint8_t c) {
        return (c & 0xc0) == 0x80;
}

/* Printable ASCII but the backslash: copied as it is. */
static bool is_plain(uint8_t c) {
        return c >= 0x20 && c < 0x7f && c != '\\';
}

static bool is_hex(uint8_t c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

size_t utf8_char_size(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        uint8_t lo = 0x80, hi = 0xbf;

        assert(n >= 1);
        if (p[0] < 0x80)
                return 1;
        if (p[0] < 0xc2)        /* a continuation byte, or the lead of an overlong 2-byte form */
                return 0;
        if (p[0] < 0xe0)
                return n >= 2 && is_continuation(p[1]) ? 2 : 0;
        if (p[0] < 0xf0) {
                if (p[0] == 0xe0)
                        lo = 0xa0;      /* overlong below */
                else if (p[0] == 0xed)
                        hi = 0x9f;      /* surrogates above */
                return n >= 3 && p[1] >= lo && p[1] <= hi && is_continuation(p[2]) ? 3 : 0;
        }
        if (p[0] < 0xf5) {
                if (p[0] == 0xf0)
                        lo = 0x90;      /* overlong below */
                else if (p[0] == 0xf4)
                        hi = 0x8f;      /* above U+10FFFF */
                return n >= 4 && p[1] >= lo && p[1] <= hi && is_continuation(p[2]) &&
                       is_continuation(p[3]) ? 4 : 0;
        }
        return 0;
}

bool utf8_is_valid(const char *s, size_t n) {
        for (size_t i = 0, k; i < n; i += k) {
                k = utf8_char_size(s + i, n - i);
                if (k == 0)
                        return false;
        }
        return true;
}

bool utf8_is_printable(const char *s, size_t n) {
        for (size_t i = 0, k; i < n; i += k) {
                uint8_t c = (uint8_t) s[i];

                k = utf8_char_size(s + i, n - i);
                if (k == 0 || c < 0x20 || c == 0x7f || (c == 0xc2 && (uint8_t) s[i + 1] < 0xa0))
                        return false;
        }
        return true;
}

/*
 * The one loop behind every function here: copies or escapes unit by unit,
 * remembering the last unit boundary that leaves room for the marker, and
 * stops at the first unit that does not fit.
 */
static char *escape_internal(const uint8_t *s, size_t n, bool keep_escapes, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        size_t limit, room, o = 0, cut = 0, i = 0, marks;

        assert(buf);
        assert(size >= 1);
        limit = size - 1;
        room = limit >= strlen(ESCAPE_CUT_MARK) ? limit - strlen(ESCAPE_CUT_MARK) : 0;

        while (i < n) {
                uint8_t c = s[i];
                size_t in, out;

                if (is_plain(c)) {
                        /* The common case: a run of printable ASCII, copied at once. Each of its
                         * bytes is a unit, so a cut may fall anywhere in it. */
                        size_t end = i + MIN(n - i, limit - o + 1), j = i + 1, run;

                        while (j < end && is_plain(s[j]))
                                j++;
                        run = MIN(j - i, limit - o);
                        memcpy(buf + o, s + i, run);
                        if (o < room)
                                cut = MIN(o + run, room);
                        o += run;
                        i += run;
                        if (i < j)
                                goto cut;
                        continue;
                }

                if (c == '\\' && keep_escapes && n - i >= 4 && s[i + 1] == 'x' && is_hex(s[i + 2]) &&
                    is_hex(s[i + 3]))
                        in = out = 4;           /* an escape already: one unit, kept */
                else {
                        in = c >= 0x80 ? utf8_char_size((const char *) s + i, n - i) : 0;
                        if (in == 2 && c == 0xc2 && s[i + 1] < 0xa0)
                                in = 0;         /* a C1 control: its bytes are escaped one by one */
                        out = in > 0 ? in : 4;
                }
                if (o + out > limit)
                        goto cut;
                if (in > 0)
                        memcpy(buf + o, s + i, in);
                else {
                        buf[o] = '\\';
                        buf[o + 1] = 'x';
                        buf[o + 2] = hex[c >> 4];
                        buf[o + 3] = hex[c & 0xf];
                        in = 1;
                }
                o += out;
                i += in;
                if (o <= room)
                        cut = o;
        }
        buf[o] = '\0';
        return buf;

cut:
        marks = MIN(strlen(ESCAPE_CUT_MARK), limit - cut);
        memcpy(buf + cut, ESCAPE_CUT_MARK, marks);
        buf[cut + marks] = '\0';
        return buf;
}

char *escape_mem(const void *s, size_t n, char *buf, size_t size) {
        return escape_internal(s, n, false, buf, size);
}

char *escape_str(const char *s, char *buf, size_t size) {
        return s ? escape_internal((const uint8_t *) s, strlen(s), false, buf, size) :
                   escape_internal(NULL, 0, false, buf, size);
}

static char *escape_dup(const char *s, bool keep_escapes) {
        size_t n = strlen(s);
        char *buf;

        if (n > (SIZE_MAX - 1) / 4)
                return NULL;
        buf = malloc(ESCAPE_SIZE_MAX(n));
        if (!buf)
                return NULL;
        return escape_internal((const uint8_t *) s, n, keep_escapes, buf, ESCAPE_SIZE_MAX(n));
}

char *escape_strdup(const char *s) {
        return escape_dup(s, false);
}

char *escape_text(const char *s, char *buf, size_t size) {
        return escape_internal((const uint8_t *) s, strlen(s), true, buf, size);
}

char *escape_text_dup(const char *s) {
        return escape_dup(s, true);
}
