/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel functions ksmd_helper calls that the kernel does not export.
 *
 * They are resolved once at load through kallsyms. Their prototypes come
 * from the kernel's own headers (typeof below), so a prototype change in a
 * supported line breaks the build instead of the running kernel. Lines that
 * were not read and tested fail to build (see Kbuild).
 *
 * Supported: Linux 6.1.y (Debian 12), 6.12.y (Debian 12 backports, Debian 13)
 * and 7.3.y (Debian 13 backports).
 */
#ifndef KSMD_HELPER_SYMBOLS_H
#define KSMD_HELPER_SYMBOLS_H

#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/static_call.h>
#include <linux/swap.h>

/* Kbuild defines the kernel line; see there. */
#if !defined(KH_LINUX_6_1) && !defined(KH_LINUX_6_12) && !defined(KH_LINUX_7_3)
#error "ksmd_helper supports Linux 6.1.y, 6.12.y and 7.3.y only"
#endif

/*
 * Every call into one of these functions is a static call: the call site
 * (or, without inline static calls, its trampoline) is patched at load into
 * a direct call to the resolved address. There is no function pointer to
 * call through, so a landing pad sealed against indirect calls (kernel IBT)
 * does not matter. kh_call(field) calls the function of kh_symbols.field.
 */
#define kh_call(field) static_call(kh_##field)

DECLARE_STATIC_CALL(kh_mn_range_start, __mmu_notifier_invalidate_range_start);
DECLARE_STATIC_CALL(kh_mn_range_end, __mmu_notifier_invalidate_range_end);
DECLARE_STATIC_CALL(kh_ptep_clear_flush, ptep_clear_flush);
DECLARE_STATIC_CALL(kh_pidfd_get_task, pidfd_get_task);
#ifdef KH_LINUX_7_3
DECLARE_STATIC_CALL(kh_ptrace_may_access, ptrace_may_access);
#else
DECLARE_STATIC_CALL(kh_mm_access, mm_access);
#endif
#ifdef KH_LINUX_6_1
DECLARE_STATIC_CALL(kh_page_add_file_rmap, page_add_file_rmap);
DECLARE_STATIC_CALL(kh_page_remove_rmap, page_remove_rmap);
DECLARE_STATIC_CALL(kh_split_huge_page_to_list, split_huge_page_to_list);
#else
DECLARE_STATIC_CALL(kh_folio_add_file_rmap_ptes, folio_add_file_rmap_ptes);
DECLARE_STATIC_CALL(kh_folio_remove_rmap_ptes, folio_remove_rmap_ptes);
#ifdef KH_LINUX_6_12
DECLARE_STATIC_CALL(kh_split_to_order, split_huge_page_to_list_to_order);
#else
DECLARE_STATIC_CALL(kh_split_to_order, __split_huge_page_to_list_to_order);
#endif
#endif
DECLARE_STATIC_CALL(kh_lru_add_drain_all, lru_add_drain_all);
DECLARE_STATIC_CALL(kh_folio_free_swap, folio_free_swap);
DECLARE_STATIC_CALL(kh_mem_cgroup_charge, __mem_cgroup_charge);
DECLARE_STATIC_CALL(kh_mem_cgroup_uncharge, __mem_cgroup_uncharge);

/**
 * struct kh_symbols - resolved addresses, all set before the family
 * registers; the optional ones may be 0 (the feature is then off). They
 * are addresses, not function pointers: calls go through kh_call().
 */
struct kh_symbols {
	unsigned long mn_range_start;
	unsigned long mn_range_end;
	unsigned long ptep_clear_flush;
	/* What process_madvise() uses to name a process and check access. */
	unsigned long pidfd_get_task;
#ifdef KH_LINUX_7_3
	unsigned long ptrace_may_access;	/* see kh_mm_access() */
#else
	unsigned long mm_access;
#endif
#ifdef KH_LINUX_6_1
	unsigned long page_add_file_rmap;
	unsigned long page_remove_rmap;
	unsigned long split_huge_page_to_list;
#else
	unsigned long folio_add_file_rmap_ptes;
	unsigned long folio_remove_rmap_ptes;
	unsigned long split_to_order;
#endif
	/* Optional. */
	unsigned long lru_add_drain_all;
	unsigned long folio_free_swap;
	unsigned long mem_cgroup_charge;
	/* For a pool slot freed and kept (pool.c); no pool without it. */
	unsigned long mem_cgroup_uncharge;
};

extern struct kh_symbols kh_sym;

/* Whether the optional THP split and memcg charge entry points resolved. */
bool kh_symbols_have_thp_split(void);
bool kh_symbols_have_memcg(void);

/*
 * Resolve every symbol; on failure print one line naming the symbol and
 * return a negative errno. Refuses kernels built with CONFIG_CFI_CLANG
 * (one line, -EOPNOTSUPP). Nothing to undo on success or failure.
 */
int kh_symbols_init(void);

#endif /* KSMD_HELPER_SYMBOLS_H */
