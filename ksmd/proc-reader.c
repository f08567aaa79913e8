/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "escape.h"
#include "macro.h"
#include "proc-reader.h"

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

int proc_maps_parse_line(const char *line, ProcMapping *ret) {
        unsigned long long start, end, offset, inode;
        unsigned dev_major, dev_minor;
        char perms[5];
        int name_at = -1;
        ProcMapping m = {};
        const char *name;
        size_t len;

        if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &offset,
                   &dev_major, &dev_minor, &inode, &name_at) < 7 || name_at < 0)
                return -EBADMSG;
        if (strlen(perms) != 4 || end <= start || (start | end) % PAGE_SIZE_BYTES != 0)
                return -EBADMSG;

        m.start = start;
        m.end = end;
        m.readable = perms[0] == 'r';
        m.writable = perms[1] == 'w';
        m.private_ = perms[3] == 'p';

        /* Whoever owns the file chose these bytes: escaped, so that notes and
         * the log quoting them stay valid UTF-8 without control characters. */
        name = line + name_at;
        len = strcspn(name, "\n");
        escape_mem(name, len, m.name, sizeof(m.name));

        if (len == 0 || strcmp(m.name, "[heap]") == 0 || strncmp(m.name, "[stack", 6) == 0 ||
            strncmp(m.name, "[anon:", 6) == 0)
                m.kind = m.private_ ? PROC_MAPPING_ANON : PROC_MAPPING_SHARED_ANON;
        else if (m.name[0] == '[')
                m.kind = PROC_MAPPING_SPECIAL;
        else if (strncmp(m.name, "/dev/zero", 9) == 0)
                /* A private mapping of /dev/zero is plain anonymous memory; a shared one is shmem. */
                m.kind = m.private_ ? PROC_MAPPING_ANON : PROC_MAPPING_SHARED_ANON;
        else if (strncmp(m.name, "/memfd:", 7) == 0 || strncmp(m.name, "/SYSV", 5) == 0)
                m.kind = PROC_MAPPING_SHARED_ANON;
        else
                m.kind = PROC_MAPPING_FILE;

        *ret = m;
        return 0;
}

int proc_maps_read(pid_t pid, ProcMapping **ret, size_t *ret_n) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ ProcMapping *list = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0, allocated = 0, line_size = 0;
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ESRCH : negative_errno();

        for (;;) {
                ssize_t l;
                int r;

                errno = 0;
                l = getline(&line, &line_size, f);
                if (l < 0) {
                        if (errno != 0)
                                return negative_errno();
                        break;
                }
                if (n >= PROC_MAPS_MAX)
                        return -E2BIG;
                if (n == allocated) {
                        size_t na = MAX(allocated * 2, (size_t) 64);
                        ProcMapping *nl = reallocarray(list, na, sizeof(*list));

                        if (!nl)
                                return -ENOMEM;
                        list = nl;
                        allocated = na;
                }
                r = proc_maps_parse_line(line, &list[n]);
                if (r < 0)
                        return r;
                n++;
        }

        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

const char *proc_mapping_kind_to_string(ProcMappingKind k) {
        static const char *const table[_PROC_MAPPING_KIND_MAX] = {
                [PROC_MAPPING_ANON] = "private anonymous",
                [PROC_MAPPING_FILE] = "file-backed",
                [PROC_MAPPING_SHARED_ANON] = "shared memory",
                [PROC_MAPPING_SPECIAL] = "special kernel mapping",
        };

        return k >= 0 && k < _PROC_MAPPING_KIND_MAX ? table[k] : "invalid";
}

int proc_pagemap_open(pid_t pid, int *ret_fd) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/pagemap", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        *ret_fd = fd;
        return 0;
}

int proc_pagemap_read(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        size_t want = n_pages * sizeof(uint64_t), got = 0;
        off_t off = (off_t) (addr / PAGE_SIZE_BYTES * sizeof(uint64_t));

        if (addr % PAGE_SIZE_BYTES != 0)
                return -EINVAL;

        while (got < want) {
                ssize_t l = pread(fd, (char *) entries + got, want - got, off + (off_t) got);

                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (l == 0)
                        break;
                got += (size_t) l;
        }
        /* A process that exited leaves an empty mm: everything reads as 0 or EOF. */
        memset((char *) entries + got, 0, want - got);
        return 0;
}

