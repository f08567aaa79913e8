/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "index.h"

static uint64_t h(uint64_t x) {
        /* Distinct, well-mixed test hashes (splitmix64) with the low slot bits cleared. */
        x += 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        return (x ^ (x >> 31)) & PAGE_SLOT_HASH_MASK;
}

static void test_slot_packs_hash_state_volatility_and_sd_ok(void **state) {
        PageSlot s = page_slot_make(h(1) | 0xff, PAGE_HASHED, 5, true);

        assert_int_equal(page_slot_state(s), PAGE_HASHED);
        assert_true(page_slot_hash(s) == h(1));
        assert_int_equal(page_slot_volatility(s), 5);
        assert_true(s & PAGE_SLOT_SD_OK);
        assert_false(s & PAGE_SLOT_GROUPED);
        /* Volatility saturates instead of spilling into other bits. */
        s = page_slot_make(0, PAGE_ZERO, 99, false);
        assert_int_equal(page_slot_volatility(s), PAGE_SLOT_VOL_MAX);
        assert_int_equal(page_slot_state(s), PAGE_ZERO);
        assert_int_equal(sizeof(PageSlot), 8);
}

static void test_second_page_with_equal_hash_matches_first(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot slots[4];
        uint32_t base, match = 12345;

        assert_int_equal(index_new(100, &idx), 0);
        slots[0] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        slots[1] = page_slot_make(h(2), PAGE_HASHED, 0, false);
        slots[2] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        slots[3] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, slots, 4, 7, 0x10000, &base), 0);

        assert_int_equal(index_add_candidate(idx, base + 0, &match), 0);
        assert_int_equal(match, 12345);          /* untouched when there is no match */
        assert_int_equal(index_add_candidate(idx, base + 1, &match), 0);
        assert_int_equal(index_add_candidate(idx, base + 2, &match), 1);
        assert_int_equal(match, base + 0);
        assert_int_equal(index_add_candidate(idx, base + 3, &match), 1);
        assert_int_equal(match, base + 0);

        uint32_t owner;
        uint64_t addr;
        assert_int_equal(index_page_info(idx, base + 2, &owner, &addr), 0);
        assert_int_equal(owner, 7);
        assert_true(addr == 0x10000 + 2 * 4096);
}

static void test_pages_in_two_areas_match_across_areas(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot a[2], b[2];
        uint32_t ba, bb, match;

        assert_int_equal(index_new(100, &idx), 0);
        a[0] = page_slot_make(h(10), PAGE_HASHED, 0, false);
        a[1] = page_slot_make(h(11), PAGE_HASHED, 0, false);
        b[0] = page_slot_make(h(11), PAGE_HASHED, 0, false);
        b[1] = page_slot_make(h(12), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, a, 2, 1, 0, &ba), 0);
        assert_int_equal(index_attach(idx, b, 2, 2, 0, &bb), 0);
        assert_int_equal(bb, ba + 2);
        assert_int_equal(index_add_candidate(idx, ba + 0, &match), 0);
        assert_int_equal(index_add_candidate(idx, ba + 1, &match), 0);
        assert_int_equal(index_add_candidate(idx, bb + 0, &match), 1);
        assert_int_equal(match, ba + 1);
        assert_int_equal(index_add_candidate(idx, bb + 1, &match), 0);
}

static void test_detached_area_never_matches_again(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot a[1], b[1];
        uint32_t ba, bb, match;

        assert_int_equal(index_new(100, &idx), 0);
        a[0] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        b[0] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, a, 1, 1, 0, &ba), 0);
        assert_int_equal(index_attach(idx, b, 1, 2, 0, &bb), 0);
        assert_int_equal(index_add_candidate(idx, ba, &match), 0);
        index_detach(idx, ba);
        assert_null(index_slot(idx, ba));
        assert_int_equal(index_add_candidate(idx, bb, &match), 0);
}

