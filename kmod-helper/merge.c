// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: the verified swap
 *
 * This follows mm/ksm.c: write_protect_page(), pages_identical() and
 * replace_page(), driven as try_to_merge_one_page() drives them. What
 * differs is the shared page: KSM turns one of the anonymous pages into a
 * KSM page, while this module maps a page of its own (see pages.h) with
 * file-rmap accounting, because only mm/ksm.c can keep a KSM page's reverse
 * mapping.
 *
 * For each anonymous side of a merge:
 *  1. take the page lock with trylock (do_wp_page() needs it to reuse an
 *     anonymous page in place, so holding it keeps writes on the COW path);
 *  2. write-protect the PTE, clear it and flush the TLB first, then check
 *     that the page has no reference beyond its mappings (GUP, O_DIRECT),
 *     and clear PageAnonExclusive; any later write now faults and copies;
 *  3. compare the bytes, which can no longer change;
 *  4. swap the PTE for the shared page (or the zero page) if it is still
 *     the write-protected one, with a TLB flush, inside an MMU notifier
 *     range so secondary MMUs (KVM) drop their copy. The new PTE keeps the
 *     old one's soft-dirty bit: the bytes did not change, and a checkpoint
 *     tool (CRIU) must still see a page written since it last looked.
 * Shared pages and the zero page are never written, so they need none of
 * this.
 *
 * Work that only identical bytes justify waits for an unlocked look at the
 * bytes: a transparent huge page is split, and a new shared page allocated,
 * only when the pages compare equal at that moment (the locked compare
 * still decides). A new shared page is allocated and registered before any
 * page lock is taken, and every allocation gives up under memory pressure
 * (KH_GFP): a merge fails with NO_MEMORY, it never invokes the OOM killer.
 *
 * Each item names its processes by pidfds of the task that sent the
 * request; they are looked up, and the sender's right to read each process
 * checked, as process_madvise() does, before the locks below are taken.
 *
 * Locks, outermost first: the mmap read locks of one or two mms, in
 * address order (the second as lockdep's nested subclass); page locks, only
 * by trylock; the page table lock; the registry mutex is taken with no page
 * table lock held. Nothing is allocated under a page lock.
 *
 * On 6.1 the memory of a process that holds long-term pins is refused:
 * see kh_mm_pins_may_go_stale().
 *
 * A shared page is not anonymous, and khugepaged and MADV_COLLAPSE assume
 * an anonymous VMA holds nothing else: they check a PMD range's pages
 * under the mmap read lock, drop it, and collapse the range later under
 * the write lock. A merge in between puts a shared page in the range. The
 * collapse then gives up on it by itself: the page is never on an LRU list,
 * so folio_isolate_lru() fails (SCAN_DEL_PAGE_LRU) and the range is left
 * as it was; this holds on 6.1, 6.12 and 7.x. But a kernel built with
 * CONFIG_DEBUG_VM first asserts (VM_BUG_ON_FOLIO) that the page is
 * anonymous, and that is a BUG. On such a kernel only, a shared page is
 * mapped only into a VMA with VM_NOHUGEPAGE, which this module sets under
 * the write lock before the first merge into it; both collapses check the
 * VMA's flags again under the write lock, so one that checked the pages
 * before then gives up, and none starts after. Elsewhere the flag is left
 * alone: it would turn off huge pages for the whole VMA (a guest's RAM).
 *
 * Anything unexpected stops the item with nothing changed, or with only a
 * write-protect done, which the kernel undoes on the next write fault.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/userfaultfd_k.h>

#include "compat.h"
#include "merge.h"
#include "pages.h"
#include "pool.h"

atomic64_t kh_stats[__KSMD_HELPER_STAT_MAX];

/**
 * struct kh_side - one page of a merge, as found in a page table
 * @mm:       the process's mm, referenced with mmget()
 * @vma:      the VMA holding @addr; valid while @mm's mmap lock is held
 * @addr:     page address
 * @page:     the mapped page, referenced; NULL when @zero
 * @owned:    registry entry, pinned, when @page is a shared page
 * @zero:     the zero page (or the huge zero page) is mapped
 * @huge:     @page is part of a transparent huge page, which must be split
 *            before the page can be write-protected
 * @locked:   @page is locked
 * @orig_pte: the PTE after write protection; replacement requires it
 */
struct kh_side {
	struct mm_struct *mm;
	struct vm_area_struct *vma;
	unsigned long addr;
	struct page *page;
	struct kh_page *owned;
	bool zero;
	bool huge;
	bool locked;
	pte_t orig_pte;
};

static void kh_set(struct kh_item *it, u32 result, u32 reason)
{
	it->result = result;
	it->reason = reason;
}

/*
 * The memory of the process that @pidfd names in the calling task's file
 * table, referenced with mmget(), found as process_madvise() finds it:
 * pidfd_get_task(), then mm_access() (kh_mm_access(): as 6.12 has it, on
 * every line), which checks that the caller may read
 * the process (PTRACE_MODE_READ_FSCREDS) under its exec_update_lock, so that
 * an exec cannot slip in an mm the check did not see. Returns an ERR_PTR:
 * -EBADF the fd is not an open pidfd; -ESRCH the process exited or has no mm
 * (a kernel thread); -EACCES the caller may not read it; -EINTR a fatal
 * signal.
 */
static struct mm_struct *kh_pidfd_mm(u32 pidfd)
{
	struct task_struct *task;
	struct mm_struct *mm;
	unsigned int f_flags;

	if (pidfd > INT_MAX)
		return ERR_PTR(-EBADF);
	task = kh_call(pidfd_get_task)(pidfd, &f_flags);
	if (IS_ERR(task))
		return ERR_CAST(task);
	mm = kh_mm_access(task, PTRACE_MODE_READ_FSCREDS);
	put_task_struct(task);
	return mm ?: ERR_PTR(-ESRCH);
}

/* The item's result for an error of kh_pidfd_mm(). */
static u32 kh_pidfd_result(long err)
{
	switch (err) {
	case -EBADF:
		return KSMD_HELPER_RESULT_BAD_PIDFD;
	case -EACCES:
		return KSMD_HELPER_RESULT_NO_ACCESS;
	case -EINTR:
		return KSMD_HELPER_RESULT_BUSY;
	default:
		return KSMD_HELPER_RESULT_NO_PROCESS;
	}
}

/* Lock one or two mms for reading, in address order to avoid ABBA. */
static int kh_lock_mms(struct mm_struct *a, struct mm_struct *b)
{
	if (!b || a == b)
		return mmap_read_lock_killable(a);
	if (a > b)
		swap(a, b);
	if (mmap_read_lock_killable(a))
		return -EINTR;
	if (kh_mmap_read_lock_killable_nested(b)) {
		mmap_read_unlock(a);
		return -EINTR;
	}
	return 0;
}

static void kh_unlock_mms(struct mm_struct *a, struct mm_struct *b)
{
	mmap_read_unlock(a);
	if (b && b != a)
		mmap_read_unlock(b);
}

/* Undo a lookup: @s names only its mm and address again. */
static void kh_side_release(struct kh_side *s)
{
	if (s->locked)
		unlock_page(s->page);
	s->locked = false;
	if (s->page)
		put_page(s->page);
	s->page = NULL;
	kh_page_put(s->owned);
	s->owned = NULL;
	s->vma = NULL;
	s->zero = false;
	s->huge = false;
}

/* A page table entry found and locked by kh_pte_lock(). */
struct kh_pte {
	pte_t *ptep;
	spinlock_t *ptl;	/* held, with the RCU read lock */
};

enum kh_walk {
	KH_WALK_PTE,	/* the PTE is locked; kh_pte_unlock() it */
	KH_WALK_HUGE,	/* a huge PMD maps @addr */
	KH_WALK_NONE,	/* no page table maps @addr */
	KH_WALK_RETRY,	/* the PMD changed under us */
	KH_WALK_BUSY,	/* a huge page mapping @addr is being migrated */
};

/*
 * Find and lock the PTE for @addr. The caller holds @mm's mmap lock, which
 * keeps the page tables of anonymous VMAs from being freed. The RCU read
 * lock is held with the PTE lock, as pte_offset_map_lock() does since 6.5.
 */
static enum kh_walk kh_pte_lock(struct mm_struct *mm, unsigned long addr,
				struct kh_pte *pt)
{
	pmd_t *pmdp;
	pmd_t pmd;
	pud_t *pud;
	p4d_t *p4d;
	pgd_t *pgd;

	kh_mmap_assert_locked(mm);
	pgd = pgd_offset(mm, addr);
	if (pgd_none(*pgd) || unlikely(pgd_bad(*pgd)))
		return KH_WALK_NONE;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || unlikely(p4d_bad(*p4d)))
		return KH_WALK_NONE;
	pud = pud_offset(p4d, addr);
	if (pud_none(*pud) || unlikely(pud_bad(*pud)))
		return KH_WALK_NONE;
	pmdp = pmd_offset(pud, addr);

	rcu_read_lock();
	pmd = kh_pmdp_get_lockless(pmdp);
	barrier();
	if (pmd_none(pmd))
		goto none;
	if (kh_pmd_is_migration(pmd)) {
		rcu_read_unlock();
		return KH_WALK_BUSY;
	}
	if (kh_pmd_huge(pmd)) {
		rcu_read_unlock();
		return KH_WALK_HUGE;
	}
	if (!pmd_present(pmd) || unlikely(pmd_bad(pmd)))
		goto none;

	pt->ptl = pte_lockptr(mm, &pmd);
	pt->ptep = pte_offset_kernel(&pmd, addr);
	spin_lock(pt->ptl);
	if (unlikely(!pmd_same(pmd, READ_ONCE(*pmdp)))) {
		spin_unlock(pt->ptl);
		rcu_read_unlock();
		return KH_WALK_RETRY;
	}
	return KH_WALK_PTE;

none:
	rcu_read_unlock();
	return KH_WALK_NONE;
}

static void kh_pte_unlock(struct kh_pte *pt)
{
	lockdep_assert_held(pt->ptl);
	spin_unlock(pt->ptl);
	rcu_read_unlock();
}

/* Why a VMA cannot take part, or KSMD_HELPER_REASON_NONE. */
static u32 kh_vma_reason(struct vm_area_struct *vma)
{
	if (is_vm_hugetlb_page(vma))
		return KSMD_HELPER_REASON_HUGETLB;
	if (vma->vm_flags & (VM_PFNMAP | VM_MIXEDMAP | VM_IO))
		return KSMD_HELPER_REASON_PFNMAP;
	if (!vma_is_anonymous(vma) ||
	    (vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) ||
	    !(vma->vm_flags & VM_MAYWRITE))
		return KSMD_HELPER_REASON_NOT_ANON;
	if ((vma->vm_flags & (VM_LOCKED | VM_DONTEXPAND | KH_VM_REFUSED_NEW)) ||
	    !(vma->vm_flags & VM_READ) || userfaultfd_armed(vma))
		return KSMD_HELPER_REASON_LOCKED_VMA;
	return KSMD_HELPER_REASON_NONE;
}

/*
 * Split the THP holding @page (referenced, unlocked) as KSM does. The
 * reference is dropped. Returns true if the caller should walk again.
 */
static bool kh_split_thp(struct kh_item *it, struct page *page)
{
	int r;

	if (!kh_symbols_have_thp_split()) {
		put_page(page);
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
		       KSMD_HELPER_REASON_THP);
		return false;
	}
	if (!trylock_page(page)) {
		put_page(page);
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		return false;
	}
	r = kh_split_huge_page(page);
	unlock_page(page);
	put_page(page);
	if (r == -EBUSY || r == -EAGAIN) {
		/* Extra references, often from the per-CPU LRU batches. */
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		it->busy_ref = true;
		return false;
	}
	if (r) {
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
		       KSMD_HELPER_REASON_THP);
		return false;
	}
	return true;
}

