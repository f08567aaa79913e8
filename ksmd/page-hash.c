/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <xxh_x86dispatch.h>

#include "page-hash.h"

uint64_t page_hash(const void *page, uint64_t seed) {
        return XXH3_64bits_withSeed_dispatch(page, PAGE_SIZE_BYTES, seed);
}

bool page_is_zero(const void *page) {
        static const uint8_t zero[PAGE_SIZE_BYTES];
        const uint64_t *w = page;

        /* Most pages fail on the first word; the rest goes to glibc's vectorised memcmp. */
        return w[0] == 0 && memcmp(page, zero, PAGE_SIZE_BYTES) == 0;
}

uint64_t page_hash_random_seed(void) {
        uint64_t seed;
        struct timespec ts;

        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t) sizeof(seed))
                return seed;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t) ts.tv_sec;
}
