/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * helper-input-test: every bad input to ksmd_helper gets its clear error
 * and changes nothing: malformed and oversized requests, unknown flag bits,
 * ABI 1's pid attributes, callers without CAP_SYS_ADMIN, fds that are no
 * pidfd, pidfds of exited processes and of processes the caller may not
 * ptrace, unmapped or unaligned addresses, and mappings the module does not
 * merge. TAP.
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

static uint32_t one_result(KgSock *s, int pidfd, uint64_t addr, int src_pidfd, uint64_t src_addr, int zero,
                           uint32_t *reason) {
        KgItem it = { .pidfd = pidfd, .addr = addr, .src_pidfd = src_pidfd, .src_addr = src_addr };
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
                        if (w_drop_cap(CAP_SYS_ADMIN))
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

/* A handle no shared page has: an item reaching it passed every check of its processes. */
#define NO_SUCH_HANDLE (1ULL << 60)

static uint32_t handle_result(KgSock *s, uint32_t pidfd, uint64_t addr) {
        KgItem it = { .pidfd = pidfd, .addr = addr, .handle = NO_SUCH_HANDLE };
        int r = kg_merge(s, &it, 1, 0);

        return r < 0 ? (uint32_t) (1000 - r) : it.result;
}

/* A pidfd of a child that has exited: reaped, or a zombie left for the caller to reap. */
static int exited_child_pidfd(bool reap, pid_t *ret_pid) {
        siginfo_t si;
        pid_t p = fork();
        int fd;

        if (p == 0)
                _exit(0);
        fd = kg_pidfd_open(p);
        if (reap)
                waitpid(p, NULL, 0);
        else
                waitid(P_PID, p, &si, WEXITED | WNOWAIT);
        *ret_pid = p;
        return fd;
}

typedef struct {
        uint32_t self_ok, ok, nodump, other_uid, src_other_uid, zero_nodump;
        int unmerge_other_uid;
        char unmerge_extack[sizeof(kg_extack)];
        int setup;
} ProbeResults;

/*
 * In a child that keeps CAP_SYS_ADMIN and CAP_NET_ADMIN but drops
 * CAP_SYS_PTRACE, name E (root, dumpable, no CAP_SYS_PTRACE either: the
 * child may read it), D (as E but not dumpable) and N (another uid).
 */
static void probe_without_ptrace(const Worker *E, const Worker *D, const Worker *N, ProbeResults *out) {
        ProbeResults *res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                 -1, 0);
        pid_t p;

        memset(out, 0, sizeof(*out));
        if (res == MAP_FAILED) {
                out->setup = errno;
                return;
        }
        memset(res, 0, sizeof(*res));
        p = fork();
        if (p == 0) {
                int self = kg_pidfd_open(getpid());
                uint64_t count;
                KgSock s;

                res->setup = w_drop_cap(CAP_SYS_PTRACE);
                if (res->setup || self < 0 || kg_open(&s) < 0) {
                        res->setup = res->setup ? res->setup : 1000;
                        _exit(1);
                }
                res->self_ok = handle_result(&s, self, (uintptr_t) E->base);
                res->ok = handle_result(&s, E->pidfd, (uintptr_t) E->base);
                res->nodump = handle_result(&s, D->pidfd, (uintptr_t) D->base);
                res->other_uid = handle_result(&s, N->pidfd, (uintptr_t) N->base);
                res->src_other_uid = one_result(&s, E->pidfd, (uintptr_t) E->base, N->pidfd,
                                                (uintptr_t) N->base, 0, NULL);
                res->zero_nodump = one_result(&s, D->pidfd, (uintptr_t) D->base, 0, 0, 1, NULL);
                res->unmerge_other_uid = kg_unmerge(&s, N->pidfd, (uintptr_t) N->base, PG, &count);
                snprintf(res->unmerge_extack, sizeof(res->unmerge_extack), "%s", kg_extack);
                kg_close(&s);
                _exit(0);
        }
        waitpid(p, NULL, 0);
        *out = *res;
        munmap(res, sizeof(*res));
}

