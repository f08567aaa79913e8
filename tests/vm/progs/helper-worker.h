/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-worker.h: worker processes for the ksmd_helper VM tests. A worker
 * owns one private anonymous region and does what the test process tells it
 * over a pipe, so that merges happen between genuinely separate processes.
 * Page i of a region holds pattern(seed, i) in every 8-byte word.
 */
#ifndef HELPER_WORKER_H
#define HELPER_WORKER_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <linux/vfio.h>
#include <dirent.h>

#define PG 4096UL

/* W_RESERVE: the reservation, and its windows of RES_WINDOW pages at these page indices. */
#define RES_BYTES (64ULL << 40)
#define RES_WINDOW 64UL
#define RES_WINDOWS 3
static const size_t res_window_page[RES_WINDOWS] = {
        0, (size_t) (RES_BYTES / PG / 2), (size_t) (RES_BYTES / PG) - RES_WINDOW,
};

enum {
        W_FILL,         /* a..b: pages, val: seed (0: zeros) */
        W_FILL_CONST,   /* a..b: every word of every page = val */
        W_CHECK,        /* a..b, val: seed; reply: pages that differ */
        W_CHECK_OR_ZERO,/* as CHECK, zero pages accepted */
        W_CHECK_CONST,  /* a..b, val: every word; reply: pages that differ */
        W_MLOCK,        /* a..b; reply: errno */
        W_MUNLOCK,
        W_DONTNEED,
        W_FREE,
        W_PAGEOUT,      /* a..b: push to swap (MADV_PAGEOUT) */
        W_HOLD_FORK,    /* fork a child that only waits, sharing every page; reply once it runs */
        W_HOLD_RELEASE, /* end that child */
        W_MUNMAP,
        W_MREMAP,       /* move the whole region; reply: 0 or errno */
        W_FORK_CHECK,   /* a..b, val: seed: a child checks, writes, checks; reply: failures */
        W_ADDR,         /* reply: region address */
        W_SETUID,       /* val: become this uid and gid, stay dumpable; reply: errno */
        W_NO_PTRACE,    /* drop CAP_SYS_PTRACE; val: stay dumpable (1) or not (0); reply: errno */
        W_UFFD_WP,      /* a..b: register with userfaultfd for write protection and protect; reply: errno */
        W_UFFD_CLOSE,   /* close that userfaultfd (unregisters the region) */
        W_RESERVE,      /* val: seed: the region becomes a 64 TiB PROT_NONE reservation with RES_WINDOWS
                         * read-write windows, window page j filled as page j of seed; reply: its address */
        W_CHECK_RESERVE,/* val: seed; reply: window pages that differ */
        W_PIN,          /* a..b: register as io_uring fixed buffers (a long-term FOLL_PIN); reply: errno */
        W_UNPIN,        /* close that io_uring: the kernel releases the pins soon after */
        W_BIND,         /* val: node: bind the region to that NUMA node, moving its pages; reply: errno */
        W_VFIO_OPEN,    /* val: IOMMU group of QEMU's edu device, bound to vfio-pci; reply: errno */
        W_VFIO_MAP,     /* a..b at IOVA W_IOVA_BASE + a * PG; val: VFIO_DMA_MAP_FLAG_* (READ alone: a
                         * read-only long-term pin); reply: errno */
        W_DMA_COPY,     /* the device copies page a to page b by DMA (through its buffer); reply: errno */
        W_EXIT,
};

typedef struct {
        int op;
        size_t a, b;
        uint64_t val;
} WCmd;

typedef struct {
        pid_t pid;
        int pidfd;      /* the worker's pidfd, what requests name it by */
        int to, from;
        char *base;     /* the worker's region address (valid in the worker) */
        size_t pages;
} Worker;

static inline uint64_t w_pattern(uint64_t seed, size_t i) {
        return seed ? seed * 0x9e3779b97f4a7c15ULL + i : 0;
}

