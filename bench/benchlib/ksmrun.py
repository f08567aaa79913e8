# SPDX-License-Identifier: GPL-2.0-or-later
"""One benchmark run of the host kernel's KSM on a workload."""

import sys
import time

from . import hostksm, measure
from .workload import Workload


def run(label, workload_exe, wl, pages_to_scan, sleep_ms, max_s, steady_s, goal=0.95):
    """Runs the workload with MADV_MERGEABLE under KSM at the given rate.

    Every KSM setting is restored afterwards and everything KSM merged is
    unmerged again if KSM was off before."""
    with hostksm.stopped() as kpid:
        with Workload(workload_exe, mergeable=True, **wl) as w:
            expected = w.expected["saved_pages"]
            r = measure.Run(system=label, expected_pages=expected)
            hostksm.start(pages_to_scan, sleep_ms)

            progress = measure.progress_printer(label, expected)

            t0, scans0 = time.monotonic(), hostksm.counters().get("full_scans", 0)
            measure.converge(r, lambda: hostksm.saved_pages(hostksm.counters()),
                             lambda: hostksm.cpu_seconds(kpid),
                             lambda: hostksm.counters().get("pages_scanned", 0),
                             goal=goal, max_s=max_s, progress=progress)
            print(file=sys.stderr)
            if r.goal_s is not None:
                measure.steady(r, lambda: hostksm.cpu_seconds(kpid), steady_s)
                # KSM keeps scanning at its rate once converged: its scan speed.
                measure.throughput(r, lambda: hostksm.cpu_seconds(kpid),
                                   lambda: hostksm.counters().get("pages_scanned", 0))
            # KSM's passes since it started, over the time they took.
            passes = hostksm.counters().get("full_scans", 0) - scans0
            if passes > 0:
                r.full_pass_s = (time.monotonic() - t0) / passes
            # KSM keeps one 64-byte rmap_item (mm/ksm.c) for every page it
            # tracks in a mergeable area: after a full scan, every page of the
            # workload. Its slab is merged with other 64-byte caches here, so
            # the size is derived from the struct, not read from slabinfo.
            r.tracked_pages = len(w.pids) * w.pages_per_proc
            r.metadata_bytes = r.tracked_pages * 64
            r.notes.append("metadata: 64 B rmap_item per tracked page (struct size)")
            r.intact = w.verify_and_stop()
            hostksm.write("run", 0)
    return r
