# SPDX-License-Identifier: GPL-2.0-or-later
"""Run as the unprivileged user nobody: registers root's process MASTER with a
Memory descriptor that is not the master's memory, and prints what ksmd
answered. Every line it prints starts with a word the test looks for.

mem_forger.py MODE MASTER WORKER PYLIB SOCKET [FD]
  MODE userns: in a user and mount namespace of its own (unshare -Urm), mount
        /proc/WORKER/mem over /proc/MASTER/mem, and open that path through
        the namespace's root (/proc/NSPID/root/proc/MASTER/mem): its readlink
        says /proc/MASTER/mem;
  MODE given: run inside a mount namespace where root did that mount (as a
        container runtime may give a user), open /proc/MASTER/mem;
  MODE handed: FD is /proc/MASTER/mem, opened by root and passed to nobody.
"""

import os
import subprocess
import sys

mode, master, worker, pylib, sock = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, pylib)
from dbus_peer import Variant, call  # noqa: E402

ns = None
if mode == "userns":
    ns = subprocess.Popen(["unshare", "-Urm", "sh", "-c",
                           f"mount --bind /proc/{worker}/mem /proc/{master}/mem && echo mounted && exec sleep 600"],
                          stdout=subprocess.PIPE, text=True)
    if ns.stdout.readline().strip() != "mounted":
        print("failed: no user and mount namespace for nobody")
        ns.kill()
        ns.wait()
        sys.exit(0)
    path = f"/proc/{ns.pid}/root/proc/{master}/mem"
    memfd = os.open(path, os.O_RDONLY)
elif mode == "given":
    path = f"/proc/{master}/mem"
    memfd = os.open(path, os.O_RDONLY)
else:
    path, memfd = "(handed by root)", int(sys.argv[6])
print(f"opened {path}: readlink {os.readlink(f'/proc/self/fd/{memfd}')}")

pidfd = os.pidfd_open(master)
rep = call(sock, "RegisterProcessByPIDFD", "ha{sv}",
           (pidfd, {"Memory": Variant("h", memfd), "Name": Variant("s", "forged")}))
print(f"answer {rep.error_name} | {rep.error_message} | {rep.body}")
if ns:
    ns.kill()
    ns.wait()
