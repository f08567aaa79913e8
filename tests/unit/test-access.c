/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Proofs of access (access.h) against real child processes. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "access.h"
#include "pidfd-util.h"

typedef struct Child {
        pid_t pid;
        int pidfd;
        int go;                          /* write a byte: the child acts (see start_child) */
} Child;

typedef enum ChildAct {
        CHILD_WAIT,                      /* keep running as it is */
        CHILD_EXEC,                      /* execute /bin/sleep */
        CHILD_SETUID,                    /* become nobody (needs root) */
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
                if (act == CHILD_SETUID && setresuid(65534, 65534, 65534) < 0)
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

static void test_own_childs_memory_proves_access(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child c = start_child(CHILD_WAIT);
        _cleanup_close_ int fd = open_mem(c.pid);
        const char *reason = NULL;

        assert_true(fd >= 0);
        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, &p, &reason), 0);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), 0);
        stop_child(&c);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), -ESRCH);
}

static void test_a_descriptor_of_something_else_proves_nothing(void **state) {
        AccessProof *p = NULL;
        Child c = start_child(CHILD_WAIT);
        _cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC), self = open_mem(getpid());
        const char *reason = NULL;

        assert_int_equal(access_proof_new(null, c.pid, c.pidfd, &p, &reason), -EPERM);
        assert_string_equal(reason, "the Memory descriptor is not /proc/PID/mem of that process");
        /* Ours is /proc/PID/mem of another process, though the child, a fork, has our AT_RANDOM bytes. */
        assert_int_equal(access_proof_new(self, c.pid, c.pidfd, &p, &reason), -EPERM);
        assert_string_equal(reason, "the Memory descriptor is not /proc/PID/mem of that process");
        assert_null(p);
        stop_child(&c);
}

static void test_exec_ends_the_proof(void **state) {
        _cleanup_(access_proof_freep) AccessProof *p = NULL;
        Child c = start_child(CHILD_EXEC);
        _cleanup_close_ int fd = open_mem(c.pid);
        const char *reason = NULL;

        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, &p, &reason), 0);
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
        assert_int_equal(access_proof_new(fd, c.pid, c.pidfd, &p, &reason), 0);
        close(fd);
        child_act(&c);
        assert_int_equal(access_proof_check(p, c.pid, c.pidfd, &reason), -EPERM);
        assert_string_equal(reason, "its credentials changed");
        stop_child(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_own_childs_memory_proves_access),
                cmocka_unit_test(test_a_descriptor_of_something_else_proves_nothing),
                cmocka_unit_test(test_exec_ends_the_proof),
                cmocka_unit_test(test_new_credentials_end_the_proof),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
