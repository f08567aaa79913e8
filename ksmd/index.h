/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: the page index and its memory budget
 *
 * Every tracked page (a page of a private anonymous mapping inside a
 * registered region) costs the daemon one PageSlot of 8 bytes, kept in a
 * dense array per mapped area, indexed by (address - area start) / 4096:
 *
 *   bits 63..8  the top 56 bits of the page's seeded XXH3-64 content hash
 *               (valid in states HASHED and SHARING)
 *   bits  7..5  volatility level v: the page is read only every 2^v passes;
 *               raised by a change found on reading and by a COW break of a
 *               merged page, lowered while it holds still or stays merged
 *               (merge-policy.h). The per-page backoff of MergePolicy= lives
 *               here and costs nothing beyond these 8 bytes
 *   bit      4  SD_OK: the hash was taken after the last soft-dirty clear of
 *               its process, so a clean soft-dirty bit proves the content
 *               is still the hashed one
 *   bit      3  GROUPED: this pass, another candidate matched this one
 *   bits  2..0  enum PageState
 *
 * Candidates (pages offered for merging: read for the first time and not
 * known volatile under MergePolicy=first-pass, or held still across a scan;
 * merge-policy.h) are grouped by
 * hash in an open-addressing table of uint32 entries (linear probing): the
 * page id, and in the high bits the bound on tracked pages leaves it (7 at
 * the default MaxMetadata=, none at the largest), a tag of the hash, so that
 * a probe reads the hash back from the slot, a cache miss, only for entries
 * whose tag matches; the hash is not stored twice. It is rebuilt on every
 * full scan, like KSM's unstable tree, so it never holds a stale page id:
 * between passes only slots persist. It grows when more than 80 % full, to
 * 70 %. A candidate that the helper merged with a later duplicate leaves the
 * table (index_forget_merged_candidates()), which shrinks back to 70 % when
 * it falls below 60 % full, though never below the capacity the pass started
 * with; each pass starts with the capacity the last pass's surviving
 * candidates need (re-sized to 70 % unless they fill 60-80 % of it). So the
 * table costs at most 4 / 0.6 = 6.7 bytes per candidate, counting the larger
 * of this pass's and the last pass's surviving candidates.
 *
 * Pages already merged by the helper are remembered once per shared page,
 * not per page, so that a new duplicate joins the shared page with
 * KSMD_HELPER_ITEM_A_HANDLE. A second open-addressing table holds, per shared
 * page, a uint64 key (the hash's 56 bits, a 5-bit handle epoch, a seen-this-
 * pass bit and a used bit) and, in a parallel array, the low 32 bits of the
 * helper's handle: 12 bytes. The helper hands out handles in increasing order
 * and never reuses them, so the live handles share few distinct high halves;
 * the index keeps up to 32 of them (the epochs, 384 bytes inside PageIndex).
 * A handle whose high half needs a 33rd epoch (after 2^37 handles, with old
 * shared pages still alive) is not remembered: index_shared_add() returns
 * -ENOSPC and the page stays merged, only unjoinable. The table is kept
 * between 80 % and 90 % full (it grows and shrinks to 85 %), so a shared
 * page costs at most 12 / 0.8 = 15 bytes. It is a Robin Hood table (linear
 * probing where an insertion displaces entries nearer their home), so that a
 * lookup that misses, as most candidates' do, stops after a few probes at
 * this load instead of running to the end of the cluster.
 * A shared page's mappers hold no candidate entry, but for the last mapper of
 * a shared page the table forgot (see below): it is a candidate again each
 * pass, so that a later duplicate can pair with it and join its shared page,
 * at the cost of a candidate (14.7 bytes).
 *
 * Per tracked page, by state, at the end of a pass:
 *
 *   never read, not present, volatile (changed      8 bytes (slot only)
 *     since the last read), zero, zero-merged
 *   unique or candidate (offered, indexed), or      8 + 6.7  = 14.7 bytes
 *     the last mapper of a forgotten shared page
 *   merged group of k >= 2 tracked mappers          8 + 15/k <= 15.5 bytes
 *                                                   (k = 2: 15.5, k = 3: 13)
 *
 * so at most 16 bytes per tracked page in every state and in any mix of
 * them, under either MergePolicy= (first-pass indexes a page one pass
 * earlier, in the same state and at the same cost; volatility and COW-break
 * backoff are slot bits, and cow_breaks is one counter per region), plus a
 * fixed part: the PageIndex itself (about 500 bytes), the
 * minimum tables (1024 entries each, 4 KiB for candidates and 12 KiB for
 * shared pages) and 40 bytes per attached area (IdRange, in an array that
 * doubles: at most 80). index_usage() reports exactly this allocation.
 *
 * A shared page whose other mappers went away (their region was
 * unregistered, their process exited or wrote to its copy) would keep its
 * 15-byte entry for a last mapper that saves nothing: at the end of a full
 * scan, if the helper's counters differ from those of the last list or 10 s
 * have passed since it, the daemon asks the helper which shared pages it still
 * owns and how many page tables map them (KSMD_HELPER_CMD_GET_PAGES), and
 * forgets those with fewer than two (index_shared_prune()). Until then such
 * an entry can outlive its mappers (over a rest, for as long as the rest), and
 * while a pass runs, tracked_pages counts only the areas attached so far.
 *
 * Page ids are assigned per pass: index_begin_pass() forgets every id, the
 * scanner attaches each area's slot array again and gets a base id. The sum
 * of attached pages is bounded by max_tracked_pages (configuration); an area
 * that would exceed it is refused with -ENOSPC and stays untracked.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef uint64_t PageSlot;

