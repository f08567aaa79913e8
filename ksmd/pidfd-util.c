/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <poll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>

#include "macro.h"
#include "pidfd-util.h"

int pidfd_open_pid(pid_t pid) {
        int fd;

        if (pid <= 0)
                return -EINVAL;
        fd = pidfd_open(pid, 0);
        return fd < 0 ? negative_errno() : fd;
}

int pidfd_is_alive(int pidfd) {
        /* A pidfd polls readable once its process has exited (fs: pidfd_poll). */
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        if (poll(&p, 1, 0) < 0)
                return negative_errno();
        if (p.revents & POLLNVAL)
                return -EBADF;
        return p.revents == 0;
}

int pidfd_open_peer_by_pid(int sockfd, pid_t pid) {
        _cleanup_close_ int fd = -EBADF;
        struct pollfd p = { .fd = sockfd, .events = POLLRDHUP };
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        fd = pidfd_open_pid(pid);
        if (fd < 0)
                return fd;
        if (getsockopt(sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.pid != pid)
                return -ESRCH;
        if (poll(&p, 1, 0) < 0)
                return negative_errno();
        if (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
                return -ECONNRESET;
        r = pidfd_is_alive(fd);
        if (r < 0)
                return r;
        if (r == 0)
                return -ESRCH;
        return TAKE_FD(fd);
}

int pidfd_open_peer(int sockfd, pid_t pid) {
        socklen_t len = sizeof(int);
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (getsockopt(sockfd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) >= 0) {
                /* Since Linux 6.16 the kernel also hands out pidfds of processes that have exited. */
                r = pidfd_is_alive(fd);
                if (r < 0)
                        return r;
                return r > 0 ? TAKE_FD(fd) : -ESRCH;
        }
        if (errno == ENOPROTOOPT)
                return pidfd_open_peer_by_pid(sockfd, pid);
        /* The kernel says EINVAL (6.5) or ESRCH (later) once the process that connected has exited. */
        if (IN_SET(errno, EINVAL, ESRCH))
                return -ESRCH;
        return negative_errno();
}
