// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: shared page registry
 *
 * Two xarrays index the same entries: by handle for userspace and by pfn to
 * recognise a page found in a page table. Both change only under
 * kh_pages_lock, a mutex, because the merge path already sleeps (page locks,
 * MMU notifiers) and lookups are rare next to the page compare.
 *
 * An entry stays while its page is mapped or a merge has it pinned. The
 * mapcount of an unpinned, unmapped page cannot rise again: only a merge
 * maps it into a new place, and fork copies only existing mappings. So once
 * the collector sees it at zero under the lock, it may drop the reference.
 *
 * A merge registers its new page before it takes the page locks, so that
 * nothing is allocated under them, and publishes it once the verified bytes
 * are in: until then no lookup can find it and map it with other bytes.
 * The pages come from the pool (pool.c) and go back to it: the registry's
 * reference is the one the pool handed out.
 *
 * Walks of the whole registry (the collector, the counts) let go of the
 * mutex and the CPU whenever another task wants the CPU; xa_for_each()
 * picks up at the next index after that.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "compat.h"
#include "pages.h"
#include "pool.h"

static DEFINE_MUTEX(kh_pages_lock);
static DEFINE_XARRAY(kh_pages_by_handle);
static DEFINE_XARRAY(kh_pages_by_pfn);
static u64 kh_next_handle = 1;
static u64 kh_pages_owned;

/* Let others at the registry and the CPU in the middle of a long walk. */
static void kh_pages_yield(void)
{
	lockdep_assert_held(&kh_pages_lock);
	if (!need_resched())
		return;
	mutex_unlock(&kh_pages_lock);
	cond_resched();
	mutex_lock(&kh_pages_lock);
}

/*
 * Under kh_pages_lock, so that no lookup can pin @kp as it is freed. The
 * registry's reference goes back to the pool, which may hand the page out
 * again.
 */
static void kh_page_free(struct kh_page *kp)
{
	lockdep_assert_held(&kh_pages_lock);
	kh_pool_free(kp->page);
	kfree(kp);
}

void kh_pages_exit(void)
{
	struct kh_page *kp;
	unsigned long index;

	mutex_lock(&kh_pages_lock);
	xa_for_each(&kh_pages_by_handle, index, kp) {
		WARN_ON_ONCE(kp->pins);
		/* Not to the pool: a page still mapped is freed when unmapped. */
		put_page(kp->page);
		kfree(kp);
		cond_resched();
	}
	xa_destroy(&kh_pages_by_handle);
	xa_destroy(&kh_pages_by_pfn);
	kh_pages_owned = 0;
	mutex_unlock(&kh_pages_lock);
}

struct kh_page *kh_page_register(struct page *page)
{
	struct kh_page *kp;
	int r;

	kp = kzalloc(sizeof(*kp), KH_GFP);
	if (!kp)
		return ERR_PTR(-ENOMEM);
	kp->page = page;
	kp->pins = 1;

	mutex_lock(&kh_pages_lock);
	kp->handle = kh_next_handle;
	r = xa_insert(&kh_pages_by_handle, kp->handle, kp, KH_GFP);
	if (r < 0)
		goto err_unlock;
	r = xa_insert(&kh_pages_by_pfn, page_to_pfn(page), kp, KH_GFP);
	if (r < 0)
		goto err_erase;
	kh_next_handle++;
	mutex_unlock(&kh_pages_lock);
	return kp;

err_erase:
	xa_erase(&kh_pages_by_handle, kp->handle);
err_unlock:
	mutex_unlock(&kh_pages_lock);
	kfree(kp);
	return ERR_PTR(r);
}

void kh_page_publish(struct kh_page *kp)
{
	mutex_lock(&kh_pages_lock);
	WARN_ON_ONCE(!kp->pins || kp->live);
	kp->live = true;
	kh_pages_owned++;
	mutex_unlock(&kh_pages_lock);
}

void kh_page_discard(struct kh_page *kp)
{
	mutex_lock(&kh_pages_lock);
	WARN_ON_ONCE(kp->live || kp->pins != 1);
	xa_erase(&kh_pages_by_handle, kp->handle);
	xa_erase(&kh_pages_by_pfn, page_to_pfn(kp->page));
	kh_page_free(kp);
	mutex_unlock(&kh_pages_lock);
}

struct kh_page *kh_page_get_by_handle(u64 handle)
{
	struct kh_page *kp;

	if (handle > ULONG_MAX)
		return NULL;
	mutex_lock(&kh_pages_lock);
	kp = xa_load(&kh_pages_by_handle, handle);
	if (kp && kp->live)
		kp->pins++;
	else
		kp = NULL;
	mutex_unlock(&kh_pages_lock);
	return kp;
}

struct kh_page *kh_page_get_by_page(struct page *page)
{
	struct kh_page *kp;

	mutex_lock(&kh_pages_lock);
	kp = xa_load(&kh_pages_by_pfn, page_to_pfn(page));
	if (kp && kp->page == page && kp->live)
		kp->pins++;
	else
		kp = NULL;
	mutex_unlock(&kh_pages_lock);
	return kp;
}

void kh_page_put(struct kh_page *kp)
{
	if (!kp)
		return;
	mutex_lock(&kh_pages_lock);
	WARN_ON_ONCE(!kp->pins);
	kp->pins--;
	mutex_unlock(&kh_pages_lock);
}

void kh_pages_gc(void)
{
	struct kh_page *kp;
	unsigned long index;

	mutex_lock(&kh_pages_lock);
	xa_for_each(&kh_pages_by_handle, index, kp) {
		if (!kp->pins && !folio_mapped(page_folio(kp->page))) {
			xa_erase(&kh_pages_by_handle, kp->handle);
			xa_erase(&kh_pages_by_pfn, page_to_pfn(kp->page));
			if (kp->live)
				kh_pages_owned--;
			kh_page_free(kp);
		}
		kh_pages_yield();
	}
	mutex_unlock(&kh_pages_lock);
}

void kh_pages_count(u64 *ret_owned, u64 *ret_mapped, u64 *ret_saved)
{
	u64 mapped = 0, saved = 0;
	struct kh_page *kp;
	unsigned long index;
	int mapcount;

	mutex_lock(&kh_pages_lock);
	xa_for_each(&kh_pages_by_handle, index, kp) {
		if (kp->live) {
			mapcount = kh_page_mapcount(kp->page);
			mapped += mapcount;
			if (mapcount > 1)
				saved += mapcount - 1;
		}
		kh_pages_yield();
	}
	*ret_owned = kh_pages_owned;
	mutex_unlock(&kh_pages_lock);
	*ret_mapped = mapped;
	*ret_saved = saved;
}

bool kh_pages_next(u64 *handle, u32 *ret_mapcount)
{
	unsigned long index;
	struct kh_page *kp;

	if (*handle > ULONG_MAX)
		return false;
	index = *handle;
	mutex_lock(&kh_pages_lock);
	kp = xa_find(&kh_pages_by_handle, &index, ULONG_MAX, XA_PRESENT);
	while (kp && !kp->live)
		kp = xa_find_after(&kh_pages_by_handle, &index, ULONG_MAX,
				   XA_PRESENT);
	if (kp) {
		*handle = kp->handle;
		*ret_mapcount = kh_page_mapcount(kp->page);
	}
	mutex_unlock(&kh_pages_lock);
	return kp;
}