static inline void w_fill(char *p, uint64_t v) {
        for (size_t k = 0; k < PG / 8; k++)
                ((uint64_t *) p)[k] = v;
}

static inline int w_page_is(const char *p, uint64_t v) {
        for (size_t k = 0; k < PG / 8; k++)
                if (((const uint64_t *) p)[k] != v)
                        return 0;
        return 1;
}

/* Drops one capability from the effective, permitted and inheritable sets; 0 or errno. */
static inline int w_drop_cap(int cap) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];

        if (syscall(SYS_capget, &h, d) < 0)
                return errno;
        d[cap / 32].effective &= ~(1U << (cap % 32));
        d[cap / 32].permitted &= ~(1U << (cap % 32));
        d[cap / 32].inheritable &= ~(1U << (cap % 32));
        return syscall(SYS_capset, &h, d) < 0 ? errno : 0;
}

static inline long w_check(char *base, size_t a, size_t b, uint64_t seed, int zero_ok) {
        long bad = 0;

        for (size_t i = a; i < b; i++)
                if (!w_page_is(base + i * PG, w_pattern(seed, i)) &&
                    !(zero_ok && w_page_is(base + i * PG, 0)))
                        bad++;
        return bad;
}

/* userfaultfd write protection of [p, p + len): the userfaultfd, or -errno. */
static inline int w_uffd_wp(char *p, size_t len) {
        struct uffdio_api api = { .api = UFFD_API };
        struct uffdio_register reg = {
                .range = { .start = (uintptr_t) p, .len = len },
                .mode = UFFDIO_REGISTER_MODE_WP,
        };
        struct uffdio_writeprotect wp = {
                .range = { .start = (uintptr_t) p, .len = len },
                .mode = UFFDIO_WRITEPROTECT_MODE_WP,
        };
        int fd = (int) syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ||
            ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/* An io_uring with [p, p + len) registered as one fixed buffer: the ring's fd, or -errno. */
static inline int w_pin(char *p, size_t len) {
        struct io_uring_params params = {};
        struct iovec iov = { .iov_base = p, .iov_len = len };
        int fd = (int) syscall(SYS_io_uring_setup, 4, &params);

        if (fd < 0)
                return -errno;
        if (syscall(SYS_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/*
 * QEMU's "edu" PCI device (docs/specs/edu.rst) through vfio: a DMA engine with
 * a 4 KiB buffer at 0x40000, programmed through BAR 0, which reads and writes
 * guest memory by IOVA through the (emulated) IOMMU, as a passed-through
 * device would.
 */
typedef struct {
        int container, group, device;
        volatile uint8_t *bar;
} WVfio;

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUFFER 0x40000
/* Page i of a region is at this IOVA plus i pages (below the edu device's 28-bit DMA mask). */
#define W_IOVA_BASE 0x100000UL

static inline int w_vfio_open(WVfio *v, unsigned group) {
        struct vfio_group_status status = { .argsz = sizeof(status) };
        struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
        struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
        char path[64], name[256] = "";
        struct dirent *de;
        uint16_t command;
        void *map;
        DIR *d;

        snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%u/devices", group);
        d = opendir(path);
        if (!d)
                return errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        snprintf(name, sizeof(name), "%s", de->d_name);
        closedir(d);
        snprintf(path, sizeof(path), "/dev/vfio/%u", group);
        v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        v->group = open(path, O_RDWR | O_CLOEXEC);
        if (!name[0] || v->container < 0 || v->group < 0 ||
            ioctl(v->group, VFIO_GROUP_GET_STATUS, &status) < 0 ||
            !(status.flags & VFIO_GROUP_FLAGS_VIABLE) ||
            ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0 ||
            ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                return errno ?: EINVAL;
        v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, name);
        if (v->device < 0 || ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0 ||
            ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
                return errno;
        map = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t) bar.offset);
        if (map == MAP_FAILED)
                return errno;
        v->bar = map;
        /* Bus mastering, or the device's DMA goes nowhere. */
        if (pread(v->device, &command, sizeof(command), (off_t) cfg.offset + 4) != sizeof(command))
                return EIO;
        command |= 0x4;
        if (pwrite(v->device, &command, sizeof(command), (off_t) cfg.offset + 4) != sizeof(command))
                return EIO;
        return 0;
}

static inline int w_vfio_map(WVfio *v, char *p, uint64_t iova, size_t len, uint32_t flags) {
        struct vfio_iommu_type1_dma_map map = {
                .argsz = sizeof(map), .flags = flags, .vaddr = (uintptr_t) p, .iova = iova, .size = len,
        };

        return ioctl(v->container, VFIO_IOMMU_MAP_DMA, &map) < 0 ? errno : 0;
}

/*
 * One DMA transfer of the edu device: half a page, since QEMU 7.2's device
 * refuses a transfer that reaches the end of its buffer. 0 once it is done,
 * ETIMEDOUT after 10 s.
 */
static inline int w_edu_dma(WVfio *v, uint64_t src, uint64_t dst, uint64_t cmd) {
        if (!v->bar)
                return ENODEV;
        *(volatile uint64_t *) (v->bar + EDU_DMA_SRC) = src;
        *(volatile uint64_t *) (v->bar + EDU_DMA_DST) = dst;
        *(volatile uint64_t *) (v->bar + EDU_DMA_COUNT) = PG / 2;
        *(volatile uint64_t *) (v->bar + EDU_DMA_CMD) = cmd | 1;
        for (int i = 0; i < 10000; i++) {
                if (!(*(volatile uint64_t *) (v->bar + EDU_DMA_CMD) & 1))
                        return 0;
                usleep(1000);
        }
        return ETIMEDOUT;
}

/* The 64 TiB reservation of W_RESERVE, windows filled; NULL on failure. */
static inline char *w_reserve(uint64_t seed) {
        char *res = mmap(NULL, RES_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

        if (res == MAP_FAILED)
                return NULL;
        for (int w = 0; w < RES_WINDOWS; w++) {
                char *win = res + res_window_page[w] * PG;

                if (mprotect(win, RES_WINDOW * PG, PROT_READ | PROT_WRITE) < 0 ||
                    madvise(win, RES_WINDOW * PG, MADV_NOHUGEPAGE) < 0)
                        return NULL;
                for (size_t j = 0; j < RES_WINDOW; j++)
                        w_fill(win + j * PG, w_pattern(seed, j));
        }
        return res;
}

static inline long w_check_reserve(const char *res, uint64_t seed) {
        long bad = 0;

        for (int w = 0; w < RES_WINDOWS; w++)
                for (size_t j = 0; j < RES_WINDOW; j++)
                        if (!w_page_is(res + (res_window_page[w] + j) * PG, w_pattern(seed, j)))
                                bad++;
        return bad;
}

static inline void w_serve(int in, int out, size_t pages, int thp) {
        size_t len = pages * PG;
        char *raw, *base;
        pid_t holder = 0;
        int uffd = -1, ring = -1;
        WVfio vfio = { .container = -1, .group = -1, .device = -1 };
        WCmd c;

        /* Align to 2 MiB so THP tests get huge pages. */
        raw = mmap(NULL, len + (2UL << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
                _exit(2);
        base = (char *) (((uintptr_t) raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
        madvise(base, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);

        while (read(in, &c, sizeof(c)) == sizeof(c)) {
                long r = 0;

                switch (c.op) {
                case W_FILL:
                        for (size_t i = c.a; i < c.b; i++)
                                w_fill(base + i * PG, w_pattern(c.val, i));
                        break;
                case W_FILL_CONST:
                        for (size_t i = c.a; i < c.b; i++)
                                w_fill(base + i * PG, c.val);
                        break;
                case W_CHECK:
                case W_CHECK_OR_ZERO:
                        r = w_check(base, c.a, c.b, c.val, c.op == W_CHECK_OR_ZERO);
                        break;
                case W_CHECK_CONST:
                        for (size_t i = c.a; i < c.b; i++)
                                r += !w_page_is(base + i * PG, c.val);
                        break;
                case W_MLOCK:
                        r = mlock(base + c.a * PG, (c.b - c.a) * PG) ? errno : 0;
                        break;
                case W_MUNLOCK:
                        r = munlock(base + c.a * PG, (c.b - c.a) * PG) ? errno : 0;
                        break;
                case W_DONTNEED:
                        r = madvise(base + c.a * PG, (c.b - c.a) * PG, MADV_DONTNEED) ? errno : 0;
                        break;
                case W_FREE:
                        r = madvise(base + c.a * PG, (c.b - c.a) * PG, MADV_FREE) ? errno : 0;
                        break;
                case W_PAGEOUT:
                        r = madvise(base + c.a * PG, (c.b - c.a) * PG, 21 /* MADV_PAGEOUT */) ? errno : 0;
                        break;
                case W_HOLD_FORK: {
                        /* Replies once the child has run: its own stack writes are done by then. */
                        int ready[2];
                        char b = 0;

                        if (pipe(ready) < 0) {
                                r = errno;
                                break;
                        }
                        holder = fork();
                        if (holder == 0) {
                                if (write(ready[1], &b, 1) != 1)
                                        _exit(1);
                                for (;;)
                                        pause();
                        }
                        r = holder < 0 ? errno : read(ready[0], &b, 1) == 1 ? 0 : EIO;
                        close(ready[0]);
                        close(ready[1]);
                        break;
                }
                case W_HOLD_RELEASE:
                        if (holder > 0) {
                                kill(holder, SIGKILL);
                                waitpid(holder, NULL, 0);
                        }
                        holder = 0;
                        break;
                case W_MUNMAP:
                        r = munmap(base + c.a * PG, (c.b - c.a) * PG) ? errno : 0;
                        break;
                case W_MREMAP: {
                        /* Grow and force a move. */
                        char *n = mremap(base, len, len + (4UL << 20), MREMAP_MAYMOVE);

                        if (n == MAP_FAILED) {
                                r = errno;
                        } else {
                                char *blocker = mmap(NULL, len + (8UL << 20), PROT_NONE,
                                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                                char *m = mremap(n, len + (4UL << 20), len + (4UL << 20),
                                                 MREMAP_MAYMOVE | MREMAP_FIXED, blocker);

                                base = m == MAP_FAILED ? n : m;
                                r = m == MAP_FAILED ? errno : 0;
                        }
                        break;
                }
                case W_FORK_CHECK: {
                        pid_t p = fork();
                        int st;

                        if (p == 0) {
                                long bad = w_check(base, c.a, c.b, c.val, 0);

                                for (size_t i = c.a; i < c.b; i++)
                                        w_fill(base + i * PG, w_pattern(c.val + 1, i));
                                bad += w_check(base, c.a, c.b, c.val + 1, 0);
                                _exit(bad ? 1 : 0);
                        }
                        waitpid(p, &st, 0);
                        r = (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : 1;
                        r += w_check(base, c.a, c.b, c.val, 0);
                        break;
                }
                case W_ADDR:
                        r = (long) (uintptr_t) base;
                        break;
                case W_SETUID:
                        /* A change of uid clears the dumpable flag: set it again. */
                        r = setgid((gid_t) c.val) < 0 || setuid((uid_t) c.val) < 0 ||
                            prctl(PR_SET_DUMPABLE, 1) < 0 ? errno : 0;
                        break;
                case W_NO_PTRACE:
                        r = w_drop_cap(CAP_SYS_PTRACE);
                        if (!r && prctl(PR_SET_DUMPABLE, (int) c.val) < 0)
                                r = errno;
                        break;
                case W_UFFD_WP:
                        uffd = w_uffd_wp(base + c.a * PG, (c.b - c.a) * PG);
                        r = uffd < 0 ? -uffd : 0;
                        break;
                case W_UFFD_CLOSE:
                        if (uffd >= 0)
                                close(uffd);
                        uffd = -1;
                        break;
                case W_RESERVE: {
                        char *res = w_reserve(c.val);

                        r = res ? (long) (uintptr_t) res : 0;
                        if (res)
                                base = res;
                        break;
                }
                case W_CHECK_RESERVE:
                        r = w_check_reserve(base, c.val);
                        break;
                case W_PIN:
                        ring = w_pin(base + c.a * PG, (c.b - c.a) * PG);
                        r = ring < 0 ? -ring : 0;
                        break;
                case W_UNPIN:
                        if (ring >= 0)
                                close(ring);
                        ring = -1;
                        break;
                case W_VFIO_OPEN:
                        r = w_vfio_open(&vfio, (unsigned) c.val);
                        break;
                case W_VFIO_MAP:
                        r = w_vfio_map(&vfio, base + c.a * PG, W_IOVA_BASE + c.a * PG, (c.b - c.a) * PG,
                                       (uint32_t) c.val);
                        break;
                case W_DMA_COPY:
                        /* RAM to the device's buffer, then back to RAM, by halves. */
                        for (size_t half = 0; half < PG && !r; half += PG / 2) {
                                r = w_edu_dma(&vfio, W_IOVA_BASE + c.a * PG + half, EDU_BUFFER, 0);
                                if (!r)
                                        r = w_edu_dma(&vfio, EDU_BUFFER, W_IOVA_BASE + c.b * PG + half, 2);
                        }
                        break;
                case W_BIND: {
                        unsigned long mask = 1UL << c.val;

                        r = syscall(SYS_mbind, base, len, MPOL_BIND, &mask, 8 * sizeof(mask),
                                    MPOL_MF_MOVE | MPOL_MF_STRICT) < 0 ? errno : 0;
                        break;
                }
                case W_EXIT:
                        _exit(0);
                }
                if (write(out, &r, sizeof(r)) != sizeof(r))
                        _exit(3);
        }
        _exit(0);
}

static inline int worker_start(Worker *w, size_t pages, int thp) {
        int p1[2], p2[2];

        if (pipe(p1) < 0 || pipe(p2) < 0)
                return -errno;
        w->pid = fork();
        if (w->pid < 0)
                return -errno;
        if (w->pid == 0) {
                close(p1[1]);
                close(p2[0]);
                w_serve(p1[0], p2[1], pages, thp);
        }
        close(p1[0]);
        close(p2[1]);
        w->to = p1[1];
        w->from = p2[0];
        w->pages = pages;
        w->pidfd = (int) syscall(__NR_pidfd_open, w->pid, 0);
        return w->pidfd < 0 ? -errno : 0;
}

static inline long worker_do(Worker *w, int op, size_t a, size_t b, uint64_t val) {
        WCmd c = { .op = op, .a = a, .b = b, .val = val };
        long r;

        if (write(w->to, &c, sizeof(c)) != sizeof(c))
                return -1000;
        if (read(w->from, &r, sizeof(r)) != sizeof(r))
                return -1001;
        if (op == W_ADDR)
                w->base = (char *) (uintptr_t) r;
        return r;
}

static inline void worker_stop(Worker *w) {
        WCmd c = { .op = W_EXIT };

        if (w->pid <= 0)
                return;
        if (write(w->to, &c, sizeof(c)) != sizeof(c))
                kill(w->pid, SIGKILL);
        waitpid(w->pid, NULL, 0);
        close(w->to);
        close(w->from);
        if (w->pidfd >= 0)
                close(w->pidfd);
        w->pidfd = -1;
        w->pid = 0;
}

#endif
