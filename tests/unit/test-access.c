/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Proofs of access (access.h) against real child processes. */
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "access.h"
#include "pidfd-util.h"
#include "proc-process.h"

#define NOBODY 65534

typedef struct Child {
        pid_t pid;
        int pidfd;
        int go;                          /* write a byte: the child acts (see start_child) */
} Child;

typedef enum ChildAct {
        CHILD_WAIT,                      /* keep running as it is */
        CHILD_EXEC,                      /* execute /bin/sleep */
        CHILD_SETUID,                    /* become nobody (needs root) */
        CHILD_NOBODY,                    /* become nobody and stay dumpable, as a pre-fork server's worker */
} ChildAct;

/* A child that, once told, does act and then sleeps; it dies with the test. */
static Child start_child(ChildAct act) {
        int go[2], ready[2];
        Child c = {};
        char b;

        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        c.pid = fork();
        assert_true(c.pid >= 0);
        if (c.pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
                        _exit(1);
                if (act == CHILD_EXEC)
                        execl("/bin/sleep", "sleep", "60", (char *) NULL);
                if (act == CHILD_NOBODY &&
                    (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0 ||
                     prctl(PR_SET_DUMPABLE, 1) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0))
                        _exit(1);
                if (act == CHILD_SETUID && setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(1);
                (void) write(ready[1], "r", 1);
                for (;;)
                        pause();
        }
        close(go[0]);
        close(ready[1]);
        assert_int_equal(read(ready[0], &b, 1), 1);
        c.go = go[1];
        c.pidfd = pidfd_open_pid(c.pid);
        assert_true(c.pidfd >= 0);
        /* Keep the read end for the act's completion. */
        c.go = go[1] | (ready[0] << 16);
        return c;
}

/* Tells the child to act and waits until it did (or, for exec, a moment for the exec to happen). */
static void child_act(Child *c) {
        int go = c->go & 0xffff, ready = c->go >> 16;
        char b;

        assert_int_equal(write(go, "g", 1), 1);
        if (read(ready, &b, 1) != 1)
                (void) usleep(200000); /* exec closed the pipe (O_CLOEXEC) */
        (void) usleep(100000);
}

static void stop_child(Child *c) {
        (void) kill(c->pid, SIGKILL);
        (void) waitpid(c->pid, NULL, 0);
        close(c->pidfd);
        close(c->go & 0xffff);
        close(c->go >> 16);
}

static int open_mem(pid_t pid) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/mem", (int) pid);
        return open(path, O_RDONLY | O_CLOEXEC);
}

#define NOT_PROC_REASON "the Memory descriptor is not /proc/PID/mem of that process (not a file of /proc)"
#define INODE_REASON \
        "the Memory descriptor is not /proc/PID/mem of that process (another file of /proc, or one " \
        "mounted over that path)"
#define KERNEL_REASON \
        "the kernel does not let its uid and primary group read that process (ksmd asked with them as " \
        "file-system ids and no capability)"

static void test_own_childs_memory_proves_access(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child c = start_child(CHILD_WAIT);
        _cleanup_close_ int fd = open_mem(c.pid);
        const char *reason = NULL;

        assert_true(fd >= 0);
        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, 0, 0, &p, &reason), 0);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), 0);
        stop_child(&c);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), -ESRCH);
}

static void test_a_descriptor_of_something_else_proves_nothing(void **state) {
        AccessProof *p = NULL;
        Child c = start_child(CHILD_WAIT);
        _cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC), self = open_mem(getpid());
        const char *reason = NULL;

        assert_int_equal(access_proof_new(null, c.pid, c.pidfd, 0, 0, &p, &reason), -EPERM);
        assert_string_equal(reason, NOT_PROC_REASON);
        /* Ours is /proc/PID/mem of another process, though the child, a fork, has our AT_RANDOM bytes. */
        assert_int_equal(access_proof_new(self, c.pid, c.pidfd, 0, 0, &p, &reason), -EPERM);
        assert_string_equal(reason, INODE_REASON);
        assert_null(p);
        stop_child(&c);
}

