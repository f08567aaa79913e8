/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "parse-util.h"

int parse_boolean(const char *s, bool *ret) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}

int parse_uint64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno || *end)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_uint64_auto(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

typedef struct Unit {
        const char *suffix;
        uint64_t factor;
} Unit;

/* "<decimal>[.<decimal>]<suffix>" with one of units; a missing suffix uses bare_factor. */
static int parse_scaled(const char *s, const Unit *units, size_t n_units, uint64_t bare_factor,
                        uint64_t *ret) {
        const char *p = s;
        uint64_t factor = 0;
        double v;
        char *end;

        if (!isdigit((unsigned char) *p))
                return -EINVAL;
        while (isdigit((unsigned char) *p) || *p == '.')
                p++;
        if (*p == '\0')
                factor = bare_factor;
        else
                for (size_t i = 0; i < n_units; i++)
                        if (strcmp(p, units[i].suffix) == 0) {
                                factor = units[i].factor;
                                break;
                        }
        if (factor == 0)
                return -EINVAL;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end != p || !(v >= 0))
                return -EINVAL;
        v *= (double) factor;
        if (v >= 18446744073709551615.0)
                return -ERANGE;
        *ret = (uint64_t) (v + 0.5);
        return 0;
}

int parse_time_usec(const char *s, uint64_t *ret) {
        static const Unit units[] = {
                { "us", 1 },
                { "usec", 1 },
                { "ms", USEC_PER_MSEC },
                { "msec", USEC_PER_MSEC },
                { "s", USEC_PER_SEC },
                { "sec", USEC_PER_SEC },
                { "min", USEC_PER_MINUTE },
                { "h", USEC_PER_HOUR },
                { "d", USEC_PER_DAY },
        };

        return parse_scaled(s, units, ELEMENTSOF(units), USEC_PER_SEC, ret);
}

int parse_size_bytes(const char *s, uint64_t *ret) {
        static const Unit units[] = {
                { "B", 1 },
                { "K", UINT64_C(1) << 10 },
                { "M", UINT64_C(1) << 20 },
                { "G", UINT64_C(1) << 30 },
                { "T", UINT64_C(1) << 40 },
        };

        return parse_scaled(s, units, ELEMENTSOF(units), 1, ret);
}
