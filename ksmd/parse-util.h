/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Strict parsers for values from outside (config files, bus arguments).
 * Each returns 0 and stores the value, or -EINVAL/-ERANGE and leaves *ret
 * untouched. Leading/trailing blanks are not accepted; callers strip them.
 */

#include <stdbool.h>
#include <stdint.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)

/* yes/no, true/false, on/off, 1/0 (case-insensitive). */
int parse_boolean(const char *s, bool *ret);
/* A decimal unsigned integer in [min, max]. */
int parse_uint64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* An unsigned integer in C notation: decimal, 0x-hex (or 0-octal); not empty, no sign. */
int parse_uint64_auto(const char *s, uint64_t *ret);
/* A time span: "20ms", "1.5s", "5min", "2h", "1d", "250us"; a bare number is seconds. */
int parse_time_usec(const char *s, uint64_t *ret);
/* A size: "512", "64K", "256M", "2G", "1T" (binary multiples); a bare number is bytes. */
int parse_size_bytes(const char *s, uint64_t *ret);
