/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "access.h"
#include "memory-reader.h"
#include "pidfd-util.h"

AccessProof *access_proof_free(AccessProof *p) {
        if (!p)
                return NULL;
        safe_close(p->memfd);
        free(p);
        return NULL;
}

static bool same_creds(const TargetIds *a, const TargetIds *b) {
        return a->uid == b->uid && a->euid == b->euid && a->suid == b->suid && a->gid == b->gid &&
               a->egid == b->egid && a->sgid == b->sgid && a->dumpable == b->dumpable &&
               a->cap_permitted == b->cap_permitted;
}

int access_proof_new(int memfd, pid_t pid, int pidfd, AccessProof **ret, const char **ret_reason) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        char path[64], want[64];
        uint8_t direct[16];
        struct statfs sfs;
        int flags, r;

        snprintf(want, sizeof(want), "/proc/%d/mem", (int) pid);
        if (fstatfs(memfd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC ||
            proc_fd_path(memfd, path, sizeof(path)) < 0 || !streq(path, want)) {
                *ret_reason = "the Memory descriptor is not /proc/PID/mem of that process";
                return -EPERM;
        }
        flags = fcntl(memfd, F_GETFL);
        if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) {
                *ret_reason = "the Memory descriptor is not open for reading";
                return -EPERM;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->memfd = fcntl(memfd, F_DUPFD_CLOEXEC, 3);
        if (p->memfd < 0)
                return -errno;

        r = proc_read_at_random(pid, &p->at_random);
        if (r >= 0)
                r = proc_read_target_ids(pid, &p->creds);
        if (r >= 0)
                r = memory_read(pid, p->at_random, direct, sizeof(direct));
        if (r == -ESRCH || pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        if (r < 0) {
                *ret_reason = "the process's AT_RANDOM bytes cannot be read";
                return -EPERM;
        }
        if (memory_read_fd(p->memfd, p->at_random, p->bytes, sizeof(p->bytes)) < 0 ||
            memcmp(p->bytes, direct, sizeof(direct)) != 0) {
                *ret_reason = "the Memory descriptor is not the memory of that process";
                return -EPERM;
        }
        /* Read by pid above: only now is it certain they were the process of the pidfd. */
        if (pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        *ret = TAKE_PTR(p);
        return 0;
}

int access_proof_check(const AccessProof *p, pid_t pid, int pidfd, const char **ret_reason) {
        uint8_t now[16];
        TargetIds creds;
        int r;

        if (memory_read_fd(p->memfd, p->at_random, now, sizeof(now)) < 0 ||
            memcmp(now, p->bytes, sizeof(now)) != 0) {
                if (pidfd_is_alive(pidfd) <= 0)
                        return -ESRCH;
                *ret_reason = "it executed another program";
                return -ESTALE;
        }
        r = proc_read_target_ids(pid, &creds);
        if (r < 0 || pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        if (!same_creds(&creds, &p->creds)) {
                *ret_reason = "its credentials changed";
                return -EPERM;
        }
        return 0;
}