/* How the walk for one side of a merge ended. */
enum kh_lookup {
	KH_LOOKUP_FOUND,	/* the side takes part */
	KH_LOOKUP_STOP,		/* it does not; the item's result is set */
	KH_LOOKUP_AGAIN,	/* the page tables changed; walk again */
};

/*
 * A huge PMD maps s->addr: a transparent huge page takes part through the
 * page at s->addr, to be split only if the bytes may match; anything else
 * in a private anonymous VMA is the huge zero page.
 */
static enum kh_lookup kh_side_huge(struct kh_side *s)
{
	struct kh_pte pt;
	struct page *page;
	pmd_t *pmdp;
	pmd_t pmd;

	kh_mmap_assert_locked(s->mm);
	pmdp = pmd_offset(pud_offset(p4d_offset(pgd_offset(s->mm, s->addr),
						s->addr), s->addr), s->addr);
	pt.ptl = pmd_lock(s->mm, pmdp);
	pmd = *pmdp;
	if (!pmd_present(pmd) || !pmd_trans_huge(pmd)) {
		spin_unlock(pt.ptl);
		return KH_LOOKUP_AGAIN;
	}
	page = pmd_page(pmd);
	if (!PageAnon(page)) {
		spin_unlock(pt.ptl);
		s->zero = true;
		return KH_LOOKUP_FOUND;
	}
	page += (s->addr & ~HPAGE_PMD_MASK) >> PAGE_SHIFT;
	get_page(page);
	spin_unlock(pt.ptl);
	s->page = page;
	s->huge = true;
	return KH_LOOKUP_FOUND;
}