static void test_changed_page_no_longer_matches(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot a[2];
        uint32_t base, match;

        assert_int_equal(index_new(100, &idx), 0);
        a[0] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        a[1] = page_slot_make(h(1), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, a, 2, 1, 0, &base), 0);
        assert_int_equal(index_add_candidate(idx, base, &match), 0);
        /* A merge result said DIFFERS: the scanner forgets the page's hash. */
        a[0] = page_slot_make(0, PAGE_UNKNOWN, 0, false);
        assert_int_equal(index_add_candidate(idx, base + 1, &match), 0);
}

static void test_growth_keeps_every_candidate_findable(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint32_t n = 50000;
        _cleanup_free_ PageSlot *slots = calloc(2 * n, sizeof(PageSlot));
        uint32_t base, match;

        assert_non_null(slots);
        assert_int_equal(index_new(2 * n, &idx), 0);
        for (uint32_t i = 0; i < n; i++) {
                slots[i] = page_slot_make(h(i), PAGE_HASHED, 0, false);
                slots[n + i] = page_slot_make(h(i), PAGE_HASHED, 0, false);
        }
        assert_int_equal(index_attach(idx, slots, 2 * n, 1, 0, &base), 0);
        for (uint32_t i = 0; i < n; i++)
                assert_int_equal(index_add_candidate(idx, base + i, &match), 0);
        for (uint32_t i = 0; i < n; i++) {
                assert_int_equal(index_add_candidate(idx, base + n + i, &match), 1);
                assert_int_equal(match, base + i);
        }
}

static void test_candidates_match_only_their_own_hash_at_every_bound(void **state) {
        /* The bound sets how many bits of an entry are a tag of the hash, from none (2^32 - 1) up. */
        const uint64_t bounds[] = { 8, 100, UINT64_C(1) << 24, UINT32_MAX };
        const uint64_t a = h(1);
        /* Equal but for one bit: where the tag comes from, where the table position comes from. */
        const uint64_t hashes[] = { a, a ^ (UINT64_C(1) << 8), a ^ (UINT64_C(1) << 63), h(2) };

        for (size_t b = 0; b < ELEMENTSOF(bounds); b++) {
                _cleanup_(index_freep) PageIndex *idx = NULL;
                PageSlot slots[8];
                uint32_t base, match;

                assert_int_equal(index_new(bounds[b], &idx), 0);
                for (size_t i = 0; i < 8; i++)
                        slots[i] = page_slot_make(hashes[i % 4], PAGE_HASHED, 0, false);
                assert_int_equal(index_attach(idx, slots, 8, 1, 0, &base), 0);
                for (uint32_t i = 0; i < 4; i++)
                        assert_int_equal(index_add_candidate(idx, base + i, &match), 0);
                for (uint32_t i = 4; i < 8; i++) {
                        assert_int_equal(index_add_candidate(idx, base + i, &match), 1);
                        assert_int_equal(match, base + i - 4);
                }
        }
}

static void test_raising_the_bound_mid_pass_keeps_every_candidate_findable(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint32_t n = 1000, m = 20000;
        _cleanup_free_ PageSlot *first = calloc(n, sizeof(PageSlot)), *second = calloc(m, sizeof(PageSlot));
        uint32_t base1, base2, match;

        assert_non_null(first);
        assert_non_null(second);
        /* Ids below 1000 leave the entries 22 bits of tag; the second area's need 5 of them. */
        assert_int_equal(index_new(n, &idx), 0);
        index_begin_pass(idx);
        for (uint32_t i = 0; i < n; i++)
                first[i] = page_slot_make(h(i), PAGE_HASHED, 0, false);
        for (uint32_t i = 0; i < m; i++)
                second[i] = page_slot_make(h(i % (2 * n)), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, first, n, 1, 0, &base1), 0);
        for (uint32_t i = 0; i < n; i++)
                assert_int_equal(index_add_candidate(idx, base1 + i, &match), 0);

        index_set_max_tracked_pages(idx, n + m);
        assert_int_equal(index_attach(idx, second, m, 2, 0, &base2), 0);
        for (uint32_t i = 0; i < m; i++) {
                int k = index_add_candidate(idx, base2 + i, &match);

                if (i < n) {
                        /* The first area's pages, indexed before the entries were re-tagged. */
                        assert_int_equal(k, 1);
                        assert_int_equal(match, base1 + i);
                } else if (i < 2 * n) {
                        assert_int_equal(k, 0);
                } else {
                        assert_int_equal(k, 1);
                        assert_int_equal(match, i % (2 * n) < n ? base1 + i % (2 * n) : base2 + i % (2 * n));
                }
        }
}

