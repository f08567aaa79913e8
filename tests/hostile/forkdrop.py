# SPDX-License-Identifier: GPL-2.0-or-later
"""A pre-fork server as root runs it: a root master holding a secret page
forks a worker that becomes nobody without executing anything and stays
dumpable (nginx's workers call prctl(PR_SET_DUMPABLE, 1) after setuid()).
The worker is a fork: it has the master's AT_RANDOM bytes. It wipes its copy
of the secret page.

forkdrop.py SECRET
  prints "ready MASTER_PID WORKER_PID SECRET_ADDR" and runs until its stdin
  closes; the worker dies with it."""

import ctypes
import mmap
import os
import signal
import sys

NOBODY = 65534
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


def main():
    secret = sys.argv[1].encode()
    page = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    page.write((secret * (4096 // len(secret) + 1))[:4096])
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    worker = os.fork()
    if worker == 0:
        os.close(r)
        page.seek(0)
        page.write(bytes(4096))
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setgroups([])
        os.setresuid(NOBODY, NOBODY, NOBODY)
        if libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0):
            os._exit(1)
        os.write(w, b"r")
        while True:
            signal.pause()
    os.close(w)
    if os.read(r, 1) != b"r":
        sys.exit("the worker did not start")
    print(f"ready {os.getpid()} {worker} {addr:#x}", flush=True)
    sys.stdin.read()
    os.kill(worker, signal.SIGKILL)
    os.waitpid(worker, 0)


main()
