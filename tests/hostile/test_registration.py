# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile tests: what a local user can make ksmd read, merge, count and
register for it. Each test is one attack, run as the unprivileged user nobody
against a real ksmd (estimate mode) on this host, and says in its name what
must hold. Before the trust work (#11) each of these attacks succeeded."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from dbus_peer import Variant, call as dbus_call  # noqa: E402
from ksmdtest import (KSMD, NOBODY, SETPRIV_NOBODY, WORKLOAD, ControlTest, Daemon, config,  # noqa: E402
                      wait_for)

HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "holder.py")
FAST = config({"Scan": {"PagesToScan": 100000, "Sleep": "1ms", "IdleSleep": 0},
               "Control": {"SocketGroup": NOBODY, "AllowGroups": NOBODY}})


class Holder:
    """holder.py as root or nobody: pages of one fill byte, optionally a sparse reservation."""

    def __init__(self, pages, fill, user=None, sparse_pages=None):
        cmd = [sys.executable, HOLDER, str(pages), f"{fill:x}"]
        if sparse_pages:
            cmd += ["--sparse-pages", str(sparse_pages)]
        if user == "nobody":
            cmd = SETPRIV_NOBODY + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        w = self.proc.stdout.readline().split()
        assert w and w[0] == "ready", f"holder did not start: {w}"
        self.pid, self.addr = int(w[1]), int(w[2], 16)
        self.sparse = (int(w[3], 16), int(w[4])) if len(w) > 3 else None

    def tell(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class HostileTest(ControlTest):
    conf = FAST

    def setUp(self):
        super().setUp()
        self.holders = []

    def tearDown(self):
        for h in self.holders:
            h.stop()
        super().tearDown()

    def holder(self, *args, **kwargs):
        h = Holder(*args, **kwargs)
        self.holders.append(h)
        return h

    def full_scans(self):
        return json.loads(self.daemon.ctl("--json", "status").stdout)["full_scans"]

    def wait_scans(self, n):
        start = self.full_scans()
        wait_for(lambda: self.full_scans() >= start + n, timeout=60, what=f"{n} full scans")

    def regions(self, user=None):
        return json.loads(self.daemon.ctl("--json", "list", user=user).stdout)


class DomainOracle(HostileTest):
    def test_a_guess_page_never_tells_whether_another_user_holds_it(self):
        # Root's process holds a secret page; nobody registers a one-page guess with the same bytes.
        secret = self.holder(4, 0xa5)
        self.daemon.ctl("register", str(secret.pid), hex(secret.addr), str(4 * 4096))
        guess = self.holder(1, 0xa5, user="nobody")
        rid = int(self.daemon.ctl("register", str(guess.pid), hex(guess.addr), "4096", user="nobody").stdout)
        self.wait_scans(3)
        mine = [r for r in self.regions(user="nobody") if r["id"] == rid][0]["stats"]
        self.assertEqual(mine["pages_sharing"], 0, "a guess of another domain's page was counted as a duplicate")
        self.assertEqual(mine["pages_unshared"], 1)
        stats = json.loads(self.daemon.ctl("--json", "stats", user="nobody").stdout)
        self.assertEqual(stats["pages_sharing"], 0)
        self.assertEqual(stats["saving_bytes"], 0)
        # Root's own figures still see its duplicates (3 of the 4 pages).
        self.assertEqual(json.loads(self.daemon.ctl("--json", "stats").stdout)["pages_sharing"], 3)

    def test_host_wide_figures_are_not_given_to_a_user(self):
        secret = self.holder(8, 0x5a)
        self.daemon.ctl("register", str(secret.pid), hex(secret.addr), str(8 * 4096))
        self.wait_scans(3)
        for prop in ("SavingBytes", "Status", "MetadataBytes", "TrackedPages", "FullScans"):
            r = self.daemon.dbus_send("org.freedesktop.DBus.Properties.Get", "string:org.ksmd.Manager1",
                                      f"string:{prop}", user="nobody")
            self.assertIn("org.ksmd.Error.AccessDenied", r.stderr, f"{prop} was given to nobody: {r.stdout}")
        stats = json.loads(self.daemon.ctl("--json", "stats", user="nobody").stdout)
        self.assertNotIn("metadata_bytes", stats)
        self.assertEqual(stats["saving_bytes"], 0)


class StaysAuthorised(HostileTest):
    def test_a_registered_process_that_executes_a_setuid_program_is_dropped(self):
        # A setuid-root copy of sleep (on a nosuid /tmp the exec alone must be enough).
        d = tempfile.mkdtemp(prefix="ksmd-hostile-")
        self.addCleanup(shutil.rmtree, d)
        os.chmod(d, 0o755)
        sleeper = os.path.join(d, "sleep")
        shutil.copy("/bin/sleep", sleeper)
        os.chmod(sleeper, 0o4755)
        mine = self.holder(16, 0x11, user="nobody")
        rid = int(self.daemon.ctl("register", str(mine.pid), user="nobody").stdout)
        self.wait_scans(1)
        mine.tell(f"exec {sleeper} 60")
        wait_for(lambda: rid not in [r["id"] for r in self.regions()], timeout=30,
                 what="the region of the process that executed a setuid program to be dropped")
        self.assertIn(f"Region {rid}", self.daemon.read_log())
        # A setuid exec does both: a new program, then new credentials. Which one the re-check meets
        # first depends on when the old memory is let go (a racing reader holds it a moment longer).
        self.assertRegex(self.daemon.read_log(), r"dropped: (it executed another program|its credentials changed)")

    def test_a_user_cannot_register_memory_it_may_not_read(self):
        roots = self.holder(4, 0x22)
        r = self.daemon.ctl("register", str(roots.pid), user="nobody", check=False)
        self.assertEqual(r.returncode, 4, r.stderr)
        # Straight over D-Bus, with no proof, or with a proof of its own process for root's:
        mine = self.holder(1, 0x22, user="nobody")
        code = ("import os, sys; sys.path.insert(0, %r); from dbus_peer import Variant, call; "
                "t = os.pidfd_open(%d); m = os.open('/proc/%d/mem', os.O_RDONLY); "
                "r1 = call(%r, 'RegisterProcessByPIDFD', 'ha{sv}', (t, {})); "
                "r2 = call(%r, 'RegisterProcessByPIDFD', 'ha{sv}', (t, {'Memory': Variant('h', m)})); "
                "print(r1.error_name, '|', r1.error_message); print(r2.error_name, '|', r2.error_message)"
                % (os.path.join(os.path.dirname(HOLDER), "..", "pylib"), roots.pid, mine.pid,
                   self.daemon.socket, self.daemon.socket))
        out = subprocess.run(SETPRIV_NOBODY + [sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30)
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), 2, out.stderr)
        self.assertIn("org.ksmd.Error.AccessDenied", lines[0])
        self.assertIn("must prove it may read process", lines[0])
        self.assertIn("org.ksmd.Error.AccessDenied", lines[1])
        self.assertIn("not /proc/PID/mem of that process", lines[1])
        self.assertEqual(self.regions(), [])

    def test_a_procfs_of_a_users_own_pid_namespace_proves_nothing(self):
        # Root plays the user who made a pid namespace where its own process has the victim's pid; the
        # user then passes that process's /proc/PID/mem with the victim's pidfd.
        victim = self.holder(4, 0x33)
        pidfd = os.pidfd_open(victim.pid)
        self.addCleanup(os.close, pidfd)
        out = subprocess.run(["unshare", "--pid", "--mount", "--fork", "--mount-proc", sys.executable,
                              os.path.join(os.path.dirname(HOLDER), "pidns_forger.py"), str(victim.pid),
                              str(pidfd), os.path.join(os.path.dirname(HOLDER), "..", "pylib"),
                              self.daemon.socket, *SETPRIV_NOBODY],
                             pass_fds=(pidfd,), capture_output=True, text=True, timeout=60)
        self.assertIn("org.ksmd.Error.AccessDenied", out.stdout, out.stdout + out.stderr)
        # Its path is right and its procfs is one ksmd cannot compare inodes with: the kernel, asked with
        # nobody's ids about the victim itself, refuses.
        self.assertIn("the kernel does not let its uid and primary group read that process", out.stdout)
        self.assertEqual(self.regions(), [])


