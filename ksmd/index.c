/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "index.h"
#include "macro.h"

typedef struct IdRange {
        uint32_t base;
        uint64_t n_pages;
        PageSlot *slots;                 /* NULL once detached */
        uint32_t owner;
        uint64_t start_addr;
} IdRange;

/*
 * A shared key: the page's hash in bits 63..8, the epoch of its handle's high
 * half in bits 7..3, SHARED_SEEN and SHARED_USED; 0 marks an empty entry.
 */
#define SHARED_USED         UINT64_C(1)
#define SHARED_SEEN         UINT64_C(2)  /* a mapper of the page was counted this pass */
#define SHARED_EPOCH_SHIFT  3
#define SHARED_EPOCHS       32u

struct PageIndex {
        uint64_t max_tracked_pages;
        uint64_t tracked_pages;

        IdRange *ranges;                 /* ascending by base */
        size_t n_ranges, n_ranges_allocated;

        uint32_t *candidates;            /* tag | (page id + 1) (cand_entry()); 0 marks an empty entry */
        unsigned cand_id_bits;           /* low bits of an entry that hold page id + 1; the rest, the tag */
        size_t n_candidates, candidates_cap;
        size_t candidates_pass_cap;      /* capacity at the start of this pass: never shrunk below */

        /* Shared pages, two parallel arrays probed together. */
        uint64_t *shared_keys;
        uint32_t *shared_handles_lo;     /* low 32 bits of the helper's handle */
        size_t n_shared, shared_cap;
        uint32_t epoch_hi[SHARED_EPOCHS];        /* high 32 bits of the handles of each epoch */
        uint64_t epoch_refs[SHARED_EPOCHS];      /* shared entries in each epoch; 0: epoch free */
};

#define TABLE_MIN_CAP 1024u

/* Candidate load kept in [0.6, 0.8] (grow at 0.8, shrink below 0.6, both to 0.7). */
#define CAND_LOAD_MAX_PCT 80u
#define CAND_LOAD_MIN_PCT 60u
#define CAND_LOAD_SET_PCT 70u
/* Entries of a probe whose slots index_prefetch_candidate_probe() asks for. */
#define CAND_PREFETCH_PROBE 8u
/* Shared load kept in [0.8, 0.9] (grow at 0.9, shrink below 0.8, both to 0.85). */
#define SHARED_LOAD_MAX_PCT 90u
#define SHARED_LOAD_MIN_PCT 80u
#define SHARED_LOAD_SET_PCT 85u

/*
 * Bits that hold page id + 1 for every id below n_ids. The other high bits of a candidate entry, if any,
 * hold bits of its page's hash (a tag), so that a probe compares a slot, a cache miss, only for entries
 * whose tag matches: at the default bound of 2^24 pages, 7 bits, and one entry in 128 that differs.
 */
static unsigned cand_id_bits_for(uint64_t n_ids) {
        unsigned b = 1;

        while (b < 32 && (UINT64_C(1) << b) <= n_ids)
                b++;
        return b;
}

static uint32_t cand_id_mask(const PageIndex *idx) {
        return (uint32_t) ((UINT64_C(1) << idx->cand_id_bits) - 1);
}

/* The tag of hash: bits 8 and up, not the top bits table_pos() takes, which neighbours share. */
static uint32_t cand_tag(const PageIndex *idx, uint64_t hash) {
        return (uint32_t) ((hash >> 8) << idx->cand_id_bits) & ~cand_id_mask(idx);
}

static uint32_t cand_entry(const PageIndex *idx, uint64_t hash, uint32_t page_id) {
        return cand_tag(idx, hash) | (page_id + 1);
}

static uint32_t cand_entry_id(const PageIndex *idx, uint32_t entry) {
        return (entry & cand_id_mask(idx)) - 1;
}

static bool cand_entry_may_be(const PageIndex *idx, uint32_t entry, uint64_t hash) {
        return (entry & ~cand_id_mask(idx)) == cand_tag(idx, hash);
}

static size_t table_pos(uint64_t hash, size_t cap) {
        /* Lemire's range reduction on the well-mixed high bits. */
        return (size_t) (((unsigned __int128) (hash & PAGE_SLOT_HASH_MASK) * cap) >> 64);
}

/* The capacity holding n entries at load set_pct, never below the minimum table. */
static size_t table_cap_for(size_t n, unsigned set_pct) {
        return MAX((size_t) TABLE_MIN_CAP, n * 100 / set_pct + 1);
}

