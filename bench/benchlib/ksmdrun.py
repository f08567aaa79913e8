# SPDX-License-Identifier: GPL-2.0-or-later
"""One benchmark run of ksmd's estimate-mode scan on a workload, read
through its D-Bus API with ksmctl --json."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from . import hostksm, measure
from .workload import Workload


class Ksmd:
    def __init__(self, build_dir, pages_per_batch, sleep_ms, pids, config=None, extra_args=()):
        self.tmp = tempfile.mkdtemp(prefix="ksmd-bench-")
        if config is not None:
            with open(os.path.join(self.tmp, "ksmd.conf"), "w") as f:
                f.write(config)
        self.socket = os.path.join(self.tmp, "ksmd.sock")
        self.ksmctl = os.path.join(build_dir, "ksmd", "ksmctl")
        cmd = [os.path.join(build_dir, "ksmd", "ksmd"), "--mode=estimate", "--config-dir", self.tmp,
               "--socket", self.socket, f"--pages-to-scan={pages_per_batch}", f"--sleep={sleep_ms}ms"]
        cmd += list(extra_args)
        cmd += [f"--register-process={p}" for p in pids]
        self.log = open(os.path.join(self.tmp, "ksmd.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"ksmd did not start: {open(self.log.name).read()}")
            time.sleep(0.02)

    def ctl(self, *args):
        out = subprocess.run([self.ksmctl, "--socket", self.socket, "--json", *args], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)

    def cpu_seconds(self):
        return hostksm.cpu_seconds(self.proc.pid)

    def set_config(self, text):
        """Writes the daemon's ksmd.conf (its private config dir) and reloads it."""
        with open(os.path.join(self.tmp, "ksmd.conf"), "w") as f:
            f.write(text)
        subprocess.run([self.ksmctl, "--socket", self.socket, "reload"], capture_output=True, check=True)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # only the daemon this run started
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp)


def run(label, workload_exe, wl, pages_to_scan, sleep_ms, max_s, steady_s, goal=0.95, build_dir=None):
    """ksmd --mode=estimate on the workload: time and CPU until its estimate reaches
    goal of the theoretical saving, pages examined per CPU-second, steady CPU,
    and its own metadata per tracked page."""
    with Workload(workload_exe, **wl) as w:
        expected = w.expected["saved_pages"]
        r = measure.Run(system=label, expected_pages=expected)
        d = Ksmd(build_dir, pages_to_scan, sleep_ms, w.pids)
        try:
            def scanned():
                s = d.ctl("stats")
                return s["full_scans"] * s["pages_scanned"] + s["current_scan_pages"]

            measure.converge(r, lambda: d.ctl("status")["saving_bytes"] // 4096, d.cpu_seconds, scanned,
                             goal=goal, max_s=max_s, progress=measure.progress_printer(label, expected))
            t_goal = time.monotonic()
            if r.goal_s is not None:
                # Steady state begins with the first rest: the scans that follow the goal still find
                # what was left (a scan must be quiet before ksmd rests), as KSM's passes do before
                # its saving stops growing, and KSM's own steady figure starts at the goal too.
                end = time.monotonic() + max_s
                while not (rested := "next scan in" in d.ctl("status").get("status", "")) and \
                        time.monotonic() < end:
                    time.sleep(0.25)
                r.notes.append(f"steady window from its first rest, {time.monotonic() - t_goal:.0f} s after 95 %"
                               if rested else f"no rest within {max_s} s of 95 %: steady window from then")
                measure.steady(r, d.cpu_seconds, steady_s)
            # Read between full scans (it rests), when every region is attached.
            s = d.ctl("stats")
            r.full_pass_s = s["last_full_scan_usec"] / 1e6 if s["full_scans"] else None
            r.tracked_pages = s["tracked_pages"]
            r.metadata_bytes = s["metadata_bytes"]
            r.notes.append(f"metadata: {r.metadata_bytes / max(r.tracked_pages, 1):.1f} B per tracked page "
                           "(daemon's own count)")
            r.notes.append("estimate mode: reads and hashes, merges nothing")
            if r.goal_s is not None:
                # Converged, ksmd rests; without rests it scans on at its rate, re-reading every page
                # (no soft-dirty on this host, nothing merged in estimate mode).
                d.set_config("[Scan]\nIdleSleep=off\n")
                measure.throughput(r, d.cpu_seconds, scanned)
        finally:
            d.stop()
        r.intact = w.verify_and_stop()
    return r
