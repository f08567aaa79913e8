/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The registry of shared pages the module owns.
 *
 * A shared page is an ordinary order-0 page that is neither anonymous nor
 * in the page cache. It is mapped read-only into private anonymous VMAs with
 * file-rmap accounting, so the kernel's COW, zap and fork paths treat it
 * like a MAP_PRIVATE file page. The registry holds one page reference per
 * entry; that reference is what keeps a pfn from being recycled while the
 * registry can still recognise it as "ours".
 *
 * Userspace sees only an opaque 64-bit handle, never a pfn. Handles are not
 * reused while the module is loaded.
 */
#ifndef KSMD_HELPER_PAGES_H
#define KSMD_HELPER_PAGES_H

#include <linux/gfp.h>
#include <linux/mm_types.h>
#include <linux/types.h>

/*
 * Every allocation the module makes for a request gives up under memory
 * pressure rather than reclaim hard or invoke the OOM killer (of the host
 * or of a memory cgroup): a merge is never worth a process. The request
 * then fails with NO_MEMORY (or -ENOMEM) and the daemon retries later.
 * KH_GFP_PAGE is for shared pages: not movable, since nothing can migrate
 * a page without a reverse map.
 */
#define KH_GFP (GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)
#define KH_GFP_PAGE (GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN)

/**
 * struct kh_page - one shared page
 * @page:   the page; the registry holds one reference to it
 * @handle: what userspace calls it; nonzero
 * @pins:   merges in flight that may map @page; a pinned entry is never
 *          freed, so a page cannot be mapped after the registry forgot it.
 *          Protected by kh_pages_lock.
 * @live:   @page holds its final bytes and may be mapped: lookups, dumps
 *          and counts see only live entries. Protected by kh_pages_lock.
 */
struct kh_page {
	struct page *page;
	u64 handle;
	unsigned int pins;
	bool live;
};

/* Drop every reference; pages still mapped live on through their mappings. */
void kh_pages_exit(void);

/*
 * Register @page, which the caller took from kh_pool_alloc(), and return
 * its entry pinned once and not yet live: no lookup finds it until
 * kh_page_publish(). On success the registry takes over the caller's
 * reference on @page, and hands it back to the pool when it frees the
 * entry. Allocates (KH_GFP), so no page lock may be held. Returns an
 * ERR_PTR on allocation failure; the reference is then still the caller's.
 */
struct kh_page *kh_page_register(struct page *page);

/* Make @kp, pinned, live once its page holds the bytes it keeps. */
void kh_page_publish(struct kh_page *kp);

/*
 * Forget @kp, registered but never published and pinned by the caller
 * alone, and hand its page back to the pool at once: a merge that failed
 * leaves no page behind for the collector.
 */
void kh_page_discard(struct kh_page *kp);

/* Look up and pin a live entry, or return NULL. */
struct kh_page *kh_page_get_by_handle(u64 handle);
struct kh_page *kh_page_get_by_page(struct page *page);
/* Undo one pin. Accepts NULL. */
void kh_page_put(struct kh_page *kp);

/*
 * Free every unpinned entry whose page no page table maps any more. Walks
 * the whole registry, letting others at it whenever the CPU is wanted.
 */
void kh_pages_gc(void);

/*
 * Live pages owned now, the page table entries mapping them, and the pages
 * those mappings would take without sharing, less the owned pages
 * themselves. Walks the whole registry as kh_pages_gc() does, so the sums
 * are not one instant's.
 */
void kh_pages_count(u64 *ret_owned, u64 *ret_mapped, u64 *ret_saved);

/*
 * Find the first live entry with a handle >= *handle; store its handle and
 * mapcount and return true, or return false at the end.
 */
bool kh_pages_next(u64 *handle, u32 *ret_mapcount);

#endif /* KSMD_HELPER_PAGES_H */
