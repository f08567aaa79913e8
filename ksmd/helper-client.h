/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The daemon's side of the ksmd_helper generic netlink family. This is the
 * only file that includes libnl headers. All calls are synchronous; a
 * request-level failure returns -errno (-ENOENT: the module is not loaded,
 * -EPERM: the caller lacks CAP_SYS_ADMIN), and per-item outcomes come back as
 * enum ksmd_helper_result values in the caller's result array.
 *
 * Processes are named by pidfd, never by pid: the module looks each one up in
 * this process's file table while it handles the request, so a pidfd passed
 * here must stay open until the call returns. The caller keeps ownership.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/ksmd_helper.h>

#include "macro.h"

typedef struct HelperClient HelperClient;

/* The NUMA nodes of INFO's pool kept, in the order the module sent them; more are ignored. */
#define HELPER_POOL_NODES_MAX 64

/* One node of INFO's KSMD_HELPER_A_POOL: where the module's shared pages come from. */
typedef struct HelperPoolNode {
        uint32_t node;
        uint64_t figures[KSMD_HELPER_POOL_A_MAX + 1]; /* indexed by enum ksmd_helper_pool_attr (u64 ones) */
} HelperPoolNode;

typedef struct HelperInfo {
        uint32_t abi_version;
        char module_version[64];
        char kernel_release[65];
        uint64_t features;             /* enum ksmd_helper_feature bits */
        uint32_t max_batch;            /* items per MERGE/MERGE_ZERO request */
        uint64_t stats[KSMD_HELPER_STAT_MAX + 1]; /* indexed by enum ksmd_helper_stat */
        HelperPoolNode pool[HELPER_POOL_NODES_MAX];
        size_t n_pool;                 /* nodes in pool[]; 0 from a module without a pool */
} HelperInfo;

typedef struct HelperMergeItem {
        int pidfd;                     /* target process (borrowed) */
        uint64_t addr;
        int src_pidfd;                 /* source process (borrowed), used when handle == 0 */
        uint64_t src_addr;
        uint64_t handle;               /* existing shared page, or 0 */
} HelperMergeItem;

typedef struct HelperMergeResult {
        uint32_t result;               /* enum ksmd_helper_result */
        uint32_t reason;               /* enum ksmd_helper_reason */
        uint64_t handle;               /* shared page, on MERGED/ALREADY */
} HelperMergeResult;

/* Connects and resolves the family. -ENOENT if the module is not loaded. */
int helper_client_new(HelperClient **ret);
HelperClient *helper_client_free(HelperClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(HelperClient *, helper_client_free);

int helper_client_info(HelperClient *c, HelperInfo *ret);

/*
 * Sends n (1..max_batch) items; fills results[0..n-1] in request order.
 * With zero == true the items name only pidfd/addr and ask for MERGE_ZERO.
 * -EBADF (nothing sent) if an item's pidfd, or its src_pidfd when it has no
 * handle, is negative. A pidfd that names no process this process may read
 * is an item's result (BAD_PIDFD, NO_PROCESS, NO_ACCESS), not an error.
 */
int helper_client_merge(HelperClient *c, bool zero, const HelperMergeItem *items, size_t n,
                        HelperMergeResult *results);

/*
 * Makes every shared page of the module in [addr, addr + length) of the
 * process pidfd names private again. *ret_count: the pages made private.
 * -EBADF: pidfd is negative, not open or not a pidfd; -ESRCH: the process
 * exited; -EPERM: this process may not read the process's memory (or lacks
 * CAP_SYS_ADMIN).
 */
int helper_client_unmerge(HelperClient *c, int pidfd, uint64_t addr, uint64_t length, uint64_t *ret_count);

typedef struct HelperPage {
        uint64_t handle;
        uint32_t mapcount;             /* page table entries that map it */
} HelperPage;

/* Every shared page the module owns; *ret is malloc'ed, owned by the caller. */
int helper_client_get_pages(HelperClient *c, HelperPage **ret, size_t *ret_n);

const char *helper_result_to_string(uint32_t result);
const char *helper_reason_to_string(uint32_t reason);