static bool table_too_full(size_t n, size_t cap, unsigned max_pct) {
        return cap == 0 || n * 100 > cap * max_pct;
}

static bool table_too_empty(size_t n, size_t cap, unsigned min_pct) {
        return cap > TABLE_MIN_CAP && n * 100 < cap * min_pct;
}

int index_new(uint64_t max_tracked_pages, PageIndex **ret) {
        _cleanup_(index_freep) PageIndex *idx = NULL;

        if (max_tracked_pages == 0 || max_tracked_pages > UINT32_MAX)
                return -EINVAL;

        idx = calloc(1, sizeof(*idx));
        if (!idx)
                return -ENOMEM;
        idx->max_tracked_pages = max_tracked_pages;
        idx->cand_id_bits = cand_id_bits_for(max_tracked_pages);

        *ret = TAKE_PTR(idx);
        return 0;
}

PageIndex *index_free(PageIndex *idx) {
        if (!idx)
                return NULL;
        free(idx->ranges);
        free(idx->candidates);
        free(idx->shared_keys);
        free(idx->shared_handles_lo);
        free(idx);
        return NULL;
}

void index_begin_pass(PageIndex *idx) {
        /* Size the candidate table for what survived the last pass: the best guess for this one. */
        size_t want = table_cap_for(idx->n_candidates, CAND_LOAD_SET_PCT);

        if (idx->candidates &&
            (table_too_full(idx->n_candidates, idx->candidates_cap, CAND_LOAD_MAX_PCT) ||
             table_too_empty(idx->n_candidates, idx->candidates_cap, CAND_LOAD_MIN_PCT))) {
                uint32_t *table = calloc(want, sizeof(uint32_t));

                /* Without memory for the smaller table the bigger one serves. */
                if (table) {
                        free(idx->candidates);
                        idx->candidates = table;
                        idx->candidates_cap = want;
                }
        }
        idx->n_ranges = 0;
        idx->tracked_pages = 0;
        idx->n_candidates = 0;
        /* Ids stay below the bound: the bits it leaves free are tags for this pass. */
        idx->cand_id_bits = cand_id_bits_for(idx->max_tracked_pages);
        if (idx->candidates)
                memset(idx->candidates, 0, idx->candidates_cap * sizeof(uint32_t));
        idx->candidates_pass_cap = idx->candidates_cap;
        for (size_t i = 0; i < idx->shared_cap; i++)
                idx->shared_keys[i] &= ~SHARED_SEEN;
}

/* Gives the candidate entries id_bits (more than now) bits for the id, keeping their tags' low bits. */
static void candidates_retag(PageIndex *idx, unsigned id_bits) {
        unsigned old_bits = idx->cand_id_bits;
        uint32_t old_mask = cand_id_mask(idx);

        assert(id_bits > old_bits && id_bits <= 32);
        for (size_t i = 0; i < idx->candidates_cap; i++) {
                uint32_t e = idx->candidates[i];

                if (e != 0)
                        idx->candidates[i] = (uint32_t) ((uint64_t) (e >> old_bits) << id_bits) |
                                             (e & old_mask);
        }
        idx->cand_id_bits = id_bits;
}

int index_attach(PageIndex *idx, PageSlot *slots, uint64_t n_pages, uint32_t owner, uint64_t start_addr,
                 uint32_t *ret_base) {
        uint64_t base = 0;

        if (n_pages == 0)
                return -EINVAL;
        if (idx->tracked_pages + n_pages > idx->max_tracked_pages)
                return -ENOSPC;
        if (idx->n_ranges > 0)
                base = idx->ranges[idx->n_ranges - 1].base + idx->ranges[idx->n_ranges - 1].n_pages;
        if (base + n_pages > UINT32_MAX)
                return -E2BIG;
        /* The bound was raised since the pass began: the ids need bits the tags had. */
        if (cand_id_bits_for(base + n_pages) > idx->cand_id_bits)
                candidates_retag(idx, cand_id_bits_for(base + n_pages));

        if (idx->n_ranges == idx->n_ranges_allocated) {
                size_t na = MAX(idx->n_ranges_allocated * 2, (size_t) 16);
                IdRange *nr = reallocarray(idx->ranges, na, sizeof(*nr));

                if (!nr)
                        return -ENOMEM;
                idx->ranges = nr;
                idx->n_ranges_allocated = na;
        }
        idx->ranges[idx->n_ranges++] = (IdRange) {
                .base = (uint32_t) base,
                .n_pages = n_pages,
                .slots = slots,
                .owner = owner,
                .start_addr = start_addr,
        };
        idx->tracked_pages += n_pages;
        *ret_base = (uint32_t) base;
        return 0;
}

