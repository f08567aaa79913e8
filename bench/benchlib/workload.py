# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs bench/workload.c (ksmd-workload) and reads what it reports."""

import os
import signal
import subprocess


class Workload:
    def __init__(self, exe, procs, mib, dup=0.5, zero=0.0, volatile=0.0, thp=False,
                 mergeable=False, seed=1, extra=()):
        self.cmd = [exe, "--procs", str(procs), "--mib", str(mib), "--dup", str(dup),
                    "--zero", str(zero), "--volatile", str(volatile), "--seed", str(seed)]
        if thp:
            self.cmd.append("--thp")
        if mergeable:
            self.cmd.append("--mergeable")
        self.cmd += list(extra)
        self.proc = None
        self.pids = []
        self.addrs = []
        self.pages_per_proc = 0
        self.expected = {}

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            w = line.split()
            if w[0] == "pid":
                self.pids.append(int(w[1]))
                self.addrs.append(int(w[3], 16))
                self.pages_per_proc = int(w[5])
            elif w[0] == "expected":
                self.expected = {w[i]: int(w[i + 1]) for i in range(1, len(w), 2)}
            elif w[0] == "ready":
                return self
        raise RuntimeError(f"{self.cmd[0]} exited before it was ready (status {self.proc.wait()})")

    def verify_and_stop(self):
        """Every process checks it reads what it wrote; True if all did."""
        os.kill(self.proc.pid, signal.SIGUSR1)
        out = self.proc.stdout.read()
        status = self.proc.wait()
        self.proc = None
        return status == 0 and "every page intact" in out

    def kill(self):
        # Ends only the workload this benchmark started, by its pid; it ends its children.
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        return False
