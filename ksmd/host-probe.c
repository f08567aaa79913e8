/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escape.h"
#include "host-probe.h"
#include "macro.h"
#include "memory-reader.h"
#include "proc-reader.h"

/* A probe child that does not answer within this is killed, and the answers are "untested". */
#define PROBE_TIMEOUT_MSEC 10000

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage"

/* The probe child's private pages, at offsets of ProbeLayout.a. */
enum {
        PAGE_UNTOUCHED,
        PAGE_WRITTEN,
        PAGE_READ,
        PAGE_PAGED_OUT,
        PAGE_BATCH = 5,          /* 5 and 6 written, 7 unmapped */
        PAGES_A = 8,
};

/* What the child tells its parent once its memory is set up. */
typedef struct ProbeLayout {
        int error;               /* 0, or -errno: the child could not set up its memory */
        bool paged_out_asked;
        uint64_t a;              /* PAGES_A private pages (above) */
        uint64_t b;              /* one private page, only read */
        uint64_t s;              /* one MAP_SHARED anonymous page, written */
        uint64_t h;              /* 3 aligned huge pages' worth: the first written, the others only read;
                                  * 0 without THP */
} ProbeLayout;

static const char *const feature_names[_HOST_FEATURE_MAX] = {
        [HOST_PAGEMAP] = "pagemap",
        [HOST_PAGEMAP_EXCLUSIVE] = "pagemap-exclusive",
        [HOST_PAGEMAP_SHARED] = "pagemap-shared",
        [HOST_PAGEMAP_SWAP] = "pagemap-swap",
        [HOST_PFN] = "pfn",
        [HOST_ZERO_PAGE] = "zero-page",
        [HOST_HUGE_ZERO_PAGE] = "huge-zero-page",
        [HOST_THP] = "thp",
        [HOST_SOFT_DIRTY] = "soft-dirty",
        [HOST_PAGEMAP_SCAN] = "pagemap-scan",
        [HOST_PROCESS_VM_READV] = "process-vm-readv",
};

const char *host_feature_to_string(HostFeature f) {
        return f >= 0 && f < _HOST_FEATURE_MAX ? feature_names[f] : "invalid";
}

const char *host_answer_to_string(HostAnswer a) {
        static const char *const table[_HOST_ANSWER_MAX] = {
                [HOST_ANSWER_YES] = "yes",
                [HOST_ANSWER_NO] = "no",
                [HOST_ANSWER_UNTESTED] = "untested",
        };

        return a >= 0 && a < _HOST_ANSWER_MAX ? table[a] : "invalid";
}

/* ---- Asking the kernel ---- */

/* The first line of a sysfs file, without its newline; -errno. */
static int read_line(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t l;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        l = read(fd, buf, size - 1);
        if (l < 0)
                return negative_errno();
        buf[l] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

/* THP's mode ("always [madvise] never": the bracketed word) and the huge page size. */
static void observe_thp_settings(HostObservations *o) {
        char line[128], *open_, *close_;
        unsigned long long bytes;

        if (read_line(THP_SYSFS "/enabled", line, sizeof(line)) >= 0 && (open_ = strchr(line, '[')) &&
            (close_ = strchr(open_, ']')))
                escape_mem(open_ + 1, (size_t) (close_ - open_ - 1), o->thp_enabled, sizeof(o->thp_enabled));
        if (read_line(THP_SYSFS "/hpage_pmd_size", line, sizeof(line)) >= 0 &&
            sscanf(line, "%llu", &bytes) == 1 && bytes >= 2 * PAGE_SIZE_BYTES &&
            bytes <= (UINT64_C(1) << 30) && bytes % PAGE_SIZE_BYTES == 0)
                o->huge_pages = bytes / PAGE_SIZE_BYTES;
        else if (o->thp_enabled[0])
                o->huge_pages = HOST_HUGE_PAGES_DEFAULT;
}

static int write_full(int fd, const void *buf, size_t n) {
        while (n > 0) {
                ssize_t l = write(fd, buf, n);

                if (l < 0 && errno == EINTR)
                        continue;
                if (l <= 0)
                        return l < 0 ? negative_errno() : -EIO;
                buf = (const uint8_t *) buf + l;
                n -= (size_t) l;
        }
        return 0;
}

/* Reads exactly n bytes within PROBE_TIMEOUT_MSEC; -ETIMEDOUT, -EPIPE when the child is gone. */
static int read_full(int fd, void *buf, size_t n) {
        while (n > 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t l;
                int r;

                r = poll(&p, 1, PROBE_TIMEOUT_MSEC);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                l = read(fd, buf, n);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0)
                        return negative_errno();
                if (l == 0)
                        return -EPIPE;
                buf = (uint8_t *) buf + l;
                n -= (size_t) l;
        }
        return 0;
}