bool index_has_room(const PageIndex *idx, uint64_t n_pages) {
        /* The bound may have been lowered below what is attached (a reload): then nothing more fits. */
        return idx->tracked_pages <= idx->max_tracked_pages &&
               n_pages <= idx->max_tracked_pages - idx->tracked_pages;
}

void index_set_max_tracked_pages(PageIndex *idx, uint64_t max_tracked_pages) {
        idx->max_tracked_pages = MIN(MAX(max_tracked_pages, (uint64_t) 1), (uint64_t) UINT32_MAX);
}

uint64_t index_max_tracked_pages(const PageIndex *idx) {
        return idx->max_tracked_pages;
}

static IdRange *range_find(PageIndex *idx, uint32_t page_id) {
        IdRange *r = idx->ranges;
        size_t n = idx->n_ranges;

        if (n == 0)
                return NULL;
        /*
         * The last range starting at or below page_id, by halving without a branch on the comparison (a
         * conditional move): the ids the candidate probes look up are random, so such a branch would be
         * mispredicted at every other step.
         */
        while (n > 1) {
                size_t half = n / 2;

                r = r[half].base <= page_id ? r + half : r;
                n -= half;
        }
        if (page_id < r->base || page_id - r->base >= r->n_pages)
                return NULL;
        return r;
}

void index_detach(PageIndex *idx, uint32_t base) {
        IdRange *r = range_find(idx, base);

        if (r && r->base == base)
                r->slots = NULL;
}

PageSlot *index_slot(PageIndex *idx, uint32_t page_id) {
        IdRange *r = range_find(idx, page_id);

        if (!r || !r->slots)
                return NULL;
        return &r->slots[page_id - r->base];
}

int index_page_info(PageIndex *idx, uint32_t page_id, uint32_t *ret_owner, uint64_t *ret_addr) {
        IdRange *r = range_find(idx, page_id);

        if (!r || !r->slots)
                return -ENOENT;
        *ret_owner = r->owner;
        *ret_addr = r->start_addr + (uint64_t) (page_id - r->base) * PAGE_SIZE_BYTES;
        return 0;
}

static int candidates_resize(PageIndex *idx, size_t cap) {
        uint32_t *old = idx->candidates, *table;
        size_t old_cap = idx->candidates_cap;

        table = calloc(cap, sizeof(uint32_t));
        if (!table)
                return -ENOMEM;

        for (size_t i = 0; i < old_cap; i++) {
                PageSlot *s;
                size_t p;

                if (old[i] == 0)
                        continue;
                s = index_slot(idx, cand_entry_id(idx, old[i]));
                /* A detached page can go: nothing will match it again this pass. */
                if (!s) {
                        idx->n_candidates--;
                        continue;
                }
                p = table_pos(page_slot_hash(*s), cap);
                while (table[p] != 0)
                        p = p + 1 == cap ? 0 : p + 1;
                table[p] = old[i];
        }
        free(old);
        idx->candidates = table;
        idx->candidates_cap = cap;
        return 0;
}

int index_add_candidate(PageIndex *idx, uint32_t page_id, uint32_t *ret_match) {
        PageSlot *self = index_slot(idx, page_id);
        uint64_t hash;
        uint32_t e;
        size_t p;

        if (!self)
                return -EINVAL;
        if (table_too_full(idx->n_candidates + 1, idx->candidates_cap, CAND_LOAD_MAX_PCT)) {
                int r = candidates_resize(idx, table_cap_for(idx->n_candidates + 1, CAND_LOAD_SET_PCT));
                if (r < 0)
                        return r;
        }

        hash = page_slot_hash(*self);
        p = table_pos(hash, idx->candidates_cap);
        while ((e = idx->candidates[p]) != 0) {
                /* Only an entry whose tag matches has its slot, a cache miss, compared. */
                if (cand_entry_may_be(idx, e, hash)) {
                        uint32_t other = cand_entry_id(idx, e);
                        PageSlot *s = index_slot(idx, other);

                        if (other != page_id && s && page_slot_hash(*s) == hash &&
                            (page_slot_state(*s) == PAGE_HASHED || page_slot_state(*s) == PAGE_SHARING)) {
                                *ret_match = other;
                                return 1;
                        }
                }
                p = p + 1 == idx->candidates_cap ? 0 : p + 1;
        }
        idx->candidates[p] = cand_entry(idx, hash, page_id);
        idx->n_candidates++;
        return 0;
}

