/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The pages the tiny guest (tiny-guest.c) writes into its memory, and how the
 * host side (guest-pages.c) recognises them in a QEMU process. Both build
 * from this header, so they agree on every word.
 *
 * Each tagged page is 1024 little-endian 32-bit words: the magic, the kind,
 * the page's index within its kind, the seed (0 for shared pages, the guest's
 * own seed= for unique ones), then words that only those four determine
 * (tiny_word()). Shared pages are the same in every guest, page for page, and
 * all differ from each other; unique pages differ between guests with
 * different seeds. Zero pages are written with zeros and carry no tag.
 */

#include <stdint.h>

#define TINY_PAGE_SIZE 4096u
#define TINY_PAGE_WORDS (TINY_PAGE_SIZE / 4u)
#define TINY_MAGIC 0x444d534bu        /* "KSMD" */
#define TINY_KIND_SHARED 0x31414853u  /* "SHA1" */
#define TINY_KIND_UNIQUE 0x31514e55u  /* "UNQ1" */

/* Where the guest puts them, in guest-physical memory, and how many by default. */
#define TINY_AREA_START (4u << 20)
#define TINY_SHARED_PAGES 2048u
#define TINY_UNIQUE_PAGES 256u
#define TINY_ZERO_PAGES 512u

/* Word w (4 <= w < TINY_PAGE_WORDS) of page index of kind with seed. */
static inline uint32_t tiny_word(uint32_t kind, uint32_t index, uint32_t seed, uint32_t w) {
        uint32_t v = kind ^ (index * 0x9e3779b1u) ^ (seed * 0xc2b2ae3du) ^ (w * 0x85ebca77u);

        v ^= v >> 15;
        v *= 0x2c1b3c6du;
        v ^= v >> 12;
        v *= 0x297a2d39u;
        v ^= v >> 15;
        return v;
}
