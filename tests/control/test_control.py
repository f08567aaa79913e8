# SPDX-License-Identifier: GPL-2.0-or-later
"""Integration tests of the control plane with real clients, on this host
(no module needed: ksmd runs in estimate mode). Needs root: it starts ksmd,
which reads other processes' memory, and runs clients as the unprivileged
user nobody (65534) with setpriv.

Every process a test starts is ended by its pid; nothing outside a
temporary directory is changed."""

import json
import os
import re
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
from ksmdtest import (KSMCTL, KSMD, NOBODY, SETPRIV_NOBODY, SOURCE, WORKLOAD, ConnectionHolder,  # noqa: E402,F401
                      ControlTest, Daemon, Workload, wait_for)

def kernel_behaviour():
    """What this kernel does, seen by this process on its own memory: whether a
    write after "4" > clear_refs sets soft-dirty (bit 55), whether a read fault
    maps the shared zero page (present, not exclusive) or a fresh private page,
    and whether there is swap. Independent of ksmd's probe."""
    import ctypes
    import mmap
    import struct
    m = mmap.mmap(-1, 2 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        m.madvise(mmap.MADV_NOHUGEPAGE)
        anchor = ctypes.c_char.from_buffer(m)
        addr = ctypes.addressof(anchor)
        m[0] = 1
        _ = m[4096]
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
        m[0] = 2
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(addr // 4096 * 8)
            written, read = struct.unpack("<2Q", f.read(16))
        del anchor
    finally:
        m.close()
    with open("/proc/swaps") as f:
        swap = len(f.readlines()) > 1
    return {
        "soft_dirty": bool(written >> 55 & 1),
        "zero_page": bool(read >> 63 & 1) and not read >> 56 & 1,
        "swap": swap,
    }


class Ksmctl(ControlTest):
    def test_status_reports_estimate_mode_without_the_module(self):
        st = self.status_json()
        self.assertEqual(st["mode"], "estimate")
        self.assertEqual(st["helper_version"], "")
        self.assertFalse(st["paused"])
        human = self.daemon.ctl("status").stdout
        self.assertIn("estimate", human)
        self.assertIn("not loaded", human)

    def test_status_reports_what_the_host_kernel_does(self):
        """What the daemon asked the kernel at start, as ksmctl shows it, agrees
        with what this test sees the kernel do itself."""
        st = self.status_json()
        self.assertEqual(st["kernel_release"], os.uname().release)
        answers = {f["name"]: f for f in st["host_kernel"]}
        self.assertEqual(set(answers), {
            "pagemap", "pagemap-exclusive", "pagemap-shared", "pagemap-swap", "pfn", "zero-page",
            "huge-zero-page", "thp", "soft-dirty", "pagemap-scan", "process-vm-readv"})
        for name, f in answers.items():
            self.assertIn(f["answer"], ("yes", "no", "untested"), name)
            self.assertTrue(f["seen"], name)
            self.assertEqual(f["instead"] == "", f["answer"] == "yes", name)

        seen = kernel_behaviour()
        self.assertEqual(answers["soft-dirty"]["answer"], "yes" if seen["soft_dirty"] else "no")
        self.assertEqual(answers["zero-page"]["answer"], "yes" if seen["zero_page"] else "no")
        self.assertEqual(answers["pfn"]["answer"], "yes")  # the daemon runs as root here
        self.assertEqual(answers["pagemap-swap"]["answer"] == "untested", not seen["swap"])
        for name in ("pagemap", "pagemap-exclusive", "pagemap-shared", "process-vm-readv"):
            self.assertEqual(answers[name]["answer"], "yes", name)

        human = self.daemon.ctl("status").stdout
        self.assertIn(f"kernel: {os.uname().release}", human)
        has = re.search(r"^ +has: (.*)$", human, re.M).group(1).split(", ")
        self.assertEqual(sorted(has), sorted(n for n, f in answers.items() if f["answer"] == "yes"))
        for name, f in answers.items():
            label = {"no": "missing", "untested": "untested"}.get(f["answer"])
            if label:
                self.assertRegex(human, rf"(?m)^ +{label} {name}: .+; instead, .+$")

    def test_register_list_stats_unregister(self):
        w = self.workload()
        ids = [int(self.daemon.ctl("register", str(p)).stdout) for p in w.pids]
        self.assertEqual(len(set(ids)), 2)
        regions = json.loads(self.daemon.ctl("--json", "list").stdout)
        self.assertEqual(sorted(r["pid"] for r in regions), sorted(w.pids))
        self.assertTrue(all(r["whole_process"] for r in regions))

        # The estimate of what merging saves converges to the workload's truth.
        want = w.expected["saved_pages"] * 4096
        wait_for(lambda: self.status_json()["saving_bytes"] >= want, timeout=30, what="the estimate")
        stats = json.loads(self.daemon.ctl("--json", "stats").stdout)
        self.assertGreaterEqual(stats["full_scans"], 1)
        self.assertGreaterEqual(stats["pages_zero"], w.expected["zero_pages"])

        self.daemon.ctl("unregister", str(ids[0]))
        regions = json.loads(self.daemon.ctl("--json", "list").stdout)
        self.assertEqual([r["id"] for r in regions], [ids[1]])
        r = self.daemon.ctl("unregister", str(ids[0]), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"No region {ids[0]}", r.stderr)
        self.assertTrue(w.verify())

    def test_register_a_range(self):
        w = self.workload()
        start, _ = big_anonymous_area(w.pids[0])
        rid = int(self.daemon.ctl("register", str(w.pids[0]), hex(start), str(4 << 20)).stdout)
        regions = json.loads(self.daemon.ctl("--json", "list").stdout)
        self.assertEqual(regions[0]["id"], rid)
        self.assertFalse(regions[0]["whole_process"])
        self.assertEqual(regions[0]["start"], start)
        r = self.daemon.ctl("register", str(w.pids[0]), hex(start + 1), "4096", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("page aligned", r.stderr)
        r = self.daemon.ctl("register", str(w.pids[0]), hex(start), "4096", check=False)
        self.assertIn("overlaps", r.stderr)

    def test_pause_and_resume(self):
        self.daemon.ctl("pause")
        self.assertTrue(self.status_json()["paused"])
        self.assertIn("paused", self.daemon.ctl("status").stdout)
        self.daemon.ctl("resume")
        self.assertFalse(self.status_json()["paused"])

    def test_errors_name_what_was_wrong(self):
        r = self.daemon.ctl("register", "99999999999", check=False)
        self.assertEqual(r.returncode, 2)  # not a pid at all: bad usage
        r = self.daemon.ctl("register", "4194000", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no process with pid 4194000", r.stderr)
        r = self.daemon.ctl("frobnicate", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)
        r = self.daemon.ctl("unmerge", "1", check=False)
        self.assertEqual(r.returncode, 1)

    def test_unmerge_in_estimate_mode_says_why(self):
        w = self.workload()
        rid = self.daemon.ctl("register", str(w.pids[0])).stdout.strip()
        r = self.daemon.ctl("unmerge", rid, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("estimate mode", r.stderr)

    def test_estimate_without_the_daemon_is_exact(self):
        self.daemon.stop()
        w = self.workload()
        r = self.daemon.ctl("--json", "estimate", *map(str, w.pids))
        est = json.loads(r.stdout)
        self.assertEqual(sorted(e["pid"] for e in est), sorted(w.pids))
        # Whole processes: their stacks and heaps hold a few more zero or equal pages.
        saving = sum(e["saving_bytes"] for e in est) // 4096
        self.assertGreaterEqual(saving, w.expected["saved_pages"])
        self.assertLess(saving, w.expected["saved_pages"] + 64)
        human = self.daemon.ctl("estimate", *map(str, w.pids)).stdout
        self.assertIn("nothing was merged", human)
        r = self.daemon.ctl("estimate", "4194000", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot scan process 4194000", r.stderr)
        self.assertTrue(w.verify())

    def test_daemon_not_running(self):
        self.daemon.stop()
        r = self.daemon.ctl("status", check=False)
        self.assertEqual(r.returncode, 3)
        self.assertIn("is ksmd running", r.stderr)


def big_anonymous_area(pid):
    """The workload's 4 MiB anonymous area: (start, end)."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return next((int(a, 16), int(b, 16)) for a, b in re.findall(r"^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0",
                                                                maps, re.M)
                if int(b, 16) - int(a, 16) >= 4 << 20)


class RegisterOptions(ControlTest):
    """The options dictionary of RegisterProcessByPIDFD and RegisterRangeByPIDFD, and ksmctl register --name."""

    def regions(self):
        return json.loads(self.daemon.ctl("--json", "list").stdout)

    def by_pidfd(self, pid, options, start=None, length=None):
        fd = os.pidfd_open(pid)
        try:
            if start is None:
                return dbus_call(self.daemon.socket, "RegisterProcessByPIDFD", "ha{sv}", (fd, options))
            return dbus_call(self.daemon.socket, "RegisterRangeByPIDFD", "htta{sv}", (fd, start, length, options))
        finally:
            os.close(fd)

    def test_name_is_shown_by_list_and_in_the_log(self):
        w = self.workload()
        rid = int(self.daemon.ctl("register", "--name=vm-one", str(w.pids[0])).stdout)
        start, _ = big_anonymous_area(w.pids[1])
        rid2 = int(self.daemon.ctl("register", "--name", "vm two (range)", str(w.pids[1]), hex(start),
                                   str(1 << 20)).stdout)
        names = {r["id"]: r["name"] for r in self.regions()}
        self.assertEqual(names, {rid: "vm-one", rid2: "vm two (range)"})
        human = self.daemon.ctl("list", "--verbose").stdout
        self.assertIn(f"region {rid} (vm-one): process {w.pids[0]}, all private anonymous memory", human)
        self.assertIn(f"region {rid2} (vm two (range)): process {w.pids[1]}, {hex(start)}-", human)
        table = self.daemon.ctl("list").stdout
        self.assertRegex(table, rf"(?m)^ *{rid} vm-one +{w.pids[0]} ")
        self.assertRegex(table, rf"(?m)^ *{rid2} vm two \(range\) +{w.pids[1]} ")
        self.assertIn(f'Registered region {rid} "vm-one" in domain uid:0: all private anonymous memory of pid '
                      f'{w.pids[0]}.',
                      self.daemon.read_log())

        # Over D-Bus, with the longest name allowed; no options at all means no name.
        self.daemon.ctl("unregister", str(rid))
        longest = "n" * 64
        r = self.by_pidfd(w.pids[0], {"Name": Variant("s", longest)})
        self.assertIsNone(r.error_name, r.error_message)
        names = {x["id"]: x["name"] for x in self.regions()}
        self.assertEqual(names[r.body[0]], longest)
        self.daemon.ctl("unregister", str(r.body[0]))
        r = self.by_pidfd(w.pids[0], {})
        self.assertIsNone(r.error_name, r.error_message)
        self.assertEqual({x["id"]: x["name"] for x in self.regions()}[r.body[0]], "")
        self.assertTrue(w.verify())

    def test_bad_options_are_refused_naming_the_key_and_register_nothing(self):
        w = self.workload()
        pid = w.pids[0]
        start, _ = big_anonymous_area(pid)
        cases = [
            ({"Colour": Variant("s", "red")}, 'Unknown option "Colour"'),
            ({"Name": Variant("s", "vm"), "name": Variant("s", "vm")}, 'Unknown option "name"'),
            ({"Name": Variant("u", 5)}, "Option Name must be a string (variant type s), not of type u"),
            ({"Name": Variant("as", ["vm"])}, "Option Name must be a string (variant type s), not of type as"),
            ({"Name": Variant("s", "v" * 65)}, "Option Name must be 1..64 characters long, got 65"),
            ({"Name": Variant("s", "")}, "Option Name must be 1..64 characters long, got 0"),
            ({"Name": Variant("s", "vm\x01")}, "byte 3 is 0x01"),
            ({"Name": Variant("s", "vm\u00e9")}, "byte 3 is 0xc3"),
            ([("Name", Variant("s", "a")), ("Name", Variant("s", "b"))], "Option Name is given more than once"),
        ]
        for options, message in cases:
            for ranged in (False, True):
                with self.subTest(options=options, ranged=ranged):
                    r = self.by_pidfd(pid, options, *((start, 4096) if ranged else ()))
                    self.assertEqual(r.error_name, "org.freedesktop.DBus.Error.InvalidArgs", r.error_message)
                    self.assertIn(message, r.error_message)
        self.assertEqual(self.regions(), [])
        self.assertNotIn("Registered region", self.daemon.read_log())

    def test_ksmctl_refuses_a_bad_name_itself(self):
        w = self.workload()
        for bad in ("x" * 65, "", "tab\there"):
            r = self.daemon.ctl("register", f"--name={bad}", str(w.pids[0]), check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("a name is 1..64 printable ASCII characters", r.stderr)
        r = self.daemon.ctl("list", "--name=vm", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--name is an option of register only", r.stderr)
        r = self.daemon.ctl("register", "--name=vm", "4194000", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no process with pid 4194000", r.stderr)
        self.assertEqual(self.regions(), [])


class ArgumentsCheckedFirst(unittest.TestCase):
    """ksmctl refuses bad arguments (exit 2, naming them) before it looks for the daemon: none runs here."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-noargs-")
        self.socket = os.path.join(self.tmp, "ksmd.sock")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def ctl(self, *args):
        return subprocess.run([KSMCTL, "--socket", self.socket, *args], capture_output=True, text=True, timeout=30)

    def test_bad_arguments_are_usage_errors_without_a_daemon(self):
        cases = [
            (["register", "1", "0x12z", "4096"], "START '0x12z' is not a number"),
            (["register", "1", "4096", "4k"], "LENGTH '4k' is not a number"),
            (["register", "pid1"], "PID 'pid1' is not a pid"),
            (["register", "0"], "PID '0' is not a pid"),
            (["register", "99999999999"], "PID '99999999999' is not a pid"),
            (["register"], "register takes PID, or PID START LENGTH"),
            (["register", "1", "4096"], "register takes PID, or PID START LENGTH"),
            (["register", "--name=a\tb", "1"], "--name=a\tb: a name is 1..64 printable ASCII characters"),
            (["unregister"], "unregister takes one region ID"),
            (["unregister", "1", "2"], "unregister takes one region ID"),
            (["unregister", "x1"], "ID 'x1' is not a region ID"),
            (["unmerge", "4294967296"], "ID '4294967296' is not a region ID"),
            (["estimate"], "estimate takes one or more PIDs"),
            (["estimate", "1", "two"], "PID 'two' is not a pid"),
            (["list", "--name=vm"], "--name is an option of register only"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["--scans=0", "estimate", "1"], "--scans=0: expected 1..1000"),
        ]
        cases += [([verb, "extra"], f"{verb} takes no arguments, got 'extra'")
                  for verb in ("status", "stats", "list", "pause", "resume", "reload")]
        for args, message in cases:
            with self.subTest(args=args):
                r = self.ctl(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
        # Well-formed, the same commands find no daemon: exit 3.
        for args in (["register", "1", "0x1000", "4096"], ["register", "--name=vm", "1"], ["unregister", "7"],
                     ["status"], ["reload"]):
            with self.subTest(args=args):
                r = self.ctl(*args)
                self.assertEqual(r.returncode, 3, r.stderr)
                self.assertIn("is ksmd running", r.stderr)


class Reload(ControlTest):
    conf = "[Scan]\nPagesToScan=100\nSleep=50ms\n"

    def test_reload_applies_rate_and_keeps_registrations(self):
        w = self.workload()
        rid = int(self.daemon.ctl("register", str(w.pids[0])).stdout)
        self.assertEqual(self.status_json()["pages_to_scan"], 100)
        self.daemon.write_conf("[Scan]\nPagesToScan=300\nSleep=10ms\n")
        self.daemon.ctl("reload")
        st = self.status_json()
        self.assertEqual(st["pages_to_scan"], 300)
        self.assertEqual(st["sleep_usec"], 10000)
        # The rate in effect follows (no TargetScanTime=).
        self.assertEqual(st["batch_pages"], 300)
        self.assertEqual(st["batch_sleep_usec"], 10000)
        self.assertEqual([r["id"] for r in json.loads(self.daemon.ctl("--json", "list").stdout)], [rid])

    def test_bad_config_on_reload_keeps_the_running_one(self):
        self.daemon.write_conf("[Scan]\nPagesToScan=0\n")
        r = self.daemon.ctl("reload", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ksmd.conf:2: PagesToScan=0", r.stderr)
        self.assertEqual(self.status_json()["pages_to_scan"], 100)
        self.assertIn("the running configuration stays", self.daemon.read_log())

    def test_sighup_reloads(self):
        self.daemon.write_conf("[Scan]\nPagesToScan=222\n")
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.status_json()["pages_to_scan"] == 222, what="the SIGHUP reload")


class Settings(ControlTest):
    """One table defines each setting: the file, the command line, reload and the D-Bus properties agree."""
    conf = "[Scan]\nPagesToScan=100\nSleep=50ms\n[Limits]\nMaxRegions=10\n"

    def get(self, prop, user=None):
        return self.daemon.dbus_send("org.freedesktop.DBus.Properties.Get", "string:org.ksmd.Manager1",
                                     f"string:{prop}", user=user)

    def set(self, prop, value, user=None):
        return self.daemon.dbus_send("org.freedesktop.DBus.Properties.Set", "string:org.ksmd.Manager1",
                                     f"string:{prop}", f"variant:uint64:{value}", user=user)

    def test_properties_carry_the_keys_names_and_values(self):
        self.assertIn("uint64 100", self.get("PagesToScan").stdout)
        self.assertIn("uint64 50000", self.get("SleepUSec").stdout)
        self.assertIn("uint64 10", self.get("MaxRegions").stdout)
        self.assertIn("uint64 5", self.get("IdleMaxCPU").stdout)

    def test_root_sets_a_number_in_range_until_the_next_reload(self):
        r = self.set("PagesToScan", 777)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.status_json()["pages_to_scan"], 777)
        self.assertEqual(self.status_json()["batch_pages"], 777)
        r = self.set("PagesToScan", 0)
        self.assertIn("org.freedesktop.DBus.Error.InvalidArgs", r.stderr)
        self.assertIn("from 1 to 1000000", r.stderr)
        r = self.set("MaxRegions", 65537)
        self.assertIn("from 1 to 65536", r.stderr)
        self.assertEqual(self.status_json()["pages_to_scan"], 777)
        self.daemon.ctl("reload")
        self.assertEqual(self.status_json()["pages_to_scan"], 100)

    def test_only_root_and_operators_set(self):
        self.daemon.stop()
        self.daemon = Daemon(self.tmp, self.conf, extra=[f"--socket-group={NOBODY}", f"--allow-groups={NOBODY}"])
        # An allowed caller reads the settings but changes none.
        self.assertIn("uint64 100", self.get("PagesToScan", user="nobody").stdout)
        r = self.set("PagesToScan", 5, user="nobody")
        self.assertIn("org.ksmd.Error.AccessDenied", r.stderr)
        self.assertIn(f"uid {NOBODY} may not change PagesToScan", r.stderr)
        self.assertIn("OperatorGroups=", r.stderr)
        self.assertEqual(self.status_json()["pages_to_scan"], 100)
        # An operator does.
        self.daemon.stop()
        self.daemon = Daemon(self.tmp, self.conf, extra=[f"--socket-group={NOBODY}", f"--operator-groups={NOBODY}"])
        r = self.set("PagesToScan", 5, user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.status_json()["pages_to_scan"], 5)

    def test_command_line_overrides_the_files_also_across_reloads(self):
        self.daemon.stop()
        self.daemon = Daemon(self.tmp, self.conf, extra=["--pages-to-scan=4321", "--sleep=7ms"])
        self.assertEqual(self.status_json()["pages_to_scan"], 4321)
        self.daemon.write_conf("[Scan]\nPagesToScan=300\nSleep=1s\nIdleSleep=20s\n")
        self.daemon.ctl("reload")
        st = self.status_json()
        self.assertEqual((st["pages_to_scan"], st["sleep_usec"]), (4321, 7000))
        self.assertIn("uint64 20000000", self.get("IdleSleepUSec").stdout)

    def test_a_bad_option_is_refused_with_the_files_reason(self):
        r = subprocess.run([KSMD, "--config-dir", self.daemon.conf_dir, "--sleep=2h", "--check-config"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--sleep=2h: '2h' is not a time span from 0 to 1min", r.stderr)

    def test_settings_that_apply_at_start_wait_for_a_restart(self):
        self.daemon.write_conf(self.conf + "[Scan]\nMode=estimate\n")
        self.daemon.ctl("reload")
        self.assertIn("Mode= changed; it takes effect when ksmd restarts", self.daemon.read_log())


class AutoRegister(ControlTest):
    # A name no other process on the host has (a benchmark may run ksmd-workload meanwhile).
    EXE_NAME = f"ksmd-autoreg-{os.getpid()}"
    conf = f"[AutoRegister]\nUser=root\nExecutable=ksmd-autoreg-{os.getpid()}*\nCgroup=/no-such.slice/*\n"

    def setUp(self):
        super().setUp()
        self.exe_dir = tempfile.TemporaryDirectory()
        self.exe = os.path.join(self.exe_dir.name, self.EXE_NAME)
        shutil.copy(WORKLOAD, self.exe)
        self.addCleanup(self.exe_dir.cleanup)

    def test_matching_processes_are_registered_whole(self):
        w = self.workload(exe=self.exe)
        # The parent and both children run the copy of ksmd-workload.
        want = sorted(w.pids + [w.proc.pid])
        wait_for(lambda: sorted(r["pid"] for r in json.loads(self.daemon.ctl("--json", "list").stdout)) == want,
                 timeout=20, what="automatic registration")
        self.assertIn("automatically", self.daemon.read_log())
        regions = json.loads(self.daemon.ctl("--json", "list").stdout)
        self.assertTrue(all(r["whole_process"] for r in regions))
        self.assertEqual({r["name"] for r in regions}, {self.EXE_NAME})

    def test_reload_changes_the_rules(self):
        self.daemon.write_conf("[AutoRegister]\n")
        self.daemon.ctl("reload")
        w = self.workload(exe=self.exe)
        time.sleep(6)  # longer than one walk of /proc
        self.assertEqual(json.loads(self.daemon.ctl("--json", "list").stdout), [])
        w.stop()


class GuestNames(ControlTest):
    """A process in a machine scope of a root-owned cgroup, as systemd-machined makes them for libvirt's
    guests, is named after the guest. The slice is this test's own, beside the host's cgroups."""

    SLICE = f"ksmd-control-{os.getpid()}.slice"
    conf = f"[AutoRegister]\nCgroup=/{SLICE}/*\n"

    def cgroup(self, scope):
        with open("/proc/self/mounts") as f:
            root = next((ln.split()[1] for ln in f if ln.split()[2] == "cgroup2"), None)
        self.assertIsNotNone(root, "no cgroup v2 hierarchy on this host")
        slice_dir = os.path.join(root, self.SLICE)
        if not os.path.isdir(slice_dir):
            os.mkdir(slice_dir)
            self.addCleanup(os.rmdir, slice_dir)
        path = os.path.join(slice_dir, scope)
        os.mkdir(path)
        self.addCleanup(os.rmdir, path)
        return path

    def move(self, pid, path):
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def test_a_guest_in_a_machine_scope_is_named_after_it(self):
        named = self.cgroup(r"machine-qemu\x2d7\x2dweb\x2dfront.scope")
        # A name only root could give a scope, and one no region may carry: the executable's instead.
        forged = self.cgroup(r"machine-qemu\x2d8\x2dvm\x0a\x1b\x5b2J.scope")
        w = self.workload()
        self.move(w.pids[0], named)
        self.move(w.pids[1], forged)
        wait_for(lambda: len(json.loads(self.daemon.ctl("--json", "list").stdout)) == 2, timeout=20,
                 what="automatic registration")
        names = {r["pid"]: r["name"] for r in json.loads(self.daemon.ctl("--json", "list").stdout)}
        self.assertEqual(names, {w.pids[0]: "web-front", w.pids[1]: "ksmd-workload"})
        self.assertIn('automatically as "web-front"', self.daemon.read_log())
        w.stop()
        # The processes leave the cgroups when they have exited, and only then can those go.
        for path in (named, forged):
            wait_for(lambda: Path(path, "cgroup.procs").read_text().strip() == "", what="the scope to be empty")


class CheckConfig(unittest.TestCase):
    def test_check_config_exit_status(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "ksmd.conf"), "w") as f:
                f.write("[Scan]\nPagesToScan=10\n")
            r = subprocess.run([KSMD, "--config-dir", d, "--check-config"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "ksmd.conf"), "a") as f:
                f.write("Bogus=1\n[Limits]\nMaxRegions=zero\n")
            r = subprocess.run([KSMD, "--config-dir", d, "--check-config"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1)
            self.assertIn("ksmd.conf:3: unknown key Bogus= in [Scan]", r.stderr)
            self.assertIn("ksmd.conf:5: MaxRegions=zero", r.stderr)
            # A bad configuration also refuses to start.
            r = subprocess.run([KSMD, "--config-dir", d, "--no-socket"], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 1)
            self.assertIn("Refusing to start", r.stderr)


class SocketGroup(ControlTest):
    def test_caller_outside_the_socket_group_cannot_connect(self):
        st = os.stat(self.daemon.socket)
        self.assertEqual((st.st_mode & 0o7777, st.st_uid, st.st_gid), (0o660, 0, 0))
        r = self.daemon.ctl("status", user="nobody", check=False)
        self.assertEqual(r.returncode, 4)
        self.assertIn("may not connect", r.stderr)
        self.assertIn("SocketGroup=", r.stderr)


class Authorization(ControlTest):
    conf = f"[Control]\nSocketGroup={NOBODY}\n"

    def test_unprivileged_caller_is_refused_at_accept_without_allow_groups(self):
        r = self.daemon.ctl("status", user="nobody", check=False)
        self.assertEqual(r.returncode, 4)
        self.assertIn(f"ksmd closed the connection: uid {NOBODY} may not call it", r.stderr)
        r = self.daemon.dbus_send("org.ksmd.Manager1.GetStatistics", user="nobody")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("pages_scanned", r.stdout)

    def test_reload_drops_connections_the_new_groups_leave_out(self):
        self.daemon.write_conf(f"[Control]\nSocketGroup={NOBODY}\nAllowGroups={NOBODY}\n")
        self.daemon.ctl("reload")
        held = ConnectionHolder(self.daemon.socket, 2)
        try:
            self.assertTrue(held.settles_at(2))
            self.daemon.write_conf(f"[Control]\nSocketGroup={NOBODY}\n")
            self.daemon.ctl("reload")
            self.assertTrue(held.settles_at(0))
            self.assertIn("the new settings do not let it call", self.daemon.read_log())
        finally:
            held.stop()


class AllowedGroup(ControlTest):
    conf = f"[Control]\nSocketGroup={NOBODY}\nAllowGroups={NOBODY}\n[Limits]\nMaxRegionsPerClient=2\n"

    def test_member_registers_its_own_process_only(self):
        own = self.workload(user="nobody")
        roots = self.workload()
        rid = int(self.daemon.ctl("register", str(own.pids[0]), user="nobody").stdout)
        r = self.daemon.ctl("register", str(roots.pids[0]), user="nobody", check=False)
        self.assertEqual(r.returncode, 4)
        self.assertIn("the kernel does not let you read the memory of process", r.stderr)
        # It sees only its own regions; root sees all.
        root_rid = int(self.daemon.ctl("register", str(roots.pids[0])).stdout)
        mine = json.loads(self.daemon.ctl("--json", "list", user="nobody").stdout)
        self.assertEqual([x["id"] for x in mine], [rid])
        everything = json.loads(self.daemon.ctl("--json", "list").stdout)
        self.assertEqual(sorted(x["id"] for x in everything), sorted([rid, root_rid]))
        r = self.daemon.ctl("unregister", str(root_rid), user="nobody", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("No region", r.stderr)
        # Reload and pause act on the whole host: not for a member of AllowGroups= only.
        for verb in ("reload", "pause", "resume"):
            r = self.daemon.ctl(verb, user="nobody", check=False)
            self.assertEqual(r.returncode, 4)
            self.assertIn("OperatorGroups=", r.stderr)

    def test_per_user_region_limit(self):
        own = self.workload("--procs", "3", user="nobody")
        for p in own.pids[:2]:
            self.daemon.ctl("register", str(p), user="nobody")
        r = self.daemon.ctl("register", str(own.pids[2]), user="nobody", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("MaxRegionsPerClient=", r.stderr)


class Connections(ControlTest):
    conf = f"[Control]\nSocketGroup={NOBODY}\nAllowGroups={NOBODY}\n[Limits]\nMaxConnections=2\n"

    def test_connection_limit_binds_others_and_leaves_root_a_place(self):
        held = ConnectionHolder(self.daemon.socket, 3)
        try:
            self.assertTrue(held.settles_at(2))
            self.assertIn("MaxConnections= are taken by users other than root", self.daemon.read_log())
            r = self.daemon.ctl("status", user="nobody", check=False)
            self.assertEqual(r.returncode, 4)
            self.assertIn("MaxConnections=", r.stderr)
            # Root's reserve: others hold every place they may, root is served.
            self.daemon.ctl("status")
        finally:
            held.stop()
        wait_for(lambda: self.daemon.ctl("status", user="nobody", check=False).returncode == 0,
                 what="a free connection")


class DbusSendPeer(ControlTest):
    def test_introspection_names_arguments(self):
        r = self.daemon.dbus_send("org.freedesktop.DBus.Introspectable.Introspect")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('<method name="RegisterRange">', r.stdout)
        self.assertIn('<arg type="u" name="pid" direction="in"/>', r.stdout)
        self.assertIn('<arg type="u" name="id" direction="out"/>', r.stdout)

    def test_methods_and_errors(self):
        w = self.workload()
        r = self.daemon.dbus_send("org.ksmd.Manager1.RegisterProcess", f"uint32:{w.pids[0]}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"uint32 1")
        r = self.daemon.dbus_send("org.ksmd.Manager1.RegisterProcess", f"uint32:{w.pids[0]}")
        self.assertIn("org.ksmd.Error.AlreadyRegistered", r.stderr)
        r = self.daemon.dbus_send("org.ksmd.Manager1.RegisterRange", f"uint32:{w.pids[1]}", "uint64:4097", "uint64:4096")
        self.assertIn("org.freedesktop.DBus.Error.InvalidArgs", r.stderr)
        r = self.daemon.dbus_send("org.ksmd.Manager1.Unregister", "uint32:77")
        self.assertIn("org.ksmd.Error.NoSuchRegion", r.stderr)
        r = self.daemon.dbus_send("org.ksmd.Manager1.RegisterProcess", "string:nope")
        self.assertIn("org.freedesktop.DBus.Error.InvalidArgs", r.stderr)
        r = self.daemon.dbus_send("org.freedesktop.DBus.Properties.Get", "string:org.ksmd.Manager1", "string:Mode")
        self.assertIn('string "estimate"', r.stdout)

    def test_every_statistic_is_documented(self):
        w = self.workload()
        self.daemon.ctl("register", str(w.pids[0]))
        wait_for(lambda: json.loads(self.daemon.ctl("--json", "stats").stdout)["full_scans"] >= 1,
                 what="a full scan")
        stats = json.loads(self.daemon.ctl("--json", "stats").stdout)
        with open(os.path.join(SOURCE, "man", "org.ksmd.Manager1.5.scd")) as f:
            man = f.read()
        keys = [k for k in stats if not k.startswith(("reason_", "merge_"))]
        self.assertIn("pages_skipped_merged", keys)
        for k in keys:
            self.assertIn(f"*{k}*", man, f"GetStatistics() key {k} is not documented in org.ksmd.Manager1(5)")
        for k in stats:
            if k.startswith("merge_") and f"*{k}*" not in man:
                self.assertIn(f"*{k[len('merge_'):]}*", man, f"helper result of {k} is not documented")

    def test_every_method_and_property_is_documented(self):
        r = self.daemon.dbus_send("org.freedesktop.DBus.Introspectable.Introspect")
        xml = r.stdout[r.stdout.index("<"):]
        iface = xml[xml.index('<interface name="org.ksmd.Manager1">'):]
        iface = iface[:iface.index("</interface>")]
        with open(os.path.join(SOURCE, "man", "org.ksmd.Manager1.5.scd")) as f:
            man = f.read()
        members = re.findall(r'<(method|property) name="(\w+)"', iface)
        self.assertGreater(len(members), 10)
        for kind, name in members:
            want = f"*{name}(" if kind == "method" else f"*{name}* "
            self.assertIn(want, man, f"{kind} {name} is not documented in org.ksmd.Manager1(5)")


class SystemBus(unittest.TestCase):
    """busctl against ksmd on a private dbus-daemon standing in for the system bus."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-sysbus-")
        os.chmod(self.tmp, 0o755)  # nobody connects to the bus too
        self.bus_socket = os.path.join(self.tmp, "bus.sock")
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={self.bus_socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
  <!-- Only our policy file lets anyone own org.ksmd.Manager1. -->
  <include ignore_missing="no">{os.path.join(SOURCE, "systemd", "org.ksmd.Manager1.conf")}</include>
</busconfig>
""")
        self.bus = subprocess.Popen(["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={conf}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.bus_socket), what="dbus-daemon")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.bus_socket}")
        self.daemon = Daemon(self.tmp, "[Control]\nSystemBus=yes\nAllowGroups=4242\n", env=env)
        self.address = f"unix:path={self.bus_socket}"

    def tearDown(self):
        self.daemon.stop()
        self.bus.terminate()
        self.bus.wait()
        shutil.rmtree(self.tmp)

    def busctl(self, *args, setpriv=()):
        return subprocess.run([*setpriv, "busctl", f"--address={self.address}", *args], capture_output=True,
                              text=True, timeout=30)

    def wait_for_name(self):
        try:
            wait_for(lambda: "org.ksmd.Manager1" in self.busctl("list", "--no-pager").stdout, what="the bus name")
        except AssertionError:
            raise AssertionError(f"ksmd never took its name; its log:\n{self.daemon.read_log()}\n"
                                 f"busctl list: {self.busctl('list', '--no-pager')}")

    def test_groups_are_those_the_bus_reports(self):
        """UnixGroupIDs of GetConnectionCredentials, with nothing read from /proc: here a supplementary group."""
        self.wait_for_name()
        call = ("call", "org.ksmd.Manager1", "/org/ksmd/Manager1", "org.ksmd.Manager1", "GetStatistics")
        as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--inh-caps=-all"]
        r = self.busctl(*call, setpriv=[*as_nobody, "--groups=4242"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pages_scanned", r.stdout)
        r = self.busctl(*call, setpriv=[*as_nobody, "--groups=4243"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"uid {NOBODY}", r.stderr)
        self.assertIn("neither root nor a member", r.stderr)

    def test_properties_changed_on_the_bus_carries_no_statistics(self):
        """Every local user may receive a broadcast: the statistics are not in it, the settings are."""
        self.wait_for_name()
        monitor = subprocess.Popen(["busctl", f"--address={self.address}", "monitor", "--json=short"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(1)
            r = self.busctl("set-property", "org.ksmd.Manager1", "/org/ksmd/Manager1", "org.ksmd.Manager1",
                            "PagesToScan", "t", "77")
            self.assertEqual(r.returncode, 0, r.stderr)
            w = Workload()
            try:
                self.daemon.ctl("register", str(w.pids[0]))
                wait_for(lambda: self.daemon.ctl("--json", "stats").stdout.count('"full_scans":0') == 0,
                         what="a full scan")
                time.sleep(1)
            finally:
                w.stop()
        finally:
            monitor.terminate()
            out, _ = monitor.communicate(timeout=10)
        changed = []
        for line in out.splitlines():
            m = json.loads(line)
            if m.get("member") == "PropertiesChanged" and m.get("path") == "/org/ksmd/Manager1":
                changed.append(set(m["payload"]["data"][1]) | set(m["payload"]["data"][2]))
        self.assertTrue(any("PagesToScan" in c for c in changed), changed)
        self.assertTrue(any("Mode" in c for c in changed), changed)  # announced after the full scan
        for c in changed:
            self.assertFalse(c & {"Status", "FullScans", "SavingBytes", "TrackedPages", "MetadataBytes"}, c)

    def test_busctl_calls_ksmd_on_the_bus(self):
        self.wait_for_name()
        r = self.busctl("call", "org.ksmd.Manager1", "/org/ksmd/Manager1", "org.ksmd.Manager1", "GetStatistics")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pages_scanned", r.stdout)
        r = self.busctl("get-property", "org.ksmd.Manager1", "/org/ksmd/Manager1", "org.ksmd.Manager1", "Mode")
        self.assertEqual(r.stdout.strip(), 's "estimate"')
        r = self.busctl("introspect", "--no-pager", "org.ksmd.Manager1", "/org/ksmd/Manager1")
        self.assertIn(".RegisterProcessByPIDFD", r.stdout)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("test_control.py: must run as root (it starts ksmd, which reads other processes' memory)",
              file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