static void test_memory_per_tracked_unique_page_is_at_most_16_bytes(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        IndexUsage u;
        uint32_t base, match;

        /* Check the bound at many sizes: the table's load varies with growth steps. */
        for (uint32_t n = 1000; n <= 200000; n = n * 3 / 2) {
                _cleanup_free_ PageSlot *slots = calloc(n, sizeof(PageSlot));

                idx = index_free(idx);
                assert_int_equal(index_new(n, &idx), 0);
                for (uint32_t i = 0; i < n; i++)
                        slots[i] = page_slot_make(h(i), PAGE_HASHED, 0, false);
                assert_int_equal(index_attach(idx, slots, n, 1, 0, &base), 0);
                for (uint32_t i = 0; i < n; i++)
                        assert_int_equal(index_add_candidate(idx, base + i, &match), 0);
                index_usage(idx, &u);
                assert_true(u.tracked_pages == n);
                assert_true(u.candidates == n);
                /* 16 bytes per page plus the fixed minimum table of small indexes. */
                assert_true(u.metadata_bytes <= 16 * (uint64_t) n + 4096 + 16 * 16);
                print_message("# %u unique pages: %.2f bytes per page\n", n, (double) u.metadata_bytes / n);
        }
}

static void test_attach_beyond_bound_is_refused(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot slots[10] = {};
        uint32_t base;

        assert_int_equal(index_new(15, &idx), 0);
        assert_int_equal(index_attach(idx, slots, 10, 1, 0, &base), 0);
        assert_int_equal(index_attach(idx, slots, 6, 2, 0, &base), -ENOSPC);
        assert_int_equal(index_attach(idx, slots, 5, 2, 0, &base), 0);
        /* A new pass forgets all attachments. */
        index_begin_pass(idx);
        assert_int_equal(index_attach(idx, slots, 10, 1, 0, &base), 0);
        assert_int_equal(base, 0);
        assert_int_equal(index_new(0, &idx), -EINVAL);
}

static void test_begin_pass_forgets_candidates(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot a[2];
        uint32_t base, match;

        assert_int_equal(index_new(10, &idx), 0);
        a[0] = a[1] = page_slot_make(h(3), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, a, 2, 1, 0, &base), 0);
        assert_int_equal(index_add_candidate(idx, base, &match), 0);
        index_begin_pass(idx);
        assert_int_equal(index_attach(idx, a, 2, 1, 0, &base), 0);
        assert_int_equal(index_add_candidate(idx, base + 1, &match), 0);
        assert_int_equal(index_add_candidate(idx, base, &match), 1);
        assert_int_equal(match, base + 1);
}

static void test_shared_pages_are_found_by_hash_and_survive_passes(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        uint64_t handle = 0;

        assert_int_equal(index_new(100000, &idx), 0);
        assert_int_equal(index_shared_lookup(idx, h(1), &handle), 0);
        assert_int_equal(index_shared_add(idx, h(1), 0xabc), 0);
        index_begin_pass(idx);
        assert_int_equal(index_shared_lookup(idx, h(1), &handle), 1);
        assert_true(handle == 0xabc);
        /* Updating keeps one entry. */
        assert_int_equal(index_shared_add(idx, h(1), 0xdef), 0);
        assert_int_equal(index_shared_lookup(idx, h(1), &handle), 1);
        assert_true(handle == 0xdef);
        assert_int_equal(index_shared_remove(idx, h(1)), 1);
        assert_int_equal(index_shared_lookup(idx, h(1), &handle), 0);
        assert_int_equal(index_shared_remove(idx, h(1)), 0);
}

