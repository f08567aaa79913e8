# SPDX-License-Identifier: GPL-2.0-or-later
"""What the host test suites (tests/control, tests/hostile) share: ksmd on a
private socket with its own configuration directory, ksmd-workload processes,
and a TestCase that starts and ends both. Needs root: ksmd reads other
processes' memory, and clients run as the unprivileged user nobody (65534)
with setpriv.

Every process a test starts is ended by its pid; nothing outside a temporary
directory is changed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("KSMD_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("KSMD_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
KSMD = os.path.join(BUILD, "ksmd", "ksmd")
KSMCTL = os.path.join(BUILD, "ksmd", "ksmctl")
WORKLOAD = os.path.join(BUILD, "bench", "ksmd-workload")
NOBODY = 65534
SETPRIV_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]
# The system's python, for processes that run as another user (root's own may live in a directory they cannot read).
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


_known = {}


def knows(section, key, value):
    """Whether this ksmd knows Key= in [Section]: --check-config of a file holding only that line."""
    if (section, key) not in _known:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "ksmd.conf"), "w") as f:
                f.write(f"[{section}]\n{key}={value}\n")
            r = subprocess.run([KSMD, "--config-dir", d, "--check-config"], capture_output=True, text=True,
                               timeout=10)
        _known[(section, key)] = "unknown key" not in r.stderr
    return _known[(section, key)]


def config(sections):
    """ksmd.conf text for {section: {key: value}}, without the keys this ksmd does not know: a hostile
    test runs against an older ksmd too, where the attack, not its configuration, must fail it."""
    out = []
    for section, keys in sections.items():
        out.append(f"[{section}]")
        for key, value in keys.items():
            if knows(section, key, value):
                out.append(f"{key}={value}")
            else:
                print(f"# {KSMD} knows no {key}=: left out", file=sys.stderr)
    return "\n".join(out) + "\n"


def setpriv_as(uid, gid, groups=()):
    """The setpriv prefix that runs a command as uid with primary group gid and these supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups", "--inh-caps=-all"]


def stop_by_stdin(proc):
    """Ends a process started with stdin and stdout pipes that exits when its stdin closes: closes it, waits,
    and kills it by its pid if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.stdout.close()


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    """ksmd on a private socket with its own configuration directory."""

    def __init__(self, tmp, conf="", extra=(), env=None):
        self.dir = tmp
        self.conf_dir = os.path.join(tmp, "conf")
        os.makedirs(self.conf_dir, exist_ok=True)
        self.socket = os.path.join(tmp, "ksmd.sock")
        self.write_conf(conf)
        self.log_path = os.path.join(tmp, "ksmd.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([KSMD, "--config-dir", self.conf_dir, "--socket", self.socket, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: os.path.exists(self.socket) or self.proc.poll() is not None, what="the socket")
        if self.proc.poll() is not None:
            raise AssertionError(f"ksmd exited: {self.read_log()}")

    def write_conf(self, text):
        with open(os.path.join(self.conf_dir, "ksmd.conf"), "w") as f:
            f.write(text)

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def ctl(self, *args, user=None, check=True):
        cmd = [KSMCTL, "--socket", self.socket, *args]
        if user == "nobody":
            cmd = SETPRIV_NOBODY + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr}")
        return r

    def dbus_send(self, method, *args, user=None):
        cmd = ["dbus-send", "--print-reply", f"--peer=unix:path={self.socket}", "/org/ksmd/Manager1",
               method, *args]
        if user == "nobody":
            cmd = SETPRIV_NOBODY + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# Run as another user: opens N connections to a socket, then answers each line
# on stdin with how many the server still holds open, until stdin closes.
_HOLDER = r"""
import select, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
socks, closed = [], set()
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
print("connected", flush=True)
for _ in sys.stdin:
    for i, s in enumerate(socks):
        if i in closed or not select.select([s], [], [], 0)[0]:
            continue
        try:
            if s.recv(4096, socket.MSG_DONTWAIT) == b"":
                closed.add(i)
        except (ConnectionResetError, BrokenPipeError):
            closed.add(i)
        except BlockingIOError:
            pass
    print(n - len(closed), flush=True)
"""


class ConnectionHolder:
    """n connections to a socket, opened by another process and held until stop(). The process runs as
    nobody, or with setpriv, the prefix setpriv_as() gives."""

    def __init__(self, socket_path, n, user="nobody", setpriv=None):
        cmd = [PYTHON, "-c", _HOLDER, socket_path, str(n)]
        if setpriv is not None:
            cmd = setpriv + cmd
        elif user == "nobody":
            cmd = SETPRIV_NOBODY + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "connected":
            self.stop()
            raise AssertionError(f"the holder could not connect {n} times to {socket_path}")

    def open_count(self):
        """How many of the connections the server holds open now."""
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def settles_at(self, n, timeout=10.0):
        """Waits until the server holds exactly n of them open; True then, False after timeout."""
        try:
            wait_for(lambda: self.open_count() == n, timeout=timeout, what=f"{n} open connections")
            return True
        except AssertionError:
            return False

    def stop(self):
        stop_by_stdin(self.proc)


class Workload:
    def __init__(self, *args, user=None, exe=None):
        cmd = [exe or WORKLOAD, "--procs", "2", "--mib", "4", "--zero", "0.25", *args]
        if user == "nobody":
            cmd = SETPRIV_NOBODY + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.pids = []
        self.addrs = []  # of each process's workload memory
        for line in self.proc.stdout:
            w = line.split()
            if w[0] == "pid":
                self.pids.append(int(w[1]))
                self.addrs.append(int(w[3], 16))
            elif w[0] == "expected":
                self.expected = {w[i]: int(w[i + 1]) for i in range(1, len(w), 2)}
            elif w[0] == "ready":
                break

    def verify(self):
        os.kill(self.proc.pid, signal.SIGUSR1)
        out = self.proc.stdout.read()
        return self.proc.wait() == 0 and "every page intact" in out

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait()
        self.proc.stdout.close()


class ControlTest(unittest.TestCase):
    conf = ""
    daemon_env = None  # extra environment of the daemon, e.g. {"KSMD_LOG_LEVEL": "debug"}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-control-")
        os.chmod(self.tmp, 0o755)
        env = dict(os.environ, **self.daemon_env) if self.daemon_env else None
        self.daemon = Daemon(self.tmp, self.conf, env=env)
        self.workloads = []

    def tearDown(self):
        for w in self.workloads:
            w.stop()
        self.daemon.stop()
        shutil.rmtree(self.tmp)

    def workload(self, *args, user=None, exe=None):
        w = Workload(*args, user=user, exe=exe)
        self.workloads.append(w)
        return w

    def status_json(self):
        return json.loads(self.daemon.ctl("--json", "status").stdout)