void index_prefetch_candidate_home(const PageIndex *idx, uint64_t hash) {
        if (idx->candidates_cap == 0)
                return;
        /* For writing: an insertion stores its page id at or near there. */
        __builtin_prefetch(&idx->candidates[table_pos(hash, idx->candidates_cap)], 1);
}

void index_prefetch_candidate_probe(PageIndex *idx, uint64_t hash) {
        size_t cap = idx->candidates_cap, p;

        if (cap == 0)
                return;
        p = table_pos(hash, cap);
        /* The first entries of the probe (most probes end within them at this load) whose tag matches. */
        for (unsigned n = 0; n < CAND_PREFETCH_PROBE && idx->candidates[p] != 0; n++) {
                if (cand_entry_may_be(idx, idx->candidates[p], hash)) {
                        PageSlot *s = index_slot(idx, cand_entry_id(idx, idx->candidates[p]));

                        if (s)
                                __builtin_prefetch(s, 0);
                }
                p = p + 1 == cap ? 0 : p + 1;
        }
}

void index_forget_merged_candidates(PageIndex *idx, uint64_t hash) {
        size_t cap = idx->candidates_cap, p, hole;
        bool removed = false;

        if (cap == 0)
                return;
        hash &= PAGE_SLOT_HASH_MASK;
        p = table_pos(hash, cap);
        while (idx->candidates[p] != 0) {
                PageSlot *s = cand_entry_may_be(idx, idx->candidates[p], hash) ?
                                      index_slot(idx, cand_entry_id(idx, idx->candidates[p])) : NULL;

                if (!s || page_slot_hash(*s) != hash || page_slot_state(*s) == PAGE_HASHED) {
                        p = p + 1 == cap ? 0 : p + 1;
                        continue;
                }

                /*
                 * Backward-shift deletion. An entry whose area was detached has no known
                 * home; it moves into the hole like a tombstone would, which keeps every
                 * probe chain unbroken, and goes at the next resize.
                 */
                hole = p;
                idx->candidates[hole] = 0;
                idx->n_candidates--;
                removed = true;
                for (size_t q = hole;;) {
                        PageSlot *o;
                        size_t home;

                        q = q + 1 == cap ? 0 : q + 1;
                        if (idx->candidates[q] == 0)
                                break;
                        o = index_slot(idx, cand_entry_id(idx, idx->candidates[q]));
                        if (o) {
                                home = table_pos(page_slot_hash(*o), cap);
                                /* Stays if its home is in (hole, q] cyclically. */
                                if ((q > hole && home > hole && home <= q) ||
                                    (q < hole && (home > hole || home <= q)))
                                        continue;
                        }
                        idx->candidates[hole] = idx->candidates[q];
                        idx->candidates[q] = 0;
                        hole = q;
                }
                /* The slot at p may hold a shifted entry with the same hash: look at it again. */
        }

        /* Shrink, but not below the capacity this pass started with: it is still filling. */
        if (removed && idx->candidates_cap > idx->candidates_pass_cap &&
            table_too_empty(idx->n_candidates, idx->candidates_cap, CAND_LOAD_MIN_PCT))
                (void) candidates_resize(idx, MAX(table_cap_for(idx->n_candidates, CAND_LOAD_SET_PCT),
                                                  idx->candidates_pass_cap));
}

/* How far the shared entry at p sits from its home position. */
static size_t shared_displacement(const uint64_t *keys, size_t cap, size_t p) {
        size_t home = table_pos(keys[p], cap);

        return p >= home ? p - home : p + cap - home;
}

/*
 * The shared table is a Robin Hood table: an insertion takes the place of any
 * entry closer to its home than the inserted one is to its own. So a lookup
 * can stop at the first entry closer to its home than the probe is to the
 * looked-up hash's: a miss costs about as much as a hit, even at 90 % load.
 */
