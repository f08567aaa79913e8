/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* -EPERM with reason, or -ESRCH if the process is gone: a refusal of a process that exited says so. */
static int refuse(int pidfd, const char *reason, const char **ret_reason) {
        if (pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        *ret_reason = reason;
        return -EPERM;
}

/* What the caller sent: a file of /proc, open for reading; its identity in *ret. */
static int check_descriptor(int memfd, struct stat *ret, const char **ret_reason) {
        struct statfs sfs;
        int flags;

        if (fstatfs(memfd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC || fstat(memfd, ret) < 0 ||
            !S_ISREG(ret->st_mode)) {
                *ret_reason = "the Memory descriptor is not /proc/PID/mem of that process "
                              "(not a file of /proc)";
                return -EPERM;
        }
        flags = fcntl(memfd, F_GETFL);
        if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) {
                *ret_reason = "the Memory descriptor is not open for reading";
                return -EPERM;
        }
        return 0;
}

/* The kernel's check of the caller's ids against pid, as proc_may_read_as() asks it, as a refusal. */
static int check_ids(pid_t pid, int pidfd, uid_t uid, gid_t gid, const char **ret_reason) {
        int r;

        r = proc_may_read_as(pid, uid, gid, ACCESS_CHECK_TIMEOUT_USEC);
        switch (r) {
        case 0:
                return 0;
        case -ESRCH:
                return -ESRCH;
        case -EACCES:
        case -EPERM:
                return refuse(pidfd,
                              "the kernel does not let its uid and primary group read that process "
                              "(ksmd asked with them as file-system ids and no capability)",
                              ret_reason);
        case -ELOOP:
                return refuse(pidfd, "that process is ksmd itself", ret_reason);
        case -ETIMEDOUT:
                return refuse(pidfd,
                              "ksmd's check of its uid and group against that process did not end "
                              "within a second: try again",
                              ret_reason);
        case -ECHILD:
                return refuse(pidfd,
                              "ksmd cannot take the caller's uid and group to ask the kernel: it needs "
                              "CAP_SETUID and CAP_SETGID (CapabilityBoundingSet= of ksmd.service)",
                              ret_reason);
        default:
                return r;
        }
}

int access_proof_new(int memfd, pid_t pid, int pidfd, uid_t uid, gid_t gid, AccessProof **ret,
                     const char **ret_reason) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        struct stat theirs;
        uint8_t bytes[16];
        TargetIds before = {};
        int r;

        r = check_descriptor(memfd, &theirs, ret_reason);
        if (r < 0)
                return r;
        if (uid != 0 && gid == (gid_t) -1) {
                *ret_reason = "no one vouches for its primary group, which the kernel's check compares (the "
                              "system bus does not): register through ksmd's socket";
                return -EPERM;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        /*
         * The process's own /proc/PID/mem, opened through our /proc while the
         * pidfd shows the process alive: the memory it had then. Held open,
         * it also holds the file's inode while the two are compared.
         */
        p->memfd = proc_open_mem(pid);
        if (p->memfd == -ESRCH || pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        if (p->memfd < 0)
                return p->memfd;
        r = proc_mem_is(pid, theirs.st_dev, theirs.st_ino);
        if (r == -ESRCH || pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        if (r == 0)
                return refuse(pidfd,
                              "the Memory descriptor is not /proc/PID/mem of that process (another file of "
                              "/proc, or one mounted over that path)",
                              ret_reason);
        /* -EXDEV: of another procfs instance, where its inode says nothing: steps 2 and 3 decide. */
        if (r < 0 && r != -EXDEV)
                return r;

        if (uid != 0) {
                r = proc_read_target_ids(pid, &before);
                if (r >= 0)
                        r = check_ids(pid, pidfd, uid, gid, ret_reason);
                if (r < 0)
                        return r == -ESRCH || pidfd_is_alive(pidfd) <= 0 ? -ESRCH : r;
        }

        /* Only now is anything of the process read. */
        r = proc_read_at_random(pid, &p->at_random);
        if (r >= 0)
                r = proc_read_target_ids(pid, &p->creds);
        if (r == -ESRCH || pidfd_is_alive(pidfd) <= 0)
                return -ESRCH;
        if (r < 0)
                return refuse(pidfd, "the process's AT_RANDOM bytes cannot be read", ret_reason);
        if (uid != 0 && !same_creds(&before, &p->creds))
                return refuse(pidfd, "its credentials changed while ksmd checked: try again", ret_reason);
        /* Ours reads only the memory the process had when we opened it: after an exec, nothing. */
        if (memory_read_fd(p->memfd, p->at_random, p->bytes, sizeof(p->bytes)) < 0)
                return refuse(pidfd, "it executed another program while ksmd checked: try again",
                              ret_reason);
        if (memory_read_fd(memfd, p->at_random, bytes, sizeof(bytes)) < 0 ||
            memcmp(bytes, p->bytes, sizeof(bytes)) != 0)
                return refuse(pidfd,
                              "the Memory descriptor is not the memory of that process now (it was opened "
                              "before the process executed another program)",
                              ret_reason);
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
