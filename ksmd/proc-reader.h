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
 * Finds the PFNs of the kernel's zero page and huge zero page by read-faulting
 * memory of the calling process and reading its own pagemap. A PFN reads as 0
 * when it cannot be learnt (no CAP_SYS_ADMIN, THP disabled): then pagemap
 * cannot recognise zero-page mappings and callers must not rely on it.
 */
int proc_zero_pfns(uint64_t *ret_zero_pfn, uint64_t *ret_huge_zero_pfn);

/*
 * Probes soft-dirty tracking on the calling process: clears its own bits,
 * writes a page and checks the bit follows. *ret is false on kernels without
 * CONFIG_MEM_SOFT_DIRTY, where clear_refs accepts "4" but does nothing.
 */
int proc_soft_dirty_probe(bool *ret);
