/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The only file that touches /proc: /proc/PID/maps, /proc/PID/pagemap and
 * /proc/PID/clear_refs. Everything returns -errno; -ESRCH or -ENOENT means
 * the process is gone. Callers that need to be sure a pid still names the
 * process they registered check their pidfd after the call (see region.h).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Hard limit on mappings read from one maps file (vm.max_map_count defaults to 65530). */
#define PROC_MAPS_MAX 262144u

typedef enum ProcMappingKind {
        PROC_MAPPING_ANON,       /* private anonymous: no path, [heap], [stack], [anon:...] */
        PROC_MAPPING_FILE,       /* backed by a file (private or shared) */
        PROC_MAPPING_SHARED_ANON,/* MAP_SHARED|MAP_ANONYMOUS or shmem */
        PROC_MAPPING_SPECIAL,    /* [vdso], [vvar], [vsyscall], [uprobes] ... */
        _PROC_MAPPING_KIND_MAX,
        _PROC_MAPPING_KIND_INVALID = -EINVAL,
} ProcMappingKind;

typedef struct ProcMapping {
        uint64_t start;          /* bytes, page aligned */
        uint64_t end;            /* bytes, exclusive */
        bool readable;
        bool writable;
        bool private_;           /* 'p' in the flags column */
        ProcMappingKind kind;
        char name[48];           /* path or [name], escaped and cut to fit, marked "..." (escape.h);
                                  * "" for plain anonymous */
} ProcMapping;

/* Parses one line of /proc/PID/maps (without or with its trailing newline). -EBADMSG if malformed. */
int proc_maps_parse_line(const char *line, ProcMapping *ret);

/*
 * Reads all mappings of pid, sorted by address as the kernel lists them.
 * *ret is a malloc'ed array owned by the caller. -E2BIG beyond PROC_MAPS_MAX.
 */
int proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n);

const char *proc_mapping_kind_to_string(ProcMappingKind k);

/* /proc/PID/pagemap entry layout (Documentation/admin-guide/mm/pagemap.rst). */
#define PAGEMAP_PFN_MASK        ((UINT64_C(1) << 55) - 1)
#define PAGEMAP_SOFT_DIRTY      (UINT64_C(1) << 55)
#define PAGEMAP_EXCLUSIVE       (UINT64_C(1) << 56)
#define PAGEMAP_UFFD_WP         (UINT64_C(1) << 57)
#define PAGEMAP_FILE_OR_SHARED  (UINT64_C(1) << 61)
#define PAGEMAP_SWAPPED         (UINT64_C(1) << 62)
#define PAGEMAP_PRESENT         (UINT64_C(1) << 63)

/* Opens /proc/PID/pagemap read-only; *ret_fd is owned by the caller. */
int proc_pagemap_open(pid_t pid, int *ret_fd);

/*
 * Reads n_pages entries starting at page-aligned addr into entries[].
 * Entries past the end of the address space read as 0 (not present).
 */
int proc_pagemap_read(int fd, uint64_t addr, size_t n_pages, uint64_t *entries);

/*
 * Clears the soft-dirty bits of every page of pid ("4" > clear_refs). From
 * then on the first write to each page takes a write-protect fault that sets
 * its bit again: this is the cost change tracking puts on the process.
 */
int proc_clear_soft_dirty(pid_t pid);

/*
 * The PAGEMAP_SCAN ioctl on a pagemap file (Linux 6.7 and later; uapi
 * linux/fs.h, defined here because Debian 12's headers predate it): the
 * kernel walks [start, end) and returns runs of pages with the same
 * categories, only those of the runs that match the masks.
 */
#define PROC_PAGE_IS_WPALLOWED  (UINT64_C(1) << 0)
#define PROC_PAGE_IS_WRITTEN    (UINT64_C(1) << 1) /* means something only under a userfaultfd async
                                                    * write-protect the process registered itself;
                                                    * set on every page else */
#define PROC_PAGE_IS_FILE       (UINT64_C(1) << 2)
#define PROC_PAGE_IS_PRESENT    (UINT64_C(1) << 3)
#define PROC_PAGE_IS_SWAPPED    (UINT64_C(1) << 4)
#define PROC_PAGE_IS_PFNZERO    (UINT64_C(1) << 5) /* maps the zero page or the huge zero page */
#define PROC_PAGE_IS_HUGE       (UINT64_C(1) << 6)
#define PROC_PAGE_IS_SOFT_DIRTY (UINT64_C(1) << 7)

/* The categories ksmd needs of PAGEMAP_SCAN: the zero page's, and those it checks the ioctl by. */
#define PROC_PAGE_SCAN_NEEDED \
        (PROC_PAGE_IS_FILE | PROC_PAGE_IS_PRESENT | PROC_PAGE_IS_SWAPPED | PROC_PAGE_IS_PFNZERO)

typedef struct ProcPageRun {
        uint64_t start;          /* bytes */
        uint64_t end;            /* bytes, exclusive */
        uint64_t categories;     /* PROC_PAGE_IS_* of every page in the run, within the return mask */
} ProcPageRun;

/*
 * One PAGEMAP_SCAN call: the runs of [start, end) whose pages have any of
 * anyof_mask (0: every page, absent ones too) into runs[], at most n_runs,
 * reporting return_mask. *ret_walk_end is where the kernel stopped: end, or
 * earlier when runs[] filled up. -ENOTTY: the kernel has no PAGEMAP_SCAN;
 * -EINVAL: it does not know a category of the masks.
 */
int proc_pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t anyof_mask, uint64_t return_mask,
                      ProcPageRun *runs, size_t n_runs, size_t *ret_n, uint64_t *ret_walk_end);

/*
 * Set by proc_pagemap_mark_zero_pages() on an entry that maps the zero page
 * (or the huge zero page). It is ksmd's: the kernel leaves bits 59-60 of an
 * entry zero (pagemap.rst).
 */
#define PAGEMAP_ZERO_PAGE       (UINT64_C(1) << 59)

/*
 * Marks with PAGEMAP_ZERO_PAGE those of entries[], as proc_pagemap_read()
 * read them for the n_pages at addr, that map the zero page, for when its
 * PFN is unknown (hidden, or never learnt: host-probe.h). Only entries
 * present, not exclusive and not file or shared can; PAGEMAP_SCAN is asked
 * about the span between the first and the last of them, once, and costs
 * nothing when there is none. -ENOTTY without PAGEMAP_SCAN.
 *
 * Why not read pagemap through PAGEMAP_SCAN altogether: it does not give
 * PAGEMAP_EXCLUSIVE, so present private runs would still be read from the
 * file, one read per run, and memory of short runs would cost a read per
 * page; tests/unit/test-proc-reader.c reports what each way costs.
 */
int proc_pagemap_mark_zero_pages(int fd, uint64_t addr, size_t n_pages, uint64_t *entries);

/* Whether /proc/swaps lists an active swap device or file. */
int proc_swap_active(bool *ret);
