/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

static int self_pfn(const volatile uint8_t *p, uint64_t *ret_pfn) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t e;
        int r;

        r = proc_pagemap_open(getpid(), &fd);
        if (r < 0)
                return r;
        (void) p[0];
        r = proc_pagemap_read(fd, (uint64_t) (uintptr_t) p, 1, &e);
        if (r < 0)
                return r;
        *ret_pfn = (e & PAGEMAP_PRESENT) ? (e & PAGEMAP_PFN_MASK) : 0;
        return 0;
}

int proc_zero_pfns(uint64_t *ret_zero_pfn, uint64_t *ret_huge_zero_pfn) {
        const size_t huge = 2u << 20;
        uint64_t zero_pfn = 0, huge_pfn = 0;
        uint8_t *p, *aligned;
        int r;

        p = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        (void) madvise(p, PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        r = self_pfn(p, &zero_pfn);
        (void) munmap(p, PAGE_SIZE_BYTES);
        if (r < 0)
                return r;

        /* A read fault on an aligned THP-eligible range maps the huge zero page, if enabled. */
        p = mmap(NULL, 2 * huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        aligned = (uint8_t *) (((uintptr_t) p + huge - 1) & ~(uintptr_t) (huge - 1));
        (void) madvise(aligned, huge, MADV_HUGEPAGE);
        r = self_pfn(aligned, &huge_pfn);
        (void) munmap(p, 2 * huge);
        if (r < 0)
                return r;
        if (huge_pfn == zero_pfn)
                huge_pfn = 0;

        *ret_zero_pfn = zero_pfn;
        *ret_huge_zero_pfn = huge_pfn;
        return 0;
}

int proc_soft_dirty_probe(bool *ret) {
        _cleanup_close_ int fd = -EBADF;
        volatile uint8_t *p;
        uint64_t before, after;
        int r;

        r = proc_pagemap_open(getpid(), &fd);
        if (r < 0)
                return r;
        p = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        p[0] = 1;
        r = proc_clear_soft_dirty(getpid());
        if (r >= 0)
                r = proc_pagemap_read(fd, (uint64_t) (uintptr_t) p, 1, &before);
        if (r >= 0) {
                p[0] = 2;
                r = proc_pagemap_read(fd, (uint64_t) (uintptr_t) p, 1, &after);
        }
        (void) munmap((void *) p, PAGE_SIZE_BYTES);
        if (r < 0)
                return r;
        *ret = !(before & PAGEMAP_SOFT_DIRTY) && (after & PAGEMAP_SOFT_DIRTY);
        return 0;
}
