/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <poll.h>
#include <sys/pidfd.h>

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
