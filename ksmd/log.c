/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
        int saved = errno;
        va_list ap;

        if (error < 0)
                error = -error;

        if (level <= max_level) {
                if (prefix_priority)
                        fprintf(stderr, "<%d>", level);
                /* %m in the format prints strerror(error). */
                errno = error;
                va_start(ap, format);
                vfprintf(stderr, format, ap);
                va_end(ap);
                fputc('\n', stderr);
        }

        errno = saved;
        return error > 0 ? -error : 0;
}
