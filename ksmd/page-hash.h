/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Page content hashing. The helper's byte comparison is the arbiter of truth,
 * so the hash only has to be fast and well distributed: seeded XXH3 64-bit
 * through libxxhash's *_dispatch entry points (runtime SSE2/AVX2/AVX512
 * selection; Debian's plain XXH3_* symbols are built for baseline x86-64 and
 * are 2-4x slower). The seed is chosen per daemon run so that a process
 * cannot precompute colliding pages against a known seed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Hash of one PAGE_SIZE_BYTES page. */
uint64_t page_hash(const void *page, uint64_t seed);

/* True if all PAGE_SIZE_BYTES bytes of page are zero. No hashing involved. */
bool page_is_zero(const void *page);

/* A seed from getrandom(); falls back to a time-based value, never fails. */
uint64_t page_hash_random_seed(void);
