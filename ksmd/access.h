/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: proof of access
 *
 * A caller other than root registers memory of a process only with a proof
 * that the kernel lets it read that memory: a file descriptor of
 * /proc/PID/mem that the caller opened itself. Opening it ran the kernel's
 * own ptrace check (PTRACE_MODE_ATTACH_FSCREDS) with the caller's
 * credentials, Linux security modules (Yama, SELinux, AppArmor) included.
 *
 * ksmd checks that the descriptor is /proc/PID/mem, on procfs, for the pid
 * of the caller's pidfd (a fork of the target, which shares its memory, has
 * another pid), and that it reads the process's AT_RANDOM bytes (16 random
 * bytes the kernel gives every program at exec, at an address found in
 * /proc/PID/auxv) as process_vm_readv does: only the target's memory, or a
 * fork's, holds them. A procfs the caller mounted in a pid namespace of its
 * own, where its own process has the target's pid, fails there. Every full
 * scan checks again: after exec the old descriptor reads nothing, and a
 * process whose credentials differ from those at registration is no longer
 * the process the caller was allowed to read.
 */

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "proc-process.h"

typedef struct AccessProof {
        int memfd;                       /* a duplicate of the caller's /proc/PID/mem descriptor */
        uint64_t at_random;              /* the address of the process's AT_RANDOM bytes */
        uint8_t bytes[16];               /* and the bytes */
        TargetIds creds;                 /* who the process ran as at registration */
} AccessProof;

/*
 * Checks that memfd (borrowed) is /proc/PID/mem of pid, whose pidfd the
 * caller holds, and keeps what later checks compare with. -EPERM with a
 * static sentence in *ret_reason if it is not, -ESRCH if the process is
 * gone, -ENOMEM.
 */
int access_proof_new(int memfd, pid_t pid, int pidfd, AccessProof **ret, const char **ret_reason);
AccessProof *access_proof_free(AccessProof *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(AccessProof *, access_proof_free);

/*
 * 0 while the proof holds; -ESTALE if the process executed another program
 * or -EPERM if its credentials changed (with a static sentence in
 * *ret_reason), -ESRCH if it is gone.
 */
int access_proof_check(const AccessProof *p, pid_t pid, int pidfd, const char **ret_reason);