static void test_exec_ends_the_proof(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child c = start_child(CHILD_EXEC);
        _cleanup_close_ int fd = open_mem(c.pid);
        const char *reason = NULL;

        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, 0, 0, &p, &reason), 0);
        child_act(&c);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), -ESTALE);
        assert_string_equal(reason, "it executed another program");
        stop_child(&c);
}

static void test_new_credentials_end_the_proof(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child c;
        int fd;
        const char *reason = NULL;

        if (geteuid() != 0)
                skip();
        c = start_child(CHILD_SETUID);
        fd = open_mem(c.pid);
        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, 0, 0, &p, &reason), 0);
        close(fd);
        child_act(&c);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), -EPERM);
        assert_string_equal(reason, "its credentials changed");
        stop_child(&c);
}

/* Root's descriptor of a process, handed to a user: the kernel is asked with the user's ids, not root's. */
static void test_the_kernel_is_asked_with_the_callers_ids(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child roots = start_child(CHILD_WAIT), nobodys = start_child(CHILD_NOBODY);
        _cleanup_close_ int root_fd = open_mem(roots.pid), nobody_fd = -EBADF;
        const char *reason = NULL;

        if (geteuid() != 0)
                skip();
        assert_int_equal(access_proof_new(root_fd, roots.pid, roots.pidfd, NOBODY, NOBODY, &p, &reason),
                         -EPERM);
        assert_string_equal(reason, KERNEL_REASON);
        assert_null(p);
        /* Another primary group than the process's: the kernel compares groups too. */
        child_act(&nobodys);
        nobody_fd = open_mem(nobodys.pid);
        assert_true(nobody_fd >= 0);
        assert_int_equal(access_proof_new(nobody_fd, nobodys.pid, nobodys.pidfd, NOBODY, 0, &p, &reason),
                         -EPERM);
        assert_string_equal(reason, KERNEL_REASON);
        /* The user's own process, dumpable: yes. */
        assert_int_equal(access_proof_new(nobody_fd, nobodys.pid, nobodys.pidfd, NOBODY, NOBODY, &p,
                                          &reason), 0);
        assert_int_equal(access_proof_check(p, nobodys.pid, nobodys.pidfd, &reason), 0);
        stop_child(&roots);
        stop_child(&nobodys);
}

/* Sends fd over sock (SCM_RIGHTS). */
static void send_fd(int sock, int fd) {
        char buf[CMSG_SPACE(sizeof(int))] = {}, b = 'f';
        struct iovec iov = { .iov_base = &b, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        assert_non_null(cm);
        if (!cm)
                return;
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        assert_int_equal(sendmsg(sock, &mh, 0), 1);
}

static int recv_fd(int sock) {
        char buf[CMSG_SPACE(sizeof(int))] = {}, b;
        struct iovec iov = { .iov_base = &b, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf),
        };
        int fd;

        struct cmsghdr *cm;

        assert_int_equal(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC), 1);
        cm = CMSG_FIRSTHDR(&mh);
        assert_non_null(cm);
        if (!cm)
                return -EBADF;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        return fd;
}

/*
 * A process in a mount namespace of its own that bind-mounted /proc/FROM/mem over /proc/OVER/mem and opened
 * that path: the attack a user runs in a user and mount namespace of its own (unshare -Urm). It keeps the
 * namespace until mounted_over_end().
 */
typedef struct MountedOver {
        pid_t helper;
        int sock;
        int fd;                          /* what it opened */
} MountedOver;