/*
 * The probe child: sets up its memory, tells the parent where, and writes its
 * written page once more for each 'w' until it is killed. Only async-signal-
 * safe calls: it is a fork of the daemon.
 */
_noreturn_ static void probe_child(int cmd_fd, int reply_fd, pid_t parent, uint64_t huge_bytes,
                                  bool swap_active) {
        ProbeLayout l = {};
        volatile uint8_t *a, *b, *s;
        char c;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);

        a = mmap(NULL, PAGES_A * PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0);
        b = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        s = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED || b == MAP_FAILED || s == MAP_FAILED) {
                l.error = negative_errno();
                (void) write_full(reply_fd, &l, sizeof(l));
                _exit(1);
        }
        /* Small pages only here, whatever THP's mode. */
        (void) madvise((void *) a, PAGES_A * PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        (void) madvise((void *) b, PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);

        for (size_t i = 0; i < PAGE_SIZE_BYTES; i++) {
                a[PAGE_WRITTEN * PAGE_SIZE_BYTES + i] = 0xa5;
                a[PAGE_PAGED_OUT * PAGE_SIZE_BYTES + i] = 0x3c;
                a[PAGE_BATCH * PAGE_SIZE_BYTES + i] = 0x5b;
                a[(PAGE_BATCH + 1) * PAGE_SIZE_BYTES + i] = 0x5c;
                s[i] = 0x11;
        }
        (void) a[PAGE_READ * PAGE_SIZE_BYTES];
        (void) b[0];
        if (swap_active)
                l.paged_out_asked = madvise((void *) (a + PAGE_PAGED_OUT * PAGE_SIZE_BYTES), PAGE_SIZE_BYTES,
                                            MADV_PAGEOUT) == 0;
        (void) munmap((void *) (a + (PAGE_BATCH + 2) * PAGE_SIZE_BYTES), PAGE_SIZE_BYTES);

        if (huge_bytes > 0) {
                void *raw = mmap(NULL, 4 * huge_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                 -1, 0);

                if (raw != MAP_FAILED) {
                        volatile uint8_t *h = (volatile uint8_t *) (((uintptr_t) raw + huge_bytes - 1) &
                                                                    ~(uintptr_t) (huge_bytes - 1));

                        (void) madvise((void *) h, 3 * huge_bytes, MADV_HUGEPAGE);
                        h[0] = 1;
                        (void) h[huge_bytes];
                        (void) h[2 * huge_bytes];
                        l.h = (uint64_t) (uintptr_t) h;
                }
        }

        l.a = (uint64_t) (uintptr_t) a;
        l.b = (uint64_t) (uintptr_t) b;
        l.s = (uint64_t) (uintptr_t) s;
        if (write_full(reply_fd, &l, sizeof(l)) < 0)
                _exit(1);
        while (read(cmd_fd, &c, 1) == 1) {
                a[PAGE_WRITTEN * PAGE_SIZE_BYTES] = 0xa6;
                if (write_full(reply_fd, "k", 1) < 0)
                        break;
        }
        _exit(0);
}

/* One pagemap entry of the child; the first error is kept in o->pagemap_error. */
static uint64_t entry_at(HostObservations *o, int fd, uint64_t addr) {
        uint64_t e = 0;
        int r;

        r = proc_pagemap_read(fd, addr, 1, &e);
        if (r < 0) {
                if (o->pagemap_error == 0)
                        o->pagemap_error = r;
                return 0;
        }
        return e;
}

/* PAGEMAP_SCAN's categories of the page at addr, within mask; 0 if it reports none. */
static uint64_t categories_at(int fd, uint64_t addr, uint64_t mask) {
        ProcPageRun run;
        uint64_t walk_end;
        size_t n;

        if (proc_pagemap_scan(fd, addr, addr + PAGE_SIZE_BYTES, 0, mask, &run, 1, &n, &walk_end) < 0 ||
            n != 1 || run.start > addr || run.end <= addr)
                return 0;
        return run.categories;
}

