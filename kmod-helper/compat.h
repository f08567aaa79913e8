/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The differences between the kernel lines ksmd_helper supports (6.1, 6.12
 * and 7.3), so that merge.c reads the same on all. Every helper here is a copy of an inline
 * from the kernel headers that does not link from a module, or a rename.
 * The supported lines are chosen in symbols.h.
 */
#ifndef KSMD_HELPER_COMPAT_H
#define KSMD_HELPER_COMPAT_H

#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/mm_inline.h>
#include <linux/mmap_lock.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/swapops.h>
#ifdef KH_LINUX_7_3
#include <linux/leafops.h>
#endif

#include "symbols.h"

/*
 * mmap_assert_locked() without its extras: 6.1 adds a VM_BUG_ON_MM() and
 * 6.12, when lockdep is off, a WARN_ON(). This checks with lockdep only and
 * compiles to nothing without it, on both lines.
 */
static inline void kh_mmap_assert_locked(struct mm_struct *mm)
{
	lockdep_assert_held(&mm->mmap_lock);
}

/*
 * The page lock is a page flag, which lockdep does not track: check it
 * when lockdep checks the other locks, and compile to nothing otherwise.
 */
static inline void kh_assert_page_locked(struct page *page)
{
	lockdep_assert(folio_test_locked(page_folio(page)));
}

/*
 * mmap_read_lock_killable() for the second of two mms locked together:
 * lockdep knows one class for every mm's mmap_lock, so the second lock is
 * taken as its nested subclass; the caller orders the two by address.
 */
static inline int kh_mmap_read_lock_killable_nested(struct mm_struct *mm)
{
	int r;

	__mmap_lock_trace_start_locking(mm, false);
	r = down_read_killable_nested(&mm->mmap_lock, SINGLE_DEPTH_NESTING);
	__mmap_lock_trace_acquire_returned(mm, false, r == 0);
	return r;
}

/*
 * Whether a read-only long-term pin (vfio, RDMA) of a page merged in @mm
 * could keep reading it after the process wrote its own copy. Before 6.2
 * GUP unshares only anonymous pages on such a pin (gup_must_unshare()), not
 * a shared page of this module or the zero page, so on 6.1 the memory of a
 * process that holds long-term pins is refused: the pinners count them in
 * pinned_vm (RDMA, io_uring, vhost-vdpa) or locked_vm (vfio, and mlock).
 * MMF_HAS_PINNED, "has ever pinned", cannot tell: every FOLL_PIN sets it,
 * short-term ones too, and on 6.1 process_vm_readv() pins, so ksmd's own
 * reads set it in every process it scans. 6.2 and later unshare both kinds
 * of page on a long-term pin of a COW mapping; nothing is refused there.
 */
static inline bool kh_mm_pins_may_go_stale(struct mm_struct *mm)
{
#ifdef KH_LINUX_6_1
	return atomic64_read(&mm->pinned_vm) || READ_ONCE(mm->locked_vm);
#else
	return false;
#endif
}

static inline pmd_t kh_pmdp_get_lockless(pmd_t *pmdp)
{
#ifdef KH_LINUX_6_1
	return READ_ONCE(*pmdp);
#else
	return pmdp_get_lockless(pmdp);
#endif
}

static inline void kh_mn_range_init(struct mmu_notifier_range *range,
				    struct vm_area_struct *vma,
				    unsigned long addr)
{
#ifdef KH_LINUX_6_1
	mmu_notifier_range_init(range, MMU_NOTIFY_CLEAR, 0, vma, vma->vm_mm,
				addr, addr + PAGE_SIZE);
#else
	mmu_notifier_range_init(range, MMU_NOTIFY_CLEAR, 0, vma->vm_mm,
				addr, addr + PAGE_SIZE);
#endif
}

/* mmu_notifier_invalidate_range_start() without lockdep annotations. */
static inline void kh_mn_range_start(struct mmu_notifier_range *range)
{
	might_sleep();
	if (mm_has_notifiers(range->mm)) {
		range->flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
		kh_call(mn_range_start)(range);
	}
}

static inline void kh_mn_range_end(struct mmu_notifier_range *range)
{
	if (mm_has_notifiers(range->mm)) {
#ifdef KH_LINUX_6_1
		kh_call(mn_range_end)(range, false);
#else
		kh_call(mn_range_end)(range);
#endif
	}
}

/*
 * add_mm_counter() without the rss_stat tracepoint, whose helper is not
 * exported. Another mm's counters are updated this way by KSM as well.
 */
static inline void kh_add_mm_counter(struct mm_struct *mm, int member,
				     long value)
{
#ifdef KH_LINUX_6_1
	atomic_long_add(value, &mm->rss_stat.count[member]);
#else
	percpu_counter_add(&mm->rss_stat[member], value);
#endif
}

static inline int kh_page_mapcount(struct page *page)
{
#ifdef KH_LINUX_6_1
	return page_mapcount(page);
#else
	return folio_mapcount(page_folio(page));
#endif
}

static inline void kh_add_file_rmap(struct page *page,
				    struct vm_area_struct *vma)
{
#ifdef KH_LINUX_6_1
	kh_call(page_add_file_rmap)(page, vma, false);
#else
	kh_call(folio_add_file_rmap_ptes)(page_folio(page), page, 1, vma);
#endif
}

