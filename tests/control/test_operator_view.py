# SPDX-License-Identifier: GPL-2.0-or-later
"""The operator's view, on this host in estimate mode (root): ksmctl list as a table, explain and its
reasons adding up to each region's pages, stats under headings, and the metrics: promtool accepts
them, and Debian's prometheus-node-exporter, run here on a free loopback port with its textfile
collector on a temporary directory, serves them. Every process a test starts is ended by its pid;
nothing outside a temporary directory is changed."""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from ksmdtest import ControlTest, wait_for  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMTOOL = "/usr/bin/promtool"
# Debian's python3-prometheus-client: its OpenMetrics parser is strict. It is installed for the system's
# python3, which need not be the one running this test.
SYSTEM_PYTHON = "/usr/bin/python3"
OPENMETRICS_CHECK = """
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
n = 0
for family in text_string_to_metric_families(sys.stdin.read()):
    n += len(family.samples)
    print(family.name, family.type, family.unit or "-", len(family.samples))
print("samples", n)
"""


class ViewTest(ControlTest):
    """ksmd scanning without rests, so that full scans come quickly."""
    conf = "[Scan]\nSleep=10ms\nIdleSleep=0\n"

    def setUp(self):
        super().setUp()
        try:
            self.prepare()
        except BaseException:
            self.tearDown()  # unittest does not when setUp fails: end what it started
            raise


