/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-input-test: every bad input to ksmd_helper gets its clear error
 * and changes nothing: malformed and oversized requests, unknown flag bits,
 * callers without CAP_SYS_ADMIN, unknown pids, unmapped or unaligned
 * addresses, and mappings the module does not merge. TAP.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include "helper-genl.h"
#include "helper-worker.h"
#include "tap.h"


/* Send the request built so far; expect error want and an extack message. */
static void expect_error(KgSock *s, int want, const char *desc) {
        int r = kg_transact(s, NULL, NULL);

        printf("# %s: %d (%s)\n", desc, r, kg_extack);
        tap(r == want && (want == -EPERM || kg_extack[0]), "%s is refused with %s", desc, strerror(-want));
}

static void merge_begin(KgSock *s, uint8_t cmd) {
        kg_begin(s, s->family, cmd, 0);
        kg_nest_start(s, KSMD_HELPER_A_ITEMS);
        kg_nest_start(s, KSMD_HELPER_A_ITEM);
}

static void merge_end(KgSock *s) {
        kg_nest_end(s);
        kg_nest_end(s);
}

static uint32_t one_result(KgSock *s, pid_t pid, uint64_t addr, pid_t src_pid, uint64_t src_addr, int zero,
                           uint32_t *reason) {
        KgItem it = { .pid = pid, .addr = addr, .src_pid = src_pid, .src_addr = src_addr };
        int r = kg_merge(s, &it, 1, zero);

        if (r < 0)
                return 1000 - r;
        if (reason)
                *reason = it.reason;
        return it.result;
}

