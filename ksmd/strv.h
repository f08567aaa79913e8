/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Counted string lists (char **l, size_t n), as config.c and autoreg.c keep them. */

#include <stddef.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Frees the n strings of l and l itself; l may be NULL. */
static inline void strv_free_n(char **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i]);
        free(l);
}

/* A copy of the n strings of l in *ret, NULL-terminated. -ENOMEM. */
static inline int strv_copy_n(char *const *l, size_t n, char ***ret) {
        char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i]) {
                        strv_free_n(c, i);
                        return -ENOMEM;
                }
        }
        *ret = c;
        return 0;
}