/*
 * The locked PTE at s->addr is not present: a migration entry (the page is
 * being migrated, or its THP split) is transient; anything else, none or
 * swap, is no page to merge. Unlocks @pt.
 */
static enum kh_lookup kh_side_absent(struct kh_item *it, struct kh_pte *pt,
				     pte_t pte)
{
	lockdep_assert_held(pt->ptl);
	kh_pte_unlock(pt);
	if (!pte_none(pte) && kh_pte_is_migration(pte))
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
	else
		kh_set(it, KSMD_HELPER_RESULT_NO_PAGE, KSMD_HELPER_REASON_NONE);
	return KH_LOOKUP_STOP;
}

/*
 * A present PTE maps the anonymous @page (referenced): KSM's pages are
 * refused, any other page takes part, a PTE-mapped THP to be split first.
 */
static enum kh_lookup kh_side_anon(struct kh_item *it, struct kh_side *s,
				   struct page *page)
{
	if (folio_test_ksm(page_folio(page))) {
		put_page(page);
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
		       KSMD_HELPER_REASON_KSM);
		return KH_LOOKUP_STOP;
	}
	s->page = page;
	s->huge = PageCompound(page);
	return KH_LOOKUP_FOUND;
}

/*
 * A present PTE @pte maps @page (referenced), which is not anonymous: it
 * takes part only if it is one of the module's shared pages, read-only and
 * without a userfaultfd write-protect marker the new PTE would drop.
 */
static enum kh_lookup kh_side_shared(struct kh_item *it, struct kh_side *s,
				     struct page *page, pte_t pte)
{
	u32 reason = KSMD_HELPER_REASON_NONE;

	s->owned = kh_page_get_by_page(page);
	if (!s->owned || pte_write(pte))
		reason = KSMD_HELPER_REASON_NOT_ANON;
	else if (kh_pte_uffd_wp(pte))
		reason = KSMD_HELPER_REASON_LOCKED_VMA;
	if (reason != KSMD_HELPER_REASON_NONE) {
		put_page(page);
		kh_page_put(s->owned);
		s->owned = NULL;
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED, reason);
		return KH_LOOKUP_STOP;
	}
	s->page = page;
	s->orig_pte = pte;
	return KH_LOOKUP_FOUND;
}

/*
 * The locked PTE at s->addr is present: the zero page takes part as it is,
 * special and PFN mappings do not, and a page is referenced and looked at
 * with no lock held. Unlocks @pt.
 */
static enum kh_lookup kh_side_present(struct kh_item *it, struct kh_side *s,
				      struct kh_pte *pt, pte_t pte)
{
	unsigned long pfn = pte_pfn(pte);
	struct page *page;

	lockdep_assert_held(pt->ptl);
	if (is_zero_pfn(pfn)) {
		kh_pte_unlock(pt);
		s->zero = true;
		return KH_LOOKUP_FOUND;
	}
	if (pte_special(pte) || !pfn_valid(pfn)) {
		kh_pte_unlock(pt);
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
		       KSMD_HELPER_REASON_PFNMAP);
		return KH_LOOKUP_STOP;
	}
	page = pfn_to_page(pfn);
	get_page(page);
	kh_pte_unlock(pt);

	if (PageAnon(page))
		return kh_side_anon(it, s, page);
	return kh_side_shared(it, s, page, pte);
}

/*
 * Find what @s->mm maps at @s->addr and take a reference to it. Returns
 * false with the item's result set when the page cannot take part. A
 * transparent huge page is not split here (s->huge is set).
 */
static bool kh_side_lookup(struct kh_item *it, struct kh_side *s)
{
	struct vm_area_struct *vma;
	enum kh_lookup found;
	struct kh_pte pt;
	pte_t pte;
	int tries;
	u32 reason;

	kh_mmap_assert_locked(s->mm);
	vma = find_vma(s->mm, s->addr);
	if (!vma || s->addr < vma->vm_start) {
		kh_set(it, KSMD_HELPER_RESULT_NO_PAGE, KSMD_HELPER_REASON_NONE);
		return false;
	}
	reason = kh_vma_reason(vma);
	/* After the VMA's own reasons, which say more. */
	if (reason == KSMD_HELPER_REASON_NONE &&
	    kh_mm_pins_may_go_stale(s->mm))
		reason = KSMD_HELPER_REASON_PINNED;
	if (reason != KSMD_HELPER_REASON_NONE) {
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED, reason);
		return false;
	}
	s->vma = vma;

	for (tries = 0; tries < 3; tries++) {
		switch (kh_pte_lock(s->mm, s->addr, &pt)) {
		case KH_WALK_NONE:
			kh_set(it, KSMD_HELPER_RESULT_NO_PAGE,
			       KSMD_HELPER_REASON_NONE);
			found = KH_LOOKUP_STOP;
			break;
		case KH_WALK_RETRY:
			found = KH_LOOKUP_AGAIN;
			break;
		case KH_WALK_BUSY:
			kh_set(it, KSMD_HELPER_RESULT_BUSY,
			       KSMD_HELPER_REASON_NONE);
			found = KH_LOOKUP_STOP;
			break;
		case KH_WALK_HUGE:
			found = kh_side_huge(s);
			break;
		case KH_WALK_PTE:
			pte = ptep_get(pt.ptep);
			if (pte_present(pte))
				found = kh_side_present(it, s, &pt, pte);
			else
				found = kh_side_absent(it, &pt, pte);
			break;
		}
		if (found != KH_LOOKUP_AGAIN)
			return found == KH_LOOKUP_FOUND;
	}
	kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
	return false;
}