static void test_shared_removal_keeps_other_entries_findable(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint64_t n = 20000;
        uint64_t handle;

        assert_int_equal(index_new(4 * n, &idx), 0);
        for (uint64_t i = 0; i < n; i++)
                assert_int_equal(index_shared_add(idx, h(i), i + 1), 0);
        /* Remove every third; backward-shift deletion must not orphan the rest. */
        for (uint64_t i = 0; i < n; i += 3)
                assert_int_equal(index_shared_remove(idx, h(i)), 1);
        for (uint64_t i = 0; i < n; i++) {
                int found = index_shared_lookup(idx, h(i), &handle);

                if (i % 3 == 0)
                        assert_int_equal(found, 0);
                else {
                        assert_int_equal(found, 1);
                        assert_true(handle == i + 1);
                }
        }
}

static bool keep_even(uint64_t handle, void *userdata) {
        (*(unsigned *) userdata)++;
        return handle % 2 == 0;
}

static void test_prune_forgets_exactly_what_keep_refuses(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint64_t n = 5000;
        unsigned asked = 0;
        IndexUsage before, after;
        uint64_t handle;

        assert_int_equal(index_new(4 * n, &idx), 0);
        for (uint64_t i = 0; i < n; i++)
                assert_int_equal(index_shared_add(idx, h(i), (UINT64_C(3) << 32) + i), 0);
        index_usage(idx, &before);
        assert_int_equal(index_shared_prune(idx, keep_even, &asked), n / 2);
        assert_int_equal(asked, n);
        index_usage(idx, &after);
        assert_int_equal(after.shared_pages, n / 2);
        /* The table shrinks with its entries. */
        assert_true(after.metadata_bytes < before.metadata_bytes);
        for (uint64_t i = 0; i < n; i++) {
                int found = index_shared_lookup(idx, h(i), &handle);

                assert_int_equal(found, i % 2 == 0);
                if (found)
                        assert_true(handle == (UINT64_C(3) << 32) + i);
        }
        /* Nothing left to forget; an empty table is fine too. */
        assert_int_equal(index_shared_prune(idx, keep_even, &asked), 0);
        _cleanup_(index_freep) PageIndex *empty = NULL;
        assert_int_equal(index_new(16, &empty), 0);
        assert_int_equal(index_shared_prune(empty, keep_even, &asked), 0);
}

static bool keep_none(uint64_t handle, void *userdata) {
        return false;
}

/* Merged pairs whose second mapper went away: once pruned, the last mapper costs its slot only. */
static void test_last_mapper_of_a_shared_page_costs_at_most_16_bytes(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint32_t n = 20000;
        _cleanup_free_ PageSlot *slots = calloc(n, sizeof(PageSlot));
        uint32_t base;
        IndexUsage u;

        assert_non_null(slots);
        /* Room for one shared page per tracked page (the bound assumes two mappers each). */
        assert_int_equal(index_new(2 * n, &idx), 0);
        index_begin_pass(idx);
        assert_int_equal(index_attach(idx, slots, n, 1, 0, &base), 0);
        /* Each tracked page is the last mapper of its own shared page. */
        for (uint32_t i = 0; i < n; i++) {
                slots[i] = page_slot_make(h(i), PAGE_SHARING, 0, false);
                assert_int_equal(index_shared_add(idx, h(i), i + 1), 0);
        }
        index_usage(idx, &u);
        assert_true(u.metadata_bytes > (uint64_t) n * 16);
        assert_int_equal(index_shared_prune(idx, keep_none, NULL), n);
        index_usage(idx, &u);
        assert_int_equal(u.shared_pages, 0);
        assert_true(u.metadata_bytes <= (uint64_t) n * 16);
        /* Its mappers find no entry now, which the scanner counts as a lone shared page. */
        assert_int_equal(index_shared_note_mapper(idx, h(7)), -ENOENT);
}

static void test_shared_table_is_bounded(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;

        assert_int_equal(index_new(4, &idx), 0);
        assert_int_equal(index_shared_add(idx, h(1), 1), 0);
        assert_int_equal(index_shared_add(idx, h(2), 2), 0);
        assert_int_equal(index_shared_add(idx, h(3), 3), -ENOSPC);
}