class AutoRegisterTrust(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-hostile-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_an_executable_name_alone_is_not_enough(self):
        conf = os.path.join(self.tmp, "conf")
        os.mkdir(conf)
        with open(os.path.join(conf, "ksmd.conf"), "w") as f:
            f.write("[AutoRegister]\nExecutable=qemu-system-*\n")
        r = subprocess.run([KSMD, "--config-dir", conf, "--check-config"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 1, "Executable= without an owner was accepted")
        self.assertIn("Executable= of [AutoRegister] needs User= or Group=", r.stderr)

    def test_a_users_program_named_like_a_guest_is_not_registered(self):
        exe_name = f"qemu-system-hostile-{os.getpid()}"
        exe = os.path.join(self.tmp, exe_name)
        shutil.copy(WORKLOAD, exe)
        # An older ksmd knows no User=: there the rule is the name alone, the attack itself.
        d = Daemon(self.tmp, config({"AutoRegister": {"User": "root", "Executable": "qemu-system-hostile-*"}}))
        self.addCleanup(d.stop)
        w = subprocess.Popen(SETPRIV_NOBODY + [exe, "--procs", "1", "--mib", "1"], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(w.wait)
        self.addCleanup(w.kill)
        while "ready" not in w.stdout.readline():
            pass
        time.sleep(6.5)  # longer than one walk of /proc
        self.assertEqual(json.loads(d.ctl("--json", "list").stdout), [])
        w.stdout.close()

    def test_a_cgroup_a_user_was_given_is_not_a_guests(self):
        with open("/proc/self/mounts") as f:
            root = next((ln.split()[1] for ln in f if ln.split()[2] == "cgroup2"), None)
        self.assertIsNotNone(root, "no cgroup v2 hierarchy on this host")
        cg = f"ksmd-hostile-{os.getpid()}"
        path = os.path.join(root, cg)
        os.mkdir(path)
        self.addCleanup(os.rmdir, path)
        # Delegated to nobody, as systemd delegates user@.service.
        os.chown(path, NOBODY, NOBODY)
        d = Daemon(self.tmp, f"[AutoRegister]\nCgroup=/{cg}*\n")
        self.addCleanup(d.stop)
        w = subprocess.Popen(SETPRIV_NOBODY + [WORKLOAD, "--procs", "1", "--mib", "1"], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        while "ready" not in w.stdout.readline():
            pass
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(w.pid))
        time.sleep(6.5)
        regions = json.loads(d.ctl("--json", "list").stdout)
        w.kill()
        w.wait()
        w.stdout.close()
        # The process must leave the cgroup before it can be removed: it has exited now.
        wait_for(lambda: Path(path, "cgroup.procs").read_text().strip() == "", what="the cgroup to be empty")
        self.assertEqual(regions, [], "a process in a user's cgroup was registered as a guest")


class OwnerBudget(HostileTest):
    conf = FAST

    def test_a_sparse_reservation_does_not_take_everyones_tracked_pages(self):
        # 32 pages under the default bound of tracked pages (MaxMetadata=256M: 16 Mi pages), never touched.
        sparse = self.holder(1, 0x44, user="nobody", sparse_pages=(16 << 20) - 32)
        addr, size = sparse.sparse
        self.daemon.ctl("register", str(sparse.pid), hex(addr), str(size), user="nobody")
        roots = self.holder(64, 0x55)
        rid = int(self.daemon.ctl("register", str(roots.pid), hex(roots.addr), str(64 * 4096)).stdout)
        self.wait_scans(3)
        mine = [r for r in self.regions() if r["id"] == rid][0]
        self.assertEqual(mine["note"], "", "root's region was left untracked")
        self.assertEqual(mine["stats"]["pages_sharing"], 63)
        theirs = [r for r in self.regions(user="nobody")][0]
        self.assertIn("MaxPagesPerOwner=", theirs["note"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