static bool kh_side_trylock(struct kh_item *it, struct kh_side *s)
{
	if (s->owned || s->zero || s->locked)
		return true;
	if (!trylock_page(s->page)) {
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		return false;
	}
	s->locked = true;
	return true;
}

/*
 * Make the locked anonymous page of @s read-only and shared, after checking
 * that nothing but its mappings references it. Shared pages are already
 * read-only and keep the PTE found by the lookup.
 */
static bool kh_side_write_protect(struct kh_item *it, struct kh_side *s)
{
	struct mmu_notifier_range range;
	struct page *page = s->page;
	bool anon_exclusive;
	struct kh_pte pt;
	pte_t entry;
	bool ok = false;

	if (s->owned)
		return true;
	kh_mmap_assert_locked(s->mm);
	kh_assert_page_locked(page);

	kh_mn_range_init(&range, s->vma, s->addr);
	kh_mn_range_start(&range);

	if (kh_pte_lock(s->mm, s->addr, &pt) != KH_WALK_PTE) {
		kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
		goto out_mn;
	}
	entry = ptep_get(pt.ptep);
	if (!pte_present(entry) || pte_special(entry) ||
	    pte_pfn(entry) != page_to_pfn(page)) {
		kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
		goto out_unlock;
	}
	if (kh_pte_uffd_wp(entry)) {
		/* A userfaultfd write-protect marker the new PTE would drop. */
		kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
		       KSMD_HELPER_REASON_LOCKED_VMA);
		goto out_unlock;
	}

	anon_exclusive = PageAnonExclusive(page);
	if (kh_pte_needs_wrprotect(entry) || anon_exclusive ||
	    mm_tlb_flush_pending(s->mm)) {
		int swapped = folio_test_swapcache(page_folio(page));

		flush_cache_page(s->vma, s->addr, page_to_pfn(page));
		/*
		 * Clear the PTE and flush before counting references, so no
		 * GUP-fast can take a new one behind the check (as KSM).
		 */
		entry = kh_call(ptep_clear_flush)(s->vma, s->addr, pt.ptep);
		/* Mappings, our reference, and the swap cache's. */
		if (kh_page_mapcount(page) + 1 + swapped != page_count(page)) {
			set_pte_at(s->mm, s->addr, pt.ptep, entry);
			kh_set(it, KSMD_HELPER_RESULT_BUSY,
			       KSMD_HELPER_REASON_NONE);
			it->busy_ref = true;
			goto out_unlock;
		}
		if (anon_exclusive && kh_try_share_anon_rmap(page)) {
			set_pte_at(s->mm, s->addr, pt.ptep, entry);
			kh_set(it, KSMD_HELPER_RESULT_BUSY,
			       KSMD_HELPER_REASON_NONE);
			goto out_unlock;
		}
		if (pte_dirty(entry))
			set_page_dirty(page);
		entry = kh_pte_wrprotect(entry);
		set_pte_at(s->mm, s->addr, pt.ptep, entry);
	}
	s->orig_pte = entry;
	ok = true;

out_unlock:
	kh_pte_unlock(&pt);
out_mn:
	kh_mn_range_end(&range);
	return ok;
}

/*
 * Map @kpage (a shared page), or the zero page when @kpage is NULL, in
 * place of @s's page, provided the PTE is still s->orig_pte. On success
 * the PTE's reference to the old page is dropped; the lookup's stays.
 */
static bool kh_side_replace(struct kh_item *it, struct kh_side *s,
			    struct page *kpage)
{
	struct mmu_notifier_range range;
	struct page *old = s->page;
	struct kh_pte pt;
	pte_t newpte;
	bool ok = false;

	kh_mmap_assert_locked(s->mm);
	/* An anonymous page stays locked from its write protection on. */
	if (!s->owned)
		kh_assert_page_locked(old);

	kh_mn_range_init(&range, s->vma, s->addr);
	kh_mn_range_start(&range);

	if (kh_pte_lock(s->mm, s->addr, &pt) != KH_WALK_PTE) {
		kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
		goto out_mn;
	}
	if (!pte_same(ptep_get(pt.ptep), s->orig_pte)) {
		kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
		goto out_unlock;
	}

	if (kpage) {
		get_page(kpage);
		kh_add_file_rmap(kpage, s->vma);
		kh_add_mm_counter(s->mm, MM_FILEPAGES, 1);
		/* Read-only: vm_page_prot of a private VMA never allows write. */
		newpte = mk_pte(kpage, s->vma->vm_page_prot);
	} else {
		/* As a read fault leaves it; not pte_mkdirty(), KSM's mark. */
		newpte = pte_mkspecial(pfn_pte(kh_zero_pfn(s->addr),
					       s->vma->vm_page_prot));
	}
	/*
	 * The bytes are the same, so no write happened: a page soft-dirty
	 * since the last clear_refs stays so, a clean one stays clean.
	 */
	if (pte_soft_dirty(s->orig_pte))
		newpte = pte_mksoft_dirty(newpte);

	flush_cache_page(s->vma, s->addr, pte_pfn(s->orig_pte));
	kh_call(ptep_clear_flush)(s->vma, s->addr, pt.ptep);
	set_pte_at(s->mm, s->addr, pt.ptep, newpte);

