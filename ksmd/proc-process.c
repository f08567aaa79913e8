/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "proc-process.h"

/* Finds "Key:" in /proc/PID/status-like text and returns the rest of the line. */
static const char *find_field(const char *text, const char *key) {
        size_t n = strlen(key);

        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');

                if (strncmp(p, key, n) == 0 && p[n] == ':')
                        return p + n + 1;
                if (!nl)
                        break;
                p = nl + 1;
        }
        return NULL;
}

static int read_small_file(const char *path, char *buf, size_t size) {
        FILE *f;
        size_t n;

        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ESRCH : -errno;
        n = fread(buf, 1, size - 1, f);
        if (ferror(f)) {
                int r = errno == ESRCH ? -ESRCH : -EIO;

                fclose(f);
                return r;
        }
        /* Cut, a line could read as what it is not: a file this long is refused. */
        if (n == size - 1 && fgetc(f) != EOF) {
                fclose(f);
                return -EFBIG;
        }
        fclose(f);
        buf[n] = '\0';
        return 0;
}

static int read_status(pid_t pid, char *buf, size_t size) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        return read_small_file(path, buf, size);
}

static int parse_ids(const char *text, const char *key, unsigned long ret[3]) {
        const char *v = find_field(text, key);

        if (!v || sscanf(v, "%lu %lu %lu", &ret[0], &ret[1], &ret[2]) != 3)
                return -EBADMSG;
        return 0;
}

static int parse_caps(const char *text, uint64_t *ret) {
        const char *v = find_field(text, "CapPrm");

        if (!v || sscanf(v, "%" SCNx64, ret) != 1)
                return -EBADMSG;
        return 0;
}

int proc_read_target_ids(pid_t pid, TargetIds *ret) {
        unsigned long u[3], g[3];
        char buf[4096], path[64];
        TargetIds t = {};
        struct stat st;
        int r;

        r = read_status(pid, buf, sizeof(buf));
        if (r < 0)
                return r;
        if (parse_ids(buf, "Uid", u) < 0 || parse_ids(buf, "Gid", g) < 0 ||
            parse_caps(buf, &t.cap_permitted) < 0)
                return -EBADMSG;
        t.uid = (uid_t) u[0];
        t.euid = (uid_t) u[1];
        t.suid = (uid_t) u[2];
        t.gid = (gid_t) g[0];
        t.egid = (gid_t) g[1];
        t.sgid = (gid_t) g[2];

        /* The kernel makes /proc/PID owned by root when the task is not
         * dumpable (fs/proc/base.c task_dump_owner). */
        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        if (stat(path, &st) < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        t.dumpable = st.st_uid == t.euid;

        *ret = t;
        return 0;
}

int proc_read_cap_permitted(pid_t pid, uint64_t *ret) {
        char buf[4096];
        int r;

        r = read_status(pid, buf, sizeof(buf));
        if (r < 0)
                return r;
        return parse_caps(buf, ret);
}

int proc_pidfd_get_pid(int pidfd, pid_t *ret) {
        char path[64], buf[4096];
        const char *v;
        int r, pid;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
        r = read_small_file(path, buf, sizeof(buf));
        if (r < 0)
                return r == -ESRCH ? -EBADF : r;
        v = find_field(buf, "Pid");
        if (!v)
                return -EBADF; /* not a pidfd */
        if (sscanf(v, "%d", &pid) != 1)
                return -EBADMSG;
        if (pid <= 0)
                return -ESRCH; /* the kernel shows -1 once the process is gone */
        *ret = pid;
        return 0;
}

int proc_fd_path(int fd, char *buf, size_t size) {
        char path[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return 0;
}

int proc_open_mem(pid_t pid) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/mem", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        return fd;
}

int proc_mem_is(pid_t pid, dev_t dev, ino_t ino) {
        static const char *const roots[] = { "/proc", "/proc/1/root/proc" };

        for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
                _cleanup_close_ int fd = -EBADF;
                struct stat st;
                char path[64];

                snprintf(path, sizeof(path), "%s/%d/mem", roots[i], (int) pid);
                /* Held open while compared: the numbers compared are of two live inodes. */
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        if (errno == ENOENT && i == 0)
                                return -ESRCH;
                        continue;       /* PID 1's root may be out of reach: that procfs is not compared */
                }
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                if (st.st_dev == dev)
                        return st.st_ino == ino;
        }
        return -EXDEV;
}