int main(void) {
        Worker A, B, D, E, N;
        KgSock s;
        KgItem *items;
        uint32_t reason, res;
        long file_before;
        uint64_t count;
        char *shared, *filemap, *huge, *locked;
        char path[] = "/tmp/helper-input-XXXXXX";
        int fd, r, self, devnull, closed, reaped, zombie, kthread;
        pid_t zombie_pid, reaped_pid;
        ProbeResults probe;
        KgItem batch[4];
        KgInfo info;

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
        self = kg_pidfd_open(getpid());
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* Far above the fds this test opens, so that none of them takes its number. */
        closed = fcntl(devnull, F_DUPFD_CLOEXEC, 900);
        close(closed);
        reaped = exited_child_pidfd(true, &reaped_pid);
        zombie = exited_child_pidfd(false, &zombie_pid);
        kthread = kg_pidfd_open(2);
        printf("# pidfds: self %d, /dev/null %d, closed %d, reaped %d, zombie %d, kthreadd %d\n", self,
               devnull, closed, reaped, zombie, kthread);
        tap(self >= 0 && devnull >= 0 && closed >= 0 && reaped >= 0 && zombie >= 0 && kthread >= 0,
            "the test's pidfds and fds open");

        /* Malformed requests. */
        kg_begin(&s, s.family, KSMD_HELPER_CMD_INFO, 0);
        kg_put_u32(&s, KSMD_HELPER_A_PIDFD, self);
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
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an unknown flag bit");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a PIDFD attribute of the wrong length");

        /* ABI 1 named processes by pid: its attributes keep their numbers and are refused. */
        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID_V1, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID_V1, B.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an ABI 1 item with PID and SRC_PID");
        tap(strstr(kg_extack, "pidfd") != NULL, "the refusal of ABI 1's PID says to use a pidfd");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID_V1, A.pid);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an old PID attribute beside PIDFD");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PID_V1, B.pid);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an old SRC_PID attribute beside SRC_PIDFD");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE_ZERO);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PID_V1, A.pid);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an ABI 1 MERGE_ZERO item with PID");

        kg_begin(&s, s.family, KSMD_HELPER_CMD_UNMERGE, 0);
        kg_put_u32(&s, KSMD_HELPER_A_PID_V1, A.pid);
        kg_put_u64(&s, KSMD_HELPER_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_A_LENGTH, PG);
        expect_error(&s, -EINVAL, "an ABI 1 UNMERGE with PID");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item without a source");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item without a target PIDFD");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item with two sources");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
        merge_end(&s);
        expect_error(&s, -EINVAL, "an item with SRC_PIDFD but no SRC_ADDR");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_RESULT, 0);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a reply attribute in a request item");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE_ZERO);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_HANDLE, 1);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a source in a MERGE_ZERO item");

        merge_begin(&s, KSMD_HELPER_CMD_MERGE_ZERO);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
        merge_end(&s);
        expect_error(&s, -EINVAL, "a SRC_PIDFD in a MERGE_ZERO item");

        /* A valid item followed by an unaligned one: nothing may change. */
        file_before = 0;
        kg_begin(&s, s.family, KSMD_HELPER_CMD_MERGE, 0);
        kg_nest_start(&s, KSMD_HELPER_A_ITEMS);
        kg_nest_start(&s, KSMD_HELPER_A_ITEM);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_SRC_ADDR, (uintptr_t) B.base);
        kg_nest_end(&s);
        kg_nest_start(&s, KSMD_HELPER_A_ITEM);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_PIDFD, A.pidfd);
        kg_put_u64(&s, KSMD_HELPER_ITEM_A_ADDR, (uintptr_t) A.base + 1);
        kg_put_u32(&s, KSMD_HELPER_ITEM_A_SRC_PIDFD, B.pidfd);
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
                items[i] = (KgItem) { .pidfd = A.pidfd, .addr = (uintptr_t) A.base, .handle = 1 };
        r = kg_merge(&s, items, 513, 0);
        printf("# 513 items: %d (%s)\n", r, kg_extack);
        tap(r == -E2BIG && kg_extack[0], "a batch of 513 items is refused with E2BIG");
        r = kg_merge(&s, items, 513, 1);
        tap(r == -E2BIG, "a MERGE_ZERO batch of 513 items is refused with E2BIG");
        free(items);

        /* Permission. */
        tap(run_unprivileged(false) == 0, "a caller that is not root gets EPERM");
        tap(run_unprivileged(true) == 0, "root without CAP_SYS_ADMIN gets EPERM");

        /* Per-item outcomes: a bad pidfd is the item's result, never the request's error. */
        res = one_result(&s, devnull, (uintptr_t) A.base, B.pidfd, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD,
            "a target fd that is not a pidfd (/dev/null) reports bad-pidfd (%u)", res);
        res = one_result(&s, A.pidfd, (uintptr_t) A.base, devnull, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD, "a source fd that is not a pidfd reports bad-pidfd (%u)",
            res);
        res = one_result(&s, s.fd, (uintptr_t) A.base, 0, 0, 1, NULL);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD,
            "a MERGE_ZERO target that is a socket reports bad-pidfd (%u)", res);
        res = one_result(&s, closed, (uintptr_t) A.base, B.pidfd, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD, "a closed fd number reports bad-pidfd (%u)", res);
        res = one_result(&s, A.pidfd, (uintptr_t) A.base, closed, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD, "a closed source fd number reports bad-pidfd (%u)", res);
        res = handle_result(&s, 0x7fffffff, (uintptr_t) A.base);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD, "fd 2^31-1 reports bad-pidfd (%u)", res);
        res = handle_result(&s, 0xffffffff, (uintptr_t) A.base);
        tap(res == KSMD_HELPER_RESULT_BAD_PIDFD, "fd 2^32-1 reports bad-pidfd (%u)", res);
        res = one_result(&s, reaped, (uintptr_t) A.base, B.pidfd, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS,
            "the pidfd of an exited, reaped process reports no-process (%u)", res);
        res = one_result(&s, A.pidfd, (uintptr_t) A.base, reaped, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "a reaped source reports no-process (%u)", res);
        res = one_result(&s, reaped, (uintptr_t) A.base, 0, 0, 1, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "a reaped MERGE_ZERO target reports no-process (%u)", res);
        res = one_result(&s, zombie, (uintptr_t) A.base, B.pidfd, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "the pidfd of an exited process not yet reaped reports "
            "no-process (%u)", res);
        res = handle_result(&s, kthread, 0x10000);
        tap(res == KSMD_HELPER_RESULT_NO_PROCESS, "a kernel thread's pidfd reports no-process (%u)", res);
        res = handle_result(&s, A.pidfd, (uintptr_t) A.base);
        tap(res == KSMD_HELPER_RESULT_NO_HANDLE, "a good pidfd gets as far as the handle (%u)", res);
        res = one_result(&s, A.pidfd, 0x10000, B.pidfd, (uintptr_t) B.base, 0, NULL);
        tap(res == KSMD_HELPER_RESULT_NO_PAGE, "an unmapped address reports no-page (%u)", res);
        res = one_result(&s, A.pidfd, (uintptr_t) A.base, A.pidfd, (uintptr_t) A.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_SAME_PAGE,
            "a page merged with itself reports unsupported/same-page");
        fd = kg_pidfd_open(A.pid);
        res = one_result(&s, A.pidfd, (uintptr_t) A.base, fd, (uintptr_t) A.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_SAME_PAGE,
            "a page merged with itself through two pidfds reports unsupported/same-page");
        close(fd);

        /* One batch: the bad items get their results and the good one still runs. */
        batch[0] = (KgItem) { .pidfd = devnull, .addr = (uintptr_t) A.base, .src_pidfd = B.pidfd,
                              .src_addr = (uintptr_t) B.base };
        batch[1] = (KgItem) { .pidfd = A.pidfd, .addr = (uintptr_t) A.base + PG, .handle = NO_SUCH_HANDLE };
        batch[2] = (KgItem) { .pidfd = A.pidfd, .addr = (uintptr_t) A.base, .src_pidfd = reaped,
                              .src_addr = (uintptr_t) B.base };
        batch[3] = (KgItem) { .pidfd = closed, .addr = (uintptr_t) A.base, .handle = NO_SUCH_HANDLE };
        r = kg_merge(&s, batch, 4, 0);
        printf("# mixed batch: %d: %s %s %s %s\n", r, kg_result_name(batch[0].result),
               kg_result_name(batch[1].result), kg_result_name(batch[2].result),
               kg_result_name(batch[3].result));
        tap(r == 0 && batch[0].result == KSMD_HELPER_RESULT_BAD_PIDFD &&
            batch[1].result == KSMD_HELPER_RESULT_NO_HANDLE &&
            batch[2].result == KSMD_HELPER_RESULT_NO_PROCESS &&
            batch[3].result == KSMD_HELPER_RESULT_BAD_PIDFD,
            "a batch with bad pidfds answers every item, the good one included");
        r = kg_info(&s, &info);
        tap(r == 0 && info.stats[KSMD_HELPER_STAT_DENIED] >= 9,
            "INFO counts bad-pidfd items as denied (%lu)",
            (unsigned long) info.stats[KSMD_HELPER_STAT_DENIED]);

        /* Access: the caller must be allowed to ptrace-read each process it names. */
        worker_start(&E, 4, 0);
        worker_start(&D, 4, 0);
        worker_start(&N, 4, 0);
        worker_do(&E, W_ADDR, 0, 0, 0);
        worker_do(&D, W_ADDR, 0, 0, 0);
        worker_do(&N, W_ADDR, 0, 0, 0);
        worker_do(&E, W_FILL, 0, 4, 5);
        worker_do(&D, W_FILL, 0, 4, 5);
        worker_do(&N, W_FILL, 0, 4, 5);
        tap(worker_do(&E, W_NO_PTRACE, 0, 0, 1) == 0 && worker_do(&D, W_NO_PTRACE, 0, 0, 0) == 0 &&
            worker_do(&N, W_SETUID, 0, 0, 65534) == 0,
            "workers: root without CAP_SYS_PTRACE, the same not dumpable, and uid 65534");
        probe_without_ptrace(&E, &D, &N, &probe);
        printf("# without CAP_SYS_PTRACE: setup %d, self %s, root %s, not dumpable %s, other uid %s, "
               "other uid as source %s, zero of not dumpable %s, UNMERGE of other uid %d (%s)\n",
               probe.setup,
               kg_result_name(probe.self_ok), kg_result_name(probe.ok), kg_result_name(probe.nodump),
               kg_result_name(probe.other_uid), kg_result_name(probe.src_other_uid),
               kg_result_name(probe.zero_nodump), probe.unmerge_other_uid, probe.unmerge_extack);
        tap(probe.setup == 0 && probe.self_ok == KSMD_HELPER_RESULT_NO_HANDLE &&
            probe.ok == KSMD_HELPER_RESULT_NO_HANDLE,
            "without CAP_SYS_PTRACE a caller still reaches itself and a dumpable process of its uid");
        tap(probe.nodump == KSMD_HELPER_RESULT_NO_ACCESS &&
            probe.zero_nodump == KSMD_HELPER_RESULT_NO_ACCESS,
            "without CAP_SYS_PTRACE a process that is not dumpable reports no-access");
        tap(probe.other_uid == KSMD_HELPER_RESULT_NO_ACCESS,
            "without CAP_SYS_PTRACE another user's process reports no-access");
        tap(probe.src_other_uid == KSMD_HELPER_RESULT_NO_ACCESS,
            "without CAP_SYS_PTRACE another user's process as the source reports no-access");
        tap(probe.unmerge_other_uid == -EPERM && strstr(probe.unmerge_extack, "ptrace"),
            "without CAP_SYS_PTRACE UNMERGE of another user's process is refused with EPERM");
        res = handle_result(&s, N.pidfd, (uintptr_t) N.base);
        tap(res == KSMD_HELPER_RESULT_NO_HANDLE && handle_result(&s, D.pidfd, (uintptr_t) D.base) ==
            KSMD_HELPER_RESULT_NO_HANDLE, "with CAP_SYS_PTRACE the same processes are reached (%u)", res);
        tap(worker_do(&E, W_CHECK, 0, 4, 5) == 0 && worker_do(&D, W_CHECK, 0, 4, 5) == 0 &&
            worker_do(&N, W_CHECK, 0, 4, 5) == 0, "their memory is intact");
        worker_stop(&E);
        worker_stop(&D);
        worker_stop(&N);

        shared = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        w_fill(shared, w_pattern(5, 0));
        res = one_result(&s, self, (uintptr_t) shared, B.pidfd, (uintptr_t) B.base, 0, &reason);
        tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_NOT_ANON,
            "a shared mapping reports unsupported/not-anon");

        fd = mkstemp(path);
        if (fd >= 0 && ftruncate(fd, PG) == 0) {
                filemap = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
                w_fill(filemap, w_pattern(5, 0));
                res = one_result(&s, self, (uintptr_t) filemap, B.pidfd, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_NOT_ANON,
                    "a private file mapping reports unsupported/not-anon");
                res = one_result(&s, B.pidfd, (uintptr_t) B.base, self, (uintptr_t) filemap, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED,
                    "a file mapping as the source reports unsupported");
        }

        {
                char *none = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                w_fill(none, w_pattern(5, 0));
                mprotect(none, PG, PROT_NONE);
                res = one_result(&s, self, (uintptr_t) none, B.pidfd, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_LOCKED_VMA,
                    "a PROT_NONE mapping reports unsupported/locked-vma");
        }
        locked = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
        w_fill(locked, w_pattern(5, 0));
        res = one_result(&s, self, (uintptr_t) locked, B.pidfd, (uintptr_t) B.base, 0, &reason);
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
                res = one_result(&s, self, (uintptr_t) huge, B.pidfd, (uintptr_t) B.base, 0, &reason);
                tap(res == KSMD_HELPER_RESULT_UNSUPPORTED && reason == KSMD_HELPER_REASON_HUGETLB,
                    "a hugetlb mapping reports unsupported/hugetlb");
        } else {
                printf("# no hugetlb pages: %s\n", strerror(errno));
        }

        /* UNMERGE input: it has one process, so a bad pidfd is the request's error. */
        r = kg_unmerge(&s, devnull, (uintptr_t) A.base, PG, &count);
        tap(r == -EBADF && kg_extack[0],
            "UNMERGE by an fd that is not a pidfd is refused with EBADF (%d: %s)", r, kg_extack);
        r = kg_unmerge(&s, closed, (uintptr_t) A.base, PG, &count);
        tap(r == -EBADF && kg_extack[0], "UNMERGE by a closed fd number is refused with EBADF (%d)", r);
        r = kg_unmerge(&s, reaped, (uintptr_t) A.base, PG, &count);
        tap(r == -ESRCH && kg_extack[0],
            "UNMERGE by the pidfd of an exited process is refused with ESRCH (%d)", r);
        r = kg_unmerge(&s, kthread, 0x10000, PG, &count);
        tap(r == -ESRCH, "UNMERGE of a kernel thread is refused with ESRCH (%d)", r);
        kg_begin(&s, s.family, KSMD_HELPER_CMD_UNMERGE, 0);
        kg_put_u64(&s, KSMD_HELPER_A_ADDR, (uintptr_t) A.base);
        kg_put_u64(&s, KSMD_HELPER_A_LENGTH, PG);
        r = kg_transact(&s, NULL, NULL);
        tap(r == -EINVAL, "UNMERGE without PIDFD is refused with EINVAL (%d)", r);
        r = kg_unmerge(&s, A.pidfd, (uintptr_t) A.base, 0, &count);
        tap(r == -ERANGE || r == -EINVAL, "UNMERGE of length 0 is refused (%d)", r);
        r = kg_unmerge(&s, A.pidfd, (uintptr_t) A.base, 100, &count);
        tap(r == -EINVAL && kg_extack[0], "UNMERGE of a partial page is refused (%d)", r);
        r = kg_unmerge(&s, A.pidfd, (uintptr_t) A.base + 8, PG, &count);
        tap(r == -EINVAL && kg_extack[0], "UNMERGE of an unaligned address is refused (%d)", r);

        tap(worker_do(&A, W_CHECK, 0, 64, 5) == 0 && worker_do(&B, W_CHECK, 0, 64, 5) == 0,
            "the workers' memory is intact");
        worker_stop(&A);
        worker_stop(&B);
        waitpid(zombie_pid, NULL, 0);
        kg_close(&s);
finish:
        return tap_end();
}
