// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: pageblock pool
 *
 * A shared page has no reverse map, so nothing can migrate it, and it is
 * never on an LRU list, so nothing reclaims it. One such page in a
 * pageblock keeps compaction from ever making that 2 MiB block a huge
 * page. Allocated one at a time, shared pages would spread over many
 * blocks (movable ones too, once the unmovable free lists run dry); the
 * pool keeps them together instead.
 *
 * A block is one allocation of pageblock_order pages (naturally aligned,
 * so it is exactly one pageblock), not movable, on the node asked for
 * (__GFP_THISNODE), split with split_page() into order-0 pages of one
 * reference each. The pool holds that reference for each free slot; a
 * slot handed out passes it to the registry (pages.c), which gives it back
 * through kh_pool_free() once no page table maps the page. Taking a block
 * follows the module's rule for every allocation: one try, at most one
 * round of reclaim and compaction (__GFP_NORETRY), no OOM killer. When it
 * fails, the node takes no block for KH_POOL_RETRY and shared pages come
 * one at a time, as the pool's fallbacks, or not at all (NO_MEMORY).
 *
 * A page handed back is kept in its slot only when the pool is its sole
 * holder (page_count() 1: no GUP pin, no speculative reference) and the
 * mapping code left nothing the free path would have to undo (mlocked,
 * poisoned): then it is uncharged from its memory cgroup, as freeing it
 * would uncharge it, and the next shared page on that node takes it
 * before any new block is taken. Otherwise the reference is dropped, the
 * page is freed the ordinary way whenever its last holder lets go, and the
 * slot is gone from the block. Slots are taken from partly used blocks
 * first, and among those first from a block that was full until a slot in
 * it was freed, so that the holes of full blocks are filled before fresh
 * slots and the emptier blocks may drain. The pool never moves a page
 * between blocks, so one page in use keeps its block held.
 *
 * A block with no page in use is kept empty for a while: it goes back to
 * the page allocator whole at the second collector run that finds it still
 * empty (5 to 10 s), and its pages, freed together, merge back into one
 * free 2 MiB block in the buddy allocator. Until then the next shared pages
 * on its node take its slots before a new block is taken. And before a new
 * block is taken, the collector runs first (at most once a second with
 * millions of pages in use): the pages that writes broke away from are
 * freed only when it runs, every 5 s otherwise, and merging the new
 * contents of a rewritten range would take new blocks while the old ones
 * still wait to be emptied. Each block taken is marked unmovable by the
 * page allocator and stays so once it is returned, drawing the kernel's
 * other unmovable allocations, which then keep compaction out of it; so
 * the pool takes and returns as few blocks as it can.
 *
 * With memory cgroups on, the pool needs __mem_cgroup_uncharge() to keep
 * a freed slot, as each page is charged while it is handed out; without
 * it every shared page is a single page, as before the pool. So it is with
 * the module parameter pool=0, which benchmarks and tests use to measure
 * the module as it was before the pool.
 *
 * One mutex, kh_pool_lock, guards all of it; it nests inside
 * kh_pages_lock, and a block is allocated under it (which may sleep).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/overflow.h>
#include <linux/page-flags.h>
#include <linux/pageblock-flags.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "compat.h"
#include "pages.h"
#include "pool.h"

/* How long a node takes no new block after failing to take one. */
#define KH_POOL_RETRY HZ

/*
 * Taking a block may run the collector first (see above), which walks the
 * whole registry: at most once a second with 2^KH_POOL_COLLECT_SHIFT pages
 * in use or more (4 GiB of shared pages), proportionally more often with
 * fewer. kh_pool_last_collect: when it last did.
 */
#define KH_POOL_COLLECT_SHIFT 20
static unsigned long kh_pool_last_collect = INITIAL_JIFFIES;

/*
 * For benchmarks and tests: with pool=0 every shared page is a single
 * page, as before the pool, so that one boot can compare both (reloading
 * the module in between). Read-only once loaded.
 */