/* What proc_may_read_as() hands its child, and the child's answer. */
typedef struct ReadCheck {
        char path[64];                   /* /proc/PID/auxv */
        uid_t uid;
        gid_t gid;
        uint64_t timeout_usec;
        int result;                      /* 0 or -errno of the open; or one of the two below */
} ReadCheck;

#define READ_CHECK_UNFINISHED 1          /* the child died before it answered */
#define READ_CHECK_NO_IDS 2              /* the child could not take the ids */
#define READ_CHECK_STACK_BYTES (64u << 10)

/*
 * The child of proc_may_read_as(). It runs on our memory (CLONE_VM) while we
 * wait (CLONE_VFORK), as posix_spawn()'s child does: system calls only, no
 * allocation, no lock, no stdio.
 */
static int read_check_child(void *userdata) {
        ReadCheck *c = userdata;
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
        struct itimerval deadline = {
                .it_value.tv_sec = (time_t) (c->timeout_usec / USEC_PER_SEC),
                .it_value.tv_usec = (suseconds_t) (c->timeout_usec % USEC_PER_SEC),
        };
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t only_alarm;
        int fd;

        /* The deadline: SIGALRM's default action ends the child, also in the killable wait of the open. */
        sigfillset(&only_alarm);
        sigdelset(&only_alarm, SIGALRM);
        if (sigaction(SIGALRM, &dfl, NULL) < 0 || sigprocmask(SIG_SETMASK, &only_alarm, NULL) < 0 ||
            setitimer(ITIMER_REAL, &deadline, NULL) < 0) {
                c->result = negative_errno();
                return 0;
        }

        /*
         * The caller's ids as file-system ids, which are what the kernel's
         * check of a /proc open compares (PTRACE_MODE_FSCREDS, and the
         * file's mode), then no capability at all. setfsuid() answers with
         * the id it had before, never with an error: each is read back.
         */
        (void) syscall(SYS_setfsgid, c->gid);
        (void) syscall(SYS_setfsuid, c->uid);
        if (syscall(SYS_capset, &header, caps) < 0 || (gid_t) syscall(SYS_setfsgid, (gid_t) -1) != c->gid ||
            (uid_t) syscall(SYS_setfsuid, (uid_t) -1) != c->uid ||
            syscall(SYS_capget, &header, caps) < 0) {
                c->result = READ_CHECK_NO_IDS;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(caps); i++)
                if (caps[i].effective || caps[i].permitted || caps[i].inheritable) {
                        c->result = READ_CHECK_NO_IDS;
                        return 0;
                }

        fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        c->result = fd < 0 ? negative_errno() : 0;
        return 0;
}

/*
 * 1 if pid runs on this process's memory (kcmp(2) KCMP_VM), 0 if not, -ESRCH. Where kcmp() cannot
 * answer (no CONFIG_KCMP, a seccomp filter), only we can: we have no threads, and the only other
 * processes on our memory are proc_may_read_as()'s children, one at a time and reaped before it returns.
 */
static int shares_our_memory(pid_t pid) {
        long k = syscall(SYS_kcmp, getpid(), pid, KCMP_VM, 0, 0);

        if (k < 0)
                return errno == ESRCH ? -ESRCH : pid == getpid();
        return k == 0;
}

