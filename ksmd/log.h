/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Logging for main-program code only (library code returns -errno and lets
 * its caller decide). Messages go to stderr with a "<N>" syslog priority
 * prefix when stderr is the journal, so journald keeps the priority.
 * log_*_errno() return -abs(error) so a caller can write
 *         return log_error_errno(r, "Failed to frob: %m");
 * where %m prints strerror(-r).
 *
 * Every message is one line: after formatting, log_internal() passes it
 * through escape_text() (escape.h), so a newline or control character that
 * reaches it in an argument is written as \xNN and cannot start a forged
 * journal line. Strings from outside are still escaped where they enter
 * (escape_str()), so that a backslash of theirs reads as \x5c.
 */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
/* Re-read $JOURNAL_STREAM/$NO_COLOR; call once at start of main(). */
void log_setup(void);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...) \
        log_internal(level, error, __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

static inline int log_oom(void) {
        return log_error_errno(-ENOMEM, "Out of memory.");
}