static bool kh_pool_param = true;
module_param_named(pool, kh_pool_param, bool, 0444);
MODULE_PARM_DESC(pool,
		 "Carve shared pages from whole pageblocks (default 1; 0, for benchmarks and tests: every shared page a single page, as before the pool)");

/**
 * struct kh_block - one pageblock the pool holds
 * @link:  in its node's partial, full or empty list
 * @base:  its first page
 * @nid:   its node
 * @used:  slots handed out
 * @nfree: free slots (set in @free)
 * @idle:  empty, and found so by one kh_pool_trim() already
 * @free:  one bit per slot: the pool holds the page and may hand it out
 * @fresh: one bit per slot: never handed out yet
 *
 * A slot neither free nor used is gone: its page left the pool.
 */
struct kh_block {
	struct list_head link;
	struct page *base;
	int nid;
	unsigned int used;
	unsigned int nfree;
	bool idle;
	unsigned long *fresh;
	unsigned long free[];
};

/* The two bitmaps of a block, one after the other. */
#define KH_BLOCK_LONGS BITS_TO_LONGS(pageblock_nr_pages)

/**
 * struct kh_pool_node - the pool on one node
 * @partial: blocks with free slots and pages in use
 * @full:    blocks with no free slot
 * @empty:   blocks with no page in use, kept until kh_pool_trim() finds them unused
 * @retry:   jiffies before which no block is taken on this node
 * @stats:   what INFO reports
 */
struct kh_pool_node {
	struct list_head partial;
	struct list_head full;
	struct list_head empty;
	unsigned long retry;
	struct kh_pool_stats stats;
};

static DEFINE_MUTEX(kh_pool_lock);
/* Blocks by pfn >> pageblock_order: which block a page belongs to. */
static DEFINE_XARRAY(kh_blocks);
static struct kh_pool_node *kh_pool_nodes;

/* Every allocation here: not movable, one try, no OOM killer. */
#define KH_GFP_BLOCK (KH_GFP_PAGE | __GFP_THISNODE)

bool kh_pool_enabled(void)
{
	if (!kh_pool_param)
		return false;
	return !kh_symbols_have_memcg() || kh_sym.mem_cgroup_uncharge;
}

int kh_pool_init(void)
{
	int nid;

	kh_pool_nodes = kcalloc(nr_node_ids, sizeof(*kh_pool_nodes),
				GFP_KERNEL);
	if (!kh_pool_nodes)
		return -ENOMEM;
	for (nid = 0; nid < nr_node_ids; nid++) {
		INIT_LIST_HEAD(&kh_pool_nodes[nid].partial);
		INIT_LIST_HEAD(&kh_pool_nodes[nid].full);
		INIT_LIST_HEAD(&kh_pool_nodes[nid].empty);
	}
	return 0;
}

/* Free the free slots of @b and @b itself; its used pages are not ours. */
static void kh_block_release(struct kh_block *b)
{
	unsigned long i;

	lockdep_assert_held(&kh_pool_lock);
	for_each_set_bit(i, b->free, pageblock_nr_pages)
		put_page(b->base + i);
	xa_erase(&kh_blocks, page_to_pfn(b->base) >> pageblock_order);
	list_del(&b->link);
	kfree(b);
}

void kh_pool_exit(void)
{
	struct kh_block *b;
	unsigned long index;

	mutex_lock(&kh_pool_lock);
	xa_for_each(&kh_blocks, index, b) {
		kh_block_release(b);
		cond_resched();
	}
	xa_destroy(&kh_blocks);
	mutex_unlock(&kh_pool_lock);
	kfree(kh_pool_nodes);
	kh_pool_nodes = NULL;
}

/* Take a new block on @nid, or return NULL (and leave @nid alone a while). */
static struct kh_block *kh_block_take(int nid)
{
	struct kh_pool_node *n = &kh_pool_nodes[nid];
	struct kh_block *b;
	struct page *base;

