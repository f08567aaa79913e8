/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd-guest-pages PID_A PID_B: what two QEMU processes running the tiny
 * guest (tiny-guest.c) share, from their own /proc/PID/pagemap and memory,
 * not from ksmd. Root (page frame numbers need CAP_SYS_ADMIN).
 *
 * It walks every private anonymous mapping of both processes (no file name,
 * or [heap]), notes the page frame of each present page, and reads each
 * present page that is not the zero page: one that starts with the tiny
 * guest's tag is checked word by word. It prints one line:
 *
 *   present_a=N present_b=N zero_a=N zero_b=N saved=N shared_a=N shared_b=N same_frame=N
 *   unique_a=N unique_b=N unique_shared=N corrupt=N
 *
 *   present_*     present pages in those mappings
 *   zero_*        of them, mapped to the zero page (or the huge zero page)
 *   saved         present pages of both, less their distinct page frames, the zero page left out:
 *                 what sharing frames between and within the two saves, in pages
 *   shared_*      the tiny guest's shared pages found (intact), by index
 *   same_frame    shared indexes whose page is one frame in both processes
 *   unique_*      the guest's unique pages found (intact)
 *   unique_shared unique pages whose frame the other process maps too (must stay 0:
 *                 the guests' unique pages differ)
 *   corrupt       tagged pages whose words are not what the tiny guest wrote
 *
 * Exit status 0 when it could read both processes, 1 otherwise.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tiny-guest.h"

#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_PFN_MASK ((UINT64_C(1) << 55) - 1)
#define MAX_INDEX 65536u
#define ENTRIES_PER_READ 4096u

typedef struct Side {
        uint64_t present, zero;
        uint64_t shared_frame[MAX_INDEX]; /* frame of shared page i, 0 if not found */
        uint64_t unique_frame[MAX_INDEX];
        uint64_t n_shared, n_unique, corrupt;
        uint64_t *frames; /* every present frame but the zero page's */
        size_t n_frames, cap_frames;
} Side;

static uint64_t zero_pfn, huge_zero_pfn;

static int self_pfn(const void *p, uint64_t *ret) {
        uint64_t e;
        int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (pread(fd, &e, sizeof(e), (off_t) ((uintptr_t) p / TINY_PAGE_SIZE * sizeof(e))) != sizeof(e)) {
                close(fd);
                return -EIO;
        }
        close(fd);
        if (!(e & PM_PRESENT) || !(e & PM_PFN_MASK))
                return -EPERM;
        *ret = e & PM_PFN_MASK;
        return 0;
}

/* The frames of the zero page and of the huge zero page (0 if there is none), as read faults map them. */
static int find_zero_pfns(void) {
        const size_t huge = 2u << 20;
        volatile const char *p;
        uint8_t *area, *aligned;
        int r;

        area = mmap(NULL, TINY_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED)
                return -errno;
        (void) madvise(area, TINY_PAGE_SIZE, MADV_NOHUGEPAGE);
        p = (volatile const char *) area;
        (void) *p;
        r = self_pfn(area, &zero_pfn);
        munmap(area, TINY_PAGE_SIZE);
        if (r < 0)
                return r;
        area = mmap(NULL, 2 * huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED)
                return -errno;
        aligned = (uint8_t *) (((uintptr_t) area + huge - 1) & ~(uintptr_t) (huge - 1));
        (void) madvise(aligned, huge, MADV_HUGEPAGE);
        p = (volatile const char *) aligned;
        (void) *p;
        if (self_pfn(aligned, &huge_zero_pfn) < 0 || huge_zero_pfn == zero_pfn)
                huge_zero_pfn = 0;
        munmap(area, 2 * huge);
        return 0;
}

static bool is_zero_pfn(uint64_t pfn) {
        return pfn == zero_pfn || (huge_zero_pfn && pfn >= huge_zero_pfn && pfn < huge_zero_pfn + 512);
}

static void add_frame(Side *s, uint64_t pfn) {
        if (s->n_frames == s->cap_frames) {
                s->cap_frames = s->cap_frames ? 2 * s->cap_frames : 65536;
                s->frames = realloc(s->frames, s->cap_frames * sizeof(*s->frames));
                if (!s->frames) {
                        fputs("ksmd-guest-pages: out of memory\n", stderr);
                        exit(1);
                }
        }
        s->frames[s->n_frames++] = pfn;
}

static void check_page(Side *s, const uint32_t *w, uint64_t pfn) {
        uint64_t *slot;
        uint32_t seed;

        if (w[0] != TINY_MAGIC || (w[1] != TINY_KIND_SHARED && w[1] != TINY_KIND_UNIQUE) ||
            w[2] >= MAX_INDEX)
                return;
        seed = w[3];
        for (uint32_t i = 4; i < TINY_PAGE_WORDS; i++)
                if (w[i] != tiny_word(w[1], w[2], seed, i)) {
                        s->corrupt++;
                        return;
                }
        if ((w[1] == TINY_KIND_SHARED) != (seed == 0)) {
                s->corrupt++;
                return;
        }
        slot = w[1] == TINY_KIND_SHARED ? &s->shared_frame[w[2]] : &s->unique_frame[w[2]];
        if (*slot == 0)
                (*(w[1] == TINY_KIND_SHARED ? &s->n_shared : &s->n_unique))++;
        *slot = pfn;
}

static int read_side(pid_t pid, Side *s) {
        char path[64], line[4096];
        static uint64_t entries[ENTRIES_PER_READ];
        uint32_t page[TINY_PAGE_WORDS];
        FILE *maps;
        int pagemap, mem, r = 0;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        maps = fopen(path, "re");
        snprintf(path, sizeof(path), "/proc/%d/pagemap", (int) pid);
        pagemap = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/proc/%d/mem", (int) pid);
        mem = open(path, O_RDONLY | O_CLOEXEC);
        if (!maps || pagemap < 0 || mem < 0) {
                fprintf(stderr, "ksmd-guest-pages: cannot open /proc/%d: %m\n", (int) pid);
                r = -1;
                goto out;
        }
        while (fgets(line, sizeof(line), maps)) {
                unsigned long start, end;
                char perms[8], name[4096] = "";

                if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095[^\n]", &start, &end, perms, name) < 3)
                        continue;
                if (perms[0] != 'r' || perms[3] != 'p' || (name[0] && strcmp(name, "[heap]") != 0))
                        continue;
                for (unsigned long a = start, k = 0, n = 0; a < end; a += TINY_PAGE_SIZE, k++) {
                        uint64_t pfn;
                        ssize_t got;

                        if (k == n) {
                                /* The next batch of entries, up to the end of the mapping. */
                                n = (end - a) / TINY_PAGE_SIZE;
                                if (n > ENTRIES_PER_READ)
                                        n = ENTRIES_PER_READ;
                                got = pread(pagemap, entries, n * sizeof(uint64_t),
                                            (off_t) (a / TINY_PAGE_SIZE * sizeof(uint64_t)));
                                if (got <= 0)
                                        break;
                                n = (unsigned long) got / sizeof(uint64_t);
                                k = 0;
                        }
                        if (!(entries[k] & PM_PRESENT))
                                continue;
                        pfn = entries[k] & PM_PFN_MASK;
                        if (pfn == 0) {
                                fputs("ksmd-guest-pages: pagemap shows no page frames (not root?)\n",
                                      stderr);
                                r = -1;
                                goto out;
                        }
                        s->present++;
                        if (is_zero_pfn(pfn)) {
                                s->zero++;
                                continue;
                        }
                        add_frame(s, pfn);
                        if (pread(mem, page, sizeof(page), (off_t) a) == sizeof(page))
                                check_page(s, page, pfn);
                }
        }
out:
        if (maps)
                fclose(maps);
        if (pagemap >= 0)
                close(pagemap);
        if (mem >= 0)
                close(mem);
        return r;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static bool has_frame(const Side *s, uint64_t pfn) {
        return bsearch(&pfn, s->frames, s->n_frames, sizeof(pfn), cmp_u64) != NULL;
}

static uint64_t distinct(const uint64_t *v, size_t n) {
        uint64_t d = 0;

        for (size_t i = 0; i < n; i++)
                d += i == 0 || v[i] != v[i - 1];
        return d;
}

int main(int argc, char **argv) {
        static Side a, b;
        uint64_t same = 0, unique_shared = 0, saved, d;
        uint64_t *all;

        if (argc != 3) {
                fputs("usage: ksmd-guest-pages PID_A PID_B\n", stderr);
                return 1;
        }
        if (find_zero_pfns() < 0) {
                fputs("ksmd-guest-pages: cannot find the zero page's frame (not root?)\n", stderr);
                return 1;
        }
        if (read_side(atoi(argv[1]), &a) < 0 || read_side(atoi(argv[2]), &b) < 0)
                return 1;
        qsort(a.frames, a.n_frames, sizeof(uint64_t), cmp_u64);
        qsort(b.frames, b.n_frames, sizeof(uint64_t), cmp_u64);

        for (uint32_t i = 0; i < MAX_INDEX; i++) {
                same += a.shared_frame[i] && a.shared_frame[i] == b.shared_frame[i];
                unique_shared += a.unique_frame[i] && has_frame(&b, a.unique_frame[i]);
                unique_shared += b.unique_frame[i] && has_frame(&a, b.unique_frame[i]);
        }
        all = malloc((a.n_frames + b.n_frames + 1) * sizeof(uint64_t));
        if (!all) {
                fputs("ksmd-guest-pages: out of memory\n", stderr);
                return 1;
        }
        if (a.n_frames)
                memcpy(all, a.frames, a.n_frames * sizeof(uint64_t));
        if (b.n_frames)
                memcpy(all + a.n_frames, b.frames, b.n_frames * sizeof(uint64_t));
        qsort(all, a.n_frames + b.n_frames, sizeof(uint64_t), cmp_u64);
        d = distinct(all, a.n_frames + b.n_frames);
        saved = a.n_frames + b.n_frames - d;
        printf("present_a=%" PRIu64 " present_b=%" PRIu64 " zero_a=%" PRIu64 " zero_b=%" PRIu64
               " saved=%" PRIu64 " shared_a=%" PRIu64 " shared_b=%" PRIu64 " same_frame=%" PRIu64
               " unique_a=%" PRIu64 " unique_b=%" PRIu64 " unique_shared=%" PRIu64 " corrupt=%" PRIu64 "\n",
               a.present, b.present, a.zero, b.zero, saved, a.n_shared, b.n_shared, same, a.n_unique,
               b.n_unique, unique_shared, a.corrupt + b.corrupt);
        free(all);
        free(a.frames);
        free(b.frames);
        return 0;
}