static inline void kh_remove_rmap(struct page *page,
				  struct vm_area_struct *vma)
{
#ifdef KH_LINUX_6_1
	kh_call(page_remove_rmap)(page, vma, false);
#else
	kh_call(folio_remove_rmap_ptes)(page_folio(page), page, 1, vma);
#endif
}

/* Returns 0 when the exclusive anon page is now shared (see KSM). */
static inline int kh_try_share_anon_rmap(struct page *page)
{
#ifdef KH_LINUX_6_1
	return page_try_share_anon_rmap(page);
#else
	return folio_try_share_anon_rmap_pte(page_folio(page), page);
#endif
}

/*
 * VMA kinds newer kernels added that a merged page must not enter: user
 * shadow stacks (their PTEs have their own encoding) and droppable
 * mappings (their pages may be discarded, ours cannot be).
 */
#ifdef KH_LINUX_6_1
#define KH_VM_REFUSED_NEW 0
#else
#define KH_VM_REFUSED_NEW (VM_SHADOW_STACK | VM_DROPPABLE)
#endif

/* NUMA-hinting PTEs of 6.1 keep the write bit as "savedwrite". */
static inline bool kh_pte_needs_wrprotect(pte_t pte)
{
#ifdef KH_LINUX_6_1
	if (pte_protnone(pte) && pte_savedwrite(pte))
		return true;
#endif
	return pte_write(pte) || pte_dirty(pte);
}

static inline pte_t kh_pte_wrprotect(pte_t pte)
{
#ifdef KH_LINUX_6_1
	if (pte_protnone(pte))
		return pte_mkclean(pte_clear_savedwrite(pte));
#endif
	return pte_mkclean(pte_wrprotect(pte));
}

/*
 * mm_access() as 6.1 and 6.12 have it: @task's mm if the caller may access
 * it in @mode, checked under its exec_update_lock; an ERR_PTR (-EACCES,
 * -EINTR; -ESRCH or NULL without an mm). 7.x's mm_access() also grants
 * PTRACE_MODE_READ to every perfmon_capable() caller, which includes
 * CAP_SYS_ADMIN: every caller of this module has it, so the check would be
 * void. On 7.3 it is made here with ptrace_may_access() alone.
 */
static inline struct mm_struct *kh_mm_access(struct task_struct *task,
					     unsigned int mode)
{
#ifdef KH_LINUX_7_3
	struct mm_struct *mm;
	int err;

	err = down_read_killable(&task->signal->exec_update_lock);
	if (err)
		return ERR_PTR(err);
	mm = get_task_mm(task);
	if (!mm) {
		mm = ERR_PTR(-ESRCH);
	} else if (mm != current->mm &&
		   !kh_call(ptrace_may_access)(task, mode)) {
		mmput(mm);
		mm = ERR_PTR(-EACCES);
	}
	up_read(&task->signal->exec_update_lock);
	return mm;
#else
	return kh_call(mm_access)(task, mode);
#endif
}

/* Set @flags on @vma; the caller holds the mmap lock for writing. */
static inline void kh_vm_flags_set(struct vm_area_struct *vma,
				   unsigned long flags)
{
#ifdef KH_LINUX_6_1
	vma->vm_flags |= flags;
#else
	vm_flags_set(vma, flags);
#endif
}

/* Split the locked, referenced THP holding @page; @page stays locked. */
static inline int kh_split_huge_page(struct page *page)
{
	kh_assert_page_locked(page);
#ifdef KH_LINUX_6_1
	return kh_call(split_huge_page_to_list)(page, NULL);
#else
	return kh_call(split_to_order)(page, NULL, 0);
#endif
}

/*
 * Whether a PMD maps a huge page of any kind: 7.x has no devmap PMDs any
 * more (ZONE_DEVICE pages are mapped like any other).
 */
static inline bool kh_pmd_huge(pmd_t pmd)
{
#ifdef KH_LINUX_7_3
	return pmd_trans_huge(pmd);
#else
	return pmd_trans_huge(pmd) || pmd_devmap(pmd);
#endif
}

/* Whether a non-present, non-none PTE is a migration entry. */
static inline bool kh_pte_is_migration(pte_t pte)
{
#ifdef KH_LINUX_7_3
	return softleaf_is_migration(softleaf_from_pte(pte));
#else
	return is_migration_entry(pte_to_swp_entry(pte));
#endif
}

/*
 * Whether a present PTE carries userfaultfd's marker: 7.x names the bit
 * pte_uffd(), as it also serves read-write-protect (RWP) ranges.
 */
static inline bool kh_pte_uffd_wp(pte_t pte)
{
#ifdef KH_LINUX_7_3
	return pte_uffd(pte);
#else
	return pte_uffd_wp(pte);
#endif
}

/* Whether a PMD is a migration entry (a THP being migrated). */
static inline bool kh_pmd_is_migration(pmd_t pmd)
{
#ifdef KH_LINUX_7_3
	return pmd_is_migration_entry(pmd);
#else
	return is_pmd_migration_entry(pmd);
#endif
}

/* The zero page's pfn for @addr (7.x renamed my_zero_pfn() to zero_pfn()). */
static inline unsigned long kh_zero_pfn(unsigned long addr)
{
#ifdef KH_LINUX_7_3
	return zero_pfn(addr);
#else
	return my_zero_pfn(addr);
#endif
}

#endif /* KSMD_HELPER_COMPAT_H */