static void observe_pagemap_scan(HostObservations *o, int fd, const ProbeLayout *l) {
        uint64_t known = 0;

        for (unsigned bit = 0; bit < 16; bit++) {
                ProcPageRun run;
                uint64_t walk_end;
                size_t n;
                int r;

                r = proc_pagemap_scan(fd, l->a, l->a + PAGE_SIZE_BYTES, 0, UINT64_C(1) << bit, &run, 1, &n,
                                      &walk_end);
                if (r == -ENOTTY || (r < 0 && r != -EINVAL)) {
                        o->scan_error = r;
                        return;
                }
                if (r >= 0)
                        known |= UINT64_C(1) << bit;
        }
        o->scan_known = known;
        o->scan_untouched = categories_at(fd, l->a + PAGE_UNTOUCHED * PAGE_SIZE_BYTES, known);
        o->scan_written = categories_at(fd, l->a + PAGE_WRITTEN * PAGE_SIZE_BYTES, known);
        o->scan_read_fault = categories_at(fd, l->a + PAGE_READ * PAGE_SIZE_BYTES, known);
        o->scan_shared_anon = categories_at(fd, l->s, known);
        if (l->h != 0) {
                o->scan_thp = categories_at(fd, l->h, known);
                o->scan_huge_read_fault = categories_at(fd, l->h + o->huge_pages * PAGE_SIZE_BYTES, known);
        }
}

static void observe_memory_reads(HostObservations *o, pid_t pid, const ProbeLayout *l) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t addrs[3];
        int r;

        buf = malloc(3 * PAGE_SIZE_BYTES);
        if (!buf) {
                o->vm_read_error = o->vm_read_partial_error = -ENOMEM;
                return;
        }
        r = memory_read(pid, l->a + PAGE_WRITTEN * PAGE_SIZE_BYTES, buf, PAGE_SIZE_BYTES);
        o->vm_read_error = r;
        o->vm_read_content = r >= 0;
        for (size_t i = 0; r >= 0 && i < PAGE_SIZE_BYTES; i++)
                if (buf[i] != 0xa5)
                        o->vm_read_content = false;

        for (size_t i = 0; i < 3; i++)
                addrs[i] = l->a + (PAGE_BATCH + i) * PAGE_SIZE_BYTES;
        o->vm_read_partial_error = memory_read_pages(pid, addrs, 3, buf, &o->vm_read_partial_pages);
}

/* Everything but the settings, asked of the running child. */
static void observe_child(HostObservations *o, pid_t pid, const ProbeLayout *l, uint64_t fork_shared,
                          int cmd_fd, int reply_fd) {
        _cleanup_close_ int fd = -EBADF;
        char c;
        int r;

        o->paged_out_asked = l->paged_out_asked;
        observe_memory_reads(o, pid, l);

        r = proc_pagemap_open(pid, &fd);
        if (r < 0) {
                o->pagemap_error = r;
                return;
        }
        o->untouched = entry_at(o, fd, l->a + PAGE_UNTOUCHED * PAGE_SIZE_BYTES);
        o->written = entry_at(o, fd, l->a + PAGE_WRITTEN * PAGE_SIZE_BYTES);
        o->read_fault[0] = entry_at(o, fd, l->a + PAGE_READ * PAGE_SIZE_BYTES);
        o->read_fault[1] = entry_at(o, fd, l->b);
        o->fork_shared = entry_at(o, fd, fork_shared);
        o->shared_anon = entry_at(o, fd, l->s);
        o->paged_out = entry_at(o, fd, l->a + PAGE_PAGED_OUT * PAGE_SIZE_BYTES);
        if (l->h != 0) {
                o->thp[0] = entry_at(o, fd, l->h);
                o->thp[1] = entry_at(o, fd, l->h + PAGE_SIZE_BYTES);
                o->thp[2] = entry_at(o, fd, l->h + (o->huge_pages - 1) * PAGE_SIZE_BYTES);
                o->huge_read_fault[0] = entry_at(o, fd, l->h + o->huge_pages * PAGE_SIZE_BYTES);
                o->huge_read_fault[1] = entry_at(o, fd, l->h + 2 * o->huge_pages * PAGE_SIZE_BYTES);
        }
        observe_pagemap_scan(o, fd, l);

        /* Last: soft-dirty around one more write of the written page. */
        o->clear_refs_error = proc_clear_soft_dirty(pid);
        if (o->clear_refs_error < 0)
                return;
        o->soft_dirty_cleared = entry_at(o, fd, l->a + PAGE_WRITTEN * PAGE_SIZE_BYTES);
        r = write_full(cmd_fd, "w", 1);
        if (r >= 0)
                r = read_full(reply_fd, &c, 1);
        if (r < 0) {
                o->clear_refs_error = r;
                return;
        }
        o->soft_dirty_rewritten = entry_at(o, fd, l->a + PAGE_WRITTEN * PAGE_SIZE_BYTES);
}

