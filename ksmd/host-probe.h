/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: what the host kernel does, asked at start
 *
 * The scanner's every decision rests on what the kernel reports in
 * /proc/PID/pagemap and returns from process_vm_readv, and kernels from 6.1
 * to 7.x differ there: soft-dirty is a build option (CONFIG_MEM_SOFT_DIRTY),
 * PAGEMAP_SCAN came in 6.7, PFNs are shown only to CAP_SYS_ADMIN, and a read
 * fault on private anonymous memory maps the shared zero page on most kernels
 * but a fresh page on some. So nothing is taken from the version string.
 *
 * host_probe_observe() forks a child that sets up memory of each kind
 * (untouched, written, read-faulted twice, shared with its parent by fork,
 * MAP_SHARED, paged out, huge-page-eligible written and read-faulted) and
 * asks the kernel about it the way the scanner asks about a registered
 * process: the child's pagemap, PAGEMAP_SCAN on it, "4" > its clear_refs
 * around a write, process_vm_readv of its pages. It records what it saw in
 * HostObservations and kills the child. host_probe_evaluate() turns that
 * into one answer per feature (HostProbe): a pure function, which the unit
 * tests feed with what each kind of kernel shows. The Manager asks once at
 * start, logs each missing feature once with what ksmd does instead
 * (host_probe_instead()), serves the answers over D-Bus (HostKernel) and
 * configures the scanner from them.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum HostFeature {
        HOST_PAGEMAP,            /* /proc/PID/pagemap reads, PAGEMAP_PRESENT right on a written and an
                                  * untouched page */
        HOST_PAGEMAP_EXCLUSIVE,  /* PAGEMAP_EXCLUSIVE on a written private page, not on one shared with a
                                  * fork */
        HOST_PAGEMAP_SHARED,     /* PAGEMAP_FILE_OR_SHARED on MAP_SHARED anonymous memory */
        HOST_PAGEMAP_SWAP,       /* PAGEMAP_SWAPPED on a page paged out with MADV_PAGEOUT */
        HOST_PFN,                /* page frame numbers are shown to ksmd (CAP_SYS_ADMIN) */
        HOST_ZERO_PAGE,          /* a read fault on private anonymous memory maps the shared zero page */
        HOST_HUGE_ZERO_PAGE,     /* a read fault on huge-page-eligible memory maps the huge zero page */
        HOST_THP,                /* transparent huge pages: their small pages read present and exclusive */
        HOST_SOFT_DIRTY,         /* "4" > clear_refs clears bit 55 and a write sets it again */
        HOST_PAGEMAP_SCAN,       /* the PAGEMAP_SCAN ioctl (6.7+) with PROC_PAGE_SCAN_NEEDED, answering
                                  * as pagemap does */
        HOST_PROCESS_VM_READV,   /* reads another process's page; a batch that reaches an unmapped page
                                  * returns the pages before it */
        _HOST_FEATURE_MAX,
        _HOST_FEATURE_INVALID = -EINVAL,
} HostFeature;

typedef enum HostAnswer {
        HOST_ANSWER_YES,
        HOST_ANSWER_NO,
        HOST_ANSWER_UNTESTED,    /* could not be asked here (no swap, THP off, PFNs hidden, no probe child):
                                  * ksmd assumes nothing and does as without it */
        _HOST_ANSWER_MAX,
        _HOST_ANSWER_INVALID = -EINVAL,
} HostAnswer;

/* Pages of a PMD-sized huge page the probe uses when sysfs does not say (x86-64: 2 MiB). */
#define HOST_HUGE_PAGES_DEFAULT 512u

/*
 * What the probe saw. host_probe_observe() fills it; the tests make it up.
 * Entries are pagemap entries (proc-reader.h), categories PROC_PAGE_IS_*
 * bits of PAGEMAP_SCAN; a page the probe could not ask about reads 0.
 */
