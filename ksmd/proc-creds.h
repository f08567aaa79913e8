/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The /proc reader's credential half: who a process runs as, for the
 * control plane's authorization (bus-auth.h). Like proc-reader.c, this is
 * where /proc is touched; -ESRCH/-ENOENT mean the process is gone.
 */

#include <stdint.h>
#include <sys/types.h>

#include "bus-auth.h"

/* Real/effective/saved ids, dumpability and permitted capabilities of pid. */
int proc_read_target_ids(pid_t pid, TargetIds *ret);

/* The permitted capability set of pid (CapPrm). */
int proc_read_cap_permitted(pid_t pid, uint64_t *ret);

/* 1 if ancestor is a (grand)parent of pid, 0 if not, -errno on failure. */
int proc_is_descendant(pid_t ancestor, pid_t pid);

/* /proc/sys/kernel/yama/ptrace_scope, or 0 when Yama is not enabled. */
int proc_read_yama_scope(int *ret);

/* The pid a pidfd of this process refers to (-ESRCH if it has exited). */
int proc_pidfd_get_pid(int pidfd, pid_t *ret);
