/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Counted string lists (char **l, size_t n), as config.c and autoreg.c keep them. */

#include <stddef.h>
#include <stdlib.h>

/* Frees the n strings of l and l itself; l may be NULL. */
static inline void strv_free_n(char **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i]);
        free(l);
}