static int run_unprivileged(bool keep_root) {
        pid_t p = fork();
        int st;

        if (p == 0) {
                KgSock s;
                KgInfo info;

                if (keep_root) {
                        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
                        struct __user_cap_data_struct d[2];

                        syscall(SYS_capget, &h, d);
                        d[0].effective &= ~(1U << CAP_SYS_ADMIN);
                        d[0].permitted &= ~(1U << CAP_SYS_ADMIN);
                        if (syscall(SYS_capset, &h, d) < 0)
                                _exit(10);
                } else if (setgid(65534) < 0 || setuid(65534) < 0) {
                        _exit(11);
                }
                if (kg_open(&s) < 0)
                        _exit(12);
                _exit(kg_info(&s, &info) == -EPERM ? 0 : 13);
        }
        waitpid(p, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

int main(void) {
        Worker A, B;
        KgSock s;
        KgItem *items;
        uint32_t reason, res;
        long file_before;
        uint64_t count;
        char *shared, *filemap, *huge, *locked;
        char path[] = "/tmp/helper-input-XXXXXX";
        int fd, r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        r = kg_open(&s);
        tap(r == 0, "the ksmd_helper family resolves");
        if (r < 0)
                goto finish;
        worker_start(&A, 64, 0);
        worker_start(&B, 64, 0);
        worker_do(&A, W_ADDR, 0, 0, 0);
        worker_do(&B, W_ADDR, 0, 0, 0);
        worker_do(&A, W_FILL, 0, 64, 5);
        worker_do(&B, W_FILL, 0, 64, 5);

        /* Malformed requests. */
        kg_begin(&s, s.family, KSMD_HELPER_CMD_INFO, 0);
        kg_put_u32(&s, KSMD_HELPER_A_PID, 1);
        expect_error(&s, -EINVAL, "an attribute INFO does not take");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_INFO, 0);
        ((struct genlmsghdr *) NLMSG_DATA((struct nlmsghdr *) s.buf))->reserved = 1;
        expect_error(&s, -EINVAL, "a nonzero reserved field in the genetlink header");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_GET_PAGES, NLM_F_DUMP);
        kg_put_u32(&s, KSMD_HELPER_A_FLAGS, 0);
        expect_error(&s, -EINVAL, "an attribute GET_PAGES does not take");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_MERGE, 0);
        expect_error(&s, -EINVAL, "MERGE without ITEMS");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_MERGE, 0);
        kg_nest_start(&s, KSMD_HELPER_A_ITEMS);
        kg_nest_end(&s);
        expect_error(&s, -EINVAL, "MERGE with an empty batch");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_MERGE, 0);
        kg_put_u32(&s, KSMD_HELPER_A_FLAGS, 1);
        kg_nest_start(&s, KSMD_HELPER_A_ITEMS);
        kg_nest_start(&s, KSMD_HELPER_A_ITEM);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an unknown flag bit");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a PID attribute of the wrong length");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, 0);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -ERANGE, "pid 0");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item without a source");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID, B.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item with two sources");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID, B.pid);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item with SRC_PID but no SRC_ADDR");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_RESULT, 0);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a reply attribute in a request item");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE_ZERO);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a source in a MERGE_ZERO item");

        /* A valid item followed by an unaligned one: nothing may change. */
        file_before = 0;
        kg_begin(&s, s.family, KSMD_HELPER_CMD_MERGE, 0);
        kg_nest_start(&s, KSMD_HELPER_A_ITEMS);
        kg_nest_start(&s, KSMD_HELPER_A_ITEM);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID, B.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        kg_nest_end(&s);
        kg_nest_start(&s, KSMD_HELPER_A_ITEM);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base + 1);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID, B.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        kg_nest_end(&s);
        kg_nest_end(&s);
        expect_error(&s, -EINVAL, "an unaligned address");
        {
                char p[64], line[128];
                FILE *f;

                snprintf(p, sizeof(p), "/proc/%d/status", A.pid);
                f = fopen(p, "re");
                while (f && fgets(line, sizeof(line), f))
                        if (!strncmp(line, "RssFile:", 8))
                                file_before = strtol(line + 8, NULL, 10);
                if (f)
                        fclose(f);
        }
        tap(file_before == 0, "a refused request changed nothing (target RssFile %ld kB)", file_before);

        items = calloc(513, sizeof(*items));
        for (int i = 0; i < 513; i++)
                items[i] = (KgItem) { .pid = A.pid, .addr = (uintptr_t) A.base, .handle = 1 };
        r = kg_merge(&s, items, 513, 0);
        printf("# 513 items: %d (%s)\n", r, kg_extack);
        tap(r == -E2BIG && kg_extack[0], "a batch of 513 items is refused with E2BIG");
        r = kg_merge(&s, items, 513, 1);
        tap(r == -E2BIG, "a MERGE_ZERO batch of 513 items is refused with E2BIG");
        free(items);

        /* Permission. */
        tap(run_unprivileged(false) == 0, "a caller that is not root gets EPERM");
        tap(run_unprivileged(true) == 0, "root without CAP_SYS_ADMIN gets EPERM");

        /* Per-item outcomes. */
        res = one_result(&s, 4000000, (uintptr_t) A.base, B.pid, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "an unknown pid reports no-process (%u)", res);
        res = one_result(&s, 2, 0x10000, B.pid, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "a kernel thread reports no-process (%u)", res);
        res = one_result(&s, A.pid, 0x10000, B.pid, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PAGE, "an unmapped address reports no-page (%u)", res);
        res = one_result(&s, A.pid, (uintptr_t) A.base, A.pid, (uintptr_t) A.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_SAME_PAGE,
            "a page merged with itself reports unsupported/same-page");

        shared = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        w_fill(shared, w_pattern(5, 0));
        res = one_result(&s, getpid(), (uintptr_t) shared, B.pid, (uintptr_t) B.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_NOT_ANON,
            "a shared mapping reports unsupported/not-anon");

        fd = mkstemp(path);
        if (fd >= 0 && ftruncate(fd, PG) == 0) {
                filemap = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
                w_fill(filemap, w_pattern(5, 0));
                res = one_result(&s, getpid(), (uintptr_t) filemap, B.pid, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_NOT_ANON,
                    "a private file mapping reports unsupported/not-anon");
                res = one_result(&s, B.pid, (uintptr_t) B.base, getpid(), (uintptr_t) filemap, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED,
                    "a file mapping as the source reports unsupported");
        }

        {
                char *none = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                w_fill(none, w_pattern(5, 0));
                mprotect(none, PG, PROT_NONE);
                res = one_result(&s, getpid(), (uintptr_t) none, B.pid, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_LOCKED_VMA,
                    "a PROT_NONE mapping reports unsupported/locked-vma");
        }
        locked = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        w_fill(locked, w_pattern(5, 0));
        res = one_result(&s, getpid(), (uintptr_t) locked, B.pid, (uintptr_t) B.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_LOCKED_VMA,
            "an mlocked mapping reports unsupported/locked-vma");

        fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
        if (fd >= 0) {
                (void) !write(fd, "2", 1);
                close(fd);
        }
        huge = mmap(NULL, 2UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
                    -1, 0);
        if (huge != MAP_FAILED) {
                huge[0] = 1;
                res = one_result(&s, getpid(), (uintptr_t) huge, B.pid, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_HUGETLB,
                    "a hugetlb mapping reports unsupported/hugetlb");
        } else {
                printf("# no hugetlb pages: %s\n", strerror(errno));
        }

        /* UNMERGE input. */
        r = kg_unmerge(&s, 4000000, (uintptr_t) A.base, PG, &count);
        tap(r == -ESRCH, "UNMERGE of an unknown pid is refused with ESRCH (%d)", r);
        r = kg_unmerge(&s, A.pid, (uintptr_t) A.base, 0, &count);
        tap(r == -ERANGE || r == -EINVAL, "UNMERGE of length 0 is refused (%d)", r);
        r = kg_unmerge(&s, A.pid, (uintptr_t) A.base, 100, &count);
        tap(r == -EINVAL && kg_extack[0], "UNMERGE of a partial page is refused (%d)", r);
        r = kg_unmerge(&s, A.pid, (uintptr_t) A.base + 8, PG, &count);
        tap(r == -EINVAL && kg_extack[0], "UNMERGE of an unaligned address is refused (%d)", r);

        tap(worker_do(&A, W_CHECK, 0, 64, 5) == 0 && worker_do(&B, W_CHECK, 0, 64, 5) == 0,
            "the workers' memory is intact");
        worker_stop(&A);
        worker_stop(&B);
        kg_close(&s);
finish:
        return tap_end();
}
