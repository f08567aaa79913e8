/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The verified swap: MERGE, MERGE_ZERO and UNMERGE on parsed requests.
 * netlink.c parses and replies; nothing here knows about netlink.
 */
#ifndef KSMD_HELPER_MERGE_H
#define KSMD_HELPER_MERGE_H

#include <linux/atomic.h>
#include <linux/types.h>
#include <linux/ksmd_helper.h>

/* Items accepted per MERGE or MERGE_ZERO request. */
#define KH_MAX_BATCH 512

/**
 * struct kh_item - one request item and its outcome
 * @pidfd:      target process: a pidfd in the calling task's file table
 * @addr:       target page address, page aligned
 * @src_pidfd:  source process, as @pidfd, when !@by_handle
 * @src_addr:   source page address, when !@by_handle
 * @handle:     source shared page, when @by_handle
 * @by_handle:  the source is a shared page, not a process page
 * @result:     enum ksmd_helper_result
 * @reason:     enum ksmd_helper_reason, for KSMD_HELPER_RESULT_UNSUPPORTED
 * @out_handle: shared page now mapped at the target, when @has_handle
 * @has_handle: @out_handle is valid
 * @busy_ref:   busy because of extra page references, which a drain of
 *              the per-CPU LRU batches may release; internal
 * @no_page:    the allocation of a shared page failed; internal
 * @skip_alloc: an earlier item of the batch found no page: do not press
 *              the allocator again (NO_MEMORY at once); internal
 */
struct kh_item {
	u32 pidfd;
	unsigned long addr;
	u32 src_pidfd;
	unsigned long src_addr;
	u64 handle;
	bool by_handle;

	u32 result;
	u32 reason;
	u64 out_handle;
	bool has_handle;
	bool busy_ref;
	bool no_page;
	bool skip_alloc;
};

/* Counters reported by INFO, indexed by enum ksmd_helper_stat. */
extern atomic64_t kh_stats[__KSMD_HELPER_STAT_MAX];

/*
 * Both entry points below run in the system call of the task that sent the
 * request: pidfds are looked up in its file table, and access is checked
 * against its credentials.
 */

/*
 * Run every item of a MERGE (@zero false) or MERGE_ZERO (@zero true)
 * request in order and fill in its outcome. Sleeps; takes no lock across
 * items. Once an item finds no free page for a new shared page, the
 * batch's later items that need one are NO_MEMORY without trying.
 */
void kh_merge_batch(struct kh_item *items, size_t n, bool zero);

/*
 * Make every shared page mapped in [@addr, @addr + @len) of the process
 * @pidfd names private again. Returns 0 and the pages made private in
 * *@ret_count, or -EBADF (not an open pidfd), -ESRCH (the process exited,
 * or is a kernel thread), -EPERM (the caller may not access it), -EINTR,
 * -ENOMEM.
 */
int kh_unmerge(u32 pidfd, unsigned long addr, unsigned long len,
	       u64 *ret_count);

/* Feature bits (enum ksmd_helper_feature) this kernel supports. */
u64 kh_merge_features(void);

#endif /* KSMD_HELPER_MERGE_H */
