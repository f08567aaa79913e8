/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The /proc reader's process half: who a process runs as (for the proofs
 * of access, access.h, and DomainPolicy=owner), its cgroup and executable
 * (for automatic registration) and the list of pids. Like proc-reader.c, this is
 * where /proc is touched; -ESRCH/-ENOENT mean the process is gone.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Who a process runs as, as /proc/PID/status and the owner of /proc/PID tell. */
typedef struct TargetIds {
        uid_t uid, euid, suid;
        gid_t gid, egid, sgid;
        bool dumpable;
        uint64_t cap_permitted;
} TargetIds;

/* Real/effective/saved ids, dumpability and permitted capabilities of pid. */
int proc_read_target_ids(pid_t pid, TargetIds *ret);

/* The permitted capability set of pid (CapPrm). */
int proc_read_cap_permitted(pid_t pid, uint64_t *ret);

/* The path of one of this process's open file descriptors, as /proc/self/fd/FD says. */
int proc_fd_path(int fd, char *buf, size_t size);

/*
 * A read-only descriptor of /proc/PID/mem, opened by this process through
 * its own /proc (close-on-exec): the memory pid has now, held until closed.
 * -ESRCH if pid is gone, other -errno.
 */
int proc_open_mem(pid_t pid);

/*
 * Whether the open file with device dev and inode ino is /proc/PID/mem of
 * pid, compared with the file this process opens in its own /proc and in
 * PID 1's (/proc/1/root/proc: the procfs of the host's mount namespace,
 * which a service's may not be: systemd's sandboxing mounts one of its own).
 * 1 if it is; 0 if it is another file of one of those two procfs; -EXDEV if
 * it is of neither (another procfs instance, whose inodes say nothing
 * here); -ESRCH if pid is gone; other -errno.
 */
int proc_mem_is(pid_t pid, dev_t dev, ino_t ino);

/*
 * Asks the kernel whether uid with primary group gid may read the memory of
 * pid: a child of this process takes them as its file-system ids, drops
 * every capability and opens /proc/PID/auxv, which runs the kernel's ptrace
 * check (mm_access, PTRACE_MODE_READ_FSCREDS) with them and with nothing of
 * ours (access.h says why this file, why no supplementary group, and why the
 * child's real and saved ids stay root's). Blocks for as long as the open
 * takes, at most timeout_usec: the child is then killed.
 *
 * 0 if the kernel lets them; -EACCES or -EPERM as it refuses; -ESRCH if pid
 * is gone or has no memory; -ELOOP if pid shares this process's memory (the
 * kernel checks nothing for that); -ETIMEDOUT if the child did not finish in
 * time; -ECHILD if the child could not take those ids (this process lacks
 * CAP_SETUID or CAP_SETGID): nothing was asked then; other -errno.
 */
int proc_may_read_as(pid_t pid, uid_t uid, gid_t gid, uint64_t timeout_usec);

/* The address of the 16 random bytes the kernel gave pid at exec (AT_RANDOM in /proc/PID/auxv). */
int proc_read_at_random(pid_t pid, uint64_t *ret_addr);

/*
 * 1 if the cgroup v2 directory of path ("/machine.slice/...") and every
 * directory above it up to the hierarchy's root are owned by root and
 * writable by no one else, so that no user can have made it or moved a
 * process into it by delegation; 0 if not; -errno (-ENOENT: no cgroup v2
 * hierarchy is mounted). The hierarchy is found in /proc/self/mounts.
 */
int proc_cgroup_is_root_owned(const char *path);

/* The pid a pidfd of this process refers to (-ESRCH if it has exited). */
int proc_pidfd_get_pid(int pidfd, pid_t *ret);

/*
 * Both are the bytes as the kernel has them, for matching; whoever made the
 * cgroup or the file chose them: escape them (escape.h) before they are logged,
 * sent or printed.
 */

/*
 * The cgroup v2 path of pid ("/machine.slice/..."), from /proc/PID/cgroup's "0::" line;
 * -ENODATA without one, -EBADMSG with more than one.
 */
int proc_read_cgroup(pid_t pid, char *buf, size_t size);
int proc_parse_cgroup(const char *text, char *buf, size_t size);

/* MemTotal and MemAvailable of /proc/meminfo, in bytes. -ENODATA if either is missing. */
int proc_read_meminfo(uint64_t *ret_total_bytes, uint64_t *ret_available_bytes);
int proc_parse_meminfo(const char *text, uint64_t *ret_total_bytes, uint64_t *ret_available_bytes);

/*
 * memory.max and memory.current of the cgroup v2 directory path ("/machine.slice/..."), in bytes;
 * *ret_max_bytes is UINT64_MAX for "max" (no limit). -errno if the directory or its memory files are
 * not there (-ESRCH: the hierarchy's root has none, nor a cgroup without the memory controller).
 */
int proc_read_cgroup_memory(const char *path, uint64_t *ret_max_bytes, uint64_t *ret_current_bytes);

/* The file name of pid's executable, without directory or " (deleted)"; -ENOENT for kernel threads. */
int proc_read_exe_name(pid_t pid, char *buf, size_t size);

/* Every pid in /proc, in a malloc'ed array owned by the caller. */
int proc_list_pids(pid_t **ret, size_t *ret_n);
