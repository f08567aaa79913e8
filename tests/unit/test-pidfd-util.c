/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pidfds (pidfd-util.c), and above all the caller's: the process that
 * connected a unix socket, from the kernel (SO_PEERPIDFD) or, before Linux
 * 6.5, from its pid with the checks that follow. The peers are this process
 * (a socketpair) and a child.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "pidfd-util.h"
#include "proc-process.h"

static void assert_pidfd_of(int pidfd, pid_t pid) {
        pid_t got;

        assert_true(pidfd >= 0);
        assert_int_equal(proc_pidfd_get_pid(pidfd, &got), 0);
        assert_int_equal(got, pid);
        assert_int_equal(pidfd_is_alive(pidfd), 1);
}

static void test_peer_of_a_socket_is_held_both_ways(void **state) {
        _cleanup_close_ int a = -EBADF, b = -EBADF, fd1 = -EBADF, fd2 = -EBADF;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        a = sv[0];
        b = sv[1];
        fd1 = pidfd_open_peer(a, getpid());
        assert_pidfd_of(fd1, getpid());
        fd2 = pidfd_open_peer_by_pid(a, getpid());
        assert_pidfd_of(fd2, getpid());
}

static void test_a_pid_that_is_not_the_peers_is_refused(void **state) {
        _cleanup_close_ int a = -EBADF, b = -EBADF;
        int sv[2], status;
        pid_t child;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        a = sv[0];
        b = sv[1];
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                pause();
                _exit(0);
        }
        /* A live process, but not the one SO_PEERCRED names. */
        assert_int_equal(pidfd_open_peer_by_pid(a, child), -ESRCH);
        assert_int_equal(kill(child, SIGKILL), 0);
        assert_int_equal(waitpid(child, &status, 0), child);
}

static void test_a_peer_that_closed_is_refused(void **state) {
        _cleanup_close_ int a = -EBADF;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        a = sv[0];
        close(sv[1]);
        assert_int_equal(pidfd_open_peer_by_pid(a, getpid()), -ECONNRESET);
}

/* Sends n descriptors over sock with one byte. */
static int send_fds(int sock, const int *fds, size_t n) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        char byte = 0;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);

        if (!h)
                return -1;
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(h), fds, n * sizeof(int));
        return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static void recv_fds(int sock, int *fds, size_t n) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        char byte;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *h;

        assert_int_equal(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC), 1);
        h = CMSG_FIRSTHDR(&mh);
        if (!h) {
                fail_msg("no descriptors came");
                return;
        }
        assert_int_equal(h->cmsg_len, CMSG_LEN(n * sizeof(int)));
        memcpy(fds, CMSG_DATA(h), n * sizeof(int));
}

/*
 * The process that made the connection exits, but the connection lives on in
 * another (here: both ends come to us). Whatever now runs with its pid is not
 * the caller: both ways refuse.
 */
static void test_a_peer_whose_process_exited_is_refused(void **state) {
        _cleanup_close_ int channel = -EBADF, a = -EBADF, b = -EBADF;
        int sv[2], pair[2], status;
        pid_t child;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        channel = sv[0];
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                        _exit(1);
                _exit(send_fds(sv[1], pair, 2) < 0 ? 1 : 0);
        }
        close(sv[1]);
        recv_fds(channel, pair, 2);
        a = pair[0];
        b = pair[1];
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        assert_int_equal(pidfd_open_peer(a, child), -ESRCH);
        assert_int_equal(pidfd_open_peer_by_pid(a, child), -ESRCH);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_peer_of_a_socket_is_held_both_ways),
                cmocka_unit_test(test_a_pid_that_is_not_the_peers_is_refused),
                cmocka_unit_test(test_a_peer_that_closed_is_refused),
                cmocka_unit_test(test_a_peer_whose_process_exited_is_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
