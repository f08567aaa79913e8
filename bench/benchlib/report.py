# SPDX-License-Identifier: GPL-2.0-or-later
"""Tables and plots of benchmark runs, written to a results folder."""

import datetime
import json
import os
import platform
import subprocess

MIB = 1 << 20
PAGE = 4096


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem_kib // 1024 // 1024} GiB, kernel {platform.release()}"


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(runs):
    head = ("| system | time to 95 % (s) | CPU to 95 % (s) | final saving (MiB) | one full pass (s) | "
            "CPU-s per GiB scanned | GiB per CPU-s | GiB per CPU-s, scanning on | steady CPU (%) | content intact | notes |")
    rows = [head, "|" + "---|" * 11]
    for r in runs:
        rows.append("| " + " | ".join([
            r.system,
            fmt(r.goal_s, ".1f"),
            fmt(r.goal_cpu_s, ".2f"),
            fmt(r.final_saved_pages * PAGE / MIB, ".1f"),
            fmt(r.full_pass_s, ".2f"),
            fmt(r.cpu_s_per_gib_scanned(), ".2f"),
            fmt(r.gib_per_cpu_s(), ".2f"),
            fmt(r.gib_per_cpu_s_scanning(), ".2f"),
            fmt(None if r.steady_cpu_per_s is None else 100 * r.steady_cpu_per_s, ".1f"),
            {True: "yes", False: "NO", None: "-"}[r.intact],
            "; ".join(r.notes),
        ]) + " |")
    return "\n".join(rows)


def write(results_dir, name, runs, params, extra_text=""):
    """Writes NAME-DATE.md/.json (and .png when matplotlib is there); returns the .md path."""
    os.makedirs(results_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    base = os.path.join(results_dir, f"{name}-{stamp}")
    text = (f"# {name}, {stamp}\n\nMachine: {machine()}\n\nWorkload: {params}\n\n"
            f"{table(runs)}\n\n{extra_text}")
    with open(base + ".md", "w") as f:
        f.write(text)
    with open(base + ".json", "w") as f:
        json.dump({"machine": machine(), "params": params,
                   "runs": [r.__dict__ for r in runs]}, f, indent=1)
    plot(base + ".png", runs, name)
    return base + ".md"


def pyplot():
    """matplotlib.pyplot drawing to files, or None (saying so) when Debian's python3-matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: python3-matplotlib is not installed; no plot (apt-get install python3-matplotlib)")
        return None
    return plt


def plot(path, runs, title):
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in runs:
        ax.plot([s[0] for s in r.samples], [s[1] * PAGE / MIB for s in r.samples], label=r.system)
    if runs:
        ax.axhline(runs[0].expected_pages * PAGE / MIB, color="grey", linestyle=":", label="theoretical")
    ax.set_xlabel("seconds")
    ax.set_ylabel("saved MiB")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