int proc_may_read_as(pid_t pid, uid_t uid, gid_t gid, uint64_t timeout_usec) {
        ReadCheck c = {
                .uid = uid, .gid = gid, .timeout_usec = timeout_usec, .result = READ_CHECK_UNFINISHED,
        };
        sigset_t all, saved;
        int dumpable, status = 0, r;
        pid_t child;
        void *stack;

        if (pid <= 0 || timeout_usec == 0)
                return -EINVAL;
        /* The child runs on our memory: for a process on it too, mm_access() checks nothing. */
        r = shares_our_memory(pid);
        if (r != 0)
                return r > 0 ? -ELOOP : r;
        snprintf(c.path, sizeof(c.path), "/proc/%d/auxv", (int) pid);

        stack = mmap(NULL, READ_CHECK_STACK_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return negative_errno();
        dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);

        /* As posix_spawn(): none of our signal handlers may run in the child, on our memory. */
        sigfillset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, &saved);
        child = clone(read_check_child, (uint8_t *) stack + READ_CHECK_STACK_BYTES,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
        r = child < 0 ? negative_errno() : 0;
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        if (child > 0)
                while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                        ;
        /* New file-system ids made the memory we share undumpable (commit_creds()): as it was. */
        if (dumpable == 1 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
                (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        (void) munmap(stack, READ_CHECK_STACK_BYTES);
        if (r < 0)
                return r;

        switch (c.result) {
        case READ_CHECK_UNFINISHED:
                return WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? -ETIMEDOUT : -EIO;
        case READ_CHECK_NO_IDS:
                return -ECHILD;
        case -ENOENT:
                return -ESRCH;
        default:
                return c.result;
        }
}

int proc_read_at_random(pid_t pid, uint64_t *ret_addr) {
        uint64_t auxv[512];
        char path[64];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/auxv", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        n = read(fd, auxv, sizeof(auxv));
        close(fd);
        if (n < 0)
                return -errno;
        for (size_t i = 0; i + 1 < (size_t) n / sizeof(uint64_t); i += 2)
                if (auxv[i] == AT_RANDOM) {
                        *ret_addr = auxv[i + 1];
                        return 0;
                }
        return -ENODATA;
}

/* Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts. */
static int cgroup2_mount(char *buf, size_t size) {
        char line[4096], dev[256], dir[4096], type[64];
        FILE *f;
        int r = -ENOENT;

        f = fopen("/proc/self/mounts", "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%255s %4095s %63s", dev, dir, type) == 3 && streq(type, "cgroup2") &&
                    strlen(dir) < size) {
                        strcpy(buf, dir);
                        r = 0;
                        break;
                }
        fclose(f);
        return r;
}

/*
 * The file (or, with file NULL, the directory) of the cgroup at path, an
 * absolute cgroup path without "..", under the cgroup v2 mount; *ret_root_len
 * is the length of the mount's own path in buf.
 */
static int cgroup2_path(const char *path, const char *file, char *buf, size_t size, size_t *ret_root_len) {
        char root[4096];
        int r;

        if (path[0] != '/' || strstr(path, "/.."))
                return -EINVAL;
        r = cgroup2_mount(root, sizeof(root));
        if (r < 0)
                return r;
        if (snprintf(buf, size, "%s%s%s%s", root, file && streq(path, "/") ? "" : path, file ? "/" : "",
                     file ? file : "") >= (int) size)
                return -ENAMETOOLONG;
        if (ret_root_len)
                *ret_root_len = strlen(root);
        return 0;
}

int proc_cgroup_is_root_owned(const char *path) {
        char dir[8192];
        size_t n, n_root;
        int r;

        r = cgroup2_path(path, NULL, dir, sizeof(dir), &n_root);
        if (r < 0)
                return r;
        for (n = strlen(dir); n > n_root;) {
                struct stat st;

                if (stat(dir, &st) < 0)
                        return -errno;
                if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
                        return 0;
                while (n > 0 && dir[n - 1] != '/')
                        n--;
                if (n > 0)
                        n--;
                dir[n] = '\0';
        }
        return 1;
}

int proc_parse_cgroup(const char *text, char *buf, size_t size) {
        const char *found = NULL;
        size_t n;

        for (const char *line = text; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (strncmp(line, "0::", 3) == 0) {
                        /*
                         * The kernel refuses '\n' in cgroup names, so a second "0::" line is
                         * not a file it wrote: trust neither.
                         */
                        if (found)
                                return -EBADMSG;
                        found = line + 3;
                }
        if (!found)
                return -ENODATA; /* no cgroup v2 hierarchy */
        n = strcspn(found, "\n");
        if (n >= size)
                return -ENAMETOOLONG;
        memcpy(buf, found, n);
        buf[n] = '\0';
        return 0;
}

int proc_read_cgroup(pid_t pid, char *buf, size_t size) {
        char path[64], text[4096];
        int r;

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
        r = read_small_file(path, text, sizeof(text));
        if (r < 0)
                return r;
        return proc_parse_cgroup(text, buf, size);
}

int proc_parse_meminfo(const char *text, uint64_t *ret_total_bytes, uint64_t *ret_available_bytes) {
        uint64_t total = UINT64_MAX, available = UINT64_MAX;

        for (const char *line = text, *end; line && *line; line = end ? end + 1 : NULL) {
                unsigned long long kib;

                end = strchr(line, '\n');

                if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
                        total = (uint64_t) kib * 1024;
                else if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
                        available = (uint64_t) kib * 1024;
        }
        if (total == UINT64_MAX || available == UINT64_MAX)
                return -ENODATA;
        *ret_total_bytes = total;
        *ret_available_bytes = available;
        return 0;
}

int proc_read_meminfo(uint64_t *ret_total_bytes, uint64_t *ret_available_bytes) {
        char text[8192];
        int r;

        r = read_small_file("/proc/meminfo", text, sizeof(text));
        if (r < 0)
                return r;
        return proc_parse_meminfo(text, ret_total_bytes, ret_available_bytes);
}

int proc_read_cgroup_memory(const char *path, uint64_t *ret_max_bytes, uint64_t *ret_current_bytes) {
        char file[8192], text[64];
        uint64_t max, current;
        int r;

        r = cgroup2_path(path, "memory.max", file, sizeof(file), NULL);
        if (r < 0)
                return r;
        r = read_small_file(file, text, sizeof(text));
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = '\0';
        if (streq(text, "max"))
                max = UINT64_MAX;
        else if (parse_uint64_range(text, 0, UINT64_MAX - 1, &max) < 0)
                return -EBADMSG;
        strcpy(file + strlen(file) - strlen("max"), "current");
        r = read_small_file(file, text, sizeof(text));
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = '\0';
        if (parse_uint64_range(text, 0, UINT64_MAX - 1, &current) < 0)
                return -EBADMSG;
        *ret_max_bytes = max;
        *ret_current_bytes = current;
        return 0;
}

int proc_read_exe_name(pid_t pid, char *buf, size_t size) {
        char path[64], target[4096];
        const char *base;
        ssize_t n;
        size_t len;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        len = (size_t) n;
        if (len > 10 && strcmp(target + len - 10, " (deleted)") == 0)
                target[len - 10] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strlen(base) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, base);
        return 0;
}

int proc_list_pids(pid_t **ret, size_t *ret_n) {
        pid_t *pids = NULL, *p;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        d = opendir("/proc");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char *end;
                long v = strtol(de->d_name, &end, 10);

                if (*end || v <= 0)
                        continue;
                p = realloc(pids, (n + 1) * sizeof(pid_t));
                if (!p) {
                        free(pids);
                        closedir(d);
                        return -ENOMEM;
                }
                pids = p;
                pids[n++] = (pid_t) v;
        }
        closedir(d);
        *ret = pids;
        *ret_n = n;
        return 0;
}