class OperatorView(ViewTest):
    def prepare(self):
        self.w = self.workload("--volatile", "0.05")
        # The second process whole; a range of the first that runs one page past its big area, into what
        # is not mapped or into another mapping.
        self.ids = [int(self.daemon.ctl("register", "--name=vm-0", str(self.w.pids[1])).stdout)]
        start = self.w.addrs[0]
        self.range_id = int(self.daemon.ctl("register", "--name=range", str(self.w.pids[0]), hex(start + 4096),
                                            str(4 << 20)).stdout)
        self.ids.append(self.range_id)
        # Until the range's duplicates of the whole process's pages are found in a full scan.
        wait_for(lambda: self.regions()[self.range_id]["stats"]["reason_duplicate"] > 0, timeout=60,
                 what="the duplicates")

    def wait_scans(self, n):
        first = self.status_json()["full_scans"]
        wait_for(lambda: self.status_json()["full_scans"] >= first + n, timeout=60, what=f"{n} full scans")

    def regions(self):
        return {r["id"]: r for r in json.loads(self.daemon.ctl("--json", "list").stdout)}

    def test_every_regions_reasons_add_up_to_its_pages(self):
        for rid, r in self.regions().items():
            reasons = {k[len("reason_"):]: v for k, v in r["stats"].items() if k.startswith("reason_")}
            want = r["length"] // 4096 if not r["whole_process"] else r["stats"]["pages"]
            self.assertEqual(sum(reasons.values()), want, f"region {rid}: {reasons}")
            self.assertGreater(want, 0)
            ex = json.loads(self.daemon.ctl("--json", "explain", str(rid)).stdout)
            self.assertEqual(sum(x["pages"] for x in ex["reasons"]), want)
            self.assertEqual(ex["pages"], want)
            self.assertTrue(all(x["hint"] for x in ex["reasons"]))
            if r["whole_process"]:
                # The workload's duplicates, zero pages and changing pages each have their reason.
                self.assertGreater(reasons["duplicate"] + reasons["shared_copy"], 0, reasons)
                self.assertGreater(reasons["zero"], 0)
        # Everything the range holds beyond private anonymous memory is named too.
        r = self.regions()[self.range_id]["stats"]
        self.assertEqual(r["reason_not_mapped"] + r["reason_unmergeable_mapping"], 1, r)
        # The host's figures add up to every region's.
        stats = json.loads(self.daemon.ctl("--json", "stats").stdout)
        total = sum(sum(v for k, v in r["stats"].items() if k.startswith("reason_")) for r in self.regions().values())
        self.assertEqual(sum(v for k, v in stats.items() if k.startswith("reason_")), total)

    def test_list_is_an_aligned_table_by_saving_with_the_top_reason(self):
        out = self.daemon.ctl("list").stdout.splitlines()
        head = out[0]
        self.assertRegex(head, r"^ *ID +NAME +PID +SIZE +SAVING +SHARED +ZERO +TOP REASON NOT MERGED$")
        rows = out[1:1 + len(self.ids)]
        self.assertEqual(out[len(rows) + 1], "")
        self.assertRegex(out[len(rows) + 2], r"^2 regions, .* registered, .* saved\.$")
        # One line per region, the columns where the heading's are, saving in binary units, sorted by it.
        end_of = {name: head.index(name) + len(name) for name in ("PID", "SIZE", "SAVING")}
        savings = {rid: r["stats"]["saving_bytes"] for rid, r in self.regions().items()}
        ids = []
        for line in rows:
            self.assertRegex(line[:end_of["PID"]], r"^ *\d+ \S+ +\d+$")
            self.assertRegex(line[end_of["PID"]:end_of["SAVING"]], r"^ +[\d.]+ (B|KiB|MiB|GiB) +[\d.]+ (B|KiB|MiB)$")
            ids.append(int(line.split()[0]))
        self.assertEqual(sorted(ids), sorted(savings))
        self.assertEqual([savings[i] for i in ids], sorted(savings.values(), reverse=True))
        self.assertTrue(any(re.search(r"(not present|unique content|changing).*\(\d+%\)$", line) for line in rows),
                        rows)
        # --verbose: every counter; --json: the same statistics as before, every key the daemon gives.
        verbose = self.daemon.ctl("list", "--verbose").stdout
        for rid, r in self.regions().items():
            self.assertIn(f"region {rid} (", verbose)
            for key in r["stats"]:
                self.assertIn(f"    {key} ", verbose)

    def test_explain_names_each_reason_with_what_to_do(self):
        out = self.daemon.ctl("explain", str(self.ids[0])).stdout
        self.assertRegex(out, rf"^region {self.ids[0]} \(vm-0\), process {self.w.pids[1]}: .* registered, .* saved")
        self.assertIn("REASON", out)
        self.assertIn("WHAT YOU CAN DO", out)
        self.assertIn("this is the saving", out)
        self.assertRegex(out, r"(?m)^total +\d+ +[\d.]+ \w+ +100%$")
        r = self.daemon.ctl("explain", "999", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no region 999", r.stderr)
        r = self.daemon.ctl("explain", check=False)
        self.assertEqual(r.returncode, 2)

    def test_stats_are_grouped_under_headings_with_units(self):
        out = self.daemon.ctl("stats").stdout
        for heading in ("Memory:", "Why pages are (not) merged", "Last full scan:", "Scanning:"):
            self.assertIn(heading, out)
        self.assertRegex(out, r"(?m)^  saving +[\d.]+ (B|KiB|MiB)$")
        self.assertRegex(out, r"(?m)^  scanned +\d+ pages \([\d.]+ \w+\)$")
        self.assertRegex(out, r"(?m)^  last_full_scan +[\d.]+ s$")

    def test_usage_errors_of_the_new_options(self):
        for args, what in ((["list", "--format=openmetrics"], "option of stats"),
                           (["stats", "--format=json"], "expected openmetrics or prometheus"),
                           (["stats", "--output=/tmp/x"], "--output is an option"),
                           (["status", "--verbose"], "--verbose is an option of list")):
            r = self.daemon.ctl(*args, check=False)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(what, r.stderr)


class CowReserve(ControlTest):
    """CowReserve= from the file, as a D-Bus property written as the file writes it, and the COW guard's
    line in ksmctl status (estimate mode: nothing is merged, so the debt is 0 and the guard never holds)."""
    conf = "[Limits]\nCowReserve=10%\n"

    def prop(self, *args):
        return self.daemon.dbus_send(*args)

    def get(self):
        return self.prop("org.freedesktop.DBus.Properties.Get", "string:org.ksmd.Manager1", "string:CowReserve")

    def set(self, value):
        return self.prop("org.freedesktop.DBus.Properties.Set", "string:org.ksmd.Manager1", "string:CowReserve",
                         f"variant:string:{value}")

    def test_the_reserve_is_a_size_or_a_percentage_everywhere(self):
        self.assertIn('string "10%"', self.get().stdout)
        with open("/proc/meminfo") as f:
            total = int(re.search(r"MemTotal: +(\d+) kB", f.read()).group(1)) * 1024
        st = self.status_json()
        self.assertEqual(st["cow_reserve_bytes"], total // 10)
        self.assertEqual(st["cow_debt_bytes"], 0)
        self.assertFalse(st["cow_guard_holding"])
        self.assertGreater(st["cow_available_bytes"], 0)
        self.assertEqual(st["cow_headroom_bytes"], st["cow_available_bytes"])
        self.assertRegex(self.daemon.ctl("status").stdout,
                         r"(?m)^  COW guard: unmerge debt 0 B, headroom [\d.]+ \w+ \(of [\d.]+ \w+ available\), "
                         r"reserve [\d.]+ \w+: merging$")
        r = self.set("512M")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('string "512M"', self.get().stdout)
        wait_for(lambda: self.status_json()["cow_reserve_bytes"] == 512 << 20, timeout=10, what="the new reserve")
        self.assertIn("CowReserve set to 512M by uid 0", self.daemon.read_log())
        for bad, what in (("95%", "is not any of a size up to 1T or a percentage from 0.01% to 90%, or off"),
                          ("lots", "'lots' is not any of")):
            r = self.set(bad)
            self.assertIn("org.freedesktop.DBus.Error.InvalidArgs", r.stderr)
            self.assertIn(what, r.stderr)
        r = self.set("off")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: self.status_json()["cow_reserve_bytes"] == 0, timeout=10, what="the reserve off")
        self.assertIn("no reserve (CowReserve=off)", self.daemon.ctl("status").stdout)


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Metrics(ViewTest):
    def prepare(self):
        for tool in (NODE_EXPORTER, PROMTOOL, SYSTEM_PYTHON):
            if not os.access(tool, os.X_OK):
                self.fail(f"{tool} is missing: run tools/install-deps (Debian's prometheus and "
                          "prometheus-node-exporter)")
        r = subprocess.run([SYSTEM_PYTHON, "-c", "import prometheus_client"], capture_output=True, text=True)
        if r.returncode != 0:
            self.fail("python3-prometheus-client is missing: run tools/install-deps")
        self.w = self.workload()
        self.ids = [int(self.daemon.ctl("register", f'--name=vm "{i}"', str(p)).stdout)
                    for i, p in enumerate(self.w.pids)]
        wait_for(lambda: self.status_json()["full_scans"] >= 2, timeout=60, what="two full scans")

    def test_promtool_accepts_the_metrics_and_they_cover_host_domains_and_regions(self):
        out = self.daemon.ctl("stats", "--format=prometheus").stdout
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=out, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")  # not even a lint warning
        print(f"# promtool check metrics: exit 0, no warning, {len(out.splitlines())} lines", file=sys.stderr)
        families = re.findall(r"(?m)^# TYPE (\S+) (\S+)$", out)
        for name, kind in families:
            self.assertTrue(name.startswith("ksmd_"), name)
            self.assertEqual(name.endswith("_total"), kind == "counter", name)
            self.assertIn(f"# HELP {name} ", out)
        for name in ("ksmd_saving_bytes", "ksmd_full_scans_total", "ksmd_reason_pages", "ksmd_domain_saving_bytes",
                     "ksmd_region_saving_bytes", "ksmd_region_reason_pages", "ksmd_info", "ksmd_cow_debt_bytes",
                     "ksmd_cow_headroom_bytes", "ksmd_cow_guard_holding"):
            self.assertIn(name, dict(families))
        self.assertNotIn("# EOF", out)
        for i, (rid, pid) in enumerate(zip(self.ids, self.w.pids)):
            self.assertRegex(out, rf'(?m)^ksmd_region_saving_bytes{{region="{rid}",name="vm \\"{i}\\"",'
                                  rf'pid="{pid}"}} \d+$')
        # Per region the reasons add up to its pages.
        for rid in self.ids:
            pages = sum(int(v) for v in re.findall(rf'(?m)^ksmd_region_reason_pages{{region="{rid}",.*}} (\d+)$', out))
            want = int(re.search(rf'(?m)^ksmd_region_anonymous_pages{{region="{rid}",.*}} (\d+)$', out).group(1))
            self.assertEqual(pages, want)

    def test_openmetrics_is_accepted_by_a_strict_parser_with_the_same_samples(self):
        om = self.daemon.ctl("stats", "--format=openmetrics").stdout
        self.assertTrue(om.endswith("# EOF\n"))
        r = subprocess.run([SYSTEM_PYTHON, "-c", OPENMETRICS_CHECK], input=om, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        parsed = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()}
        self.assertEqual(parsed["ksmd_full_scans"][:2], ["counter", "-"])
        self.assertEqual(parsed["ksmd_saving_bytes"][:2], ["gauge", "bytes"])
        self.assertEqual(parsed["ksmd_last_full_scan_seconds"][:2], ["gauge", "seconds"])
        self.assertEqual(parsed["ksmd"][:1], ["info"])
        print(f"# OpenMetrics parser: {len(parsed) - 1} families, {parsed['samples'][0]} samples", file=sys.stderr)
        # The same samples in both formats; only the metadata differs.
        prom = self.daemon.ctl("stats", "--format=prometheus").stdout

        def samples(text):
            return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}
        self.assertEqual(samples(om), samples(prom))

    def test_output_replaces_the_file_atomically_readable_by_all(self):
        d = os.path.join(self.tmp, "textfile")
        os.mkdir(d)
        path = os.path.join(d, "ksmd.prom")
        with open(path, "w") as f:
            f.write("old\n")
        inode = os.stat(path).st_ino
        self.daemon.ctl("stats", "--format=prometheus", f"--output={path}")
        st = os.stat(path)
        self.assertNotEqual(st.st_ino, inode)  # renamed over, not rewritten in place
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual(os.listdir(d), ["ksmd.prom"])
        with open(path) as f:
            self.assertIn("ksmd_saving_bytes", f.read())
        r = self.daemon.ctl("stats", "--format=prometheus", f"--output={self.tmp}/no/such/dir/ksmd.prom",
                            check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot create", r.stderr)

    def test_node_exporter_serves_the_textfile_over_loopback(self):
        d = os.path.join(self.tmp, "textfile")
        os.mkdir(d)
        # As ksmd-metrics.service writes it.
        self.daemon.ctl("stats", "--format=prometheus", f"--output={d}/ksmd.prom")
        body = None
        for _ in range(5):  # another program may take the free port between our look and its bind
            port = free_loopback_port()
            log = open(os.path.join(self.tmp, "node-exporter.log"), "w")
            ne = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                                   "--collector.disable-defaults", "--collector.textfile",
                                   f"--collector.textfile.directory={d}"],
                                  stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 20
                while body is None and ne.poll() is None and time.monotonic() < deadline:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                            body = resp.read().decode()
                    except OSError:
                        time.sleep(0.2)
            finally:
                if ne.poll() is None:
                    ne.send_signal(signal.SIGTERM)
                    try:
                        ne.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        ne.kill()
                        ne.wait()
                log.close()
            if body is not None:
                break
        with open(os.path.join(self.tmp, "node-exporter.log")) as f:
            self.assertIsNotNone(body, f"node_exporter never answered: {f.read()}")
        self.assertRegex(body, r"(?m)^node_textfile_scrape_error 0$")
        self.assertRegex(body, r"(?m)^ksmd_saving_bytes \d+")
        self.assertRegex(body, r"(?m)^# TYPE ksmd_full_scans_total counter$")
        for rid, pid in zip(self.ids, self.w.pids):
            self.assertRegex(body, rf'(?m)^ksmd_region_saving_bytes{{name="vm \\"\d\\"",pid="{pid}",region="{rid}"}} ')
        n = len(re.findall(r"(?m)^ksmd_", body))
        print(f"# node_exporter on 127.0.0.1:{port} served {n} ksmd samples from the textfile", file=sys.stderr)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("test_operator_view.py: must run as root (it starts ksmd, which reads other processes' memory)",
              file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