int proc_clear_soft_dirty(pid_t pid) {
        _cleanup_close_ int fd = -EBADF;
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int) pid);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        if (write(fd, "4", 1) != 1)
                return negative_errno();
        return 0;
}

/* struct pm_scan_arg of uapi linux/fs.h. */
typedef struct ProcScanArg {
        uint64_t size;
        uint64_t flags;
        uint64_t start;
        uint64_t end;
        uint64_t walk_end;
        uint64_t vec;
        uint64_t vec_len;
        uint64_t max_pages;
        uint64_t category_inverted;
        uint64_t category_mask;
        uint64_t category_anyof_mask;
        uint64_t return_mask;
} ProcScanArg;

_Static_assert(sizeof(ProcScanArg) == 96, "struct pm_scan_arg is 96 bytes");
_Static_assert(sizeof(ProcPageRun) == 24, "struct page_region is 24 bytes");

#define PROC_PAGEMAP_SCAN _IOWR('f', 16, ProcScanArg)

int proc_pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t anyof_mask, uint64_t return_mask,
                      ProcPageRun *runs, size_t n_runs, size_t *ret_n, uint64_t *ret_walk_end) {
        ProcScanArg arg = {
                .size = sizeof(arg),
                .start = start,
                .end = end,
                .vec = (uint64_t) (uintptr_t) runs,
                .vec_len = n_runs,
                .category_anyof_mask = anyof_mask,
                .return_mask = return_mask,
        };
        int n;

        if (start % PAGE_SIZE_BYTES != 0 || end % PAGE_SIZE_BYTES != 0 || end < start)
                return -EINVAL;
        n = ioctl(fd, PROC_PAGEMAP_SCAN, &arg);
        if (n < 0)
                return negative_errno();
        *ret_n = (size_t) n;
        *ret_walk_end = arg.walk_end;
        return 0;
}

/* Whether entry e may map the zero page: present, shared, not a file's. */
static bool entry_may_be_zero_page(uint64_t e) {
        return (e & PAGEMAP_PRESENT) && !(e & (PAGEMAP_EXCLUSIVE | PAGEMAP_FILE_OR_SHARED));
}

int proc_pagemap_mark_zero_pages(int fd, uint64_t addr, size_t n_pages, uint64_t *entries) {
        size_t first = 0, last = n_pages;
        ProcPageRun runs[64];
        uint64_t at, end;
        int r;

        if (addr % PAGE_SIZE_BYTES != 0)
                return -EINVAL;
        while (first < n_pages && !entry_may_be_zero_page(entries[first]))
                first++;
        while (last > first && !entry_may_be_zero_page(entries[last - 1]))
                last--;
        if (first == last)
                return 0;

        at = addr + first * PAGE_SIZE_BYTES;
        end = addr + last * PAGE_SIZE_BYTES;
        while (at < end) {
                uint64_t walk_end;
                size_t n;

                r = proc_pagemap_scan(fd, at, end, PROC_PAGE_IS_PFNZERO, PROC_PAGE_IS_PFNZERO, runs,
                                      ELEMENTSOF(runs), &n, &walk_end);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < n; j++) {
                        if (runs[j].start < at || runs[j].end > end || runs[j].end <= runs[j].start ||
                            (runs[j].start | runs[j].end) % PAGE_SIZE_BYTES != 0)
                                return -EBADMSG;
                        /* The page table may have changed since the read: mark only what still fits. */
                        for (uint64_t a = runs[j].start; a < runs[j].end; a += PAGE_SIZE_BYTES) {
                                uint64_t *e = &entries[(a - addr) / PAGE_SIZE_BYTES];

                                if (entry_may_be_zero_page(*e))
                                        *e |= PAGEMAP_ZERO_PAGE;
                        }
                }
                /* walk_end is end once the walk is done, earlier when runs[] filled up. */
                if (walk_end <= at || walk_end > end)
                        break;
                at = walk_end;
        }
        return 0;
}

int proc_swap_active(bool *ret) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        unsigned n = 0;

        f = fopen("/proc/swaps", "re");
        if (!f)
                return negative_errno();
        /* A header line, then one line per active swap area. */
        while (getline(&line, &size, f) >= 0)
                n++;
        *ret = n > 1;
        return 0;
}