	kh_add_mm_counter(s->mm, s->owned ? MM_FILEPAGES : MM_ANONPAGES, -1);
	kh_remove_rmap(old, s->vma);
	if (!s->owned && s->locked && !folio_mapped(page_folio(old)) &&
	    folio_test_swapcache(page_folio(old)) && kh_sym.folio_free_swap)
		kh_call(folio_free_swap)(page_folio(old));
	put_page(old);
	ok = true;

out_unlock:
	kh_pte_unlock(&pt);
out_mn:
	kh_mn_range_end(&range);
	return ok;
}

static bool kh_pages_identical(struct page *a, struct page *b)
{
	char *pa = kmap_local_page(a);
	char *pb = kmap_local_page(b);
	bool same = !memcmp(pa, pb, PAGE_SIZE);

	kunmap_local(pb);
	kunmap_local(pa);
	return same;
}

static bool kh_page_is_zero(struct page *page)
{
	char *p = kmap_local_page(page);
	bool zero = !memchr_inv(p, 0, PAGE_SIZE);

	kunmap_local(p);
	return zero;
}

/* Lock, protect, verify and swap one side for the zero page. */
static void kh_side_merge_zero(struct kh_item *it, struct kh_side *s)
{
	if (s->zero) {
		kh_set(it, KSMD_HELPER_RESULT_ALREADY, KSMD_HELPER_REASON_NONE);
		return;
	}
	if (!kh_side_trylock(it, s) || !kh_side_write_protect(it, s))
		return;
	if (!kh_page_is_zero(s->page)) {
		kh_set(it, KSMD_HELPER_RESULT_DIFFERS, KSMD_HELPER_REASON_NONE);
		return;
	}
	if (kh_side_replace(it, s, NULL))
		kh_set(it, KSMD_HELPER_RESULT_MERGED, KSMD_HELPER_REASON_NONE);
}

/* Lock, protect, verify and swap one side for the shared page @kp. */
static void kh_side_join(struct kh_item *it, struct kh_side *s,
			 struct kh_page *kp)
{
	if (s->owned == kp) {
		kh_set(it, KSMD_HELPER_RESULT_ALREADY, KSMD_HELPER_REASON_NONE);
		goto out_handle;
	}
	if (!kh_side_trylock(it, s) || !kh_side_write_protect(it, s))
		return;
	if (!kh_pages_identical(s->page, kp->page)) {
		kh_set(it, KSMD_HELPER_RESULT_DIFFERS, KSMD_HELPER_REASON_NONE);
		return;
	}
	if (!kh_side_replace(it, s, kp->page))
		return;
	kh_set(it, KSMD_HELPER_RESULT_MERGED, KSMD_HELPER_REASON_NONE);
out_handle:
	it->out_handle = kp->handle;
	it->has_handle = true;
}

/*
 * A new shared page for @t and @s, or NULL with the item's result set to
 * NO_MEMORY. Taken from the pool on the node of the target's page, not
 * movable (nothing can migrate a page without a reverse map), and charged
 * to the source's memory cgroup, as KSM leaves a merged page charged to
 * its first owner; the source's own page, freed by the merge, leaves that
 * charge. A page handed back to the pool is uncharged.
 */
static struct page *kh_shared_page_alloc(struct kh_item *it,
					 struct kh_side *t, struct kh_side *s)
{
	struct page *kpage;

	if (it->skip_alloc)
		goto nomem;
	kpage = kh_pool_alloc(page_to_nid(t->page));
	if (!kpage) {
		it->no_page = true;
		goto nomem;
	}
	if (kh_symbols_have_memcg() &&
	    kh_call(mem_cgroup_charge)(page_folio(kpage), s->mm, KH_GFP)) {
		kh_pool_free(kpage);
		goto nomem;
	}
	return kpage;

nomem:
	kh_set(it, KSMD_HELPER_RESULT_NO_MEMORY, KSMD_HELPER_REASON_NONE);
	return NULL;
}

/*
 * Both sides are private anonymous pages: copy the verified bytes into a
 * new shared page and map it in place of both.
 */
static void kh_merge_new(struct kh_item *it, struct kh_side *t,
			 struct kh_side *s)
{
	struct page *kpage;
	struct kh_page *kp;

	/* Only bytes equal now justify a page; the locked compare decides. */
	if (!kh_pages_identical(t->page, s->page)) {
		kh_set(it, KSMD_HELPER_RESULT_DIFFERS, KSMD_HELPER_REASON_NONE);
		return;
	}
	/* Nor a page lock someone holds now: the trylock below would fail. */
	if (PageLocked(t->page) || PageLocked(s->page)) {
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		return;
	}
	kpage = kh_shared_page_alloc(it, t, s);
	if (!kpage)
		return;
	/* No allocation under the page locks: register it first, hidden. */
	kp = kh_page_register(kpage);
	if (IS_ERR(kp)) {
		kh_set(it, KSMD_HELPER_RESULT_NO_MEMORY,
		       KSMD_HELPER_REASON_NONE);
		kh_pool_free(kpage);
		return;
	}
	if (!kh_side_trylock(it, t) || !kh_side_trylock(it, s) ||
	    !kh_side_write_protect(it, t) || !kh_side_write_protect(it, s))
		goto out_kp;
	if (!kh_pages_identical(t->page, s->page)) {
		kh_set(it, KSMD_HELPER_RESULT_DIFFERS, KSMD_HELPER_REASON_NONE);
		goto out_kp;
	}
	copy_highpage(kpage, s->page);
	kh_page_publish(kp);

	/*
	 * If the target's swap fails after the source's, the source simply
	 * lives on the shared page; if the source's fails, the unmapped
	 * shared page is collected.
	 */
	if (kh_side_replace(it, s, kpage) && kh_side_replace(it, t, kpage)) {
		kh_set(it, KSMD_HELPER_RESULT_MERGED, KSMD_HELPER_REASON_NONE);
		it->out_handle = kp->handle;
		it->has_handle = true;
	}
	kh_page_put(kp);
	return;

out_kp:
	/* Never mapped: back to the pool (uncharged) now, not by the collector. */
	kh_page_discard(kp);
}