int host_probe_observe(HostObservations *ret) {
        HostObservations o = {};
        int cmd[2] = { -EBADF, -EBADF }, reply[2] = { -EBADF, -EBADF };
        volatile uint8_t *shared = MAP_FAILED;
        pid_t parent = getpid(), pid = -1;
        ProbeLayout l = {};
        struct utsname u;
        int r;

        /* What the probe reports goes to the log, D-Bus and terminals: escaped where it enters. */
        if (uname(&u) >= 0)
                escape_str(u.release, o.release, sizeof(o.release));
        observe_thp_settings(&o);
        (void) proc_swap_active(&o.swap_active);

        /* A page the child shares with us by fork, until one of us writes it (neither does). */
        shared = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED) {
                o.child_error = negative_errno();
                goto done;
        }
        (void) madvise((void *) shared, PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        shared[0] = 0x77;

        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(reply, O_CLOEXEC) < 0) {
                o.child_error = negative_errno();
                goto done;
        }
        pid = fork();
        if (pid < 0) {
                o.child_error = negative_errno();
                goto done;
        }
        if (pid == 0) {
                (void) close(cmd[1]);
                (void) close(reply[0]);
                probe_child(cmd[0], reply[1], parent, o.thp_enabled[0] ? o.huge_pages * PAGE_SIZE_BYTES : 0,
                            o.swap_active);
        }
        cmd[0] = safe_close(cmd[0]);
        reply[1] = safe_close(reply[1]);

        r = read_full(reply[0], &l, sizeof(l));
        if (r >= 0 && l.error < 0)
                r = l.error;
        if (r < 0) {
                o.child_error = r;
                goto done;
        }
        observe_child(&o, pid, &l, (uint64_t) (uintptr_t) shared, cmd[1], reply[0]);

done:
        if (pid > 0) {
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        for (size_t i = 0; i < 2; i++) {
                safe_close(cmd[i]);
                safe_close(reply[i]);
        }
        if (shared != MAP_FAILED)
                (void) munmap((void *) shared, PAGE_SIZE_BYTES);
        *ret = o;
        return 0;
}

/* ---- What it means ---- */

static uint64_t pfn_of(uint64_t e) {
        return e & PAGEMAP_PFN_MASK;
}

static bool present(uint64_t e) {
        return (e & PAGEMAP_PRESENT) != 0;
}

static bool exclusive(uint64_t e) {
        return (e & PAGEMAP_EXCLUSIVE) != 0;
}

_printf_(4, 5)
static void answer(HostProbe *p, HostFeature f, HostAnswer a, const char *format, ...) {
        va_list ap;

        p->answer[f] = a;
        va_start(ap, format);
        vsnprintf(p->seen[f], sizeof(p->seen[f]), format, ap);
        va_end(ap);
}

