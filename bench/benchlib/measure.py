# SPDX-License-Identifier: GPL-2.0-or-later
"""Measurement loops shared by the benchmarks: sample a saving and a CPU
counter until a goal, then measure the steady state."""

import sys
import time
from dataclasses import dataclass, field

GIB = 1 << 30
PAGE = 4096


@dataclass
class Run:
    system: str
    expected_pages: int
    samples: list = field(default_factory=list)   # (seconds, saved_pages, cpu_seconds)
    goal_s: float = None                          # time to reach the goal fraction
    goal_cpu_s: float = None                      # CPU spent until then
    final_saved_pages: int = 0
    scanned_pages: int = 0                        # pages examined while converging
    convergence_cpu_s: float = 0.0                # CPU spent while converging
    scanning_pages: int = 0                       # pages examined in the continuous-scanning window
    scanning_cpu_s: float = 0.0                   # CPU spent in it
    steady_cpu_per_s: float = None                # CPU seconds per second once converged
    full_pass_s: float = None                     # wall time of one full pass over the workload
    metadata_bytes: int = None
    tracked_pages: int = None
    intact: bool = None
    notes: list = field(default_factory=list)

    def cpu_s_per_gib_scanned(self):
        if not self.scanned_pages:
            return None
        return self.convergence_cpu_s / (self.scanned_pages * PAGE / GIB)

    def gib_per_cpu_s(self):
        v = self.cpu_s_per_gib_scanned()
        return 1 / v if v else None

    def gib_per_cpu_s_scanning(self):
        if not self.scanning_cpu_s:
            return None
        return self.scanning_pages * PAGE / GIB / self.scanning_cpu_s


def converge(run, read_saved, read_cpu, read_scanned, goal=0.95, max_s=300, interval_s=0.25,
             progress=None):
    """Samples until saved >= goal * expected or max_s passes."""
    t0 = time.monotonic()
    cpu0 = read_cpu()
    scanned0 = read_scanned()
    while True:
        t = time.monotonic() - t0
        saved = read_saved()
        cpu = read_cpu() - cpu0
        run.samples.append((t, saved, cpu))
        if progress:
            progress(run, t, saved, cpu)
        if run.goal_s is None and saved >= goal * run.expected_pages:
            run.goal_s, run.goal_cpu_s = t, cpu
            break
        if t >= max_s:
            run.notes.append(f"did not reach {goal:.0%} of the theoretical saving in {max_s} s")
            break
        time.sleep(interval_s)
    run.scanned_pages = read_scanned() - scanned0
    run.convergence_cpu_s = read_cpu() - cpu0
    run.final_saved_pages = read_saved()


def throughput(run, read_cpu, read_scanned, seconds=10):
    """Pages examined per CPU-second over seconds of scanning without pause
    once converged: a longer, steadier window than convergence, which on a fast
    scanner lasts well under a second."""
    c0, s0 = read_cpu(), read_scanned()
    time.sleep(seconds)
    run.scanning_pages = read_scanned() - s0
    run.scanning_cpu_s = read_cpu() - c0


def steady(run, read_cpu, seconds=10):
    c0, t0 = read_cpu(), time.monotonic()
    time.sleep(seconds)
    run.steady_cpu_per_s = (read_cpu() - c0) / (time.monotonic() - t0)


def progress_printer(label, expected_pages):
    """A progress callback: a live line on a terminal, a line every 5 s otherwise."""
    tty = sys.stderr.isatty()
    last = [-5.0]

    def progress(run, t, saved, cpu):
        line = f"  {label}: {t:6.1f} s  saved {saved * 100 / max(expected_pages, 1):5.1f} %  CPU {cpu:6.2f} s"
        if tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif t - last[0] >= 5:
            last[0] = t
            print(line, file=sys.stderr, flush=True)
    return progress