/* from 0: a procfs instance of its own is mounted on /tmp, and /tmp/OVER/mem is opened. */
static MountedOver mounted_over_start(pid_t from, pid_t over) {
        char src[64], dst[64], b;
        MountedOver m = {};
        int sv[2], fd;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        m.helper = fork();
        assert_true(m.helper >= 0);
        if (m.helper == 0) {
                close(sv[0]);
                snprintf(src, sizeof(src), "/proc/%d/mem", (int) from);
                snprintf(dst, sizeof(dst), "%s/%d/mem", from > 0 ? "/proc" : "/tmp", (int) over);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(1);
                if (from > 0 ? mount(src, dst, NULL, MS_BIND, NULL) < 0 :
                               mount("proc", "/tmp", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                        _exit(1);
                fd = open(dst, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        _exit(2);
                send_fd(sv[1], fd);
                (void) read(sv[1], &b, 1);
                _exit(0);
        }
        close(sv[1]);
        m.sock = sv[0];
        m.fd = recv_fd(m.sock);
        return m;
}

static void mounted_over_end(MountedOver *m) {
        int status;

        close(m->fd);
        close(m->sock);
        assert_int_equal(waitpid(m->helper, &status, 0), m->helper);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Our forks, as a pre-fork server's root master and its worker, now nobody: the same AT_RANDOM bytes. */
static void start_master_and_worker(Child *ret_master, Child *ret_worker) {
        *ret_master = start_child(CHILD_WAIT);
        *ret_worker = start_child(CHILD_NOBODY);
        child_act(ret_worker);
}

static void test_a_bind_mount_over_the_path_proves_nothing(void **state) {
        AccessProof *p = NULL;
        Child master, worker;
        MountedOver m;
        struct stat st;
        char path[64], link[64];
        const char *reason = NULL;

        if (geteuid() != 0)
                skip();
        start_master_and_worker(&master, &worker);
        m = mounted_over_start(worker.pid, master.pid);
        snprintf(path, sizeof(path), "/proc/%d/mem", (int) master.pid);
        assert_int_equal(proc_fd_path(m.fd, link, sizeof(link)), 0);
        assert_string_equal(link, path); /* all a check of the path sees */
        assert_int_equal(fstat(m.fd, &st), 0);
        assert_int_equal(proc_mem_is(master.pid, st.st_dev, st.st_ino), 0);
        assert_int_equal(proc_mem_is(worker.pid, st.st_dev, st.st_ino), 1);
        assert_int_equal(access_proof_new(m.fd, master.pid, master.pidfd, NOBODY, NOBODY, &p, &reason),
                         -EPERM);
        assert_string_equal(reason, INODE_REASON);
        /* Root's proof is checked the same way. */
        assert_int_equal(access_proof_new(m.fd, master.pid, master.pidfd, 0, 0, &p, &reason), -EPERM);
        assert_string_equal(reason, INODE_REASON);
        assert_null(p);
        mounted_over_end(&m);
        stop_child(&master);
        stop_child(&worker);
}

/* A procfs instance of another mount namespace: inodes cannot be compared; the kernel's answer decides. */
static void test_a_third_procfs_is_left_to_the_kernels_answer(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child master, worker;
        MountedOver m;
        struct stat st;
        const char *reason = NULL;

        if (geteuid() != 0)
                skip();
        start_master_and_worker(&master, &worker);
        m = mounted_over_start(0, master.pid);
        assert_int_equal(fstat(m.fd, &st), 0);
        assert_int_equal(proc_mem_is(master.pid, st.st_dev, st.st_ino), -EXDEV);
        /* Root's own, the master's file: the bytes match, root needs no kernel check. */
        assert_int_equal(access_proof_new(m.fd, master.pid, master.pidfd, 0, 0, &p, &reason), 0);
        access_proof_freep(&p);
        /* The same file as nobody's proof: the kernel, asked with nobody's ids, refuses. */
        assert_int_equal(access_proof_new(m.fd, master.pid, master.pidfd, NOBODY, NOBODY, &p, &reason),
                         -EPERM);
        assert_string_equal(reason, KERNEL_REASON);
        mounted_over_end(&m);
        /* And the worker's, which nobody may read, named as the master's: the same. */
        m = mounted_over_start(0, worker.pid);
        assert_int_equal(access_proof_new(m.fd, master.pid, master.pidfd, NOBODY, NOBODY, &p, &reason),
                         -EPERM);
        assert_string_equal(reason, KERNEL_REASON);
        assert_null(p);
        mounted_over_end(&m);
        stop_child(&master);
        stop_child(&worker);
}

static void test_ksmd_itself_is_never_proven(void **state) {
        AccessProof *p = NULL;
        _cleanup_close_ int fd = open_mem(getpid()), pidfd = pidfd_open_pid(getpid());
        const char *reason = NULL;

        if (geteuid() != 0)
                skip();
        /* The kernel's check has a shortcut for a process on the checker's own memory, which ours shares. */
        assert_int_equal(access_proof_new(fd, getpid(), pidfd, NOBODY, NOBODY, &p, &reason), -EPERM);
        assert_string_equal(reason, "that process is ksmd itself");
        assert_int_equal(proc_may_read_as(getpid(), NOBODY, NOBODY, 1000000), -ELOOP);
        assert_null(p);
}

static void test_no_proof_without_a_vouched_primary_group(void **state) {
        AccessProof *p = NULL;
        Child c = start_child(CHILD_WAIT);
        _cleanup_close_ int fd = open_mem(c.pid);
        const char *reason = NULL;

        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, NOBODY, (gid_t) -1, &p, &reason), -EPERM);
        assert_string_equal(reason,
                            "no one vouches for its primary group, which the kernel's check compares "
                            "(the system bus does not): register through ksmd's socket");
        assert_null(p);
        stop_child(&c);
}

/* The checker's answers as they are, without access.c: the kernel's errno, and the checker's own. */
static void test_the_checker_reports_what_the_kernel_says(void **state) {
        Child roots, nobodys;
        int status;
        pid_t pid;

        if (geteuid() != 0)
                skip();
        roots = start_child(CHILD_WAIT);
        nobodys = start_child(CHILD_NOBODY);
        child_act(&nobodys);
        assert_int_equal(proc_may_read_as(nobodys.pid, NOBODY, NOBODY, 1000000), 0);
        assert_int_equal(proc_may_read_as(roots.pid, NOBODY, NOBODY, 1000000), -EACCES);
        /* Root's ids without a capability do not read a process with capabilities either. */
        assert_int_equal(proc_may_read_as(roots.pid, 0, 0, 1000000), -EACCES);
        assert_int_equal(proc_may_read_as(nobodys.pid, 0, 0, 1000000), -EACCES);
        stop_child(&nobodys);
        assert_int_equal(proc_may_read_as(nobodys.pid, NOBODY, NOBODY, 1000000), -ESRCH);

        /* Without CAP_SETUID the checker cannot take the ids: it says so rather than ask with ours. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};

                if (syscall(SYS_capget, &h, d) < 0)
                        _exit(10);
                d[0].effective &= ~(1u << CAP_SETUID);
                d[0].permitted &= ~(1u << CAP_SETUID);
                if (syscall(SYS_capset, &h, d) < 0)
                        _exit(11);
                _exit(proc_may_read_as(roots.pid, NOBODY, NOBODY, 1000000) == -ECHILD ? 0 : 12);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        stop_child(&roots);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_own_childs_memory_proves_access),
                cmocka_unit_test(test_a_descriptor_of_something_else_proves_nothing),
                cmocka_unit_test(test_exec_ends_the_proof),
                cmocka_unit_test(test_new_credentials_end_the_proof),
                cmocka_unit_test(test_the_kernel_is_asked_with_the_callers_ids),
                cmocka_unit_test(test_a_bind_mount_over_the_path_proves_nothing),
                cmocka_unit_test(test_a_third_procfs_is_left_to_the_kernels_answer),
                cmocka_unit_test(test_ksmd_itself_is_never_proven),
                cmocka_unit_test(test_no_proof_without_a_vouched_primary_group),
                cmocka_unit_test(test_the_checker_reports_what_the_kernel_says),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
