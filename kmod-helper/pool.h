/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where shared pages come from: whole pageblocks, kept per NUMA node.
 *
 * A shared page can be neither migrated nor reclaimed. Allocated alone, it
 * lands in whatever pageblock has a free page, often a movable one, and
 * from then on compaction cannot assemble that 2 MiB block into a huge
 * page. So the pool takes whole pageblocks (pageblock_order) on the node
 * a shared page is wanted on, splits them into order-0 pages, and hands
 * those out: unmovable pages stay together in blocks of their own.
 */
#ifndef KSMD_HELPER_POOL_H
#define KSMD_HELPER_POOL_H

#include <linux/types.h>

struct page;

/**
 * struct kh_pool_stats - the pool on one node
 * @blocks:          pageblocks held now
 * @used_pages:      shared pages handed out from them, held now
 * @free_pages:      free slots in them now: memory held by the pool and
 *                   charged to no one
 * @single_pages:    shared pages held now that came from no block
 * @blocks_taken:    pageblocks taken since load
 * @blocks_returned: pageblocks returned whole since load
 * @reused:          shared pages handed out from a slot freed before
 * @fallbacks:       single pages allocated because no block could be
 *                   taken (or the pool is off), counted on the node
 *                   asked for
 */
struct kh_pool_stats {
	u64 blocks;
	u64 used_pages;
	u64 free_pages;
	u64 single_pages;
	u64 blocks_taken;
	u64 blocks_returned;
	u64 reused;
	u64 fallbacks;
};

/* Allocate the per-node state. Returns -ENOMEM on failure. */
int kh_pool_init(void);

/*
 * Free every free slot and forget every block. Call after kh_pages_exit():
 * pages still handed out are the registry's, which dropped its references.
 */
void kh_pool_exit(void);

/*
 * An uncharged order-0 page, with stale bytes, for a new shared page, on
 * node @nid if it has one: a free slot of a block held on @nid, else a slot of
 * a new block taken there, else a single page (preferring @nid). Before it
 * takes a new block it may run kh_pages_gc(), so the caller must not hold
 * kh_pages_lock. Returns the page with one reference, which belongs to the
 * caller until it is handed back with kh_pool_free(), or NULL. Never waits
 * for memory more than once and never invokes the OOM killer. May sleep.
 */
struct page *kh_pool_alloc(int nid);

/*
 * Hand back a page kh_pool_alloc() returned, no page table mapping it, with
 * the caller's reference. A slot nobody else references is uncharged and
 * kept for reuse; a block left with no page in use is kept empty until
 * kh_pool_trim() finds it still unused. May sleep.
 */
void kh_pool_free(struct page *page);

/* Return the empty blocks kept since the last call and still unused. */
void kh_pool_trim(void);

/*
 * The pool's state on node @nid into @ret; false if @nid holds nothing
 * and never did (no figure to report).
 */
bool kh_pool_stats(int nid, struct kh_pool_stats *ret);

/*
 * Whether shared pages come from blocks (false: every one is single, each
 * counted as a fallback): the module parameter pool, and with memory cgroups
 * on, __mem_cgroup_uncharge() resolved.
 */
bool kh_pool_enabled(void);

#endif /* KSMD_HELPER_POOL_H */