static void test_each_shared_page_counts_one_mapper_per_pass(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        const uint64_t n = 3000;
        uint64_t handle;

        assert_int_equal(index_new(4 * n, &idx), 0);
        assert_int_equal(index_shared_note_mapper(idx, h(1)), -ENOENT);
        for (uint64_t i = 0; i < n; i++)
                assert_int_equal(index_shared_add(idx, h(i), i + 1), 0);
        for (int pass = 0; pass < 2; pass++) {
                for (uint64_t i = 0; i < n; i++) {
                        assert_int_equal(index_shared_note_mapper(idx, h(i)), 1);
                        assert_int_equal(index_shared_note_mapper(idx, h(i)), 0);
                }
                /* The mark changes nothing else: lookups, updates and removals still see the entry. */
                assert_int_equal(index_shared_lookup(idx, h(7), &handle), 1);
                assert_true(handle == 8);
                index_begin_pass(idx);
        }
        assert_int_equal(index_shared_note_mapper(idx, h(5)), 1);
        assert_int_equal(index_shared_add(idx, h(5), 0x55), 0);
        assert_int_equal(index_shared_note_mapper(idx, h(5)), 0);
        assert_int_equal(index_shared_remove(idx, h(5)), 1);
        assert_int_equal(index_shared_note_mapper(idx, h(5)), -ENOENT);
        for (uint64_t i = 0; i < n; i += 2)
                assert_int_equal(index_shared_remove(idx, h(i)), 1);
        for (uint64_t i = 1; i < n; i += 2)
                assert_int_equal(index_shared_lookup(idx, h(i), &handle), i == 5 ? 0 : 1);
}

/*
 * Drives the index through one pass as the scanner does, for pages whose
 * content is given by group: pages with equal group numbers hold equal
 * content; group UINT32_MAX marks a zero page, UINT32_MAX - 1 a page that
 * changed since its last read (volatile). merge: the helper merges every
 * match (the first pair makes a shared page, later duplicates join it).
 */
#define GROUP_ZERO     UINT32_MAX
#define GROUP_VOLATILE (UINT32_MAX - 1)

static void drive_pass(PageIndex *idx, PageSlot *slots, const uint32_t *group, uint32_t n, bool merge,
                       uint64_t *next_handle, uint32_t pass) {
        uint32_t base, match;
        uint64_t handle;

        index_begin_pass(idx);
        assert_int_equal(index_attach(idx, slots, n, 1, 0, &base), 0);
        for (uint32_t i = 0; i < n; i++) {
                PageState st = page_slot_state(slots[i]);

                if (group[i] == GROUP_ZERO) {
                        slots[i] = page_slot_make(0, PAGE_ZERO, 0, false);
                        continue;
                }
                if (group[i] == GROUP_VOLATILE) {
                        slots[i] = page_slot_make(h(((uint64_t) pass << 32) + i), PAGE_HASHED, 7, false);
                        continue;
                }
                if (st == PAGE_SHARING) {
                        assert_true(index_shared_note_mapper(idx, page_slot_hash(slots[i])) >= 0);
                        continue;
                }
                if (st != PAGE_HASHED) {
                        /* First read: hashed, a candidate from the next pass on. */
                        slots[i] = page_slot_make(h(group[i]), PAGE_HASHED, 0, false);
                        continue;
                }
                if (merge && index_shared_lookup(idx, page_slot_hash(slots[i]), &handle) > 0) {
                        slots[i] = page_slot_make(page_slot_hash(slots[i]), PAGE_SHARING, 0, false);
                        continue;
                }
                if (index_add_candidate(idx, base + i, &match) <= 0 || !merge)
                        continue;
                slots[i] = page_slot_make(page_slot_hash(slots[i]), PAGE_SHARING, 0, false);
                slots[match - base] = page_slot_make(page_slot_hash(slots[i]), PAGE_SHARING, 0, false);
                assert_int_equal(index_shared_add(idx, page_slot_hash(slots[i]), (*next_handle)++), 0);
                index_forget_merged_candidates(idx, page_slot_hash(slots[i]));
        }
}

typedef enum TestLayout {
        LAYOUT_UNIQUE,
        LAYOUT_ZERO,
        LAYOUT_VOLATILE,
        LAYOUT_PAIRS,
        LAYOUT_TRIPLES,
        LAYOUT_GROUPS_OF_8,
        LAYOUT_MIXED,
        _LAYOUT_MAX,
} TestLayout;

