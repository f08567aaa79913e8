// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: symbol resolution
 *
 * kallsyms_lookup_name() is itself unexported; a kprobe registered on it
 * reports its address, and it resolves everything else.
 *
 * Kernels built with CONFIG_X86_KERNEL_IBT (6.12 and 7.3) seal at boot every
 * function whose address is never taken: the ENDBR64 landing pad is
 * overwritten with a NOP, and on a CPU that enforces IBT an indirect call to
 * it raises #CP. Every function here is sealed there, kallsyms_lookup_name()
 * included. So none is called through a pointer: each has a static call
 * (symbols.h), which this file points at the resolved address. On x86 that
 * patches each call site (or the static call's trampoline) into a direct
 * call or jump, and IBT checks only indirect branches. Only a kernel without
 * static calls would branch indirectly; there, when IBT is enforced, each
 * address must start with ENDBR64 exactly, or the module refuses to load. It
 * never weakens IBT itself. The test_assume_* parameters force those
 * branches so the refusal can be tested on hardware without IBT.
 *
 * Kernels built with CONFIG_CFI_CLANG check a type hash in front of the
 * target of every indirect call and patch static calls differently; no such
 * kernel was tested with this module, and a failed check oopses or panics.
 * So the module refuses to load on them, before it resolves anything;
 * test_assume_cfi tests the refusal.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/static_call.h>
#include <linux/uaccess.h>
#include <asm/cpufeature.h>
#include <asm/ibt.h>

#include "symbols.h"

struct kh_symbols kh_sym;

static bool test_assume_ibt;
module_param(test_assume_ibt, bool, 0444);
MODULE_PARM_DESC(test_assume_ibt,
		 "Testing only: act as if the CPU enforced IBT");

static bool test_assume_indirect_calls;
module_param(test_assume_indirect_calls, bool, 0444);
MODULE_PARM_DESC(test_assume_indirect_calls,
		 "Testing only: act as if the kernel had no static calls (calls through pointers)");

DEFINE_STATIC_CALL_NULL(kh_kallsyms_lookup_name, kallsyms_lookup_name);
DEFINE_STATIC_CALL_NULL(kh_mn_range_start, __mmu_notifier_invalidate_range_start);
DEFINE_STATIC_CALL_NULL(kh_mn_range_end, __mmu_notifier_invalidate_range_end);
DEFINE_STATIC_CALL_NULL(kh_ptep_clear_flush, ptep_clear_flush);
DEFINE_STATIC_CALL_NULL(kh_pidfd_get_task, pidfd_get_task);
#ifdef KH_LINUX_7_3
DEFINE_STATIC_CALL_NULL(kh_ptrace_may_access, ptrace_may_access);
#else
DEFINE_STATIC_CALL_NULL(kh_mm_access, mm_access);
#endif
#ifdef KH_LINUX_6_1
DEFINE_STATIC_CALL_NULL(kh_page_add_file_rmap, page_add_file_rmap);
DEFINE_STATIC_CALL_NULL(kh_page_remove_rmap, page_remove_rmap);
DEFINE_STATIC_CALL_NULL(kh_split_huge_page_to_list, split_huge_page_to_list);
#else
DEFINE_STATIC_CALL_NULL(kh_folio_add_file_rmap_ptes, folio_add_file_rmap_ptes);
DEFINE_STATIC_CALL_NULL(kh_folio_remove_rmap_ptes, folio_remove_rmap_ptes);
#ifdef KH_LINUX_6_12
DEFINE_STATIC_CALL_NULL(kh_split_to_order, split_huge_page_to_list_to_order);
#else
DEFINE_STATIC_CALL_NULL(kh_split_to_order, __split_huge_page_to_list_to_order);
#endif
#endif
DEFINE_STATIC_CALL_NULL(kh_lru_add_drain_all, lru_add_drain_all);
DEFINE_STATIC_CALL_NULL(kh_folio_free_swap, folio_free_swap);
DEFINE_STATIC_CALL_NULL(kh_mem_cgroup_charge, __mem_cgroup_charge);
DEFINE_STATIC_CALL_NULL(kh_mem_cgroup_uncharge, __mem_cgroup_uncharge);

static bool test_assume_cfi;
module_param(test_assume_cfi, bool, 0444);
MODULE_PARM_DESC(test_assume_cfi,
		 "Testing only: act as if the kernel were built with CONFIG_CFI_CLANG (refuses to load)");

struct kh_symbol_desc {
	const char *name;
	unsigned long *addr;
	struct static_call_key *key;
	void *tramp;
	bool optional;
};

/* The static call kh_<field> is declared with the prototype of @sym. */
#define KH_SYM(field, sym, opt) {					\
	.name = #sym,							\
	.addr = &kh_sym.field,						\
	.key = &STATIC_CALL_KEY(kh_##field),				\
	.tramp = STATIC_CALL_TRAMP_ADDR(kh_##field),			\
	.optional = (opt),						\
}

static const struct kh_symbol_desc kh_symbol_table[] = {
	KH_SYM(mn_range_start, __mmu_notifier_invalidate_range_start, false),
	KH_SYM(mn_range_end, __mmu_notifier_invalidate_range_end, false),
	KH_SYM(ptep_clear_flush, ptep_clear_flush, false),
	KH_SYM(pidfd_get_task, pidfd_get_task, false),
#ifdef KH_LINUX_7_3
	KH_SYM(ptrace_may_access, ptrace_may_access, false),
#else
	KH_SYM(mm_access, mm_access, false),
#endif
#ifdef KH_LINUX_6_1
	KH_SYM(page_add_file_rmap, page_add_file_rmap, false),
	KH_SYM(page_remove_rmap, page_remove_rmap, false),
	KH_SYM(split_huge_page_to_list, split_huge_page_to_list, true),
#else
	KH_SYM(folio_add_file_rmap_ptes, folio_add_file_rmap_ptes, false),
	KH_SYM(folio_remove_rmap_ptes, folio_remove_rmap_ptes, false),
#ifdef KH_LINUX_6_12
	KH_SYM(split_to_order, split_huge_page_to_list_to_order, true),
#else
	KH_SYM(split_to_order, __split_huge_page_to_list_to_order, true),
#endif
#endif
	KH_SYM(lru_add_drain_all, lru_add_drain_all, true),
	KH_SYM(folio_free_swap, folio_free_swap, true),
	KH_SYM(mem_cgroup_charge, __mem_cgroup_charge, true),
	KH_SYM(mem_cgroup_uncharge, __mem_cgroup_uncharge, true),
};

/*
 * The first 4 bytes of a function: ENDBR64, or what apply_seal_endbr()
 * wrote over it (gen_endbr_poison(): OSP NOP3 on 6.12, a NOPL carrying UDB
 * on 7.3). 0 if unreadable.
 */
static u32 kh_landing_pad(unsigned long addr)
{
	u32 insn;

	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)))
		return 0;
	return insn;
}

