/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-client-test: the daemon's netlink client (ksmd/helper-client.c)
 * against the real module. Each step is a TAP result: batched MERGE with a
 * source page and with a handle, MERGE_ZERO, DIFFERS, copy-on-write after a
 * merge, GET_PAGES mapcounts, UNMERGE, and INFO counters, with processes named
 * by pidfd.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper-client.h"
#include "pidfd-util.h"
#include "tap.h"

#define N_PAGES 64


static void fill(uint8_t *p, unsigned seed) {
        for (size_t i = 0; i < 4096; i++)
                p[i] = (uint8_t) (seed * 131 + i * 7 + 1);
}

static bool page_is(const uint8_t *p, unsigned seed) {
        uint8_t want[4096];

        fill(want, seed);
        return memcmp(p, want, sizeof(want)) == 0;
}

/* The mapcount of the shared page with this handle, or -1 if the module does not list it. */
static long mapcount_of(const HelperPage *pages, size_t n, uint64_t handle) {
        for (size_t i = 0; i < n; i++)
                if (pages[i].handle == handle)
                        return pages[i].mapcount;
        return -1;
}

int main(void) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;
        HelperMergeItem items[N_PAGES];
        HelperMergeResult res[N_PAGES];
        HelperPage *pages = NULL;
        size_t n_pages = 0;
        HelperInfo info;
        uint64_t count = 0, handle;
        int self = pidfd_open_pid(getpid()), devnull, gone;
        uint8_t *a, *b, *z;
        pid_t child;
        bool all;
        int r;

        r = helper_client_new(&c);
        tap(r == 0, "client connects to the ksmd_helper family");
        if (r < 0 || self < 0)
                goto finish;

        /* Two areas with identical contents page by page, and one all-zero area. */
        a = mmap(NULL, N_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        b = mmap(NULL, N_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        z = mmap(NULL, N_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a == MAP_FAILED || b == MAP_FAILED || z == MAP_FAILED)
                return 2;
        (void) madvise(a, N_PAGES * 4096, MADV_NOHUGEPAGE);
        (void) madvise(b, N_PAGES * 4096, MADV_NOHUGEPAGE);
        (void) madvise(z, N_PAGES * 4096, MADV_NOHUGEPAGE);
        for (unsigned i = 0; i < N_PAGES; i++) {
                fill(a + i * 4096, i);
                fill(b + i * 4096, i);
                memset(z + i * 4096, 0, 4096);
                z[i * 4096] = 1; /* present... */
                z[i * 4096] = 0; /* ...and zero again */
        }

        for (unsigned i = 0; i < N_PAGES; i++)
                items[i] = (HelperMergeItem) {
                        .pidfd = self, .addr = (uintptr_t) (b + i * 4096),
                        .src_pidfd = self, .src_addr = (uintptr_t) (a + i * 4096),
                };
        /* The per-CPU LRU batch may hold a fresh page for a moment: retry busy ones. */
        for (int attempt = 0; attempt < 5; attempt++) {
                r = helper_client_merge(c, false, items, N_PAGES, res);
                if (r < 0)
                        break;
                all = true;
                for (unsigned i = 0; i < N_PAGES; i++)
                        all = all && (res[i].result == KSMD_HELPER_RESULT_MERGED ||
                                      res[i].result == KSMD_HELPER_RESULT_ALREADY);
                if (all)
                        break;
                usleep(100000);
        }
        tap(r == 0, "a batch of 64 MERGE items is answered item by item");
        all = r == 0;
        for (unsigned i = 0; r == 0 && i < N_PAGES; i++) {
                if (res[i].result != KSMD_HELPER_RESULT_MERGED &&
                    res[i].result != KSMD_HELPER_RESULT_ALREADY) {
                        printf("# item %u: %s (%s)\n", i, helper_result_to_string(res[i].result),
                               helper_reason_to_string(res[i].reason));
                        all = false;
                }
                all = all && res[i].handle != 0;
        }
        tap(all, "every identical pair merged, with a handle");
        handle = res[0].handle;

        all = true;
        for (unsigned i = 0; i < N_PAGES; i++)
                all = all && page_is(a + i * 4096, i) && page_is(b + i * 4096, i);
        tap(all, "both areas read their own contents after the merge");

        r = helper_client_get_pages(c, &pages, &n_pages);
        tap(r == 0 && n_pages >= N_PAGES, "GET_PAGES lists the shared pages");
        tap(r == 0 && mapcount_of(pages, n_pages, handle) == 2,
            "a shared page is mapped twice");
        free(pages);
        pages = NULL;

        /* Copy-on-write: a write to one side leaves the other alone. */
        a[0] ^= 0xff;
        tap(!page_is(a, 0) && page_is(b, 0), "a write after the merge stays private to its page");
        r = helper_client_get_pages(c, &pages, &n_pages);
        tap(r == 0 && mapcount_of(pages, n_pages, handle) == 1,
            "after copy-on-write the shared page is mapped once");
        free(pages);
        pages = NULL;
        a[0] ^= 0xff;

        /* A handle names the shared page: page 0 of a joins it again. */
        items[0] = (HelperMergeItem) { .pidfd = self, .addr = (uintptr_t) a, .handle = handle };
        for (int attempt = 0; attempt < 5; attempt++) {
                r = helper_client_merge(c, false, items, 1, res);
                if (r < 0 || res[0].result != KSMD_HELPER_RESULT_BUSY)
                        break;
                usleep(100000);
        }
        if (r == 0)
                printf("# merge by handle: %s\n", helper_result_to_string(res[0].result));
        tap(r == 0 && res[0].result == KSMD_HELPER_RESULT_MERGED && res[0].handle == handle,
            "MERGE by handle joins an existing shared page");

        /* Different bytes are refused. */
        items[0] = (HelperMergeItem) {
                .pidfd = self, .addr = (uintptr_t) (a + 4096),
                .src_pidfd = self, .src_addr = (uintptr_t) (z),
        };
        r = helper_client_merge(c, false, items, 1, res);
        tap(r == 0 && res[0].result == KSMD_HELPER_RESULT_DIFFERS,
            "pages with different bytes are not merged");
        tap(page_is(a + 4096, 1), "the refused page keeps its contents");

        /* Zero pages become the kernel's zero page. */
        for (unsigned i = 0; i < N_PAGES; i++)
                items[i] = (HelperMergeItem) { .pidfd = self, .addr = (uintptr_t) (z + i * 4096) };
        for (int attempt = 0; attempt < 5; attempt++) {
                r = helper_client_merge(c, true, items, N_PAGES, res);
                all = r == 0;
                for (unsigned i = 0; r == 0 && i < N_PAGES; i++)
                        all = all && (res[i].result == KSMD_HELPER_RESULT_MERGED ||
                                      res[i].result == KSMD_HELPER_RESULT_ALREADY);
                if (all || r < 0)
                        break;
                usleep(100000);
        }
        tap(all, "64 zero pages are replaced by the zero page");
        all = true;
        for (unsigned i = 0; i < N_PAGES * 4096; i++)
                all = all && z[i] == 0;
        tap(all, "zero-merged pages read as zeros");
        z[5] = 42;
        tap(z[5] == 42 && z[4096] == 0, "a write to a zero-merged page is private");

        /* Back out: b becomes private again. */
        r = helper_client_unmerge(c, self, (uintptr_t) b, N_PAGES * 4096, &count);
        printf("# unmerge: r=%d count=%llu\n", r, (unsigned long long) count);
        tap(r == 0 && count == N_PAGES, "UNMERGE makes every shared page of the range private");
        all = true;
        for (unsigned i = 0; i < N_PAGES; i++)
                all = all && page_is(b + i * 4096, i);
        tap(all, "unmerged pages keep their contents");

        child = fork();
        if (child == 0)
                _exit(0);
        gone = pidfd_open_pid(child);
        (void) waitpid(child, NULL, 0);
        r = helper_client_unmerge(c, gone, (uintptr_t) b, 4096, &count);
        tap(r == -ESRCH, "UNMERGE by the pidfd of a process that exited fails with ESRCH (%d)", r);
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        r = helper_client_unmerge(c, devnull, (uintptr_t) b, 4096, &count);
        tap(r == -EBADF, "UNMERGE by an fd that is not a pidfd fails with EBADF (%d)", r);
        items[0] = (HelperMergeItem) { .pidfd = self, .addr = (uintptr_t) a, .src_pidfd = gone,
                                       .src_addr = (uintptr_t) b };
        items[1] = (HelperMergeItem) { .pidfd = devnull, .addr = (uintptr_t) a, .handle = handle };
        r = helper_client_merge(c, false, items, 2, res);
        tap(r == 0 && res[0].result == KSMD_HELPER_RESULT_NO_PROCESS &&
            res[1].result == KSMD_HELPER_RESULT_BAD_PIDFD,
            "MERGE items naming an exited process or a non-pidfd get no-process and bad-pidfd");

        r = helper_client_info(c, &info);
        tap(r == 0 && info.stats[KSMD_HELPER_STAT_MERGED] >= N_PAGES &&
            info.stats[KSMD_HELPER_STAT_MERGED_ZERO] >= N_PAGES &&
            info.stats[KSMD_HELPER_STAT_DIFFERS] >= 1 &&
            info.stats[KSMD_HELPER_STAT_UNMERGED] >= N_PAGES &&
            info.stats[KSMD_HELPER_STAT_DENIED] >= 1,
            "INFO counts merges, zero merges, refusals, unmerges and bad pidfds");

        munmap(a, N_PAGES * 4096);
        munmap(b, N_PAGES * 4096);
        munmap(z, N_PAGES * 4096);
        r = helper_client_get_pages(c, &pages, &n_pages);
        tap(r == 0 && n_pages == 0, "after unmapping, the module owns no shared page");
        if (r == 0 && n_pages)
                printf("# %zu pages still owned\n", n_pages);
        free(pages);

finish:
        return tap_end();
}
