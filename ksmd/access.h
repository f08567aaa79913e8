/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * DOC: proof of access
 *
 * A caller other than root registers memory of a process only with a proof
 * that the kernel lets it read that memory: a file descriptor of
 * /proc/PID/mem that the caller opened itself. Opening it ran the kernel's
 * own ptrace check (PTRACE_MODE_ATTACH_FSCREDS) with the caller's
 * credentials, Linux security modules (Yama, SELinux, AppArmor) included --
 * but against the process whose file it opened, which need not be the
 * process it names. Neither a path nor bytes read through the descriptor say
 * which process that was: readlink() shows the path the caller used, and in
 * a user and mount namespace of its own (unshare -Urm) any user can
 * bind-mount /proc/OTHER/mem over /proc/PID/mem; a fork of the process (a
 * root server's worker that became the user, as pre-fork servers do) holds
 * the same bytes, AT_RANDOM included. So ksmd checks the kernel's answer
 * against the process itself, in three steps, and registers only if all hold:
 *
 * 1. The file is that process's /proc/PID/mem. ksmd opens /proc/PID/mem
 *    itself and compares the two files' device and inode numbers
 *    (proc_mem_is()), in its own /proc and in PID 1's (/proc/1/root/proc):
 *    under systemd's sandboxing a service's /proc is a procfs instance of
 *    its own, where the callers' is the host's. The caller's open descriptor
 *    holds the dentry that ksmd's lookup of the same name finds, so the real
 *    file has the same inode; a bind mount shows the inode of the file it
 *    mounts. Both files are open while compared, so both inodes are alive,
 *    and two live procfs inodes share a number only if get_next_ino(), a
 *    32-bit counter, wrapped around between their births: a user who makes
 *    billions of inodes could try for that, so this step is not enough alone
 *    (timestamps and owners are no better: the owner sets the times, the
 *    kernel the owner). A file of a third procfs instance (one mounted in a
 *    pid namespace, or for a container or a service that shares the host's
 *    pid namespace) cannot be compared: only steps 2 and 3 decide for it.
 *    This step is what ties the caller's open, and so its security modules'
 *    verdict, to the process; without it (a third procfs), the verdict is
 *    only known to be on the process or a fork of it (step 3's bytes).
 * 2. The kernel lets the caller's ids read the process, asked by ksmd now
 *    (proc_may_read_as()). A child of ksmd takes the caller's uid and primary
 *    group, as the kernel recorded them when it connected (SO_PEERCRED), as
 *    its file-system ids, drops every capability and opens /proc/PID/auxv.
 *    That open runs the check the open of /proc/PID/mem runs (mm_access():
 *    ids, dumpability, the process's permitted capabilities against the
 *    opener's), in the READ mode rather than ATTACH, the one difference being
 *    Yama, which restricts only ATTACH and would judge the child (no ancestor
 *    of anything), not the caller: step 1 carries Yama's verdict on the
 *    caller. Supplementary groups enter neither that check nor the file's
 *    mode (0400, the process's owner), so the child keeps ksmd's
 *    (setgroups() would need the @setuid system calls the unit denies). The
 *    child's real, effective and saved uids stay root's: the caller can
 *    neither signal, trace nor reschedule it, and so cannot make ksmd, which
 *    waits for it, wait long; a deadline (ACCESS_CHECK_TIMEOUT_USEC) bounds
 *    what the kernel takes. The child runs on ksmd's memory (as
 *    posix_spawn()'s does), for which mm_access() checks nothing: ksmd
 *    itself is refused. What this step refuses that the caller's own open
 *    allowed: access that rests on a capability, CAP_SYS_PTRACE, or those of
 *    the owner of a user namespace over the processes in it (a rootless
 *    container's, which the kernel grants by the caller's effective uid);
 *    root registers those. On the system bus, which vouches for no primary
 *    group, it cannot be asked: callers other than root use the socket.
 * 3. Nothing changed meanwhile. The process's credentials read before step 2
 *    equal those read after it; ksmd's own descriptor still reads the
 *    process's AT_RANDOM bytes (16 random bytes the kernel gives every
 *    program at exec, at an address found in /proc/PID/auxv), so the process
 *    executed no other program since step 1; the caller's descriptor reads
 *    the same bytes, so it is of the memory the process has now and not of
 *    the program before an exec; and the pidfd the caller gave still shows
 *    the process alive, so every pid used named that process. Nothing of the
 *    process's memory is read before step 2 has answered.
 *
 * ksmd keeps its own descriptor, not the caller's, and every full scan checks
 * again: after exec it reads nothing, and a process whose credentials differ
 * from those at registration is no longer the process the caller was allowed
 * to read. Root needs no proof; one it gives is checked by steps 1 and 3.
 */

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "proc-process.h"

/* How long step 2 may take before its child is killed and the registration refused. */
#define ACCESS_CHECK_TIMEOUT_USEC (1000u * 1000u)

typedef struct AccessProof {
        int memfd;                       /* ksmd's own /proc/PID/mem descriptor of the process */
        uint64_t at_random;              /* the address of the process's AT_RANDOM bytes */
        uint8_t bytes[16];               /* and the bytes */
        TargetIds creds;                 /* who the process ran as at registration */
} AccessProof;

/*
 * Checks that memfd (borrowed) is /proc/PID/mem of pid, whose pidfd the
 * caller holds, and that the kernel lets uid with primary group gid read pid
 * (steps 1 to 3 above; uid 0 skips step 2; gid (gid_t) -1 when no one vouches
 * for it), and keeps what later checks compare with. -EPERM with a static
 * sentence in *ret_reason if it is not so, -ESRCH if the process is gone,
 * -ENOMEM, other -errno when the check itself failed.
 */
int access_proof_new(int memfd, pid_t pid, int pidfd, uid_t uid, gid_t gid, AccessProof **ret,
                     const char **ret_reason);
AccessProof *access_proof_free(AccessProof *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(AccessProof *, access_proof_free);

/*
 * 0 while the proof holds; -ESTALE if the process executed another program
 * or -EPERM if its credentials changed (with a static sentence in
 * *ret_reason), -ESRCH if it is gone.
 */
int access_proof_check(const AccessProof *p, pid_t pid, int pidfd, const char **ret_reason);