static size_t shared_find(const PageIndex *idx, uint64_t hash) {
        size_t p, d = 0;

        if (idx->shared_cap == 0)
                return SIZE_MAX;
        p = table_pos(hash, idx->shared_cap);
        while (idx->shared_keys[p] != 0) {
                if ((idx->shared_keys[p] & PAGE_SLOT_HASH_MASK) == hash)
                        return p;
                if (shared_displacement(idx->shared_keys, idx->shared_cap, p) < d)
                        break;
                p = p + 1 == idx->shared_cap ? 0 : p + 1;
                d++;
        }
        return SIZE_MAX;
}

/* Inserts a key that is not in the table, which has room for it. */
static void shared_place(uint64_t *keys, uint32_t *lo, size_t cap, uint64_t key, uint32_t handle_lo) {
        size_t p = table_pos(key, cap), d = 0;

        while (keys[p] != 0) {
                size_t rd = shared_displacement(keys, cap, p);

                if (rd < d) {
                        /* Take the place of the richer entry and carry it on. */
                        uint64_t k = keys[p];
                        uint32_t l = lo[p];

                        keys[p] = key;
                        lo[p] = handle_lo;
                        key = k;
                        handle_lo = l;
                        d = rd;
                }
                p = p + 1 == cap ? 0 : p + 1;
                d++;
        }
        keys[p] = key;
        lo[p] = handle_lo;
}

static uint64_t shared_handle(const PageIndex *idx, size_t p) {
        unsigned e = (unsigned) (idx->shared_keys[p] >> SHARED_EPOCH_SHIFT) & (SHARED_EPOCHS - 1);

        return (uint64_t) idx->epoch_hi[e] << 32 | idx->shared_handles_lo[p];
}

/* The epoch for a handle's high half, taking a free one if needed; -ENOSPC if all are taken. */
static int shared_epoch(PageIndex *idx, uint64_t handle) {
        int free_epoch = -ENOSPC;

        for (unsigned e = 0; e < SHARED_EPOCHS; e++) {
                if (idx->epoch_refs[e] == 0) {
                        if (free_epoch < 0)
                                free_epoch = (int) e;
                } else if (idx->epoch_hi[e] == (uint32_t) (handle >> 32))
                        return (int) e;
        }
        if (free_epoch >= 0)
                idx->epoch_hi[free_epoch] = (uint32_t) (handle >> 32);
        return free_epoch;
}

static void shared_epoch_put(PageIndex *idx, size_t p) {
        idx->epoch_refs[(idx->shared_keys[p] >> SHARED_EPOCH_SHIFT) & (SHARED_EPOCHS - 1)]--;
}

int index_shared_lookup(PageIndex *idx, uint64_t hash, uint64_t *ret_handle) {
        size_t p = shared_find(idx, hash & PAGE_SLOT_HASH_MASK);

        if (p == SIZE_MAX)
                return 0;
        *ret_handle = shared_handle(idx, p);
        return 1;
}

int index_shared_note_mapper(PageIndex *idx, uint64_t hash) {
        size_t p = shared_find(idx, hash & PAGE_SLOT_HASH_MASK);

        if (p == SIZE_MAX)
                return -ENOENT;
        if (idx->shared_keys[p] & SHARED_SEEN)
                return 0;
        idx->shared_keys[p] |= SHARED_SEEN;
        return 1;
}

static int shared_resize(PageIndex *idx, size_t cap) {
        _cleanup_free_ uint64_t *keys = calloc(cap, sizeof(uint64_t));
        _cleanup_free_ uint32_t *lo = calloc(cap, sizeof(uint32_t));

        if (!keys || !lo)
                return -ENOMEM;
        for (size_t i = 0; i < idx->shared_cap; i++) {
                if (idx->shared_keys[i] != 0)
                        shared_place(keys, lo, cap, idx->shared_keys[i], idx->shared_handles_lo[i]);
        }
        free(idx->shared_keys);
        free(idx->shared_handles_lo);
        idx->shared_keys = TAKE_PTR(keys);
        idx->shared_handles_lo = TAKE_PTR(lo);
        idx->shared_cap = cap;
        return 0;
}