static void evaluate_zero_pages(const HostObservations *o, HostProbe *p, bool pfn, bool scan) {
        const uint64_t r0 = o->read_fault[0], r1 = o->read_fault[1];

        if (!present(r0) || !present(r1))
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_NO, "a page only read reads as not present");
        else if (exclusive(r0) || exclusive(r1))
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_NO,
                       "a read fault maps a fresh private page (present and exclusive), not the zero page");
        else if (pfn && pfn_of(r0) == pfn_of(r1) && pfn_of(r0) != pfn_of(o->written)) {
                p->zero_pfn = pfn_of(r0);
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_YES,
                       "two read faults map one shared frame, never exclusive: the zero page");
        } else if (pfn)
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_NO,
                       "two read faults map two different frames that are not exclusive");
        else if (scan && (o->scan_read_fault & PROC_PAGE_IS_PFNZERO))
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_YES,
                       "PAGEMAP_SCAN says a read fault maps the zero page (its PFN is hidden)");
        else
                answer(p, HOST_ZERO_PAGE, HOST_ANSWER_UNTESTED,
                       "a read fault maps a page that is not exclusive, but with PFNs hidden the probe "
                       "cannot tell whether it is the zero page");

        if (!o->thp_enabled[0] || streq(o->thp_enabled, "never") || o->huge_pages == 0) {
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED, "no transparent huge pages (%s)",
                       o->thp_enabled[0] ? "enabled=never" : "not built");
                return;
        }
        const uint64_t h0 = o->huge_read_fault[0], h1 = o->huge_read_fault[1];

        if (!present(h0) || !present(h1))
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED,
                       "huge-page memory only read reads as not present");
        else if (exclusive(h0) || exclusive(h1))
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_NO,
                       "a read fault on huge-page memory maps a fresh page: use_zero_page is 0?");
        else if (pfn && pfn_of(h0) == p->zero_pfn)
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED,
                       "a read fault on huge-page memory maps the small zero page: no huge page there");
        else if (pfn && pfn_of(h0) == pfn_of(h1) && pfn_of(h0) % o->huge_pages == 0) {
                p->huge_zero_pfn = pfn_of(h0);
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_YES,
                       "two read faults on huge-page memory map one shared, aligned huge frame");
        } else if (pfn)
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_NO,
                       "read faults on huge-page memory map different frames that are not exclusive");
        else if (scan && (o->scan_huge_read_fault & PROC_PAGE_IS_PFNZERO))
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_YES,
                       "PAGEMAP_SCAN says a read fault on huge-page memory maps the zero page (PFN hidden)");
        else
                answer(p, HOST_HUGE_ZERO_PAGE, HOST_ANSWER_UNTESTED,
                       "PFNs are hidden: the probe cannot tell the huge zero page");
}

static void evaluate_thp(const HostObservations *o, HostProbe *p, bool pfn, bool scan) {
        bool huge;

        if (!o->thp_enabled[0] || o->huge_pages == 0) {
                answer(p, HOST_THP, HOST_ANSWER_UNTESTED, "no %s: transparent huge pages are not built",
                       THP_SYSFS);
                return;
        }
        if (streq(o->thp_enabled, "never")) {
                answer(p, HOST_THP, HOST_ANSWER_UNTESTED, "enabled=[never]: no transparent huge pages");
                return;
        }
        if (scan && (o->scan_known & PROC_PAGE_IS_HUGE))
                huge = (o->scan_thp & PROC_PAGE_IS_HUGE) != 0;
        else if (pfn)
                huge = present(o->thp[0]) && pfn_of(o->thp[0]) % o->huge_pages == 0 &&
                       pfn_of(o->thp[1]) == pfn_of(o->thp[0]) + 1 &&
                       pfn_of(o->thp[2]) == pfn_of(o->thp[0]) + o->huge_pages - 1;
        else {
                answer(p, HOST_THP, HOST_ANSWER_UNTESTED,
                       "enabled=[%s]; with PFNs hidden and no PAGEMAP_SCAN the probe cannot tell a huge "
                       "page",
                       o->thp_enabled);
                return;
        }
        if (!huge)
                answer(p, HOST_THP, HOST_ANSWER_UNTESTED,
                       "enabled=[%s], but no huge page was allocated for the probe: memory fragmented?",
                       o->thp_enabled);
        else if (present(o->thp[0]) && present(o->thp[1]) && present(o->thp[2]) && exclusive(o->thp[0]) &&
                 exclusive(o->thp[1]) && exclusive(o->thp[2]))
                answer(p, HOST_THP, HOST_ANSWER_YES,
                       "enabled=[%s]; a huge page's small pages read present and exclusive", o->thp_enabled);
        else
                answer(p, HOST_THP, HOST_ANSWER_NO,
                       "enabled=[%s]; a private huge page's small pages read as not exclusive",
                       o->thp_enabled);
}

static void evaluate_soft_dirty(const HostObservations *o, HostProbe *p) {
        if (o->clear_refs_error < 0)
                answer(p, HOST_SOFT_DIRTY, HOST_ANSWER_NO, "writing 4 to clear_refs failed: %s",
                       strerror(-o->clear_refs_error));
        else if (o->soft_dirty_cleared & PAGEMAP_SOFT_DIRTY)
                answer(p, HOST_SOFT_DIRTY, HOST_ANSWER_NO, "4 > clear_refs leaves bit 55 set");
        else if (!(o->soft_dirty_rewritten & PAGEMAP_SOFT_DIRTY))
                answer(p, HOST_SOFT_DIRTY, HOST_ANSWER_NO,
                       "a write after 4 > clear_refs leaves bit 55 clear: no CONFIG_MEM_SOFT_DIRTY");
        else
                answer(p, HOST_SOFT_DIRTY, HOST_ANSWER_YES,
                       "4 > clear_refs clears bit 55 and a write sets it again");
}