/* The most index memory a tracked page costs in any state (see above): MaxMetadata= / this = the bound. */
#define INDEX_MAX_BYTES_PER_PAGE 16u

typedef enum PageState {
        PAGE_UNKNOWN,            /* nothing known: never read, not present, or to be re-read */
        PAGE_HASHED,             /* hash of the last read; a candidate once it reads the same again */
        PAGE_ZERO,               /* all zero at the last read (no hash computed) */
        PAGE_SHARING,            /* maps a shared page of the helper whose content hash is in the slot */
        PAGE_ZERO_MERGED,        /* the helper's MERGE_ZERO made it map the zero page */
        PAGE_REFUSED,            /* the helper refused it; the hash bits hold the PageReason (reasons.h) */
        _PAGE_STATE_MAX,
        _PAGE_STATE_INVALID = -1,
} PageState;

#define PAGE_SLOT_HASH_MASK   (~UINT64_C(0xff))
#define PAGE_SLOT_VOL_SHIFT   5
#define PAGE_SLOT_VOL_MAX     7u
#define PAGE_SLOT_SD_OK       (UINT64_C(1) << 4)
#define PAGE_SLOT_GROUPED     (UINT64_C(1) << 3)
#define PAGE_SLOT_STATE_MASK  UINT64_C(0x7)

static inline PageState page_slot_state(PageSlot s) {
        return (PageState) (s & PAGE_SLOT_STATE_MASK);
}
static inline uint64_t page_slot_hash(PageSlot s) {
        return s & PAGE_SLOT_HASH_MASK;
}
static inline unsigned page_slot_volatility(PageSlot s) {
        return (unsigned) (s >> PAGE_SLOT_VOL_SHIFT) & PAGE_SLOT_VOL_MAX;
}
static inline PageSlot page_slot_make(uint64_t hash, PageState state, unsigned volatility, bool sd_ok) {
        return (hash & PAGE_SLOT_HASH_MASK) |
               ((PageSlot) MIN(volatility, PAGE_SLOT_VOL_MAX) << PAGE_SLOT_VOL_SHIFT) |
               (sd_ok ? PAGE_SLOT_SD_OK : 0) | (PageSlot) state;
}

/*
 * The key a page is indexed under: its content hash with its merge domain's
 * id mixed in (domains.h). For one content, different domains give different
 * keys (the id lands in bits 8..39, which the slot keeps), so no lookup of
 * one domain can find a page of another; two keys that are equal across
 * domains belong to different contents, which the helper's comparison of
 * the bytes refuses to merge.
 */
static inline uint64_t page_key(uint64_t content_hash, uint32_t domain_id) {
        return (content_hash ^ ((uint64_t) domain_id << 8)) & PAGE_SLOT_HASH_MASK;
}

/* Bytes per tracked page for the slot, for accounting by slot owners. */
#define PAGE_SLOT_BYTES sizeof(PageSlot)

typedef struct PageIndex PageIndex;

/* max_tracked_pages > 0: the bound on attached pages (and so on index memory). */
int index_new(uint64_t max_tracked_pages, PageIndex **ret);
PageIndex *index_free(PageIndex *idx);
DEFINE_TRIVIAL_CLEANUP_FUNC(PageIndex *, index_free);

/* Forgets all candidates and page ids; shared entries persist, their mapper counts (see below) restart. */
void index_begin_pass(PageIndex *idx);

