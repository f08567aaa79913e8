/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: untrusted strings
 *
 * Strings the daemon does not write itself (mapping paths from /proc/PID/maps, executable names and
 * cgroup paths, ksmd.conf values and file names, what a caller sends) reach three places that trust
 * their bytes: the log (journald reads a "<N>" at the start of a line as its priority, so a newline
 * in a string forges a line), D-Bus (sd-bus refuses a message with an 's' that is not valid UTF-8:
 * one bad string fails the whole reply) and terminals (ESC and C1 sequences drive them). Each such
 * string is escaped where it enters, with escape_str() or escape_mem(); text put together from
 * escaped strings and the daemon's own words goes through escape_text() where it leaves (log.c,
 * region notes, D-Bus errors, ksmctl's output), which only cuts it, or escapes what slipped through.
 *
 * The escaped form: every byte that is not part of well-formed UTF-8 (an overlong form, a surrogate,
 * a code point above U+10FFFF, a truncated sequence, a stray continuation byte), every control
 * character (U+0000-U+001F, U+007F, and the C1 controls U+0080-U+009F) and the backslash become
 * \xNN, two lowercase hex digits per byte (a C1 control is two escapes: U+009B is "\xc2\x9b").
 * Everything else is copied. The result is valid UTF-8 without control characters, every backslash
 * in it starts an escape, and the original bytes can be read back from it.
 *
 * Cutting: a buffer of size bytes holds at most size - 1 bytes of text and the NUL. Text that does
 * not fit is cut after the last whole unit (a character or an escape, never part of one) that leaves
 * room for "...", which marks the cut; a buffer too small for the marker gets as many dots as fit.
 * (A text of its own that ends in "..." and fits is not cut: the dots alone do not prove a cut.)
 *
 * Cost: one pass that stops once the buffer is full. A run of printable ASCII takes one comparison
 * per byte and one memcpy(), with no decoding: escaping a mapping name costs a few percent of parsing
 * its line of /proc/PID/maps. Nothing allocates but the *_dup() functions.
 */

#include <stdbool.h>
#include <stddef.h>

/* The marker of a cut. */
#define ESCAPE_CUT_MARK "..."

/* Bytes that hold the escaped form of n bytes uncut, whatever they are: 4 per byte and the NUL. */
#define ESCAPE_SIZE_MAX(n) (4 * (n) + 1)

/*
 * Escapes the n bytes at s (a NUL among them is escaped too) into buf, size >= 1 bytes, cut to fit
 * as the DOC says. Returns buf.
 */
char *escape_mem(const void *s, size_t n, char *buf, size_t size);

/* escape_mem() of the string s; NULL escapes as "". Returns buf. */
char *escape_str(const char *s, char *buf, size_t size);

/* The escaped form of s, uncut, malloc'ed and owned by the caller; NULL without memory. */
char *escape_strdup(const char *s);

/*
 * For text made of escaped strings and the daemon's own words: like escape_str(), except that a \xNN
 * already in s (a backslash, 'x' and two hex digits) is kept as one unit, not escaped again. On such
 * text it only cuts (on unit boundaries); whatever else it is given, its result is escaped text all
 * the same. Returns buf.
 */
char *escape_text(const char *s, char *buf, size_t size);

/* escape_text() uncut, malloc'ed and owned by the caller; NULL without memory. */
char *escape_text_dup(const char *s);

/*
 * The length (1..4) of the well-formed UTF-8 character at s, of which n >= 1 bytes may be read, or 0
 * if s does not start one (Unicode's table 3-7: no overlong forms, surrogates or code points above
 * U+10FFFF).
 */
size_t utf8_char_size(const char *s, size_t n);

/* true if s (n bytes) is well-formed UTF-8 throughout. */
bool utf8_is_valid(const char *s, size_t n);

/* true if s (n bytes) is well-formed UTF-8 without a control character (C0, DEL or C1). */
bool utf8_is_printable(const char *s, size_t n);