int index_shared_add(PageIndex *idx, uint64_t hash, uint64_t handle) {
        size_t p;
        int e, r;

        hash &= PAGE_SLOT_HASH_MASK;
        p = shared_find(idx, hash);
        if (p != SIZE_MAX) {
                shared_epoch_put(idx, p);
                e = shared_epoch(idx, handle);
                if (e < 0) {
                        /* No epoch for the new handle: forget the page rather than keep a dead handle. */
                        idx->epoch_refs[(idx->shared_keys[p] >> SHARED_EPOCH_SHIFT) & (SHARED_EPOCHS - 1)]++;
                        (void) index_shared_remove(idx, hash);
                        return e;
                }
                idx->epoch_refs[e]++;
                idx->shared_keys[p] = hash | (uint64_t) e << SHARED_EPOCH_SHIFT |
                                      (idx->shared_keys[p] & SHARED_SEEN) | SHARED_USED;
                idx->shared_handles_lo[p] = (uint32_t) handle;
                return 0;
        }
        /* Shared pages have >= 2 tracked mappers, so this bound is never the binding one. */
        if (idx->n_shared + 1 > idx->max_tracked_pages / 2)
                return -ENOSPC;
        e = shared_epoch(idx, handle);
        if (e < 0)
                return e;
        if (table_too_full(idx->n_shared + 1, idx->shared_cap, SHARED_LOAD_MAX_PCT)) {
                r = shared_resize(idx, table_cap_for(idx->n_shared + 1, SHARED_LOAD_SET_PCT));
                if (r < 0)
                        return r;
        }
        shared_place(idx->shared_keys, idx->shared_handles_lo, idx->shared_cap,
                     hash | (uint64_t) e << SHARED_EPOCH_SHIFT | SHARED_USED, (uint32_t) handle);
        idx->epoch_refs[e]++;
        idx->n_shared++;
        return 0;
}

int index_shared_remove(PageIndex *idx, uint64_t hash) {
        size_t hole, p, cap = idx->shared_cap;

        hole = shared_find(idx, hash & PAGE_SLOT_HASH_MASK);
        if (hole == SIZE_MAX)
                return 0;

        /* Backward-shift deletion: no tombstones, and the Robin Hood order holds. */
        shared_epoch_put(idx, hole);
        idx->shared_keys[hole] = 0;
        for (;;) {
                p = hole + 1 == cap ? 0 : hole + 1;
                if (idx->shared_keys[p] == 0 || shared_displacement(idx->shared_keys, cap, p) == 0)
                        break;
                idx->shared_keys[hole] = idx->shared_keys[p];
                idx->shared_handles_lo[hole] = idx->shared_handles_lo[p];
                idx->shared_keys[p] = 0;
                hole = p;
        }
        idx->n_shared--;
        /* Keep the load in its window; a failed shrink only costs memory. */
        if (table_too_empty(idx->n_shared, cap, SHARED_LOAD_MIN_PCT))
                (void) shared_resize(idx, table_cap_for(idx->n_shared, SHARED_LOAD_SET_PCT));
        return 1;
}

int index_shared_prune(PageIndex *idx, bool (*keep)(uint64_t handle, void *userdata), void *userdata) {
        _cleanup_free_ uint64_t *doomed = NULL;
        size_t n = 0;

        if (idx->n_shared == 0)
                return 0;
        doomed = malloc(idx->n_shared * sizeof(uint64_t));
        if (!doomed)
                return -ENOMEM;
        /* Collected first: each removal shifts entries and may resize the table. */
        for (size_t i = 0; i < idx->shared_cap; i++)
                if (idx->shared_keys[i] != 0 && !keep(shared_handle(idx, i), userdata))
                        doomed[n++] = idx->shared_keys[i] & PAGE_SLOT_HASH_MASK;
        for (size_t i = 0; i < n; i++)
                (void) index_shared_remove(idx, doomed[i]);
        return (int) MIN(n, (size_t) INT_MAX);
}

void index_usage(const PageIndex *idx, IndexUsage *ret) {
        *ret = (IndexUsage) {
                .tracked_pages = idx->tracked_pages,
                .max_tracked_pages = idx->max_tracked_pages,
                .candidates = idx->n_candidates,
                .shared_pages = idx->n_shared,
                .metadata_bytes = sizeof(PageIndex) + idx->tracked_pages * PAGE_SLOT_BYTES +
                                  idx->candidates_cap * sizeof(uint32_t) +
                                  idx->shared_cap * (sizeof(uint64_t) + sizeof(uint32_t)) +
                                  idx->n_ranges_allocated * sizeof(IdRange),
        };
}
