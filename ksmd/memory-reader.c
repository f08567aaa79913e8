/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "macro.h"
#include "memory-reader.h"

int memory_read_pages(pid_t pid, const uint64_t *addrs, size_t n, void *buf, size_t *ret_n_read) {
        struct iovec local, remote[MEMORY_READ_MAX_PAGES];
        size_t n_remote = 0;
        ssize_t l;

        if (n > MEMORY_READ_MAX_PAGES)
                return -EINVAL;
        if (n == 0) {
                *ret_n_read = 0;
                return 0;
        }

        for (size_t i = 0; i < n; i++) {
                if (n_remote > 0 &&
                    (uint64_t) (uintptr_t) remote[n_remote - 1].iov_base + remote[n_remote - 1].iov_len ==
                            addrs[i]) {
                        remote[n_remote - 1].iov_len += PAGE_SIZE_BYTES;
                        continue;
                }
                remote[n_remote].iov_base = (void *) (uintptr_t) addrs[i];
                remote[n_remote].iov_len = PAGE_SIZE_BYTES;
                n_remote++;
        }
        local.iov_base = buf;
        local.iov_len = n * PAGE_SIZE_BYTES;

        l = process_vm_readv(pid, &local, 1, remote, n_remote, 0);
        if (l < 0) {
                /* EFAULT on the very first page: nothing read, the rest may still be readable. */
                if (errno == EFAULT) {
                        *ret_n_read = 0;
                        return 0;
                }
                return negative_errno();
        }
        *ret_n_read = (size_t) l / PAGE_SIZE_BYTES;
        return 0;
}

int memory_read(pid_t pid, uint64_t addr, void *buf, size_t len) {
        struct iovec local = { .iov_base = buf, .iov_len = len };
        struct iovec remote = { .iov_base = (void *) (uintptr_t) addr, .iov_len = len };
        ssize_t l;

        l = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (l < 0)
                return errno == ESRCH ? -ESRCH : -EFAULT;
        return (size_t) l == len ? 0 : -EFAULT;
}

int memory_read_fd(int fd, uint64_t addr, void *buf, size_t len) {
        ssize_t l;

        if (addr > INT64_MAX)
                return -EFAULT;
        l = pread(fd, buf, len, (off_t) addr);
        return l >= 0 && (size_t) l == len ? 0 : -EFAULT;
}