static uint32_t layout_group(TestLayout l, uint32_t i) {
        switch (l) {
        case LAYOUT_UNIQUE:
                return i;
        case LAYOUT_ZERO:
                return GROUP_ZERO;
        case LAYOUT_VOLATILE:
                return GROUP_VOLATILE;
        case LAYOUT_PAIRS:
                return i / 2;
        case LAYOUT_TRIPLES:
                return i / 3;
        case LAYOUT_GROUPS_OF_8:
                return i / 8;
        default:
                /* Unique, pairs, zero and volatile pages interleaved. */
                switch (i % 8) {
                case 0:
                case 1:
                        return i / 8 * 4;
                case 2:
                        return i / 8 * 4 + 1;
                case 3:
                        return i / 8 * 4 + 2;
                case 4:
                case 5:
                        return i / 8 * 4 + 3;
                case 6:
                        return GROUP_ZERO;
                default:
                        return GROUP_VOLATILE;
                }
        }
}

static void test_memory_per_tracked_page_is_at_most_16_bytes_in_every_state(void **state) {
        static const char *const names[_LAYOUT_MAX] = {
                "unique", "zero", "volatile", "pairs", "triples", "groups of 8", "mixed",
        };

        double worst[_LAYOUT_MAX][2] = {};

        /* Sizes spread over the tables' growth steps, so their load varies. */
        for (uint32_t n = 40000; n <= 400000; n = n * 5 / 4) {
                _cleanup_free_ PageSlot *slots = calloc(n, sizeof(PageSlot));
                _cleanup_free_ uint32_t *group = calloc(n, sizeof(uint32_t));

                assert_non_null(slots);
                assert_non_null(group);
                for (int l = 0; l < _LAYOUT_MAX; l++) {
                        for (int merge = 0; merge < 2; merge++) {
                                _cleanup_(index_freep) PageIndex *idx = NULL;
                                /* Handles straddle 2^32: the high halves take two epochs. */
                                uint64_t next_handle = UINT64_C(0xffffffff) - n / 4;
                                IndexUsage u;

                                memset(slots, 0, n * sizeof(PageSlot));
                                for (uint32_t i = 0; i < n; i++)
                                        group[i] = layout_group(l, i);
                                assert_int_equal(index_new(n, &idx), 0);
                                /* Pass 0 reads, pass 1 finds candidates (and merges),
                                 * later passes are steady. */
                                for (uint32_t pass = 0; pass < 4; pass++) {
                                        drive_pass(idx, slots, group, n, merge, &next_handle, pass);
                                        index_usage(idx, &u);
                                        assert_true(u.tracked_pages == n);
                                        if (pass > 0) {
                                                double b = (double) u.metadata_bytes /
                                                           (double) u.tracked_pages;

                                                assert_true(u.metadata_bytes <= 16 * u.tracked_pages);
                                                worst[l][merge] = b > worst[l][merge] ? b : worst[l][merge];
                                        }
                                }
                                if (merge && l >= LAYOUT_PAIRS)
                                        assert_true(u.shared_pages > 0);
                        }
                }
        }
        for (int l = 0; l < _LAYOUT_MAX; l++)
                for (int merge = 0; merge < 2; merge++)
                        print_message("# %s, %s: at most %.2f bytes per tracked page\n", names[l],
                                      merge ? "merging" : "estimate", worst[l][merge]);
}