/* The target maps the zero page: report whether the source does too. */
static void kh_merge_onto_zero(struct kh_item *it, struct kh_side *s,
			       struct kh_page *kp)
{
	struct page *page = kp ? kp->page : s->page;
	bool zero = kp ? false : s->zero;

	/* Only a report; nothing changes, so an unlocked look is enough. */
	if (zero || kh_page_is_zero(page))
		kh_set(it, KSMD_HELPER_RESULT_ALREADY, KSMD_HELPER_REASON_NONE);
	else
		kh_set(it, KSMD_HELPER_RESULT_DIFFERS, KSMD_HELPER_REASON_NONE);
}

static void kh_merge_sides(struct kh_item *it, struct kh_side *t,
			   struct kh_side *s, struct kh_page *kp)
{
	if (t->zero) {
		kh_merge_onto_zero(it, s, kp);
		return;
	}
	if (kp) {
		kh_side_join(it, t, kp);
		return;
	}
	if (s->zero) {
		kh_side_merge_zero(it, t);
		return;
	}
	if (t->page == s->page) {
		/* Already one page: a shared page, or COW-shared after fork. */
		kh_set(it, KSMD_HELPER_RESULT_ALREADY, KSMD_HELPER_REASON_NONE);
		if (t->owned) {
			it->out_handle = t->owned->handle;
			it->has_handle = true;
		}
		return;
	}
	if (s->owned) {
		kh_side_join(it, t, s->owned);
		return;
	}
	if (t->owned) {
		/* The source joins the target's shared page. */
		kh_side_join(it, s, t->owned);
		return;
	}
	kh_merge_new(it, t, s);
}

/*
 * Whether khugepaged or MADV_COLLAPSE may be about to collapse a range of
 * @vma that this module must keep them from (see the DOC above).
 */
static bool kh_collapse_may_run(struct vm_area_struct *vma)
{
	return IS_ENABLED(CONFIG_DEBUG_VM) && !(vma->vm_flags & VM_NOHUGEPAGE);
}

/*
 * Set VM_NOHUGEPAGE on the VMA of @mm at @addr, if it is one that merges
 * may map shared pages into (CONFIG_DEBUG_VM only; see the DOC above).
 */
static int kh_forbid_collapse(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma;

	if (mmap_write_lock_killable(mm))
		return -EINTR;
	vma = find_vma(mm, addr);
	if (vma && addr >= vma->vm_start &&
	    kh_vma_reason(vma) == KSMD_HELPER_REASON_NONE)
		kh_vm_flags_set(vma, VM_NOHUGEPAGE);
	mmap_write_unlock(mm);
	return 0;
}

/*
 * Whether the bytes of @t (a page, not the zero page) may equal those of
 * the source: the shared page @kp, else the zero page (@s NULL for
 * MERGE_ZERO, or mapping it), else s->page. An unlocked look, taken before
 * work only equal bytes justify; the locked compare decides.
 */
static bool kh_sides_may_match(struct kh_side *t, struct kh_side *s,
			       struct kh_page *kp)
{
	if (kp)
		return kh_pages_identical(t->page, kp->page);
	if (!s || s->zero)
		return kh_page_is_zero(t->page);
	return kh_pages_identical(t->page, s->page);
}

/*
 * Split the transparent huge pages of the sides (@s may be NULL), as KSM
 * does. Every other reference the lookup took is dropped first, so that
 * the split finds none it does not expect, also when both pages are parts
 * of one THP. Both sides are released. Returns true if the caller should
 * look them up again, or false with the item's result set.
 */
static bool kh_split_sides(struct kh_item *it, struct kh_side *t,
			   struct kh_side *s)
{
	struct page *split[2] = {};
	bool again = true;
	int i;

	if (t->huge) {
		split[0] = t->page;
		t->page = NULL;
	}
	if (s && s->huge) {
		split[1] = s->page;
		s->page = NULL;
	}
	kh_side_release(t);
	if (s)
		kh_side_release(s);
	if (split[0] && split[1] && page_folio(split[0]) == page_folio(split[1])) {
		put_page(split[1]);
		split[1] = NULL;
	}
	for (i = 0; i < ARRAY_SIZE(split); i++) {
		if (!split[i])
			continue;
		if (again)
			again = kh_split_thp(it, split[i]);
		else
			put_page(split[i]);
	}
	return again;
}

/*
 * Look both sides up (@s is NULL for MERGE_ZERO; only @t when the source
 * is the shared page @kp) and split their transparent huge pages, but only
 * when the merge needs it: a target on the zero page or one page on both
 * sides only reports, and bytes that differ now leave a THP whole. Returns
 * true with both sides found and no THP left to split; else the item's
 * result is set and nothing is held.
 */
static bool kh_sides_lookup(struct kh_item *it, struct kh_side *t,
			    struct kh_side *s, struct kh_page *kp)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		if (!kh_side_lookup(it, t))
			return false;
		if (s && !kp && !kh_side_lookup(it, s)) {
			kh_side_release(t);
			return false;
		}
		if (!t->huge && !(s && s->huge))
			return true;
		if (t->zero || (s && !kp && t->page == s->page))
			return true;
		if (!kh_sides_may_match(t, s, kp)) {
			kh_set(it, KSMD_HELPER_RESULT_DIFFERS,
			       KSMD_HELPER_REASON_NONE);
			goto out_release;
		}
		if (!kh_split_sides(it, t, s))
			return false;
	}
	kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
	return false;

out_release:
	kh_side_release(t);
	if (s)
		kh_side_release(s);
	return false;
}

