/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * ksmd_helper: the kernel side of ksmd, a userspace memory deduplicator.
 *
 * The module owns one job: the atomic, verified swap of a private anonymous
 * page for a shared read-only copy-on-write page (or the kernel zero page).
 * Userspace finds candidates; the kernel trusts none of what it is told and
 * re-checks the bytes under lock before it changes a page table.
 *
 * Generic netlink family KSMD_HELPER_GENL_NAME, version
 * KSMD_HELPER_GENL_VERSION, in the initial network namespace only. Every
 * command needs CAP_SYS_ADMIN in the initial user namespace (and, as
 * GENL_ADMIN_PERM, CAP_NET_ADMIN); others get -EPERM. Every attribute has an
 * exact length; unknown attributes, unknown flag bits and oversized batches
 * are refused with -EINVAL (a batch over MAX_BATCH: -E2BIG; a HANDLE or an
 * UNMERGE LENGTH of 0: -ERANGE) and an extack message naming the attribute.
 *
 * Processes are named by pidfd (pidfd_open(2), clone(2) CLONE_PIDFD): a u32
 * file descriptor number in the file table of the task that sends the
 * request, which the module looks up while it handles the request, in that
 * task's system call. A pidfd names one process for as long as it is open,
 * so a request queued or retried after its process exited cannot reach
 * another process that reused the pid. The caller must also be allowed to
 * read the process's memory as for process_madvise(2): a PTRACE_MODE_READ
 * check with the caller's filesystem credentials (see ptrace(2)), made under
 * the target's exec lock. A pidfd of a thread other than the thread group
 * leader (PIDFD_THREAD) names no process. Any u32 is accepted: one that is
 * no open pidfd of the caller is an outcome, not a malformed request.
 *
 * KSMD_HELPER_CMD_INFO
 *   Request: no attributes.
 *   Reply:
 *     KSMD_HELPER_A_ABI_VERSION        u32     KSMD_HELPER_ABI_VERSION
 *     KSMD_HELPER_A_MODULE_VERSION     string  the module's version
 *     KSMD_HELPER_A_KERNEL_RELEASE     string  utsname release it runs on
 *     KSMD_HELPER_A_FEATURES           u64     enum ksmd_helper_feature bits
 *     KSMD_HELPER_A_MAX_BATCH          u32     items accepted per request
 *     KSMD_HELPER_A_STATS              nested  KSMD_HELPER_STAT_* (all u64)
 *     KSMD_HELPER_A_POOL               nested  where shared pages come from,
 *                                              per NUMA node that ever held
 *                                              one (none: no such node yet):
 *       KSMD_HELPER_A_POOL_NODE        nested
 *         KSMD_HELPER_POOL_A_NODE      u32     the node's number
 *         KSMD_HELPER_POOL_A_*         u64     its figures (below)
 *   Shared pages are carved from whole pageblocks (2 MiB on x86-64) the
 *   module takes on the node of the page they replace, so that pages
 *   nothing can migrate do not scatter over blocks compaction could
 *   otherwise turn into huge pages. A slot freed when its page is unmapped
 *   is reused before a new block is taken; a block with no page in use goes
 *   back to the kernel (one per node after 5 to 10 s idle). When no block
 *   can be had without pressing the kernel, a single page is taken (a
 *   fallback), or the item is NO_MEMORY. KSMD_HELPER_FEATURE_POOL says
 *   whether the pool is in use (without it every page is single).
 *
 * KSMD_HELPER_CMD_MERGE
 *   Request:
 *     KSMD_HELPER_A_FLAGS              u32     optional; enum ksmd_helper_flag
 *                                              bits (none defined yet: 0)
 *     KSMD_HELPER_A_ITEMS              nested  1..max_batch of:
 *       KSMD_HELPER_A_ITEM             nested
 *         KSMD_HELPER_ITEM_A_PIDFD     u32     target process, by pidfd
 *         KSMD_HELPER_ITEM_A_ADDR      u64     target page address, page aligned
 *       and exactly one source:
 *         KSMD_HELPER_ITEM_A_SRC_PIDFD u32     \ a page with the same bytes
 *         KSMD_HELPER_ITEM_A_SRC_ADDR  u64     /
 *         KSMD_HELPER_ITEM_A_HANDLE    u64     an existing shared page
 *   Reply: KSMD_HELPER_A_ITEMS with one KSMD_HELPER_A_ITEM per request item,
 *   in request order, each holding:
 *         KSMD_HELPER_ITEM_A_RESULT    u32     enum ksmd_helper_result
 *         KSMD_HELPER_ITEM_A_REASON    u32     enum ksmd_helper_reason, when
 *                                              RESULT is UNSUPPORTED
 *         KSMD_HELPER_ITEM_A_HANDLE    u64     the shared page, when MERGED or
 *                                              ALREADY
 *   A request-level error (permission, malformed message, -ENOMEM) fails
 *   the whole request and changes nothing; per-item outcomes are results,
 *   not errors.
 *   A pidfd that names no process the caller may access is such an outcome
 *   (BAD_PIDFD, NO_PROCESS, NO_ACCESS), for the target or the source alike;
 *   the target is looked up first, and the first failure is the result.
 *   Items run in order and never change what any page reads. After MERGED,
 *   target and source map one shared page: when neither did, a new one with
 *   the verified bytes; when one did, the other joins it. (A CHANGED item
 *   may leave the source alone on a new shared page.) A
 *   source mapping the zero page makes the item a MERGE_ZERO of the target;
 *   a target mapping the zero page gives ALREADY (source all zero) or
 *   DIFFERS, and changes nothing.
 *
 *   Memory: only a merge of two private pages needs memory, one page (the
 *   new shared page, on the target page's NUMA node, from the pool: see
 *   INFO; charged to the source's memory cgroup), and only once their
 *   bytes compare equal. Every
 *   allocation of the module tries once (one round of direct reclaim at
 *   most) and never invokes the OOM killer: when it fails, the item is
 *   NO_MEMORY and nothing changed (retry later), or the request fails with
 *   -ENOMEM.
 *   A PTE a merge replaces passes its soft-dirty bit on to the new one (the
 *   bytes did not change); a page write-protected by userfaultfd is
 *   UNSUPPORTED (LOCKED_VMA). A transparent huge page is split only when
 *   its bytes compare equal with the source's.
 *   On Linux 6.1, every item naming as target or source a process that
 *   holds long-term pins now (memory the kernel counts as pinned or locked
 *   for it: vfio, RDMA, io_uring fixed buffers, vhost-vdpa, and mlock) is
 *   UNSUPPORTED (PINNED), unless its VMA has a reason of its own: 6.1 does
 *   not unshare a merged page when a device pins it read-only for long, so
 *   the device could go on reading it after the process wrote its own copy.
 *   Linux 6.2 and later unshare it, and nothing is refused there.
 *
 * KSMD_HELPER_CMD_MERGE_ZERO
 *   As MERGE (FLAGS, ITEMS), items carry only PIDFD and ADDR. An all-zero
 *   page (private or shared) is replaced by the kernel zero page. Reply items
 *   carry RESULT (and REASON).
 *
 * KSMD_HELPER_CMD_UNMERGE
 *   Request: KSMD_HELPER_A_PIDFD u32, KSMD_HELPER_A_ADDR u64 (page aligned),
 *            KSMD_HELPER_A_LENGTH u64 (page multiple, > 0).
 *   Every shared page of the module mapped in the range is replaced by a
 *   private copy, as a write fault would do. Zero-page entries are left as
 *   they are (the kernel allocates on write as for any untouched page).
 *   The walk skips address space without page tables a whole table level
 *   at a time (a sparse 64 TiB reservation costs what its populated tables
 *   cost), lets go of the process's mmap lock whenever another task waits
 *   for it or for the CPU, and stops at a fatal signal. The copies are
 *   allocated and charged to the process's memory cgroup as its own write
 *   faults would be: UNMERGE undoes merges, and needs the memory back
 *   whatever the pressure, as a write to a merged page does.
 *   Reply: KSMD_HELPER_A_COUNT u64, the pages made private.
 *   Errors, each with an extack message: -EBADF the fd is not an open pidfd;
 *   -ESRCH its process exited (or is a kernel thread); -EPERM the caller may
 *   not access it (as process_vm_readv(2) reports it; CAP_SYS_ADMIN missing
 *   gives -EPERM too, with another message); -EINVAL bad range; -EINTR
 *   signal.
 *
 * KSMD_HELPER_CMD_GET_PAGES (dump)
 *   One message per shared page the module owns:
 *     KSMD_HELPER_A_HANDLE             u64
 *     KSMD_HELPER_A_MAPCOUNT           u32     page table entries mapping it
 *   In handle order. Pages with no mapping left are freed by the module
 *   (at the latest a few seconds later, and before every dump and INFO)
 *   and stop appearing; a freed page's handle is never reused.
 *
 * Changes in ABI 2 (from 1):
 *   - Processes are named by pidfd, not by pid: KSMD_HELPER_ITEM_A_PIDFD,
 *     KSMD_HELPER_ITEM_A_SRC_PIDFD and KSMD_HELPER_A_PIDFD are new. ABI 1's
 *     KSMD_HELPER_ITEM_A_PID, _SRC_PID and KSMD_HELPER_A_PID keep their
 *     numbers, renamed ..._PID_V1, and are refused with -EINVAL and an extack
 *     message; the -ERANGE for a pid out of range is gone.
 *   - The caller needs ptrace read access to every process it names.
 *   - New results KSMD_HELPER_RESULT_BAD_PIDFD and _NO_ACCESS; NO_PROCESS
 *     now means the pidfd's process exited or has no memory (kernel thread).
 *   - New counter KSMD_HELPER_STAT_DENIED.
 *   - UNMERGE fails with -EBADF and -EPERM as well as -ESRCH.
 *
 * Additions to ABI 2 (a reader that does not know them can ignore them):
 *   - Counter KSMD_HELPER_STAT_NO_MEMORY; KSMD_HELPER_STAT_BUSY no longer
 *     counts NO_MEMORY results.
 *   - Reason KSMD_HELPER_REASON_PINNED (Linux 6.1 only).
 *   - INFO's KSMD_HELPER_A_POOL and feature KSMD_HELPER_FEATURE_POOL.
 */
#ifndef _UAPI_LINUX_KSMD_HELPER_H
#define _UAPI_LINUX_KSMD_HELPER_H

#define KSMD_HELPER_GENL_NAME "ksmd_helper"
#define KSMD_HELPER_GENL_VERSION 1
#define KSMD_HELPER_ABI_VERSION 2

enum ksmd_helper_cmd {
	KSMD_HELPER_CMD_UNSPEC,
	KSMD_HELPER_CMD_INFO,
	KSMD_HELPER_CMD_MERGE,
	KSMD_HELPER_CMD_MERGE_ZERO,
	KSMD_HELPER_CMD_UNMERGE,
	KSMD_HELPER_CMD_GET_PAGES,
	__KSMD_HELPER_CMD_MAX
};

#define KSMD_HELPER_CMD_MAX (__KSMD_HELPER_CMD_MAX - 1)

enum ksmd_helper_attr {
	KSMD_HELPER_A_UNSPEC,
	KSMD_HELPER_A_ABI_VERSION,
	KSMD_HELPER_A_MODULE_VERSION,
	KSMD_HELPER_A_KERNEL_RELEASE,
	KSMD_HELPER_A_FEATURES,
	KSMD_HELPER_A_MAX_BATCH,
	KSMD_HELPER_A_STATS,
	KSMD_HELPER_A_FLAGS,
	KSMD_HELPER_A_ITEMS,
	KSMD_HELPER_A_PID_V1,           /* ABI 1 only; refused */
	KSMD_HELPER_A_ADDR,
	KSMD_HELPER_A_LENGTH,
	KSMD_HELPER_A_COUNT,
	KSMD_HELPER_A_HANDLE,
	KSMD_HELPER_A_MAPCOUNT,
	KSMD_HELPER_A_PAD,
	KSMD_HELPER_A_PIDFD,
	KSMD_HELPER_A_POOL,
	__KSMD_HELPER_A_MAX
};

#define KSMD_HELPER_A_MAX (__KSMD_HELPER_A_MAX - 1)

/* KSMD_HELPER_A_ITEMS holds only KSMD_HELPER_A_ITEM entries. */
enum ksmd_helper_items_attr {
	KSMD_HELPER_A_ITEMS_UNSPEC,
	KSMD_HELPER_A_ITEM,
	__KSMD_HELPER_A_ITEMS_MAX
};

#define KSMD_HELPER_A_ITEMS_MAX (__KSMD_HELPER_A_ITEMS_MAX - 1)

enum ksmd_helper_item_attr {
	KSMD_HELPER_ITEM_A_UNSPEC,
	KSMD_HELPER_ITEM_A_PID_V1,      /* ABI 1 only; refused */
	KSMD_HELPER_ITEM_A_ADDR,
	KSMD_HELPER_ITEM_A_SRC_PID_V1,  /* ABI 1 only; refused */
	KSMD_HELPER_ITEM_A_SRC_ADDR,
	KSMD_HELPER_ITEM_A_HANDLE,
	KSMD_HELPER_ITEM_A_RESULT,
	KSMD_HELPER_ITEM_A_REASON,
	KSMD_HELPER_ITEM_A_PAD,
	KSMD_HELPER_ITEM_A_PIDFD,
	KSMD_HELPER_ITEM_A_SRC_PIDFD,
	__KSMD_HELPER_ITEM_A_MAX
};

#define KSMD_HELPER_ITEM_A_MAX (__KSMD_HELPER_ITEM_A_MAX - 1)

/* KSMD_HELPER_A_POOL holds only KSMD_HELPER_A_POOL_NODE entries. */
enum ksmd_helper_pool_nodes_attr {
	KSMD_HELPER_A_POOL_UNSPEC,
	KSMD_HELPER_A_POOL_NODE,
	__KSMD_HELPER_A_POOL_MAX
};

#define KSMD_HELPER_A_POOL_MAX (__KSMD_HELPER_A_POOL_MAX - 1)

/* One node's pool, in KSMD_HELPER_A_POOL_NODE; u64 unless noted. */
enum ksmd_helper_pool_attr {
	KSMD_HELPER_POOL_A_UNSPEC,
	KSMD_HELPER_POOL_A_NODE,        /* u32 */
	KSMD_HELPER_POOL_A_BLOCKS,      /* pageblocks held now */
	KSMD_HELPER_POOL_A_USED_PAGES,  /* shared pages in them now */
	/* free slots in them now: memory held, charged to no cgroup */
	KSMD_HELPER_POOL_A_FREE_PAGES,
	KSMD_HELPER_POOL_A_SINGLE_PAGES, /* shared pages held outside blocks */
	KSMD_HELPER_POOL_A_BLOCKS_TAKEN, /* since load */
	KSMD_HELPER_POOL_A_BLOCKS_RETURNED, /* whole, since load */
	KSMD_HELPER_POOL_A_REUSED,      /* pages handed out from freed slots */
	/* single pages taken because no block could be, on the node asked */
	KSMD_HELPER_POOL_A_FALLBACKS,
	KSMD_HELPER_POOL_A_PAD,
	__KSMD_HELPER_POOL_A_MAX
};

#define KSMD_HELPER_POOL_A_MAX (__KSMD_HELPER_POOL_A_MAX - 1)

/* Counters in KSMD_HELPER_A_STATS, all u64, since module load. */
enum ksmd_helper_stat {
	KSMD_HELPER_STAT_UNSPEC,
	KSMD_HELPER_STAT_MERGED,        /* items with result MERGED */
	KSMD_HELPER_STAT_MERGED_ZERO,   /* MERGE_ZERO items with result MERGED */
	KSMD_HELPER_STAT_ALREADY,
	KSMD_HELPER_STAT_DIFFERS,
	KSMD_HELPER_STAT_BUSY,          /* results BUSY */
	KSMD_HELPER_STAT_CHANGED,
	KSMD_HELPER_STAT_UNSUPPORTED,
	KSMD_HELPER_STAT_NOENT,         /* NO_PROCESS, NO_PAGE, NO_HANDLE */
	KSMD_HELPER_STAT_UNMERGED,      /* pages made private by UNMERGE */
	KSMD_HELPER_STAT_PAGES_OWNED,   /* shared pages the module holds now */
	KSMD_HELPER_STAT_PAGES_MAPPED,  /* PTEs mapping them now */
	/*
	 * (sum over owned pages of mapcount - 1, + merged_zero) * page size;
	 * zero merges count since load, also those written to since
	 */
	KSMD_HELPER_STAT_BYTES_SAVED,
	KSMD_HELPER_STAT_PAD,
	KSMD_HELPER_STAT_DENIED,        /* results BAD_PIDFD and NO_ACCESS */
	KSMD_HELPER_STAT_NO_MEMORY,     /* results NO_MEMORY */
	__KSMD_HELPER_STAT_MAX
};

#define KSMD_HELPER_STAT_MAX (__KSMD_HELPER_STAT_MAX - 1)

/* KSMD_HELPER_A_FLAGS of MERGE and MERGE_ZERO; other bits are refused. */
enum ksmd_helper_flag {
	__KSMD_HELPER_F_ALL = 0
};

/* KSMD_HELPER_A_FEATURES (u64) of INFO. */
enum ksmd_helper_feature {
	KSMD_HELPER_FEATURE_MERGE       = 1ULL << 0,
	KSMD_HELPER_FEATURE_MERGE_ZERO  = 1ULL << 1,
	KSMD_HELPER_FEATURE_UNMERGE     = 1ULL << 2,
	KSMD_HELPER_FEATURE_GET_PAGES   = 1ULL << 3,
	KSMD_HELPER_FEATURE_THP_SPLIT   = 1ULL << 4,
	KSMD_HELPER_FEATURE_MEMCG       = 1ULL << 5,
	/* shared pages come from pageblocks (KSMD_HELPER_A_POOL) */
	KSMD_HELPER_FEATURE_POOL        = 1ULL << 6,
	__KSMD_HELPER_FEATURE_ALL       = KSMD_HELPER_FEATURE_MERGE |
					  KSMD_HELPER_FEATURE_MERGE_ZERO |
					  KSMD_HELPER_FEATURE_UNMERGE |
					  KSMD_HELPER_FEATURE_GET_PAGES |
					  KSMD_HELPER_FEATURE_THP_SPLIT |
					  KSMD_HELPER_FEATURE_MEMCG |
					  KSMD_HELPER_FEATURE_POOL
};

/* Per-item outcome. Expected outcomes, not errors: the daemon acts on each. */
enum ksmd_helper_result {
	KSMD_HELPER_RESULT_MERGED,      /* target now maps the shared page */
	KSMD_HELPER_RESULT_ALREADY,     /* target already maps it (or zero page) */
	KSMD_HELPER_RESULT_DIFFERS,     /* bytes differ; nothing changed */
	KSMD_HELPER_RESULT_BUSY,        /* locked or pinned now; retry later */
	KSMD_HELPER_RESULT_CHANGED,     /* page table changed under us; re-scan */
	KSMD_HELPER_RESULT_UNSUPPORTED, /* see KSMD_HELPER_ITEM_A_REASON */
	/* the pidfd's process exited, or has no memory (a kernel thread) */
	KSMD_HELPER_RESULT_NO_PROCESS,
	KSMD_HELPER_RESULT_NO_PAGE,     /* address unmapped or page not present */
	KSMD_HELPER_RESULT_NO_HANDLE,   /* handle names no live shared page */
	/*
	 * the shared page could not be allocated or charged to the source's
	 * memory cgroup without waiting for memory; nothing changed; retry
	 * later
	 */
	KSMD_HELPER_RESULT_NO_MEMORY,
	/* the fd is not open in the caller's file table, or not a pidfd */
	KSMD_HELPER_RESULT_BAD_PIDFD,
	/* the caller may not read the process's memory (ptrace check) */
	KSMD_HELPER_RESULT_NO_ACCESS,
	__KSMD_HELPER_RESULT_MAX
};

enum ksmd_helper_reason {
	KSMD_HELPER_REASON_NONE,
	KSMD_HELPER_REASON_NOT_ANON,    /* file-backed or shared mapping */
	KSMD_HELPER_REASON_HUGETLB,
	KSMD_HELPER_REASON_PFNMAP,      /* VM_PFNMAP/VM_MIXEDMAP/VM_IO */
	KSMD_HELPER_REASON_THP,         /* huge page that could not be split */
	KSMD_HELPER_REASON_KSM,         /* page belongs to the kernel's KSM */
	/*
	 * VM_LOCKED/VM_DONTEXPAND, PROT_NONE, userfaultfd, shadow stack and
	 * similar
	 */
	KSMD_HELPER_REASON_LOCKED_VMA,
	KSMD_HELPER_REASON_SAME_PAGE,   /* target and source are one PTE */
	/*
	 * Linux 6.1: the target's or the source's process holds pinned or
	 * locked memory, and a read-only long-term pin would not unshare a
	 * merged page
	 */
	KSMD_HELPER_REASON_PINNED,
	__KSMD_HELPER_REASON_MAX
};

#endif /* _UAPI_LINUX_KSMD_HELPER_H */
