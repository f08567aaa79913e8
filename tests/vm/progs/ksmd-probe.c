/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ksmd-probe: measurements for the ksmd VM scenarios, independent of the
 * daemon's own statistics. Prints one line of key=value pairs.
 *
 *   ksmd-probe info
 *       The module's INFO: pages_owned, pages_mapped, bytes_saved, merged,
 *       merged_zero, busy, changed, differs, unsupported, no_memory,
 *       features, thp_split; its pool (pool: FEATURE_POOL; the rest summed
 *       over pool_nodes nodes): pool_blocks, pool_used, pool_free,
 *       pool_single, pool_taken, pool_returned, pool_reused,
 *       pool_fallbacks. Exit 2 if the module is not loaded.
 *
 *   ksmd-probe pages PID ADDR PAGES [PID ADDR PAGES...]
 *       What physically backs those ranges, from /proc/PID/pagemap (needs
 *       root for PFNs): present, zero (mapping the zero page), distinct (PFNs
 *       other than the zero page, each counted once over all ranges: the
 *       physical pages the ranges cost), private (exclusively mapped
 *       anonymous pages), shared (present pages that are not),
 *       shared_distinct (the distinct PFNs of those) and shared_blocks (the
 *       2 MiB pageblocks, pfn >> 9, that hold at least one of them: blocks
 *       compaction cannot empty when the pages are the module's).
 *
 *   ksmd-probe host
 *       What the daemon's host probe finds the kernel does (host-probe.h):
 *       one line per feature, "NAME ANSWER: SEEN".
 *
 *   ksmd-probe listen PATH
 *       Binds a datagram socket at PATH for a daemon started with
 *       NOTIFY_SOCKET=PATH and prints the value of every STATUS= it sends,
 *       one line each, until killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "helper-client.h"
#include "host-probe.h"
#include "proc-reader.h"

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int cmd_info(void) {
        _cleanup_(helper_client_freep) HelperClient *c = NULL;
        uint64_t pool[KSMD_HELPER_POOL_A_MAX + 1] = {};
        HelperInfo info;
        int r;

        r = helper_client_new(&c);
        if (r < 0) {
                fprintf(stderr, "ksmd-probe: cannot reach the ksmd_helper module: %s\n", strerror(-r));
                return 2;
        }
        r = helper_client_info(c, &info);
        if (r < 0) {
                fprintf(stderr, "ksmd-probe: INFO failed: %s\n", strerror(-r));
                return 1;
        }
        printf("pages_owned=%" PRIu64 " pages_mapped=%" PRIu64 " bytes_saved=%" PRIu64 " merged=%" PRIu64
               " merged_zero=%" PRIu64 " busy=%" PRIu64 " changed=%" PRIu64 " differs=%" PRIu64
               " unsupported=%" PRIu64 " no_memory=%" PRIu64 " features=0x%" PRIx64 " thp_split=%d",
               info.stats[KSMD_HELPER_STAT_PAGES_OWNED], info.stats[KSMD_HELPER_STAT_PAGES_MAPPED],
               info.stats[KSMD_HELPER_STAT_BYTES_SAVED], info.stats[KSMD_HELPER_STAT_MERGED],
               info.stats[KSMD_HELPER_STAT_MERGED_ZERO], info.stats[KSMD_HELPER_STAT_BUSY],
               info.stats[KSMD_HELPER_STAT_CHANGED], info.stats[KSMD_HELPER_STAT_DIFFERS],
               info.stats[KSMD_HELPER_STAT_UNSUPPORTED], info.stats[KSMD_HELPER_STAT_NO_MEMORY],
               info.features,
               (info.features & KSMD_HELPER_FEATURE_THP_SPLIT) != 0);
        /* The pool, summed over the nodes. */
        for (size_t i = 0; i < info.n_pool; i++)
                for (int a = 0; a <= KSMD_HELPER_POOL_A_MAX; a++)
                        pool[a] += info.pool[i].figures[a];
        printf(" pool=%d pool_nodes=%zu pool_blocks=%" PRIu64 " pool_used=%" PRIu64 " pool_free=%" PRIu64
               " pool_single=%" PRIu64 " pool_taken=%" PRIu64 " pool_returned=%" PRIu64
               " pool_reused=%" PRIu64 " pool_fallbacks=%" PRIu64 "\n",
               (info.features & KSMD_HELPER_FEATURE_POOL) != 0, info.n_pool,
               pool[KSMD_HELPER_POOL_A_BLOCKS], pool[KSMD_HELPER_POOL_A_USED_PAGES],
               pool[KSMD_HELPER_POOL_A_FREE_PAGES], pool[KSMD_HELPER_POOL_A_SINGLE_PAGES],
               pool[KSMD_HELPER_POOL_A_BLOCKS_TAKEN], pool[KSMD_HELPER_POOL_A_BLOCKS_RETURNED],
               pool[KSMD_HELPER_POOL_A_REUSED], pool[KSMD_HELPER_POOL_A_FALLBACKS]);
        return 0;
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;

        errno = 0;
        *ret = strtoull(s, &end, 0);
        return errno || !*s || *end ? -EINVAL : 0;
}

static int cmd_pages(int n_args, char *args[]) {
        uint64_t zero_pfn = 0, huge_zero_pfn = 0, present = 0, zero = 0, priv = 0, shared = 0, distinct = 0;
        uint64_t shared_distinct = 0, shared_blocks = 0;
        _cleanup_free_ uint64_t *pfns = NULL, *shared_pfns = NULL;
        size_t n_pfns = 0, cap = 0, n_shared = 0, shared_cap = 0;
        int r;

        if (n_args == 0 || n_args % 3 != 0) {
                fprintf(stderr, "ksmd-probe pages: expected PID ADDR PAGES triples\n");
                return 2;
        }
        r = host_probe_zero_pfns(&zero_pfn, &huge_zero_pfn);
        if (r < 0) {
                fprintf(stderr, "ksmd-probe: cannot learn the zero page's PFN: %s\n", strerror(-r));
                return 1;
        }

        for (int i = 0; i < n_args; i += 3) {
                uint64_t pid, addr, n, entries[512];
                _cleanup_close_ int fd = -EBADF;

                if (parse_u64(args[i], &pid) < 0 || parse_u64(args[i + 1], &addr) < 0 ||
                    parse_u64(args[i + 2], &n) < 0) {
                        fprintf(stderr, "ksmd-probe pages: bad triple %s %s %s\n", args[i], args[i + 1],
                                args[i + 2]);
                        return 2;
                }
                r = proc_pagemap_open((pid_t) pid, &fd);
                if (r < 0) {
                        fprintf(stderr, "ksmd-probe: pagemap of %" PRIu64 ": %s\n", pid, strerror(-r));
                        return 1;
                }
                for (uint64_t done = 0; done < n;) {
                        size_t k = (size_t) MIN(n - done, (uint64_t) ELEMENTSOF(entries));

                        r = proc_pagemap_read(fd, addr + done * 4096, k, entries);
                        if (r < 0) {
                                fprintf(stderr, "ksmd-probe: pagemap read: %s\n", strerror(-r));
                                return 1;
                        }
                        for (size_t j = 0; j < k; j++) {
                                uint64_t e = entries[j], pfn = e & PAGEMAP_PFN_MASK;

                                if (!(e & PAGEMAP_PRESENT))
                                        continue;
                                present++;
                                if (pfn == zero_pfn ||
                                    (huge_zero_pfn && pfn >= huge_zero_pfn && pfn < huge_zero_pfn + 512)) {
                                        zero++;
                                        continue;
                                }
                                if ((e & PAGEMAP_EXCLUSIVE) && !(e & PAGEMAP_FILE_OR_SHARED))
                                        priv++;
                                else {
                                        shared++;
                                        if (n_shared == shared_cap) {
                                                size_t c = shared_cap ? shared_cap * 2 : 4096;
                                                uint64_t *p = reallocarray(shared_pfns, c, sizeof(uint64_t));

                                                if (!p)
                                                        return 1;
                                                shared_pfns = p;
                                                shared_cap = c;
                                        }
                                        shared_pfns[n_shared++] = pfn;
                                }
                                if (n_pfns == cap) {
                                        uint64_t *p = reallocarray(pfns, cap ? cap * 2 : 4096,
                                                                   sizeof(uint64_t));

                                        if (!p)
                                                return 1;
                                        pfns = p;
                                        cap = cap ? cap * 2 : 4096;
                                }
                                pfns[n_pfns++] = pfn;
                        }
                        done += k;
                }
        }

        if (n_pfns > 0)
                qsort(pfns, n_pfns, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n_pfns; i++)
                if (i == 0 || pfns[i] != pfns[i - 1])
                        distinct++;
        if (n_shared > 0)
                qsort(shared_pfns, n_shared, sizeof(uint64_t), cmp_u64);
        for (size_t i = 0; i < n_shared; i++) {
                if (i == 0 || shared_pfns[i] != shared_pfns[i - 1])
                        shared_distinct++;
                /* Sorted, so the PFNs of one pageblock (512 pages of 4 KiB) are adjacent. */
                if (i == 0 || shared_pfns[i] >> 9 != shared_pfns[i - 1] >> 9)
                        shared_blocks++;
        }
        printf("present=%" PRIu64 " zero=%" PRIu64 " distinct=%" PRIu64 " private=%" PRIu64
               " shared=%" PRIu64 " shared_distinct=%" PRIu64 " shared_blocks=%" PRIu64 "\n",
               present, zero, distinct, priv, shared, shared_distinct, shared_blocks);
        return 0;
}

static int cmd_listen(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        char buf[4096];

        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "ksmd-probe: socket path too long\n");
                return 2;
        }
        strcpy(sa.sun_path, path);
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                fprintf(stderr, "ksmd-probe: cannot listen on %s: %m\n", path);
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                char *line, *save = NULL;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return 1;
                }
                buf[n] = 0;
                for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                        if (strncmp(line, "STATUS=", 7) == 0)
                                printf("%s\n", line + 7);
        }
}

static int cmd_host(void) {
        HostProbe p;

        if (host_probe_run(&p) < 0)
                return 1;
        printf("release %s\n", p.release);
        for (HostFeature f = 0; f < _HOST_FEATURE_MAX; f++)
                printf("%s %s: %s\n", host_feature_to_string(f), host_answer_to_string(p.answer[f]),
                       p.seen[f]);
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc >= 2 && strcmp(argv[1], "info") == 0)
                return cmd_info();
        if (argc >= 2 && strcmp(argv[1], "pages") == 0)
                return cmd_pages(argc - 2, argv + 2);
        if (argc == 3 && strcmp(argv[1], "listen") == 0)
                return cmd_listen(argv[2]);
        if (argc == 2 && strcmp(argv[1], "host") == 0)
                return cmd_host();
        fprintf(stderr, "usage: ksmd-probe info | pages PID ADDR PAGES... | host | listen PATH\n");
        return 2;
}