/*
 * Attaches an area's slot array (not owned; must stay valid until the next
 * index_begin_pass() or index_detach()) and returns its first page id. owner
 * (a region id) and start_addr (the area's first address) are returned by
 * index_page_info().
 * -ENOSPC if the area would take the tracked pages beyond the bound;
 * -E2BIG past 2^32 - 1 page ids.
 */
int index_attach(PageIndex *idx, PageSlot *slots, uint64_t n_pages, uint32_t owner, uint64_t start_addr,
                 uint32_t *ret_base);

/* True if n_pages more pages can be attached this pass without exceeding the bound. */
bool index_has_room(const PageIndex *idx, uint64_t n_pages);
uint64_t index_max_tracked_pages(const PageIndex *idx);
/* A new bound (MaxMetadata= on reload), clamped to 1..2^32 - 1; it applies to areas attached from now on. */
void index_set_max_tracked_pages(PageIndex *idx, uint64_t max_tracked_pages);

/* The area starting at base goes away mid-pass: its ids resolve to NULL from now on. */
void index_detach(PageIndex *idx, uint32_t base);

/* The slot of a page id, or NULL if its area was detached or the id is unknown. */
PageSlot *index_slot(PageIndex *idx, uint32_t page_id);

/* Owner cookie and address of a page id. -ENOENT if detached or unknown. */
int index_page_info(PageIndex *idx, uint32_t page_id, uint32_t *ret_owner, uint64_t *ret_addr);

/*
 * Offers a candidate page (its slot in state HASHED, or SHARING for the last
 * mapper of a forgotten shared page). Returns 0 if it is the
 * first page with its hash this pass (now indexed), 1 if another candidate
 * with an equal hash is indexed (*ret_match: its id; the offered page is not
 * inserted), -ENOMEM.
 */
int index_add_candidate(PageIndex *idx, uint32_t page_id, uint32_t *ret_match);

/*
 * Hints, for a batch of candidates about to be offered with index_add_candidate(), that change nothing
 * but the time it takes. Its probe starts at a random position of a table of up to millions of entries
 * and compares the hash in the slot of each page there whose tag matches (a duplicate's): up to two
 * cache misses a candidate, paid one after the other when candidates are offered one at a time.
 * index_prefetch_candidate_home() asks the CPU for the table line where the probe of hash (a page_key())
 * starts; index_prefetch_candidate_probe(), called once that line had time to arrive, for the slots of
 * the first pages on that probe whose tag matches. Called for a chunk of pages ahead of offering them,
 * the misses of the whole chunk overlap.
 */
void index_prefetch_candidate_home(const PageIndex *idx, uint64_t hash);
void index_prefetch_candidate_probe(PageIndex *idx, uint64_t hash);

/*
 * A candidate with this hash was merged: the helper made it (and its
 * duplicate) a shared page. Removes the candidate entries with this hash whose
 * slot is no longer HASHED, so merged pages cost no candidate entry.
 */
void index_forget_merged_candidates(PageIndex *idx, uint64_t hash);

/* Shared pages by content hash. Returns 1 and *ret_handle if known, 0 if not. */
int index_shared_lookup(PageIndex *idx, uint64_t hash, uint64_t *ret_handle);
/*
 * Remembers (or updates) a shared page. -ENOSPC when the tracked-page bound
 * would be exceeded or no handle epoch is free (see the DOC above), -ENOMEM.
 */
int index_shared_add(PageIndex *idx, uint64_t hash, uint64_t handle);
/*
 * Counts a page found mapping the shared page with this hash, so that each
 * shared page is counted once per pass (KSM's pages_shared) and its other
 * mappers as sharing. Returns 1 for the first mapper this pass, 0 for the
 * others, -ENOENT if no shared page with this hash is known.
 */
int index_shared_note_mapper(PageIndex *idx, uint64_t hash);
/* Forgets a shared page (its handle is dead). Returns 1 if it was known. */
int index_shared_remove(PageIndex *idx, uint64_t hash);
/*
 * Forgets every shared page for whose handle keep() returns false (the
 * helper no longer has it, or at most one page table maps it). Returns the
 * number forgotten, or -ENOMEM (then nothing is).
 */
int index_shared_prune(PageIndex *idx, bool (*keep)(uint64_t handle, void *userdata), void *userdata);

typedef struct IndexUsage {
        uint64_t tracked_pages;          /* attached pages this pass */
        uint64_t max_tracked_pages;
        uint64_t candidates;             /* entries in the candidate table */
        uint64_t shared_pages;           /* entries in the shared table */
        uint64_t metadata_bytes;         /* the index, slots, both tables and the area ranges, bytes */
} IndexUsage;

void index_usage(const PageIndex *idx, IndexUsage *ret);