	lockdep_assert_held(&kh_pool_lock);
	if (time_before(jiffies, n->retry))
		return NULL;
	b = kzalloc(struct_size(b, free, 2 * KH_BLOCK_LONGS), KH_GFP);
	if (!b)
		return NULL;
	base = alloc_pages_node(nid, KH_GFP_BLOCK, pageblock_order);
	if (!base)
		goto fail;
	/* __GFP_THISNODE: on @nid, or not at all; checked all the same. */
	if (page_to_nid(base) != nid ||
	    xa_insert(&kh_blocks, page_to_pfn(base) >> pageblock_order, b,
		      KH_GFP)) {
		__free_pages(base, pageblock_order);
		goto fail;
	}
	split_page(base, pageblock_order);
	b->base = base;
	b->nid = nid;
	b->nfree = pageblock_nr_pages;
	b->fresh = b->free + KH_BLOCK_LONGS;
	bitmap_fill(b->free, pageblock_nr_pages);
	bitmap_fill(b->fresh, pageblock_nr_pages);
	list_add(&b->link, &n->empty);
	n->stats.blocks++;
	n->stats.free_pages += pageblock_nr_pages;
	n->stats.blocks_taken++;
	return b;

fail:
	kfree(b);
	n->retry = jiffies + KH_POOL_RETRY;
	return NULL;
}

/* Hand out a free slot of @b, which has one. */
static struct page *kh_block_get(struct kh_block *b)
{
	struct kh_pool_node *n = &kh_pool_nodes[b->nid];
	unsigned long i;

	lockdep_assert_held(&kh_pool_lock);
	i = find_first_bit(b->free, pageblock_nr_pages);
	__clear_bit(i, b->free);
	if (!__test_and_clear_bit(i, b->fresh))
		n->stats.reused++;
	b->nfree--;
	b->used++;
	b->idle = false;
	if (!b->nfree)
		list_move(&b->link, &n->full);
	else if (b->used == 1)
		list_move(&b->link, &n->partial);
	n->stats.free_pages--;
	n->stats.used_pages++;
	return b->base + i;
}

/* Undo the charge of a page handed out, as freeing it would. */
static void kh_uncharge(struct page *page)
{
	if (kh_symbols_have_memcg() && kh_sym.mem_cgroup_uncharge)
		kh_call(mem_cgroup_uncharge)(page_folio(page));
}

/*
 * Whether @page, handed back, may be handed out again as it is: nobody but
 * the pool holds it, and nothing is left that only the free path resets.
 */
static bool kh_page_reusable(struct page *page)
{
	struct folio *folio = page_folio(page);

	return folio_ref_count(folio) == 1 && !folio_mapped(folio) &&
	       !folio->mapping && !folio_test_lru(folio) &&
	       !folio_test_mlocked(folio) && !PageHWPoison(page);
}

/*
 * @b has no page in use: keep it until kh_pool_trim() finds it unused, or
 * return it at once if it has no slot left.
 */
static void kh_block_empty(struct kh_block *b)
{
	struct kh_pool_node *n = &kh_pool_nodes[b->nid];

	lockdep_assert_held(&kh_pool_lock);
	if (b->nfree) {
		b->idle = false;
		list_move(&b->link, &n->empty);
		return;
	}
	n->stats.blocks--;
	n->stats.free_pages -= b->nfree;
	n->stats.blocks_returned++;
	kh_block_release(b);
}

/*
 * Take back the slot of @page, handed out from @b, with the reference the
 * holder had: kept for reuse if @keep (the page is uncharged), else the
 * reference is dropped and the slot is gone from @b.
 */
static void kh_slot_put(struct kh_block *b, struct page *page, bool keep)
{
	struct kh_pool_node *n = &kh_pool_nodes[b->nid];

	lockdep_assert_held(&kh_pool_lock);
	if (keep)
		kh_uncharge(page);
	else
		put_page(page);
	b->used--;
	n->stats.used_pages--;
	if (keep) {
		__set_bit(page - b->base, b->free);
		b->nfree++;
		n->stats.free_pages++;
	}
	if (!b->used)
		kh_block_empty(b);
	else if (keep && b->nfree == 1)
		list_move(&b->link, &n->partial);
}

