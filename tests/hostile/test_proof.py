# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile tests of the proof of access (ksmd/access.h): a user registers a
process it may not read with a Memory descriptor that is not that process's
memory, or is but was not opened with the user's ids. The process is a root
master whose worker, a fork that became nobody, has the master's AT_RANDOM
bytes, as a pre-fork server's workers do. Each test is one attack, run as the
unprivileged user nobody against a real ksmd (estimate mode) on this host;
each registered root's process in nobody's domain before #11's follow-up, so
that two guess pages told nobody which guess was root's secret."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from ksmdtest import (NOBODY, PYTHON, SETPRIV_NOBODY, ControlTest, config, stop_by_stdin,  # noqa: E402
                      wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PYLIB = os.path.join(HERE, "..", "pylib")
SECRET = "root-secret:hunter2"
INODE_REASON = ("the Memory descriptor is not /proc/PID/mem of that process (another file of /proc, or one "
                "mounted over that path)")
KERNEL_REASON = "the kernel does not let its uid and primary group read that process"


def unprivileged_userns():
    """Whether nobody may make a user and mount namespace and bind-mount in it here."""
    r = subprocess.run(SETPRIV_NOBODY + ["unshare", "-Urm", "mount", "--bind", "/proc/self/mem",
                                         "/proc/self/mem"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0


class Proc:
    """A process this test started, ended by its pid."""

    def __init__(self, cmd, **kwargs):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **kwargs)

    def line(self):
        return self.proc.stdout.readline().split()

    def stop(self):
        stop_by_stdin(self.proc)


class ForgedProof(ControlTest):
    conf = config({"Scan": {"PagesToScan": 100000, "Sleep": "1ms", "IdleSleep": 0},
                   "Control": {"SocketGroup": NOBODY, "AllowGroups": NOBODY}})

    def setUp(self):
        super().setUp()
        self.procs = []
        server = self.start([sys.executable, os.path.join(HERE, "forkdrop.py"), SECRET])
        w = server.line()
        self.assertEqual(w[0], "ready", w)
        self.master, self.worker = int(w[1]), int(w[2])
        # The kernel lets nobody read its worker, not root's master.
        code = "import os, sys; os.close(os.open(f'/proc/{sys.argv[1]}/mem', os.O_RDONLY))"
        for pid, may in ((self.worker, True), (self.master, False)):
            r = subprocess.run(SETPRIV_NOBODY + [PYTHON, "-c", code, str(pid)], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode == 0, may, f"nobody opening /proc/{pid}/mem: {r.stderr}")

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        super().tearDown()

    def start(self, cmd, **kwargs):
        p = Proc(cmd, **kwargs)
        self.procs.append(p)
        return p

    def forge(self, mode, prefix=(), pass_fds=(), extra=()):
        """mem_forger.py as nobody (after prefix, which root runs); its lines by their first word."""
        cmd = [*prefix, *SETPRIV_NOBODY, PYTHON, os.path.join(HERE, "mem_forger.py"), mode, str(self.master),
               str(self.worker), PYLIB, self.daemon.socket, *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, pass_fds=pass_fds)
        lines = {ln.split()[0].rstrip(":"): ln for ln in out.stdout.splitlines() if ln.strip()}
        print(f"# {mode}: {out.stdout.strip()} {out.stderr.strip()}".replace("\n", "\n# "), file=sys.stderr)
        self.assertIn("answer", lines, out.stdout + out.stderr)
        return lines

    def assert_refused(self, lines, reason):
        self.assertIn("org.ksmd.Error.AccessDenied", lines["answer"],
                      f"root's master was registered for nobody: {lines['answer']}")
        self.assertIn(f"uid {NOBODY} may not register memory of process {self.master}: {reason}", lines["answer"])
        self.assertEqual([r for r in self.regions() if r["pid"] == self.master], [])
        self.assertNotIn(f"pid {self.master}", self.daemon.read_log())

    def regions(self, user=None):
        return json.loads(self.daemon.ctl("--json", "list", user=user).stdout)

    def full_scans(self):
        return json.loads(self.daemon.ctl("--json", "status").stdout)["full_scans"]

    def test_a_bind_mount_over_proc_pid_mem_in_a_users_namespace_proves_nothing(self):
        # Two guesses of root's secret page in nobody's own processes, in nobody's domain.
        guesses = {}
        for label, text in (("right", SECRET), ("wrong", "root-secret:hunter3")):
            h = self.start(SETPRIV_NOBODY + [PYTHON, os.path.join(HERE, "guess_holder.py"), text])
            w = h.line()
            rid = int(self.daemon.ctl("register", w[1], w[2], "4096", "--name", f"guess-{label}",
                                      user="nobody").stdout)
            guesses[label] = rid
        if unprivileged_userns():
            lines = self.forge("userns")
        else:
            # This host lets no user make a user namespace: root makes the mount namespace, nobody opens in it.
            print("# no unprivileged user namespaces here: root makes the mount namespace", file=sys.stderr)
            lines = self.forge("given", prefix=self.root_mount_namespace())
        self.assertIn(f"readlink /proc/{self.master}/mem", lines["opened"], "the forged path is not the master's")
        # Nothing of root's master was read: the right guess fares as the wrong one.
        start = self.full_scans()
        wait_for(lambda: self.full_scans() >= start + 3, timeout=60, what="3 full scans")
        mine = {r["id"]: r["stats"] for r in self.regions(user="nobody")}
        right, wrong = mine[guesses["right"]], mine[guesses["wrong"]]
        for key in ("pages_shared", "pages_sharing", "pages_unshared"):
            self.assertEqual(right[key], wrong[key], f"{key} tells nobody which guess is root's secret: "
                             f"right {right}, wrong {wrong}")
        self.assert_refused(lines, INODE_REASON)

    def root_mount_namespace(self):
        """What root runs before mem_forger.py to put it in a mount namespace with the worker's mem mounted over
        the master's."""
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f'mount --bind /proc/{self.worker}/mem /proc/{self.master}/mem && exec "$@"', "sh"]

    def test_a_bind_mount_in_a_namespace_root_made_proves_nothing(self):
        # The same descriptor, on a host without unprivileged user namespaces: a mount namespace given to the user.
        lines = self.forge("given", prefix=self.root_mount_namespace())
        self.assertIn(f"readlink /proc/{self.master}/mem", lines["opened"])
        self.assert_refused(lines, INODE_REASON)

    def test_a_descriptor_root_opened_is_not_the_users_proof(self):
        # The right file, opened by someone who may read it: the kernel is asked again, with nobody's ids.
        fd = os.open(f"/proc/{self.master}/mem", os.O_RDONLY)
        self.addCleanup(os.close, fd)
        lines = self.forge("handed", pass_fds=(fd,), extra=(str(fd),))
        self.assert_refused(lines, KERNEL_REASON)

    def test_the_workers_own_memory_is_still_nobodys_to_register(self):
        # What nobody may read, it registers: the worker runs as nobody and is dumpable.
        r = self.daemon.ctl("register", str(self.worker), user="nobody", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([x["pid"] for x in self.regions()], [self.worker])


if __name__ == "__main__":
    unittest.main(verbosity=2)