static void test_shared_handles_keep_their_high_half(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        static const uint64_t handles[] = {
                1, UINT64_C(0xffffffff), UINT64_C(0x100000000), UINT64_C(0x123456789abcdef0), UINT64_MAX,
        };
        uint64_t handle;

        assert_int_equal(index_new(1000, &idx), 0);
        for (size_t i = 0; i < ELEMENTSOF(handles); i++)
                assert_int_equal(index_shared_add(idx, h(i), handles[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(handles); i++) {
                assert_int_equal(index_shared_lookup(idx, h(i), &handle), 1);
                assert_true(handle == handles[i]);
        }
        /* An update may move the page to another epoch; the last one frees its epoch. */
        assert_int_equal(index_shared_add(idx, h(3), 7), 0);
        assert_int_equal(index_shared_lookup(idx, h(3), &handle), 1);
        assert_true(handle == 7);
        assert_int_equal(index_shared_remove(idx, h(4)), 1);

        /* 32 distinct high halves live at once fit; a 33rd is refused, not mangled. */
        idx = index_free(idx);
        assert_int_equal(index_new(1000, &idx), 0);
        for (uint64_t i = 0; i < 32; i++)
                assert_int_equal(index_shared_add(idx, h(i), (i << 32) | 5), 0);
        assert_int_equal(index_shared_add(idx, h(100), (UINT64_C(40) << 32) | 5), -ENOSPC);
        assert_int_equal(index_shared_lookup(idx, h(100), &handle), 0);
        assert_int_equal(index_shared_remove(idx, h(0)), 1);
        assert_int_equal(index_shared_add(idx, h(100), (UINT64_C(40) << 32) | 5), 0);
        for (uint64_t i = 1; i < 32; i++) {
                assert_int_equal(index_shared_lookup(idx, h(i), &handle), 1);
                assert_true(handle == ((i << 32) | 5));
        }
        assert_int_equal(index_shared_lookup(idx, h(100), &handle), 1);
        assert_true(handle == ((UINT64_C(40) << 32) | 5));
}

static void test_merged_candidates_leave_the_table(void **state) {
        _cleanup_(index_freep) PageIndex *idx = NULL;
        PageSlot a[3];
        uint32_t base, match;

        assert_int_equal(index_new(10, &idx), 0);
        a[0] = a[1] = a[2] = page_slot_make(h(3), PAGE_HASHED, 0, false);
        assert_int_equal(index_attach(idx, a, 3, 1, 0, &base), 0);
        assert_int_equal(index_add_candidate(idx, base, &match), 0);
        assert_int_equal(index_add_candidate(idx, base + 1, &match), 1);
        /* Still a candidate: nothing goes. */
        index_forget_merged_candidates(idx, h(3));
        IndexUsage u;
        index_usage(idx, &u);
        assert_int_equal(u.candidates, 1);
        a[0] = a[1] = page_slot_make(h(3), PAGE_SHARING, 0, false);
        index_forget_merged_candidates(idx, h(3));
        index_usage(idx, &u);
        assert_int_equal(u.candidates, 0);
        /* A later duplicate is indexed afresh. */
        assert_int_equal(index_add_candidate(idx, base + 2, &match), 0);
}

static void test_free_accepts_null(void **state) {
        assert_null(index_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slot_packs_hash_state_volatility_and_sd_ok),
                cmocka_unit_test(test_second_page_with_equal_hash_matches_first),
                cmocka_unit_test(test_pages_in_two_areas_match_across_areas),
                cmocka_unit_test(test_detached_area_never_matches_again),
                cmocka_unit_test(test_changed_page_no_longer_matches),
                cmocka_unit_test(test_growth_keeps_every_candidate_findable),
                cmocka_unit_test(test_candidates_match_only_their_own_hash_at_every_bound),
                cmocka_unit_test(test_raising_the_bound_mid_pass_keeps_every_candidate_findable),
                cmocka_unit_test(test_memory_per_tracked_unique_page_is_at_most_16_bytes),
                cmocka_unit_test(test_attach_beyond_bound_is_refused),
                cmocka_unit_test(test_begin_pass_forgets_candidates),
                cmocka_unit_test(test_shared_pages_are_found_by_hash_and_survive_passes),
                cmocka_unit_test(test_shared_removal_keeps_other_entries_findable),
                cmocka_unit_test(test_prune_forgets_exactly_what_keep_refuses),
                cmocka_unit_test(test_last_mapper_of_a_shared_page_costs_at_most_16_bytes),
                cmocka_unit_test(test_shared_table_is_bounded),
                cmocka_unit_test(test_each_shared_page_counts_one_mapper_per_pass),
                cmocka_unit_test(test_memory_per_tracked_page_is_at_most_16_bytes_in_every_state),
                cmocka_unit_test(test_shared_handles_keep_their_high_half),
                cmocka_unit_test(test_merged_candidates_leave_the_table),
                cmocka_unit_test(test_free_accepts_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
