/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hugepage-probe: how many 2 MiB huge pages the guest can still assemble,
 * for the huge-page benchmark (tests/vm/scenarios/bench-hugepages.sh).
 * Prints one line of key=value pairs.
 *
 *   hugepage-probe free
 *       From /proc/buddyinfo: free_2m, the free 2 MiB blocks (every free
 *       buddy of order 9 or more, counted in 2 MiB units), over all zones.
 *       From /proc/pagetypeinfo: blocks_total and blocks_<type> for each
 *       migrate type (unmovable, movable, reclaimable, highatomic, cma,
 *       isolate), the pageblocks of each type. From /proc/meminfo:
 *       mem_free_mib and mem_available_mib.
 *
 *   hugepage-probe thp MIB
 *       Maps MIB MiB of private anonymous memory with MADV_HUGEPAGE, writes
 *       one byte of each 4 KiB page, and prints thp_asked_mib, thp_huge_mib
 *       (AnonHugePages of the mapping in /proc/self/smaps: the huge pages
 *       the faults got), thp_fault_alloc and thp_fault_fallback (the change
 *       of those /proc/vmstat counters) and thp_seconds. Then unmaps it.
 *
 * Exit status 0, 1 on a failure to read or map, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#define HUGE_BYTES (UINT64_C(2) << 20)
#define PAGE_BYTES 4096u
#define HUGE_ORDER 9
#define MAX_ORDERS 16
#define MAX_TYPES 8

static int read_buddyinfo(uint64_t *ret_free_2m) {
        char line[512];
        uint64_t free_2m = 0;
        FILE *f = fopen("/proc/buddyinfo", "re");

        if (!f) {
                fprintf(stderr, "hugepage-probe: /proc/buddyinfo: %m\n");
                return -errno;
        }
        /* "Node 0, zone   Normal    c0 c1 ... cN": the counts of free buddies of each order. */
        while (fgets(line, sizeof(line), f)) {
                char *p = strstr(line, "zone");
                int order = 0;

                if (!p)
                        continue;
                p += strlen("zone");
                strtok(p, " \t\n");     /* the zone's name */
                for (char *w = strtok(NULL, " \t\n"); w && order < MAX_ORDERS;
                     w = strtok(NULL, " \t\n"), order++)
                        if (order >= HUGE_ORDER)
                                free_2m += strtoull(w, NULL, 10) << (order - HUGE_ORDER);
        }
        fclose(f);
        *ret_free_2m = free_2m;
        return 0;
}

/* The "Number of blocks type" table of /proc/pagetypeinfo, summed over nodes and zones. */
static int read_pagetypeinfo(char names[MAX_TYPES][32], uint64_t counts[MAX_TYPES], size_t *ret_n) {
        char line[512];
        size_t n = 0;
        bool in_table = false;
        FILE *f = fopen("/proc/pagetypeinfo", "re");

        if (!f) {
                fprintf(stderr, "hugepage-probe: /proc/pagetypeinfo: %m\n");
                return -errno;
        }
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "Number of blocks type", strlen("Number of blocks type")) == 0) {
                        n = 0;
                        for (char *w = strtok(line + strlen("Number of blocks type"), " \t\n");
                             w && n < MAX_TYPES;
                             w = strtok(NULL, " \t\n"), n++) {
                                snprintf(names[n], 32, "%s", w);
                                for (char *c = names[n]; *c; c++)
                                        if (*c >= 'A' && *c <= 'Z')
                                                *c = (char) (*c - 'A' + 'a');
                                counts[n] = 0;
                        }
                        in_table = true;
                        continue;
                }
                if (!in_table)
                        continue;
                if (strncmp(line, "Node", 4) != 0) {
                        in_table = false;
                        continue;
                }
                /* "Node 0, zone   Normal   c0 c1 ...": one count per type, in the header's order. */
                char *p = strstr(line, "zone");
                size_t i = 0;

                if (!p)
                        continue;
                strtok(p + strlen("zone"), " \t\n");
                for (char *w = strtok(NULL, " \t\n"); w && i < n; w = strtok(NULL, " \t\n"), i++)
                        counts[i] += strtoull(w, NULL, 10);
        }
        fclose(f);
        if (n == 0) {
                fprintf(stderr, "hugepage-probe: no block counts in /proc/pagetypeinfo\n");
                return -EINVAL;
        }
        *ret_n = n;
        return 0;
}

