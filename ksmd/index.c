/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <string.h>

#include "index.h"
#include "page-hash.h"

typedef struct IdRange {
        uint32_t base;
        uint64_t n_pages;
        PageSlot *slots;                 /* NULL once detached */
        uint32_t owner;
        uint64_t start_addr;
} IdRange;

typedef struct SharedEntry {
        uint64_t key;                    /* hash | 1 (| SHARED_SEEN); 0 marks an empty entry */
        uint64_t handle;
} SharedEntry;

/* In a SharedEntry's key: a mapper of the page was counted this pass. */
#define SHARED_SEEN UINT64_C(2)

struct PageIndex {
        uint64_t max_tracked_pages;
        uint64_t tracked_pages;

        IdRange *ranges;                 /* ascending by base */
        size_t n_ranges, n_ranges_allocated;

        uint32_t *candidates;            /* page id + 1; 0 marks an empty entry */
        size_t n_candidates, candidates_cap;

        SharedEntry *shared;
        size_t n_shared, shared_cap;
};

#define TABLE_MIN_CAP 1024u

static size_t table_pos(uint64_t hash, size_t cap) {
        /* Lemire's range reduction on the well-mixed high bits. */
        return (size_t) (((unsigned __int128) (hash & PAGE_SLOT_HASH_MASK) * cap) >> 64);
}

static size_t table_grown_cap(size_t cap) {
        return cap + cap / 3 + 1;
}

int index_new(uint64_t max_tracked_pages, PageIndex **ret) {
        _cleanup_(index_freep) PageIndex *idx = NULL;

        if (max_tracked_pages == 0 || max_tracked_pages > UINT32_MAX)
                return -EINVAL;

        idx = calloc(1, sizeof(*idx));
        if (!idx)
                return -ENOMEM;
        idx->max_tracked_pages = max_tracked_pages;

        *ret = TAKE_PTR(idx);
        return 0;
}

PageIndex *index_free(PageIndex *idx) {
        if (!idx)
                return NULL;
        free(idx->ranges);
        free(idx->candidates);
        free(idx->shared);
        free(idx);
        return NULL;
}

void index_begin_pass(PageIndex *idx) {
        idx->n_ranges = 0;
        idx->tracked_pages = 0;
        idx->n_candidates = 0;
        if (idx->candidates)
                memset(idx->candidates, 0, idx->candidates_cap * sizeof(uint32_t));
        for (size_t i = 0; i < idx->shared_cap; i++)
                idx->shared[i].key &= ~SHARED_SEEN;
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
        return n_pages <= idx->max_tracked_pages - idx->tracked_pages;
}

uint64_t index_max_tracked_pages(const PageIndex *idx) {
        return idx->max_tracked_pages;
}

static IdRange *range_find(PageIndex *idx, uint32_t page_id) {
        size_t lo = 0, hi = idx->n_ranges;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                IdRange *r = &idx->ranges[mid];

                if (page_id < r->base)
                        hi = mid;
                else if (page_id >= r->base + r->n_pages)
                        lo = mid + 1;
                else
                        return r;
        }
        return NULL;
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

static int candidates_grow(PageIndex *idx) {
        size_t cap = idx->candidates_cap ? table_grown_cap(idx->candidates_cap) : TABLE_MIN_CAP;
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
                s = index_slot(idx, old[i] - 1);
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
        size_t p;

        if (!self)
                return -EINVAL;
        if ((idx->n_candidates + 1) * 5 > idx->candidates_cap * 4) {
                int r = candidates_grow(idx);
                if (r < 0)
                        return r;
        }

        hash = page_slot_hash(*self);
        p = table_pos(hash, idx->candidates_cap);
        while (idx->candidates[p] != 0) {
                uint32_t other = idx->candidates[p] - 1;
                PageSlot *s = index_slot(idx, other);

                if (other != page_id && s && page_slot_hash(*s) == hash &&
                    page_slot_state(*s) == PAGE_HASHED) {
                        *ret_match = other;
                        return 1;
                }
                p = p + 1 == idx->candidates_cap ? 0 : p + 1;
        }
        idx->candidates[p] = page_id + 1;
        idx->n_candidates++;
        return 0;
}

