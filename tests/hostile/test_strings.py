# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile strings (issue #11 item 5): names and values a local user
controls reach ksmd's log, its D-Bus replies and ksmctl's terminal. Each
test is one attack, made by the unprivileged user nobody where it can be:

- a file whose path ProcMapping.name's old 47-byte cut split inside a UTF-8
  character, and one whose name is not UTF-8 at all, mapped by nobody's
  process in a range nobody registers: the note about it made ListRegions
  fail for everyone;
- an executable named "x\\n<0>ksmd: forged", auto-registered: its name in
  the log started a journal line at emergency priority;
- a ksmd.conf value with control characters and bytes that are not UTF-8:
  Reload's D-Bus error and the log carried them raw, and such a pattern in
  [AutoRegister] broke every GetAll;
- an unknown option key with terminal escape sequences, echoed back in
  the D-Bus error;
- and, as defence in depth, a daemon (a fake one here) whose strings carry
  control characters: ksmctl must not pass them to the terminal raw.

Needs root (it starts ksmd and runs nobody's processes with setpriv).
Every process a test starts is ended by its pid; nothing outside a temporary
directory is changed."""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from dbus_peer import Variant, _Reader, _split, _Writer  # noqa: E402
from ksmdtest import (KSMCTL, NOBODY, SETPRIV_NOBODY, WORKLOAD, ControlTest, Daemon, config,  # noqa: E402
                      wait_for)

# Maps the files named on its command line and waits for SIGTERM.
MAPPER = """
import mmap, os, signal, sys
maps = [mmap.mmap(os.open(p, os.O_RDONLY), 4096, prot=mmap.PROT_READ) for p in sys.argv[1:]]
print("ready", flush=True)
signal.pause()
"""

# One RegisterProcessByPIDFD of its own process with the option key in argv[2], as nobody.
UNKNOWN_OPTION = """
import os, sys
sys.path.insert(0, sys.argv[3])
from dbus_peer import Variant, call
fd = os.pidfd_open(os.getpid())
r = call(sys.argv[1], "RegisterProcessByPIDFD", "ha{sv}", (fd, {sys.argv[2]: Variant("s", "x")}))
sys.stdout.buffer.write(((r.error_name or "") + "\\n" + r.error_message).encode("utf-8", "surrogateescape"))
"""

CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def assert_clean(test, data, what):
    """data (bytes) is valid UTF-8 with no control character but newlines."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        test.fail(f"{what} is not valid UTF-8 ({e}): {data!r}")
    m = CONTROL.search(data)
    test.assertIsNone(m, f"{what} holds a control character at byte {m.start() if m else 0}: {data!r}")


def run(cmd, user=None):
    if user == "nobody":
        cmd = SETPRIV_NOBODY + cmd
    return subprocess.run(cmd, capture_output=True, timeout=60)


class HostileTest(ControlTest):
    conf = config({"Control": {"SocketGroup": NOBODY, "AllowGroups": NOBODY}})

    def setUp(self):
        super().setUp()
        self.children = []

    def tearDown(self):
        for p in self.children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait()
            if p.stdout:
                p.stdout.close()
        super().tearDown()

    def ksmctl(self, *args, user=None):
        return run([KSMCTL, "--socket", self.daemon.socket, *args], user=user)

    def log(self):
        """The daemon's stdout and stderr, as bytes."""
        self.daemon.log.flush()
        with open(self.daemon.log_path, "rb") as f:
            return f.read()


class MappingNames(HostileTest):
    def map_as_nobody(self, name_in):
        """A file in a short directory everyone may read, named name_in(directory) (bytes), mapped by a
        process of nobody's over which nobody registers a range. Returns its path and the region's
        note, once the first full scan has written it."""
        d = tempfile.mkdtemp(prefix="ks-", dir="/tmp").encode()
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d)
        path = d + b"/" + name_in(d)
        with open(path, "wb") as f:
            f.write(b"\1" * 4096)
        os.chmod(path, 0o644)
        p = subprocess.Popen(SETPRIV_NOBODY + [sys.executable, "-c", MAPPER, path],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.children.append(p)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        start, length = self.range_of(p.pid, path)
        r = self.ksmctl("register", str(p.pid), hex(start), str(length), user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)

        def note():
            r = self.ksmctl("--json", "list")
            self.assertEqual(r.returncode, 0, f"root's ksmctl --json list failed: {r.stderr!r}")
            regions = json.loads(r.stdout)
            return regions and regions[0]["note"]
        return path, wait_for(note, timeout=20, what="the region's note")

    def range_of(self, pid, path):
        with open(f"/proc/{pid}/maps", "rb") as f:
            for line in f:
                if line.rstrip(b"\n").endswith(b" " + path):
                    a, b = line.split()[0].split(b"-")
                    return int(a, 16), int(b, 16) - int(a, 16)
        self.fail(f"{path!r} is not mapped by process {pid}")

    def assert_list_regions_works(self, note):
        """ListRegions answers root and nobody, through ksmctl and dbus-send, with clean strings."""
        for user in (None, "nobody"):
            for args in (("list",), ("--json", "list")):
                r = self.ksmctl(*args, user=user)
                self.assertEqual(r.returncode, 0, f"{user or 'root'}: ksmctl {' '.join(args)}: {r.stderr!r}")
                assert_clean(self, r.stdout, f"{user or 'root'}'s ksmctl {' '.join(args)}")
            r = self.daemon.dbus_send("org.ksmd.Manager1.ListRegions", user=user)
            self.assertEqual(r.returncode, 0, f"{user or 'root'}: dbus-send ListRegions: {r.stderr}")
        assert_clean(self, note.encode(), "the note")
        assert_clean(self, self.log().replace(b"\n", b""), "the log")

    def test_a_path_cut_inside_a_character_keeps_list_regions_working(self):
        # ProcMapping.name is 48 bytes: the old cut after byte 47 kept the first byte of the 'é'.
        path, note = self.map_as_nobody(lambda d: b"a" * (46 - len(d) - 1) + "é".encode() + b"-guest.img")
        self.assertEqual(path[45:47], b"a\xc3")
        self.assert_list_regions_works(note)
        # Cut before the 'é' and marked, never inside it.
        self.assertIn(f"file-backed {path[:44].decode()}...: only private anonymous memory", note)

    def test_a_file_name_that_is_not_utf8_keeps_list_regions_working(self):
        path, note = self.map_as_nobody(lambda d: b"\xff\xfe\x1b[2J\x07\xc3(.img")
        self.assert_list_regions_works(note)
        # Every byte that is not UTF-8 or is a control character is an escape.
        self.assertIn("/\\xff\\xfe\\x1b[2J\\x07\\xc3(.img: only private anonymous memory", note)


class ExecutableNames(HostileTest):
    # The '?' is the newline.
    # Executable= alone proves nothing: User= says whose processes it may name.
    conf = config({"Control": {"SocketGroup": NOBODY, "AllowGroups": NOBODY},
                   "AutoRegister": {"User": "nobody", "Executable": "x?<0>ksmd: forged"}})
    exe_name = "x\n<0>ksmd: forged"

    def setUp(self):
        # As journald sees it: every line of ksmd's stderr starts with "<N>", its priority.
        self.tmp = tempfile.mkdtemp(prefix="ksmd-control-")
        os.chmod(self.tmp, 0o755)
        self.daemon = Daemon(self.tmp, self.conf, env=dict(os.environ, JOURNAL_STREAM="8:12345"))
        self.workloads = []
        self.children = []

    def forged_workload(self):
        """ksmd-workload run by nobody as an executable named exe_name."""
        exe = os.path.join(self.tmp, self.exe_name)
        shutil.copy(WORKLOAD, exe)
        os.chmod(exe, 0o755)
        return self.workload(user="nobody", exe=exe)

    def test_a_newline_in_an_executable_name_forges_no_log_line(self):
        w = self.forged_workload()
        wait_for(lambda: self.log().count(b"automatically") >= len(w.pids), timeout=20,
                 what="the automatic registration")
        log = self.log()
        for line in log.splitlines():
            self.assertFalse(line.startswith(b"<0>"), f"a forged emergency line: {line!r}")
            self.assertRegex(line, rb"^<[1-7]>", "a log line without its own priority")
        self.assertIn(b"Registered x\\x0a<0>ksmd: forged (pid ", log)
        assert_clean(self, log.replace(b"\n", b""), "the log")

    def test_ksmctl_estimate_prints_an_executable_name_escaped(self):
        w = self.forged_workload()
        r = self.ksmctl("estimate", str(w.pids[0]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"(x\\x0a<0>ksmd: forged)", r.stdout)
        assert_clean(self, r.stdout, "ksmctl estimate")
        r = self.ksmctl("--json", "estimate", str(w.pids[0]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)[0]["exe"], "x\\x0a<0>ksmd: forged")


class ConfigValues(HostileTest):
    def test_control_characters_and_bad_utf8_in_a_value_are_escaped_in_reload_errors(self):
        value = b"12\x1b]0;owned\x07\xff\xc3\x7f"
        with open(os.path.join(self.daemon.conf_dir, "ksmd.conf"), "wb") as f:
            f.write(b"[Scan]\nPagesToScan=" + value + b"\n")
        r = self.ksmctl("reload")
        self.assertEqual(r.returncode, 1, r.stderr)
        assert_clean(self, r.stderr.rstrip(b"\n"), "ksmctl reload's error")
        self.assertIn(b"ksmd.conf:2: PagesToScan=12\\x1b]0;owned\\x07\\xff\\xc3\\x7f: ", r.stderr)
        self.assertIn(b"'12\\x1b]0;owned\\x07\\xff\\xc3\\x7f' is not a whole number", r.stderr)
        log = self.log()
        assert_clean(self, log.replace(b"\n", b""), "the log")
        self.assertIn(b"PagesToScan=12\\x1b]0;owned\\x07\\xff\\xc3\\x7f", log)
        # The daemon still answers, with its old settings.
        self.assertEqual(self.status_json()["pages_to_scan"], 4096)

    def test_a_pattern_that_is_not_utf8_cannot_break_the_properties(self):
        # The patterns are properties: one that is not UTF-8 failed every Get and GetAll that carried it.
        with open(os.path.join(self.daemon.conf_dir, "ksmd.conf"), "wb") as f:
            f.write(self.conf.encode() + b"[AutoRegister]\nExecutable=qemu-\xff\x1b*\n")
        r = self.ksmctl("reload")
        # Root reads them all at once; anyone may read the settings one by one (the host-wide
        # figures among the properties are root's only).
        p = self.daemon.dbus_send("org.freedesktop.DBus.Properties.GetAll", "string:org.ksmd.Manager1")
        self.assertEqual(p.returncode, 0, f"root: GetAll: {p.stderr}")
        self.assertIn('string "Executable"', p.stdout)
        for user in (None, "nobody"):
            p = self.daemon.dbus_send("org.freedesktop.DBus.Properties.Get", "string:org.ksmd.Manager1",
                                      "string:Executable", user=user)
            self.assertEqual(p.returncode, 0, f"{user or 'root'}: Get Executable: {p.stderr}")
        self.assertEqual(r.returncode, 1, r.stderr)
        assert_clean(self, r.stderr.rstrip(b"\n"), "ksmctl reload's error")
        self.assertIn(b"'qemu-\\xff\\x1b*' holds a control character or a byte that is not UTF-8", r.stderr)


class CallerStrings(HostileTest):
    def test_an_unknown_option_key_comes_back_escaped(self):
        pylib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib")
        key = "\x1b]0;owned\x07\x1b[2J\u009b1m" + "k" * 80
        r = run([sys.executable, "-c", UNKNOWN_OPTION, self.daemon.socket, key, pylib], user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        name, message = r.stdout.split(b"\n", 1)
        self.assertEqual(name, b"org.freedesktop.DBus.Error.InvalidArgs")
        assert_clean(self, message, "the error")
        self.assertIn(b'Unknown option "\\x1b]0;owned\\x07\\x1b[2J\\xc2\\x9b1mkkk', message)
        self.assertIn(b'k..."; the known options are Domain, Memory and Name', message)


class FakeDaemon:
    """Answers one client on a peer-to-peer socket, as ksmd would, with the replies given: member ->
    (signature, values) for a method return, or (error name, message) for an error."""

    def __init__(self, path, replies, errors):
        self.replies, self.errors = replies, errors
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as f:
            f.read(1)  # the NUL byte
            while True:
                line = f.readline().rstrip(b"\r\n")
                if line.startswith(b"AUTH EXTERNAL "):
                    conn.sendall(b"OK " + b"0" * 32 + b"\r\n")
                elif line.startswith(b"AUTH"):
                    conn.sendall(b"DATA\r\n" if line == b"AUTH EXTERNAL" else b"REJECTED EXTERNAL\r\n")
                elif line.startswith(b"DATA"):
                    conn.sendall(b"OK " + b"0" * 32 + b"\r\n")
                elif line == b"NEGOTIATE_UNIX_FD":
                    conn.sendall(b"AGREE_UNIX_FD\r\n")
                elif line == b"BEGIN" or not line:
                    break
            while True:
                fixed = f.read(16)
                if len(fixed) < 16:
                    return
                body_len, serial, fields_len = struct.unpack_from("<III", fixed, 4)
                rest = f.read((fields_len + 7) // 8 * 8 + body_len)
                header = dict(_Reader(fixed + rest, 12).read("a(yv)"))
                member = header.get(3)
                if member in self.errors:
                    name, message = self.errors[member]
                    self.send(conn, 3, serial, "s", [message], [(4, ("s", name))])
                elif member == "Get":
                    # Properties.Get(interface, name): replies["Get"] maps names to (type, value).
                    body = _Reader(fixed + rest, 16 + (fields_len + 7) // 8 * 8)
                    body.read("s")
                    self.send(conn, 2, serial, "v", [Variant(*self.replies["Get"][body.read("s")])], [])
                else:
                    sig, values = self.replies[member]
                    self.send(conn, 2, serial, sig, values, [])

    @staticmethod
    def send(conn, kind, reply_serial, sig, values, fields):
        body = _Writer()
        for t, v in zip(_split(sig), values):
            body.write(t, v)
        head = _Writer()
        for t, v in (("y", ord("l")), ("y", kind), ("y", 1), ("y", 1), ("u", len(body.buf)), ("u", 1000)):
            head.write(t, v)
        all_fields = [(5, Variant("u", reply_serial))] + [(k, Variant(*v)) for k, v in fields]
        if sig:
            all_fields.append((8, Variant("g", sig)))
        head.write("a(yv)", all_fields)
        head.pad(8)
        conn.sendall(bytes(head.buf + body.buf))

    def stop(self):
        self.sock.close()
        self.thread.join(timeout=10)


class KsmctlTerminal(unittest.TestCase):
    """ksmctl, whatever the daemon sends: control characters are escaped for a terminal, JSON escaped
    as JSON does."""
    hostile = "\x1b]0;owned\x07\x1b[2J\x7f\u009b31m\\x41"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-fake-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.socket = os.path.join(self.tmp, "ksmd.sock")

    def ksmctl(self, replies, errors, *args):
        if os.path.exists(self.socket):  # a fake daemon per call
            os.unlink(self.socket)
        fake = FakeDaemon(self.socket, replies, errors)
        self.addCleanup(fake.stop)
        return run([KSMCTL, "--socket", self.socket, *args])

    def list_reply(self):
        region = (1, 4242, "name" + self.hostile, False, 0x1000, 0x1000, "note" + self.hostile,
                  "merge" + self.hostile, {"pages" + self.hostile: 1})
        return {"ListRegions": ("a(uusbttssa{st})", [[region]])}

    def test_list_shows_control_characters_escaped(self):
        escaped = b"\\x1b]0;owned\\x07\\x1b[2J\\x7f\\xc2\\x9b31m\\x41"
        r = self.ksmctl(self.list_reply(), {}, "list", "--verbose")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_clean(self, r.stdout, "ksmctl list --verbose")
        for what in (b"region 1 (name", b"note: note", b"helper: merge", b"    pages"):
            self.assertIn(what + escaped, r.stdout)
        for args in (("list",), ("explain", "1")):
            r = self.ksmctl(self.list_reply(), {}, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            assert_clean(self, r.stdout, "ksmctl " + " ".join(args))
            self.assertIn(b"name" + escaped, r.stdout)

    def test_metric_labels_are_escaped_as_the_exposition_format_wants(self):
        replies = dict(self.list_reply())
        replies["GetStatistics"] = ("a{st}", [{"saving_bytes": 1}])
        replies["ListDomains"] = ("a(usa{st})", [[(1, "d\"\\" + self.hostile, {"saving_bytes": 1})]])
        replies["Get"] = {"Version": ("s", "v\n\"1"), "Mode": ("s", "merge"), "Paused": ("b", False)}
        r = self.ksmctl(replies, {}, "stats", "--format=openmetrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_clean(self, r.stdout, "ksmctl stats --format=openmetrics")
        out = r.stdout.decode()
        # Escaped text (escape.h), then backslash and double quote escaped for the format.
        self.assertIn('ksmd_info{version="v\\\\x0a\\"1",mode="merge"} 1', out)
        self.assertIn('ksmd_domain_saving_bytes{domain="d\\"\\\\x5c\\\\x1b]0;owned', out)
        self.assertIn('ksmd_region_registered_bytes{region="1",name="name\\\\x1b]0;owned', out)
        self.assertTrue(out.endswith("# EOF\n"))

    def test_json_list_escapes_control_characters_as_json(self):
        r = self.ksmctl(self.list_reply(), {}, "--json", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_clean(self, r.stdout, "ksmctl --json list")
        region = json.loads(r.stdout)[0]
        self.assertEqual(region["note"], "note" + self.hostile)
        self.assertEqual(region["stats"], {"pages" + self.hostile: 1})

    def test_an_error_message_is_shown_escaped(self):
        r = self.ksmctl({}, {"Reload": ("org.ksmd.Error.InvalidConfig", "bad" + self.hostile)}, "reload")
        self.assertEqual(r.returncode, 1)
        assert_clean(self, r.stderr, "ksmctl reload's error")
        self.assertIn(b"Reload failed: bad\\x1b]0;owned\\x07", r.stderr)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("test_strings.py: must run as root (it starts ksmd and runs processes as nobody)",
              file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
