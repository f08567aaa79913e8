// SPDX-License-Identifier: GPL-2.0
/*
 * DOC: symbol resolution
 *
 * kallsyms_lookup_name() is itself unexported; a kprobe registered on it
 * reports its address, and it resolves everything else.
 *
 * Kernels built with CONFIG_X86_KERNEL_IBT (the 6.12 line) seal at boot
 * every function whose address is never taken: the ENDBR64 landing pad is
 * overwritten with a NOP, and on a CPU that enforces IBT an indirect call to
 * it raises #CP. Every function here is sealed on 6.12. So when IBT is
 * enforced, each resolved address must start with ENDBR64 exactly, or the
 * module refuses to load. It never weakens IBT itself; booting with ibt=off
 * is the administrator's choice. The test_assume_ibt parameter forces the
 * enforced branch so the refusal can be tested on hardware without IBT.
 *
 * Kernels built with CONFIG_CFI_CLANG check a type hash in front of the
 * target of every indirect call. The module calls every function here
 * through a pointer kallsyms gave it, which no such kernel was tested
 * with: a failed check oopses or panics. So the module refuses to load on
 * them, before it resolves anything; test_assume_cfi tests the refusal.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <asm/cpufeature.h>

#include "symbols.h"

struct kh_symbols kh_sym;

static bool test_assume_ibt;
module_param(test_assume_ibt, bool, 0444);
MODULE_PARM_DESC(test_assume_ibt,
		 "Testing only: act as if the CPU enforced IBT (refuses to load on sealed kernels)");

static bool test_assume_cfi;
module_param(test_assume_cfi, bool, 0444);
MODULE_PARM_DESC(test_assume_cfi,
		 "Testing only: act as if the kernel were built with CONFIG_CFI_CLANG (refuses to load)");

typedef unsigned long (*kh_lookup_fn)(const char *name);

struct kh_symbol_desc {
	const char *name;
	void **slot;
	bool optional;
};

#define KH_SYM(field, sym, opt) \
	{ .name = #sym, .slot = (void **)&kh_sym.field, .optional = (opt) }

static const struct kh_symbol_desc kh_symbol_table[] = {
	KH_SYM(mn_range_start, __mmu_notifier_invalidate_range_start, false),
	KH_SYM(mn_range_end, __mmu_notifier_invalidate_range_end, false),
	KH_SYM(ptep_clear_flush, ptep_clear_flush, false),
	KH_SYM(pidfd_get_task, pidfd_get_task, false),
	KH_SYM(mm_access, mm_access, false),
#ifdef KH_LINUX_6_1
	KH_SYM(page_add_file_rmap, page_add_file_rmap, false),
	KH_SYM(page_remove_rmap, page_remove_rmap, false),
	KH_SYM(split_huge_page_to_list, split_huge_page_to_list, true),
#else
	KH_SYM(folio_add_file_rmap_ptes, folio_add_file_rmap_ptes, false),
	KH_SYM(folio_remove_rmap_ptes, folio_remove_rmap_ptes, false),
	KH_SYM(split_to_order, split_huge_page_to_list_to_order, true),
#endif
	KH_SYM(lru_add_drain_all, lru_add_drain_all, true),
	KH_SYM(folio_free_swap, folio_free_swap, true),
	KH_SYM(mem_cgroup_charge, __mem_cgroup_charge, true),
	KH_SYM(mem_cgroup_uncharge, __mem_cgroup_uncharge, true),
};

static const u8 kh_endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
#ifdef CONFIG_X86_KERNEL_IBT
/* What apply_seal_endbr() writes over the landing pad of sealed functions. */
static const u8 kh_sealed_nop[4] = { 0x66, 0x0f, 0x1f, 0x00 };
#endif

static bool kh_ibt_enforced(void)
{
	return test_assume_ibt || cpu_feature_enabled(X86_FEATURE_IBT);
}

/* Whether an indirect call to @addr is allowed under enforced IBT. */
static bool kh_is_call_target(unsigned long addr)
{
	u8 insn[4];

	if (copy_from_kernel_nofault(insn, (void *)addr, sizeof(insn)))
		return false;
	return !memcmp(insn, kh_endbr64, sizeof(insn));
}

static int kh_check_callable(const char *name, unsigned long addr)
{
	if (!kh_ibt_enforced() || kh_is_call_target(addr))
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
#ifdef CONFIG_X86_KERNEL_IBT
	u8 insn[4];

	if (copy_from_kernel_nofault(insn, (void *)(addr - 4), sizeof(insn)))
		return addr;
	if (!memcmp(insn, kh_endbr64, sizeof(insn)) ||
	    !memcmp(insn, kh_sealed_nop, sizeof(insn)))
		return addr - 4;
#endif
	return addr;
}

static int kh_check_cfi(void)
{
	if (!IS_ENABLED(CONFIG_CFI_CLANG) && !test_assume_cfi)
		return 0;
	pr_err("kernel built with CONFIG_CFI_CLANG, which checks every indirect call: calls through kallsyms were never tested under it; refusing to load\n");
	return -EOPNOTSUPP;
}

static int kh_find_kallsyms_lookup_name(kh_lookup_fn *ret_lookup)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	kh_lookup_fn lookup;
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

	lookup = (kh_lookup_fn)addr;
	if (lookup("kallsyms_lookup_name") != addr) {
		pr_err("kernel function kallsyms_lookup_name found at an inconsistent address; refusing to load\n");
		return -ENOENT;
	}
	*ret_lookup = lookup;
	return 0;
}

int kh_symbols_init(void)
{
	kh_lookup_fn lookup;
	unsigned long addr;
	size_t i;
	int r;

	r = kh_check_cfi();
	if (r < 0)
		return r;
	r = kh_find_kallsyms_lookup_name(&lookup);
	if (r < 0)
		return r;

	for (i = 0; i < ARRAY_SIZE(kh_symbol_table); i++) {
		const struct kh_symbol_desc *d = &kh_symbol_table[i];

		addr = lookup(d->name);
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
		*d->slot = (void *)addr;
	}
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
