/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel functions ksmd_helper calls that the kernel does not export.
 *
 * They are resolved once at load through kallsyms. Their prototypes come
 * from the kernel's own headers (typeof below), so a prototype change in a
 * supported line breaks the build instead of the running kernel. Lines that
 * were not read and tested fail to build (see Kbuild).
 *
 * Supported: Linux 6.1.y (Debian 12) and 6.12.y (Debian 12 backports).
 */
#ifndef KSMD_HELPER_SYMBOLS_H
#define KSMD_HELPER_SYMBOLS_H

#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/memcontrol.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/pid.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/swap.h>

/* Kbuild defines the kernel line; see there. */
#if !defined(KH_LINUX_6_1) && !defined(KH_LINUX_6_12)
#error "ksmd_helper supports Linux 6.1.y and 6.12.y only"
#endif

/**
 * struct kh_symbols - resolved entry points, all set before the family
 * registers; the optional ones may be NULL (the feature is then off).
 */
struct kh_symbols {
	typeof(__mmu_notifier_invalidate_range_start) *mn_range_start;
	typeof(__mmu_notifier_invalidate_range_end) *mn_range_end;
	typeof(ptep_clear_flush) *ptep_clear_flush;
	/* What process_madvise() uses to name a process and check access. */
	typeof(pidfd_get_task) *pidfd_get_task;
	typeof(mm_access) *mm_access;
#ifdef KH_LINUX_6_1
	typeof(page_add_file_rmap) *page_add_file_rmap;
	typeof(page_remove_rmap) *page_remove_rmap;
	typeof(split_huge_page_to_list) *split_huge_page_to_list;
#else
	typeof(folio_add_file_rmap_ptes) *folio_add_file_rmap_ptes;
	typeof(folio_remove_rmap_ptes) *folio_remove_rmap_ptes;
	typeof(split_huge_page_to_list_to_order) *split_to_order;
#endif
	/* Optional. */
	typeof(lru_add_drain_all) *lru_add_drain_all;
	typeof(folio_free_swap) *folio_free_swap;
	typeof(__mem_cgroup_charge) *mem_cgroup_charge;
	/* For a pool slot freed and kept (pool.c); no pool without it. */
	typeof(__mem_cgroup_uncharge) *mem_cgroup_uncharge;
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
