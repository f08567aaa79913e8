/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * TAP output for the guest test programs: tap() prints one result, tap_end()
 * prints the plan and returns the exit status (1 if anything failed).
 * Header-only: each program is one file.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3), unused))
static void tap(bool ok, const char *format, ...) {
        va_list ap;

        tap_n++;
        if (!ok)
                tap_failed++;
        printf("%s %d - ", ok ? "ok" : "not ok", tap_n);
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

__attribute__((unused))
static int tap_end(void) {
        printf("1..%d\n", tap_n);
        return tap_failed ? 1 : 0;
}