static void kh_merge_item(struct kh_item *it)
{
	struct kh_side t = { .addr = it->addr };
	struct kh_side s = { .addr = it->src_addr };
	struct kh_page *kp = NULL;
	bool forbidden = false;

	t.mm = kh_pidfd_mm(it->pidfd);
	if (IS_ERR(t.mm)) {
		kh_set(it, kh_pidfd_result(PTR_ERR(t.mm)),
		       KSMD_HELPER_REASON_NONE);
		return;
	}
	if (it->by_handle) {
		kp = kh_page_get_by_handle(it->handle);
		if (!kp) {
			kh_set(it, KSMD_HELPER_RESULT_NO_HANDLE,
			       KSMD_HELPER_REASON_NONE);
			goto out_mm;
		}
	} else {
		s.mm = kh_pidfd_mm(it->src_pidfd);
		if (IS_ERR(s.mm)) {
			kh_set(it, kh_pidfd_result(PTR_ERR(s.mm)),
			       KSMD_HELPER_REASON_NONE);
			s.mm = NULL;
			goto out_mm;
		}
		/* Two pidfds may name one process. */
		if (s.mm == t.mm && it->addr == it->src_addr) {
			kh_set(it, KSMD_HELPER_RESULT_UNSUPPORTED,
			       KSMD_HELPER_REASON_SAME_PAGE);
			goto out_mm;
		}
	}

again:
	if (kh_lock_mms(t.mm, s.mm)) {
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		goto out_mm;
	}
	if (kh_sides_lookup(it, &t, &s, kp)) {
		bool t_open = kh_collapse_may_run(t.vma);
		bool s_open = s.vma && kh_collapse_may_run(s.vma);

		/* Either side may get a shared page: see the DOC above. */
		if (t_open || s_open) {
			kh_side_release(&s);
			kh_side_release(&t);
			kh_unlock_mms(t.mm, s.mm);
			if (forbidden ||
			    (t_open && kh_forbid_collapse(t.mm, t.addr)) ||
			    (s_open && kh_forbid_collapse(s.mm, s.addr))) {
				kh_set(it, KSMD_HELPER_RESULT_BUSY,
				       KSMD_HELPER_REASON_NONE);
				goto out_mm;
			}
			forbidden = true;
			goto again;
		}
		kh_merge_sides(it, &t, &s, kp);
		kh_side_release(&s);
		kh_side_release(&t);
	}
	kh_unlock_mms(t.mm, s.mm);
out_mm:
	kh_page_put(kp);
	if (s.mm)
		mmput(s.mm);
	mmput(t.mm);
}

static void kh_merge_zero_item(struct kh_item *it)
{
	struct kh_side t = { .addr = it->addr };

	t.mm = kh_pidfd_mm(it->pidfd);
	if (IS_ERR(t.mm)) {
		kh_set(it, kh_pidfd_result(PTR_ERR(t.mm)),
		       KSMD_HELPER_REASON_NONE);
		return;
	}
	if (mmap_read_lock_killable(t.mm)) {
		kh_set(it, KSMD_HELPER_RESULT_BUSY, KSMD_HELPER_REASON_NONE);
		goto out_mm;
	}
	if (kh_sides_lookup(it, &t, NULL, NULL)) {
		kh_side_merge_zero(it, &t);
		kh_side_release(&t);
	}
	mmap_read_unlock(t.mm);
out_mm:
	mmput(t.mm);
}

static void kh_run_item(struct kh_item *it, bool zero, bool skip_alloc)
{
	kh_set(it, KSMD_HELPER_RESULT_CHANGED, KSMD_HELPER_REASON_NONE);
	it->has_handle = false;
	it->busy_ref = false;
	it->no_page = false;
	it->skip_alloc = skip_alloc;
	if (zero)
		kh_merge_zero_item(it);
	else
		kh_merge_item(it);
}

static const u8 kh_result_stat[__KSMD_HELPER_RESULT_MAX] = {
	[KSMD_HELPER_RESULT_MERGED] = KSMD_HELPER_STAT_MERGED,
	[KSMD_HELPER_RESULT_ALREADY] = KSMD_HELPER_STAT_ALREADY,
	[KSMD_HELPER_RESULT_DIFFERS] = KSMD_HELPER_STAT_DIFFERS,
	[KSMD_HELPER_RESULT_BUSY] = KSMD_HELPER_STAT_BUSY,
	[KSMD_HELPER_RESULT_CHANGED] = KSMD_HELPER_STAT_CHANGED,
	[KSMD_HELPER_RESULT_UNSUPPORTED] = KSMD_HELPER_STAT_UNSUPPORTED,
	[KSMD_HELPER_RESULT_NO_PROCESS] = KSMD_HELPER_STAT_NOENT,
	[KSMD_HELPER_RESULT_NO_PAGE] = KSMD_HELPER_STAT_NOENT,
	[KSMD_HELPER_RESULT_NO_HANDLE] = KSMD_HELPER_STAT_NOENT,
	[KSMD_HELPER_RESULT_NO_MEMORY] = KSMD_HELPER_STAT_NO_MEMORY,
	[KSMD_HELPER_RESULT_BAD_PIDFD] = KSMD_HELPER_STAT_DENIED,
	[KSMD_HELPER_RESULT_NO_ACCESS] = KSMD_HELPER_STAT_DENIED,
};

void kh_merge_batch(struct kh_item *items, size_t n, bool zero)
{
	bool retry = false, no_page = false;
	size_t i;

	for (i = 0; i < n; i++) {
		kh_run_item(&items[i], zero, no_page);
		retry |= items[i].busy_ref;
		no_page |= items[i].no_page;
		cond_resched();
	}

	/*
	 * A page faulted in moments ago still has a reference from a per-CPU
	 * LRU batch. Drain them once, with no lock held, and retry.
	 */
	if (retry && kh_sym.lru_add_drain_all) {
		kh_call(lru_add_drain_all)();
		for (i = 0; i < n; i++) {
			if (items[i].busy_ref)
				kh_run_item(&items[i], zero, no_page);
			cond_resched();
		}
	}

	for (i = 0; i < n; i++) {
		u32 result = items[i].result;

		if (result >= __KSMD_HELPER_RESULT_MAX)
			continue;
		atomic64_inc(&kh_stats[kh_result_stat[result]]);
		if (zero && result == KSMD_HELPER_RESULT_MERGED)
			atomic64_inc(&kh_stats[KSMD_HELPER_STAT_MERGED_ZERO]);
	}
}

/*
 * @page (referenced; the reference is dropped) is mapped at @addr: if it is
 * a shared page, fault it private as a write would.
 */