static SharedEntry *shared_find(PageIndex *idx, uint64_t key) {
        size_t p;

        if (idx->shared_cap == 0)
                return NULL;
        p = table_pos(key, idx->shared_cap);
        while (idx->shared[p].key != 0) {
                if ((idx->shared[p].key & ~SHARED_SEEN) == key)
                        return &idx->shared[p];
                p = p + 1 == idx->shared_cap ? 0 : p + 1;
        }
        return NULL;
}

int index_shared_lookup(PageIndex *idx, uint64_t hash, uint64_t *ret_handle) {
        SharedEntry *e = shared_find(idx, (hash & PAGE_SLOT_HASH_MASK) | 1);

        if (!e)
                return 0;
        *ret_handle = e->handle;
        return 1;
}

int index_shared_note_mapper(PageIndex *idx, uint64_t hash) {
        SharedEntry *e = shared_find(idx, (hash & PAGE_SLOT_HASH_MASK) | 1);

        if (!e)
                return -ENOENT;
        if (e->key & SHARED_SEEN)
                return 0;
        e->key |= SHARED_SEEN;
        return 1;
}

static void shared_place(SharedEntry *table, size_t cap, SharedEntry e) {
        size_t p = table_pos(e.key, cap);

        while (table[p].key != 0)
                p = p + 1 == cap ? 0 : p + 1;
        table[p] = e;
}

int index_shared_add(PageIndex *idx, uint64_t hash, uint64_t handle) {
        uint64_t key = (hash & PAGE_SLOT_HASH_MASK) | 1;
        SharedEntry *e = shared_find(idx, key);

        if (e) {
                e->handle = handle;
                return 0;
        }
        /* Shared pages have >= 2 tracked mappers, so this bound is never the binding one. */
        if (idx->n_shared + 1 > idx->max_tracked_pages / 2)
                return -ENOSPC;
        if ((idx->n_shared + 1) * 5 > idx->shared_cap * 4) {
                size_t cap = idx->shared_cap ? table_grown_cap(idx->shared_cap) : TABLE_MIN_CAP;
                SharedEntry *table = calloc(cap, sizeof(SharedEntry));

                if (!table)
                        return -ENOMEM;
                for (size_t i = 0; i < idx->shared_cap; i++)
                        if (idx->shared[i].key != 0)
                                shared_place(table, cap, idx->shared[i]);
                free(idx->shared);
                idx->shared = table;
                idx->shared_cap = cap;
        }
        shared_place(idx->shared, idx->shared_cap, (SharedEntry) { .key = key, .handle = handle });
        idx->n_shared++;
        return 0;
}

int index_shared_remove(PageIndex *idx, uint64_t hash) {
        SharedEntry *e = shared_find(idx, (hash & PAGE_SLOT_HASH_MASK) | 1);
        size_t hole, p, cap = idx->shared_cap;

        if (!e)
                return 0;

        /* Backward-shift deletion keeps linear probing free of tombstones. */
        hole = (size_t) (e - idx->shared);
        idx->shared[hole].key = 0;
        p = hole;
        for (;;) {
                size_t home;

                p = p + 1 == cap ? 0 : p + 1;
                if (idx->shared[p].key == 0)
                        break;
                home = table_pos(idx->shared[p].key, cap);
                /* Move the entry back if its home is not in (hole, p] cyclically. */
                if ((p > hole && (home <= hole || home > p)) || (p < hole && home <= hole && home > p)) {
                        idx->shared[hole] = idx->shared[p];
                        idx->shared[p].key = 0;
                        hole = p;
                }
        }
        idx->n_shared--;
        return 1;
}

void index_usage(const PageIndex *idx, IndexUsage *ret) {
        *ret = (IndexUsage) {
                .tracked_pages = idx->tracked_pages,
                .max_tracked_pages = idx->max_tracked_pages,
                .candidates = idx->n_candidates,
                .shared_pages = idx->n_shared,
                .metadata_bytes = idx->tracked_pages * PAGE_SLOT_BYTES +
                                  idx->candidates_cap * sizeof(uint32_t) +
                                  idx->shared_cap * sizeof(SharedEntry) +
                                  idx->n_ranges_allocated * sizeof(IdRange),
        };
}