static bool kh_is_endbr64(u32 insn)
{
	return insn == 0xfa1e0ff3;	/* f3 0f 1e fa, little-endian */
}

static bool kh_is_seal(u32 insn)
{
#ifdef CONFIG_X86_KERNEL_IBT
	return insn == gen_endbr_poison();
#else
	return false;
#endif
}

static bool kh_ibt_enforced(void)
{
	return test_assume_ibt || cpu_feature_enabled(X86_FEATURE_IBT);
}

/* Whether static calls branch directly (patched sites or trampolines). */
static bool kh_calls_direct(void)
{
	return IS_ENABLED(CONFIG_HAVE_STATIC_CALL);
}

/* Whether @addr starts with the NOP that sealed its landing pad. */
static bool kh_is_sealed(unsigned long addr)
{
	return kh_is_seal(kh_landing_pad(addr));
}

/* Whether an indirect call to @addr is allowed under enforced IBT. */
static bool kh_is_call_target(unsigned long addr)
{
	return kh_is_endbr64(kh_landing_pad(addr));
}

static int kh_check_callable(const char *name, unsigned long addr)
{
	if ((kh_calls_direct() && !test_assume_indirect_calls) ||
	    !kh_ibt_enforced() || kh_is_call_target(addr))
		return 0;
	pr_err("kernel function %s has no ENDBR64 landing pad (sealed) and the CPU enforces IBT; refusing to load\n",
	       name);
	return -EPERM;
}