static void evaluate_pagemap_scan(const HostObservations *o, HostProbe *p) {
        uint64_t missing = PROC_PAGE_SCAN_NEEDED & ~o->scan_known;

        if (o->scan_error == -ENOTTY)
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO, "no PAGEMAP_SCAN ioctl: Linux before 6.7");
        else if (o->scan_error < 0)
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO, "PAGEMAP_SCAN failed: %s",
                       strerror(-o->scan_error));
        else if (missing != 0)
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO,
                       "PAGEMAP_SCAN does not know the categories 0x%llx", (unsigned long long) missing);
        else if ((o->scan_untouched & PROC_PAGE_IS_PRESENT) || !(o->scan_written & PROC_PAGE_IS_PRESENT) ||
                 (o->scan_written & (PROC_PAGE_IS_FILE | PROC_PAGE_IS_PFNZERO)) ||
                 !(o->scan_shared_anon & PROC_PAGE_IS_FILE))
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO,
                       "PAGEMAP_SCAN contradicts pagemap (present or file on the probe's pages)");
        else if (p->answer[HOST_ZERO_PAGE] != HOST_ANSWER_UNTESTED && present(o->read_fault[0]) &&
                 !!(o->scan_read_fault & PROC_PAGE_IS_PFNZERO) !=
                         (p->answer[HOST_ZERO_PAGE] == HOST_ANSWER_YES))
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_NO,
                       "PAGEMAP_SCAN's zero-page flag contradicts pagemap on a page only read");
        else
                answer(p, HOST_PAGEMAP_SCAN, HOST_ANSWER_YES,
                       "PAGEMAP_SCAN reports present, swapped, file and zero-page runs");
}

static void evaluate_process_vm_readv(const HostObservations *o, HostProbe *p) {
        if (o->vm_read_error < 0)
                answer(p, HOST_PROCESS_VM_READV, HOST_ANSWER_NO, "process_vm_readv of the probe child: %s",
                       strerror(-o->vm_read_error));
        else if (!o->vm_read_content)
                answer(p, HOST_PROCESS_VM_READV, HOST_ANSWER_NO,
                       "process_vm_readv read other bytes than the probe child wrote");
        else if (o->vm_read_partial_error < 0 || o->vm_read_partial_pages != 2)
                answer(p, HOST_PROCESS_VM_READV, HOST_ANSWER_NO,
                       "a batch of two pages and an unmapped one returned %zu pages%s%s, not 2",
                       o->vm_read_partial_error < 0 ? 0 : o->vm_read_partial_pages,
                       o->vm_read_partial_error < 0 ? ": " : "",
                       o->vm_read_partial_error < 0 ? strerror(-o->vm_read_partial_error) : "");
        else
                answer(p, HOST_PROCESS_VM_READV, HOST_ANSWER_YES,
                       "reads another process's pages; a batch stops at an unmapped page");
        p->pages_readable = o->vm_read_error >= 0 && o->vm_read_content;
}