static int kh_unmerge_page(struct vm_area_struct *vma, unsigned long addr,
			   struct page *page, u64 *count)
{
	struct kh_page *kp;
	vm_fault_t ret;

	kh_mmap_assert_locked(vma->vm_mm);
	kp = kh_page_get_by_page(page);
	put_page(page);
	if (!kp)
		return 0;
	ret = handle_mm_fault(vma, addr, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE,
			      NULL);
	kh_page_put(kp);
	if (ret & VM_FAULT_OOM)
		return -ENOMEM;
	if (!(ret & VM_FAULT_ERROR))
		(*count)++;
	return 0;
}

/*
 * Unmerge the shared pages that the table of PTEs holding @addr maps in
 * [@addr, @end), @end at most the end of that table: up to the first one,
 * whose fault needs the page table lock dropped. Returns where to go on.
 */
static unsigned long kh_unmerge_ptes(struct vm_area_struct *vma,
				     unsigned long addr, unsigned long end,
				     u64 *count, int *err)
{
	struct page *page = NULL;
	struct kh_pte pt;
	pte_t pte;

	switch (kh_pte_lock(vma->vm_mm, addr, &pt)) {
	case KH_WALK_PTE:
		break;
	case KH_WALK_RETRY:
		return addr;
	default:
		return end;
	}
	for (; addr < end; addr += PAGE_SIZE, pt.ptep++) {
		pte = ptep_get(pt.ptep);
		if (!pte_present(pte) || pte_special(pte) ||
		    !pfn_valid(pte_pfn(pte)))
			continue;
		page = pte_page(pte);
		if (!PageAnon(page)) {
			get_page(page);
			break;
		}
		page = NULL;
	}
	kh_pte_unlock(&pt);
	if (!page)
		return end;
	*err = kh_unmerge_page(vma, addr, page, count);
	return addr + PAGE_SIZE;
}

/*
 * One step of UNMERGE in [@addr, @end) of @vma: skip an empty entry of any
 * page table level whole, or go through one table of PTEs. A sparse range
 * costs a step per populated table, not one per page: a 64 TiB reservation
 * with nothing mapped is a few hundred steps. Returns where to go on.
 */
static unsigned long kh_unmerge_step(struct vm_area_struct *vma,
				     unsigned long addr, unsigned long end,
				     u64 *count, int *err)
{
	struct mm_struct *mm = vma->vm_mm;
	pmd_t *pmdp;
	pud_t *pud;
	p4d_t *p4d;
	pgd_t *pgd;
	pmd_t pmd;

	kh_mmap_assert_locked(mm);
	pgd = pgd_offset(mm, addr);
	if (pgd_none(*pgd) || unlikely(pgd_bad(*pgd)))
		return pgd_addr_end(addr, end);
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || unlikely(p4d_bad(*p4d)))
		return p4d_addr_end(addr, end);
	pud = pud_offset(p4d, addr);
	if (pud_none(*pud) || unlikely(pud_bad(*pud)))
		return pud_addr_end(addr, end);
	pmdp = pmd_offset(pud, addr);
	pmd = kh_pmdp_get_lockless(pmdp);
	/* Shared pages are mapped by PTEs only, never by a huge PMD. */
	if (!pmd_present(pmd) || kh_pmd_huge(pmd))
		return pmd_addr_end(addr, end);
	return kh_unmerge_ptes(vma, addr, pmd_addr_end(addr, end), count, err);
}

/* Whether @vma may hold shared pages: only VMAs a merge accepts do. */
static bool kh_unmerge_vma(struct vm_area_struct *vma)
{
	return vma_is_anonymous(vma) && !is_vm_hugetlb_page(vma) &&
	       !(vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP |
				  VM_MIXEDMAP | VM_IO)) &&
	       (vma->vm_flags & VM_MAYWRITE);
}

int kh_unmerge(u32 pidfd, unsigned long addr, unsigned long len,
	       u64 *ret_count)
{
	unsigned long end = addr + len;
	struct vm_area_struct *vma;
	struct mm_struct *mm;
	u64 count = 0;
	int r = 0;

	mm = kh_pidfd_mm(pidfd);
	if (IS_ERR(mm)) {
		r = PTR_ERR(mm);
		/* As process_vm_readv() reports a failed access check. */
		return r == -EACCES ? -EPERM : r;
	}
	if (mmap_read_lock_killable(mm)) {
		mmput(mm);
		return -EINTR;
	}
	while (addr < end && !r) {
		unsigned long vend;

		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		addr = max(addr, vma->vm_start);
		vend = min(end, vma->vm_end);
		if (!kh_unmerge_vma(vma)) {
			addr = vend;
			continue;
		}
		while (addr < vend && !r) {
			addr = kh_unmerge_step(vma, addr, vend, &count, &r);
			if (!r && fatal_signal_pending(current))
				r = -EINTR;
			if (r || (!need_resched() && !mmap_lock_is_contended(mm)))
				continue;
			/* Let page faults and the scheduler in; find the VMA again. */
			mmap_read_unlock(mm);
			cond_resched();
			if (mmap_read_lock_killable(mm)) {
				r = -EINTR;
				goto out_mm;
			}
			break;
		}
	}
	mmap_read_unlock(mm);
out_mm:
	mmput(mm);

	atomic64_add(count, &kh_stats[KSMD_HELPER_STAT_UNMERGED]);
	*ret_count = count;
	return r;
}

u64 kh_merge_features(void)
{
	u64 features = KSMD_HELPER_FEATURE_MERGE |
		       KSMD_HELPER_FEATURE_MERGE_ZERO |
		       KSMD_HELPER_FEATURE_UNMERGE |
		       KSMD_HELPER_FEATURE_GET_PAGES;

	if (kh_symbols_have_thp_split())
		features |= KSMD_HELPER_FEATURE_THP_SPLIT;
	if (kh_symbols_have_memcg())
		features |= KSMD_HELPER_FEATURE_MEMCG;
	if (kh_pool_enabled())
		features |= KSMD_HELPER_FEATURE_POOL;
	return features;
}
