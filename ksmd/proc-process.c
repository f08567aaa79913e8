/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int proc_cgroup_is_root_owned(const char *path) {
        char root[4096], dir[8192];
        size_t n, n_root;
        int r;

        if (path[0] != '/' || strstr(path, "/.."))
                return -EINVAL;
        r = cgroup2_mount(root, sizeof(root));
        if (r < 0)
                return r;
        n_root = strlen(root);
        if (snprintf(dir, sizeof(dir), "%s%s", root, path) >= (int) sizeof(dir))
                return -ENAMETOOLONG;
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
        char root[4096], file[8192], text[64];
        uint64_t max, current;
        int r;

        if (path[0] != '/' || strstr(path, "/.."))
                return -EINVAL;
        r = cgroup2_mount(root, sizeof(root));
        if (r < 0)
                return r;
        if (snprintf(file, sizeof(file), "%s%s/memory.max", root, streq(path, "/") ? "" : path) >=
            (int) sizeof(file))
                return -ENAMETOOLONG;
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