void host_probe_evaluate(const HostObservations *o, HostProbe *ret) {
        HostProbe p = {};
        bool pfn, scan;

        snprintf(p.release, sizeof(p.release), "%s", o->release);
        snprintf(p.thp_enabled, sizeof(p.thp_enabled), "%s", o->thp_enabled);
        p.huge_pages = o->huge_pages ?: HOST_HUGE_PAGES_DEFAULT;

        if (o->child_error < 0) {
                for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                        answer(&p, f, HOST_ANSWER_UNTESTED, "no probe child: %s", strerror(-o->child_error));
                *ret = p;
                return;
        }
        evaluate_process_vm_readv(o, &p);
        if (o->pagemap_error < 0) {
                for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                        if (f != HOST_PROCESS_VM_READV)
                                answer(&p, f, HOST_ANSWER_UNTESTED, "needs /proc/PID/pagemap");
                answer(&p, HOST_PAGEMAP, HOST_ANSWER_NO, "cannot read the probe child's pagemap: %s",
                       strerror(-o->pagemap_error));
                *ret = p;
                return;
        }

        if (!present(o->written) || present(o->untouched)) {
                answer(&p, HOST_PAGEMAP, HOST_ANSWER_NO, "a %s page reads as %spresent",
                       present(o->untouched) ? "never touched" : "written",
                       present(o->untouched) ? "" : "not ");
                for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                        if (f != HOST_PAGEMAP && f != HOST_PROCESS_VM_READV)
                                answer(&p, f, HOST_ANSWER_UNTESTED, "needs pagemap's present bit");
                *ret = p;
                return;
        }
        answer(&p, HOST_PAGEMAP, HOST_ANSWER_YES, "written pages read present, untouched ones not");

        if (!exclusive(o->written))
                answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_NO, "a written private page lacks bit 56");
        else if (!present(o->fork_shared) || exclusive(o->fork_shared))
                answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_NO,
                       "a page shared with a fork reads %s",
                       present(o->fork_shared) ? "exclusive" : "absent");
        else
                answer(&p, HOST_PAGEMAP_EXCLUSIVE, HOST_ANSWER_YES,
                       "bit 56 on a private page, not on one shared with a fork");

        if (present(o->shared_anon) && (o->shared_anon & PAGEMAP_FILE_OR_SHARED))
                answer(&p, HOST_PAGEMAP_SHARED, HOST_ANSWER_YES, "bit 61 on MAP_SHARED anonymous memory");
        else
                answer(&p, HOST_PAGEMAP_SHARED, HOST_ANSWER_NO,
                       "MAP_SHARED anonymous memory reads without bit 61");

        if (!o->swap_active)
                answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED,
                       "no swap on this host: nothing is swapped");
        else if (!o->paged_out_asked)
                answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED, "MADV_PAGEOUT was refused");
        else if (o->paged_out & PAGEMAP_SWAPPED)
                answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_YES, "a paged-out page reads swapped (bit 62)");
        else if (present(o->paged_out))
                answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_UNTESTED,
                       "the kernel kept the page MADV_PAGEOUT asked it to page out");
        else
                answer(&p, HOST_PAGEMAP_SWAP, HOST_ANSWER_NO,
                       "a paged-out page reads as neither present nor swapped");

        pfn = pfn_of(o->written) != 0;
        answer(&p, HOST_PFN, pfn ? HOST_ANSWER_YES : HOST_ANSWER_NO,
               pfn ? "PFNs are shown" : "PFNs read as 0: ksmd lacks CAP_SYS_ADMIN");

        /* The zero page answer uses PAGEMAP_SCAN's flag only when the ioctl itself is sound. */
        scan = o->scan_error == 0 && (PROC_PAGE_SCAN_NEEDED & ~o->scan_known) == 0;
        evaluate_zero_pages(o, &p, pfn, scan);
        evaluate_thp(o, &p, pfn, scan);
        evaluate_soft_dirty(o, &p);
        evaluate_pagemap_scan(o, &p);
        *ret = p;
}

int host_probe_run(HostProbe *ret) {
        HostObservations o;
        int r;

        r = host_probe_observe(&o);
        if (r < 0)
                return r;
        host_probe_evaluate(&o, ret);
        return 0;
}

/* The pagemap entry of a read fault of untouched private memory of this process (0 if unreadable). */
static uint64_t read_fault_entry(int fd, volatile const uint8_t *p) {
        uint64_t e = 0;

        (void) p[0];
        (void) proc_pagemap_read(fd, (uint64_t) (uintptr_t) p, 1, &e);
        return e;
}