/* A "Key:  N kB" line of a /proc file, or -1. */
static int64_t read_kib(const char *path, const char *key) {
        char line[256];
        size_t k = strlen(key);
        int64_t v = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, k) == 0 && line[k] == ':') {
                        v = strtoll(line + k + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static int64_t read_vmstat(const char *key) {
        char line[256];
        size_t k = strlen(key);
        int64_t v = -1;
        FILE *f = fopen("/proc/vmstat", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, k) == 0 && line[k] == ' ') {
                        v = strtoll(line + k + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static int cmd_free(void) {
        char names[MAX_TYPES][32];
        uint64_t counts[MAX_TYPES], free_2m = 0, total = 0;
        size_t n = 0;
        int r;

        r = read_buddyinfo(&free_2m);
        if (r < 0)
                return 1;
        r = read_pagetypeinfo(names, counts, &n);
        if (r < 0)
                return 1;
        printf("free_2m=%" PRIu64, free_2m);
        for (size_t i = 0; i < n; i++) {
                printf(" blocks_%s=%" PRIu64, names[i], counts[i]);
                total += counts[i];
        }
        printf(" blocks_total=%" PRIu64 " mem_free_mib=%" PRId64 " mem_available_mib=%" PRId64 "\n", total,
               read_kib("/proc/meminfo", "MemFree") / 1024,
               read_kib("/proc/meminfo", "MemAvailable") / 1024);
        return 0;
}

/* AnonHugePages of the mapping that starts at @start, from /proc/self/smaps, in KiB; -1 if not found. */
static int64_t smaps_anon_huge_kib(uintptr_t start) {
        char line[512];
        bool in = false;
        int64_t v = -1;
        FILE *f = fopen("/proc/self/smaps", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                uintptr_t lo, hi;

                if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 && strchr(line, ' ') &&
                    strchr(line, '-') < strchr(line, ' ')) {
                        in = lo <= start && start < hi;
                        continue;
                }
                if (in && strncmp(line, "AnonHugePages:", 14) == 0) {
                        v = strtoll(line + 14, NULL, 10);
                        break;
                }
        }
        fclose(f);
        return v;
}

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmd_thp(const char *arg) {
        char *end;
        unsigned long long mib;
        uint64_t bytes;
        uint8_t *raw, *mem;
        int64_t alloc0, fallback0, huge_kib;
        double t0;

        errno = 0;
        mib = strtoull(arg, &end, 10);
        if (errno || !*arg || *end || mib == 0 || mib > (UINT64_C(1) << 20)) {
                fprintf(stderr, "hugepage-probe thp: MIB must be 1..1048576\n");
                return 2;
        }
        bytes = (uint64_t) mib << 20;
        /* One huge page more, so that the memory can start on a 2 MiB boundary. */
        raw = mmap(NULL, bytes + HUGE_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (raw == MAP_FAILED) {
                fprintf(stderr, "hugepage-probe: mmap of %llu MiB: %m\n", mib);
                return 1;
        }
        mem = (uint8_t *) (((uintptr_t) raw + HUGE_BYTES - 1) & ~(uintptr_t) (HUGE_BYTES - 1));
        if (madvise(mem, bytes, MADV_HUGEPAGE) < 0) {
                fprintf(stderr, "hugepage-probe: MADV_HUGEPAGE: %m\n");
                munmap(raw, bytes + HUGE_BYTES);
                return 1;
        }
        alloc0 = read_vmstat("thp_fault_alloc");
        fallback0 = read_vmstat("thp_fault_fallback");
        t0 = now_s();
        for (uint64_t off = 0; off < bytes; off += PAGE_BYTES)
                ((volatile uint8_t *) mem)[off] = 1;
        huge_kib = smaps_anon_huge_kib((uintptr_t) mem);
        printf("thp_asked_mib=%llu thp_huge_mib=%" PRId64 " thp_fault_alloc=%" PRId64
               " thp_fault_fallback=%" PRId64 " thp_seconds=%.1f\n",
               mib, huge_kib < 0 ? -1 : huge_kib / 1024, read_vmstat("thp_fault_alloc") - alloc0,
               read_vmstat("thp_fault_fallback") - fallback0, now_s() - t0);
        munmap(raw, bytes + HUGE_BYTES);
        return huge_kib < 0 ? 1 : 0;
}

int main(int argc, char *argv[]) {
        if (argc == 2 && strcmp(argv[1], "free") == 0)
                return cmd_free();
        if (argc == 3 && strcmp(argv[1], "thp") == 0)
                return cmd_thp(argv[2]);
        fprintf(stderr, "usage: hugepage-probe free | thp MIB\n");
        return 2;
}
