/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Processes held by pidfd (pidfd_open(2)): the one way the daemon ties what
 * it learnt about a pid to the process it learnt it from. A pid is not
 * reused while a process with it runs, so a check of the pidfd after
 * reading something by pid proves the reading came from that process.
 */

#include <sys/types.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77                  /* Linux 6.5; the headers here may predate it */
#endif

/* A new pidfd for pid (close-on-exec), or -errno: -ESRCH no such process. */
int pidfd_open_pid(pid_t pid);

/*
 * 1 while the process runs, 0 once it has exited (a zombie has: its memory
 * is gone and it will never run again), -errno if pidfd is not a pidfd.
 */
int pidfd_is_alive(int pidfd);

/*
 * A pidfd for the process that connected the unix socket sockfd, whose
 * SO_PEERCRED pid is pid: from the kernel (SO_PEERPIDFD, Linux 6.5 and
 * later), which ties it to that process with no race, or else from
 * pidfd_open_peer_by_pid(). Only while that process runs: -ESRCH once it has
 * exited (even if the socket lives on in another process); -ECONNRESET: the
 * peer is gone; other -errno.
 */
int pidfd_open_peer(int sockfd, pid_t pid);

/*
 * Before Linux 6.5: pidfd_open(pid), then proof that the peer is still
 * connected, that SO_PEERCRED still says pid and that the process still
 * runs. What this cannot tell apart: the connecting process exited, its pid
 * was reused, and the socket lives on in another process (one it passed the
 * socket to, or a child that inherited it). Errors as pidfd_open_peer().
 */
int pidfd_open_peer_by_pid(int sockfd, pid_t pid);