typedef struct HostObservations {
        char release[65];                /* uname -r */
        int child_error;                 /* 0, or -errno: no probe child (fork, its setup, a timeout);
                                          * nothing below but release, swap and thp_* was seen */
        int pagemap_error;               /* 0, or -errno of opening or reading the child's pagemap */

        uint64_t untouched;              /* mapped, never touched */
        uint64_t written;                /* written, private */
        uint64_t read_fault[2];          /* read without a write, in two mappings */
        uint64_t fork_shared;            /* written by ksmd before it forked the child: mapped by both */
        uint64_t shared_anon;            /* MAP_SHARED | MAP_ANONYMOUS, written */

        bool swap_active;                /* /proc/swaps lists an area */
        bool paged_out_asked;            /* MADV_PAGEOUT of a written page was accepted */
        uint64_t paged_out;              /* that page afterwards */

        char thp_enabled[16];            /* the chosen word of .../transparent_hugepage/enabled;
                                          * "" if absent */
        uint64_t huge_pages;             /* small pages per huge page (hpage_pmd_size); 0: unknown */
        uint64_t thp[3];                 /* small pages 0, 1 and huge_pages - 1 of an aligned, written,
                                          * MADV_HUGEPAGE range */
        uint64_t huge_read_fault[2];     /* first small page of two aligned MADV_HUGEPAGE ranges only read */

        int scan_error;                  /* PAGEMAP_SCAN: 0, or -errno (-ENOTTY: the kernel lacks it) */
        uint64_t scan_known;             /* categories the ioctl accepts in its return mask */
        uint64_t scan_untouched, scan_written, scan_read_fault, scan_shared_anon, scan_thp,
                scan_huge_read_fault;    /* categories of those pages */

        int clear_refs_error;            /* 0, or -errno of "4" > the child's clear_refs */
        uint64_t soft_dirty_cleared;     /* the written page right after that */
        uint64_t soft_dirty_rewritten;   /* the same page after the child wrote it again */

        int vm_read_error;               /* 0, or -errno of process_vm_readv of the written page */
        bool vm_read_content;            /* it read what the child wrote */
        int vm_read_partial_error;       /* 0, or -errno of reading two pages and an unmapped one */
        size_t vm_read_partial_pages;    /* pages that batch returned */
} HostObservations;

/* What the kernel does: one answer per feature, and what the scanner takes from it. */
typedef struct HostProbe {
        char release[65];
        HostAnswer answer[_HOST_FEATURE_MAX];
        char seen[_HOST_FEATURE_MAX][160]; /* what the probe saw, a phrase; never a PFN */
        uint64_t zero_pfn;               /* PFN of the zero page, 0 if unknown: nonzero only when two read
                                          * faults mapped that same frame, shared and never exclusive */
        uint64_t huge_zero_pfn;          /* first PFN of the huge zero page; 0 if unknown */
        uint64_t huge_pages;             /* small pages per huge page */
        char thp_enabled[16];            /* as observed; "" without THP */
        bool pages_readable;             /* process_vm_readv reads a page, even if HOST_PROCESS_VM_READV is
                                          * missing for its batches: then one page per call */
} HostProbe;

/*
 * Asks the kernel (see DOC). Returns 0 with *ret filled even when the child
 * could not be started or the kernel refused (the errors are in it). Takes
 * a few milliseconds (up to PROBE_TIMEOUT_MSEC if the child hangs) and one
 * huge page of the child's memory for as long; the child is killed by its
 * pid before this returns.
 */
int host_probe_observe(HostObservations *ret);

/* The answers to what was observed. */
void host_probe_evaluate(const HostObservations *o, HostProbe *ret);

/* host_probe_observe() and host_probe_evaluate(). -ENOMEM. */
int host_probe_run(HostProbe *ret);

/*
 * The PFNs of the zero page and the huge zero page (0 if unknown), for tools
 * that count pages by frame: read faults of this process's own untouched
 * memory, read back from its own pagemap (no probe child, no timeout).
 * -ENODATA when the zero page's is unknown (PFNs hidden, or read faults do
 * not map one shared frame), -ENOMEM, or pagemap's error.
 */
int host_probe_zero_pfns(uint64_t *ret_zero_pfn, uint64_t *ret_huge_zero_pfn);

static inline bool host_probe_has(const HostProbe *p, HostFeature f) {
        return p->answer[f] == HOST_ANSWER_YES;
}

/* "soft-dirty", "pagemap-scan", ...: the names org.ksmd.Manager1(5) and ksmd(8) use. */
const char *host_feature_to_string(HostFeature f);
/* "yes", "no", "untested". */
const char *host_answer_to_string(HostAnswer a);

/*
 * What ksmd does without feature f on this kernel (the answer may depend on
 * other features: the zero page without PFNs is recognised through
 * PAGEMAP_SCAN if the kernel has it), one sentence; "" when f is there.
 */
const char *host_probe_instead(const HostProbe *p, HostFeature f);
