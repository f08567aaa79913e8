# SPDX-License-Identifier: GPL-2.0-or-later
"""The host kernel's KSM through /sys/kernel/mm/ksm: settings saved on entry
and restored on exit (law 4: leave the host as you found it), counters, and
the CPU time of its kernel thread."""

import contextlib
import os
import re
import time

KSM = "/sys/kernel/mm/ksm"
# Settings a benchmark may change, restored in this order ("run" last).
SETTINGS = ["pages_to_scan", "sleep_millisecs", "use_zero_pages", "max_page_sharing",
            "merge_across_nodes", "smart_scan", "advisor_mode", "run"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _path(name):
    return os.path.join(KSM, name)


def read(name):
    with open(_path(name)) as f:
        text = f.read().strip()
    m = re.search(r"\[(\S+)\]", text)  # "[none] scan-time" style choices
    return m.group(1) if m else text


def write(name, value):
    with open(_path(name), "w") as f:
        f.write(str(value))


def available():
    return os.path.exists(_path("run"))


def kthread_pid():
    """pid of the "ksmd" kernel thread (a kthread: no cmdline, parent kthreadd)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "ksmd" and ppid == 2:
            return int(entry)
    return None


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def counters():
    out = {}
    for name in ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
                 "pages_scanned", "full_scans", "ksm_zero_pages", "general_profit"):
        if os.path.exists(_path(name)):
            out[name] = int(read(name))
    return out


def saved_pages(c):
    """Pages KSM frees: each sharer beyond the one shared copy, plus zero-page merges."""
    return c.get("pages_sharing", 0) + c.get("ksm_zero_pages", 0)


class Saved:
    """Context manager: saves every KSM setting, restores them on exit.

    If KSM was not running before, it unmerges everything it merged (run=2)
    and waits for that to finish before restoring run."""

    def __init__(self):
        self.saved = {}

    def __enter__(self):
        if not available():
            raise RuntimeError(f"{KSM} is missing: this kernel has no KSM (CONFIG_KSM)")
        for s in SETTINGS:
            if os.path.exists(_path(s)):
                self.saved[s] = read(s)
        return self

    def unmerge(self, timeout_s=120):
        write("run", 2)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            c = counters()
            if c.get("pages_shared", 0) == 0 and c.get("pages_sharing", 0) == 0:
                return True
            time.sleep(0.2)
        return False

    def __exit__(self, *exc):
        errors = []
        if self.saved.get("run") != "1":
            self.unmerge()
        for s in SETTINGS:
            if s in self.saved and read(s) != self.saved[s]:
                try:
                    write(s, self.saved[s])
                except OSError as e:
                    errors.append(f"{s}={self.saved[s]}: {e}")
        if errors:
            raise RuntimeError("could not restore KSM settings: " + "; ".join(errors))
        return False


@contextlib.contextmanager
def stopped():
    """KSM with every setting saved, everything unmerged and run=0, for a benchmark to start
    (start()); yields the pid of its kernel thread. Restores the settings on exit (Saved)."""
    with Saved() as saved:
        kpid = kthread_pid()
        if kpid is None:
            raise RuntimeError("the ksmd kernel thread was not found in /proc")
        saved.unmerge()
        write("run", 0)
        yield kpid


def start(pages_to_scan, sleep_ms):
    """Runs KSM at this rate, merging zero pages into the zero page."""
    write("pages_to_scan", pages_to_scan)
    write("sleep_millisecs", sleep_ms)
    write("use_zero_pages", 1)
    write("run", 1)