int host_probe_zero_pfns(uint64_t *ret_zero_pfn, uint64_t *ret_huge_zero_pfn) {
        HostObservations o = {};
        HostProbe p = {};
        _cleanup_close_ int fd = -EBADF;
        uint8_t *a, *b;
        int r;

        /*
         * The probe's observations of read faults, made in this process, not in
         * host_probe_run()'s child: nothing to wait for, so a starved machine (a
         * loaded TCG guest) cannot time the answer out. Judged as the probe does.
         */
        r = proc_pagemap_open(getpid(), &fd);
        if (r < 0)
                return r;
        a = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED)
                return negative_errno();
        b = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED) {
                r = negative_errno();
                (void) munmap(a, PAGE_SIZE_BYTES);
                return r;
        }
        (void) madvise(a, PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        (void) madvise(b, PAGE_SIZE_BYTES, MADV_NOHUGEPAGE);
        o.read_fault[0] = read_fault_entry(fd, a);
        o.read_fault[1] = read_fault_entry(fd, b);
        (void) munmap(a, PAGE_SIZE_BYTES);
        (void) munmap(b, PAGE_SIZE_BYTES);

        observe_thp_settings(&o);
        if (o.thp_enabled[0] && !streq(o.thp_enabled, "never") && o.huge_pages > 0) {
                size_t huge_bytes = o.huge_pages * PAGE_SIZE_BYTES;
                uint8_t *raw = mmap(NULL, 3 * huge_bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                if (raw != MAP_FAILED) {
                        uint8_t *h = (uint8_t *) (((uintptr_t) raw + huge_bytes - 1) &
                                                  ~(uintptr_t) (huge_bytes - 1));

                        (void) madvise(h, 2 * huge_bytes, MADV_HUGEPAGE);
                        o.huge_read_fault[0] = read_fault_entry(fd, h);
                        o.huge_read_fault[1] = read_fault_entry(fd, h + huge_bytes);
                        (void) munmap(raw, 3 * huge_bytes);
                }
        }

        evaluate_zero_pages(&o, &p, true, false);
        if (p.zero_pfn == 0)
                return -ENODATA;
        *ret_zero_pfn = p.zero_pfn;
        *ret_huge_zero_pfn = p.huge_zero_pfn;
        return 0;
}

const char *host_probe_instead(const HostProbe *p, HostFeature f) {
        bool scan = host_probe_has(p, HOST_PAGEMAP_SCAN);

        if (f < 0 || f >= _HOST_FEATURE_MAX || host_probe_has(p, f))
                return "";
        switch (f) {
        case HOST_PAGEMAP:
                return "ksmd cannot tell present pages from absent ones and scans nothing; each region's "
                       "note says why";
        case HOST_PAGEMAP_EXCLUSIVE:
                return "pages shared with other processes are read and offered to the helper like private "
                       "ones; it verifies every merge";
        case HOST_PAGEMAP_SHARED:
                return "pages the helper merged are told apart by the exclusive bit alone";
        case HOST_PAGEMAP_SWAP:
                return "swapped-out pages count as not present";
        case HOST_PFN:
                return scan ? "the zero page is recognised through PAGEMAP_SCAN instead of its PFN" :
                              "pages mapping the zero page count as shared with other processes, and zero "
                              "pages merged by the helper are not counted in the saving";
        case HOST_ZERO_PAGE:
                if (p->answer[f] == HOST_ANSWER_NO && host_probe_has(p, HOST_PAGEMAP_EXCLUSIVE))
                        return scan ? "pages only read hold private zero-filled pages: ksmd reads them as "
                                      "zero pages to merge; zero pages the helper maps are recognised "
                                      "through PAGEMAP_SCAN" :
                                      "pages only read hold private zero-filled pages: ksmd reads them as "
                                      "zero pages to merge; zero pages the helper maps count as shared with "
                                      "other processes";
                return scan ? "the zero page is recognised through PAGEMAP_SCAN only" :
                              "the zero page is not recognised: pages mapping it count as shared with other "
                              "processes";
        case HOST_HUGE_ZERO_PAGE:
                return scan ? "huge zero pages are recognised through PAGEMAP_SCAN only" :
                              "pages of the huge zero page count as shared with other processes";
        case HOST_THP:
                if (p->answer[f] == HOST_ANSWER_NO)
                        return "the small pages of transparent huge pages read as shared: ksmd leaves them "
                               "alone";
                return "nothing changes: pages of huge pages are read like any other";
        case HOST_SOFT_DIRTY:
                return "every page is read again on each visit, as the kernel's KSM does (PAGEMAP_SCAN "
                       "cannot stand in: its written flag needs the scanned process's own userfaultfd)";
        case HOST_PAGEMAP_SCAN:
                return host_probe_has(p, HOST_PFN) ?
                               "pagemap is read entry by entry; the zero page is recognised by its PFN" :
                               "pagemap is read entry by entry; the zero page is not recognised";
        case HOST_PROCESS_VM_READV:
                if (p->pages_readable)
                        return "pages are read one per process_vm_readv call";
                return "no page can be read: nothing is hashed or merged; each region's note says why";
        default:
                return "";
        }
}
