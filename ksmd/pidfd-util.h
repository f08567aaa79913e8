/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Processes held by pidfd (pidfd_open(2)): the one way the daemon ties what
 * it learnt about a pid to the process it learnt it from. A pid is not
 * reused while a process with it runs, so a check of the pidfd after
 * reading something by pid proves the reading came from that process.
 */

#include <sys/types.h>

/* A new pidfd for pid (close-on-exec), or -errno: -ESRCH no such process. */
int pidfd_open_pid(pid_t pid);

/*
 * 1 while the process runs, 0 once it has exited (a zombie has: its memory
 * is gone and it will never run again), -errno if pidfd is not a pidfd.
 */
int pidfd_is_alive(int pidfd);