void kh_pool_free(struct page *page)
{
	struct kh_block *b;

	mutex_lock(&kh_pool_lock);
	b = xa_load(&kh_blocks, page_to_pfn(page) >> pageblock_order);
	if (b) {
		kh_slot_put(b, page, kh_page_reusable(page));
	} else {
		kh_pool_nodes[page_to_nid(page)].stats.single_pages--;
		put_page(page);
	}
	mutex_unlock(&kh_pool_lock);
}

/* Whether kh_pool_alloc() may run the collector before it takes a block now. */
static bool kh_pool_may_collect(void)
{
	u64 used = 0;
	int nid;

	lockdep_assert_held(&kh_pool_lock);
	for (nid = 0; nid < nr_node_ids; nid++)
		used += kh_pool_nodes[nid].stats.used_pages +
			kh_pool_nodes[nid].stats.single_pages;
	used = min_t(u64, used, 1ULL << KH_POOL_COLLECT_SHIFT);
	return time_after_eq(jiffies, kh_pool_last_collect +
				      (unsigned long)((used * HZ) >>
						      KH_POOL_COLLECT_SHIFT));
}

struct page *kh_pool_alloc(int nid)
{
	struct kh_pool_node *n;
	struct kh_block *b;
	struct page *page = NULL;
	bool collected = false;

	if (nid < 0 || nid >= nr_node_ids)
		nid = numa_mem_id();
	n = &kh_pool_nodes[nid];
	mutex_lock(&kh_pool_lock);
	while (kh_pool_enabled()) {
		b = list_first_entry_or_null(&n->partial, struct kh_block, link);
		if (!b)
			b = list_first_entry_or_null(&n->empty, struct kh_block,
						     link);
		if (!b && !collected && kh_pool_may_collect()) {
			/* Free what no page table maps first (see above). */
			kh_pool_last_collect = jiffies;
			collected = true;
			mutex_unlock(&kh_pool_lock);
			kh_pages_gc();
			mutex_lock(&kh_pool_lock);
			continue;
		}
		if (!b)
			b = kh_block_take(nid);
		if (!b)
			break;
		page = kh_block_get(b);
		if (!PageHWPoison(page))
			goto out;
		/* Memory failure hit a free slot: it leaves, as from a free list. */
		kh_slot_put(b, page, false);
		page = NULL;
	}
	page = alloc_pages_node(nid, KH_GFP_PAGE, 0);
	if (page) {
		n->stats.fallbacks++;
		kh_pool_nodes[page_to_nid(page)].stats.single_pages++;
	}
out:
	mutex_unlock(&kh_pool_lock);
	return page;
}

void kh_pool_trim(void)
{
	struct kh_block *b, *tmp;
	struct kh_pool_node *n;
	int nid;

	mutex_lock(&kh_pool_lock);
	for (nid = 0; nid < nr_node_ids; nid++) {
		n = &kh_pool_nodes[nid];
		list_for_each_entry_safe(b, tmp, &n->empty, link) {
			if (!b->idle) {
				b->idle = true;
				continue;
			}
			n->stats.blocks--;
			n->stats.free_pages -= b->nfree;
			n->stats.blocks_returned++;
			kh_block_release(b);
		}
	}
	mutex_unlock(&kh_pool_lock);
}

bool kh_pool_stats(int nid, struct kh_pool_stats *ret)
{
	if (nid < 0 || nid >= nr_node_ids)
		return false;
	mutex_lock(&kh_pool_lock);
	*ret = kh_pool_nodes[nid].stats;
	mutex_unlock(&kh_pool_lock);
	return ret->blocks_taken || ret->fallbacks || ret->single_pages;
}