/*
 * With IBT compiled in, a kprobe on a function reports the address after
 * its 4-byte landing pad (ENDBR64, or the NOP that sealed it).
 */
static unsigned long kh_function_start(unsigned long addr)
{
	u32 insn;

	if (!IS_ENABLED(CONFIG_X86_KERNEL_IBT))
		return addr;
	insn = kh_landing_pad(addr - 4);
	return kh_is_endbr64(insn) || kh_is_seal(insn) ? addr - 4 : addr;
}

static int kh_check_cfi(void)
{
	if (!IS_ENABLED(CONFIG_CFI_CLANG) && !test_assume_cfi)
		return 0;
	pr_err("kernel built with CONFIG_CFI_CLANG, which checks every indirect call: the module was never tested under it; refusing to load\n");
	return -EOPNOTSUPP;
}

static int kh_find_kallsyms_lookup_name(unsigned long *ret_addr)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long (*lookup)(const char *name);
	unsigned long addr;
	int r;

	r = register_kprobe(&kp);
	if (r < 0) {
		pr_err("cannot find kernel function kallsyms_lookup_name (kprobe: %d); refusing to load\n",
		       r);
		return r;
	}
	addr = kh_function_start((unsigned long)kp.addr);
	unregister_kprobe(&kp);

	r = kh_check_callable("kallsyms_lookup_name", addr);
	if (r < 0)
		return r;

	/* Only stored, never called through: the static call branches to it. */
	lookup = (void *)addr;
	static_call_update(kh_kallsyms_lookup_name, lookup);
	if (static_call(kh_kallsyms_lookup_name)("kallsyms_lookup_name") != addr) {
		pr_err("kernel function kallsyms_lookup_name found at an inconsistent address; refusing to load\n");
		return -ENOENT;
	}
	*ret_addr = addr;
	return 0;
}

int kh_symbols_init(void)
{
	unsigned int n = 1, sealed = 0;
	unsigned long addr;
	size_t i;
	int r;

	r = kh_check_cfi();
	if (r < 0)
		return r;
	r = kh_find_kallsyms_lookup_name(&addr);
	if (r < 0)
		return r;
	sealed += kh_is_sealed(addr);

	for (i = 0; i < ARRAY_SIZE(kh_symbol_table); i++) {
		const struct kh_symbol_desc *d = &kh_symbol_table[i];

		addr = static_call(kh_kallsyms_lookup_name)(d->name);
		if (!addr) {
			if (d->optional)
				continue;
			pr_err("kernel function %s not found; refusing to load\n",
			       d->name);
			return -ENOENT;
		}
		r = kh_check_callable(d->name, addr);
		if (r < 0)
			return r;
		*d->addr = addr;
		n++;
		sealed += kh_is_sealed(addr);
	}

	/* Only now that all resolved: no call site runs before this. */
	for (i = 0; i < ARRAY_SIZE(kh_symbol_table); i++) {
		const struct kh_symbol_desc *d = &kh_symbol_table[i];

		if (*d->addr)
			__static_call_update(d->key, d->tramp, (void *)*d->addr);
	}
	pr_info("calls %u kernel functions %s, %u of them sealed against indirect calls\n",
		n, kh_calls_direct() ? "directly (static calls)" : "through pointers",
		sealed);
	return 0;
}

bool kh_symbols_have_thp_split(void)
{
#ifdef KH_LINUX_6_1
	return kh_sym.split_huge_page_to_list;
#else
	return kh_sym.split_to_order;
#endif
}

bool kh_symbols_have_memcg(void)
{
	return kh_sym.mem_cgroup_charge && !mem_cgroup_disabled();
}
