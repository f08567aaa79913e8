/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "log.h"

/*
 * A message longer than this is cut (and marked). The raw text is read twice
 * as far, so that a cut of the raw text always falls past the cut of the
 * escaped one, which escaping never makes shorter.
 */
#define LOG_MESSAGE_MAX 4096

static int max_level = LOG_INFO;
static bool prefix_priority = false;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_setup(void) {
        const char *e;

        /* journald sets JOURNAL_STREAM for stdout/stderr it captures. */
        prefix_priority = getenv("JOURNAL_STREAM") != NULL;

        e = getenv("KSMD_LOG_LEVEL");
        if (e) {
                if (strcmp(e, "debug") == 0)
                        max_level = LOG_DEBUG;
                else if (strcmp(e, "info") == 0)
                        max_level = LOG_INFO;
                else if (strcmp(e, "notice") == 0)
                        max_level = LOG_NOTICE;
                else if (strcmp(e, "warning") == 0)
                        max_level = LOG_WARNING;
                else if (strcmp(e, "err") == 0)
                        max_level = LOG_ERR;
        }
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        char raw[2 * LOG_MESSAGE_MAX], message[LOG_MESSAGE_MAX];
        int saved = errno;
        va_list ap;

        if (error < 0)
                error = -error;

        if (level <= max_level) {
                /* %m in the format prints strerror(error). */
                errno = error;
                va_start(ap, format);
                (void) vsnprintf(raw, sizeof(raw), format, ap);
                va_end(ap);
                /* Whatever a caller passes, a message is one line without control characters:
                 * a newline would start a journal line with a "<N>" priority of its own. */
                escape_text(raw, message, sizeof(message));
                if (prefix_priority)
                        fprintf(stderr, "<%d>%s\n", level, message);
                else
                        fprintf(stderr, "%s\n", message);
        }

        errno = saved;
        return error > 0 ? -error : 0;
}
