# SPDX-License-Identifier: GPL-2.0-or-later
"""Boots the guest under QEMU/TCG and streams its serial console."""

import os
import selectors
import shutil
import signal
import subprocess
import time

QEMU = "qemu-system-x86_64"


def numa_args(memory_mib, cpus, nodes):
    """Splits memory and CPUs evenly between `nodes` NUMA nodes (none for one node)."""
    if nodes <= 1:
        return []
    args = []
    per_cpus = cpus // nodes
    for n in range(nodes):
        args += ["-object", f"memory-backend-ram,id=mem{n},size={memory_mib // nodes}M",
                 "-numa", f"node,nodeid={n},memdev=mem{n},cpus={n * per_cpus}-{(n + 1) * per_cpus - 1}"]
    return args


def smp_arg(cpus, nodes):
    """One socket per NUMA node: CPUs of one package on two nodes make the guest kernel WARN."""
    if nodes <= 1:
        return str(cpus)
    return f"{cpus},sockets={nodes},cores={cpus // nodes},threads=1"


def command(kernel_image, initrd, memory_mib, cpus, append, numa_nodes=1):
    # One host thread runs every vCPU in turn. With multi-threaded TCG (QEMU 7.2, Debian 12) a vCPU
    # now and then executes an int3 that the kernel's text_poke_bp() has already removed on another
    # vCPU: the 6.12 guest oopses in sched_clock_cpu or wherever a static key flipped, at boot or in
    # the middle of a scenario (CI saw both). The guest still has two CPUs, interleaved by QEMU's
    # round-robin and the guest scheduler; the scenarios take about as long (helper-merge 64 s with
    # threads, 67 s without, on 6.12).
    return [
        QEMU,
        "-accel", "tcg,thread=single",
        "-cpu", "max",
        "-m", str(memory_mib),
        "-smp", smp_arg(cpus, numa_nodes),
        *numa_args(memory_mib, cpus, numa_nodes),
        "-nodefaults",
        "-display", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", kernel_image,
        "-initrd", initrd,
        "-append", append,
    ]


def _kill(proc):
    """Ends QEMU, the only process this bench started, by its pid."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run(cmd, log_path, timeout_s, on_line=None):
    """Runs QEMU until it exits or timeout_s passes.

    Every console line goes to log_path as it arrives and to on_line(line).
    Returns (console_text, qemu_status, timed_out).
    """
    if not shutil.which(cmd[0]):
        raise FileNotFoundError(f"{cmd[0]} not found: apt-get install qemu-system-x86")

    chunks = []
    pending = b""
    timed_out = False
    deadline = time.monotonic() + timeout_s

    with open(log_path, "wb") as log:
        log.write(("# " + " ".join(cmd) + "\n").encode())
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(timeout=min(left, 1.0)):
                    if proc.poll() is not None:
                        break
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                chunks.append(data)
                pending += data
                *complete, pending = pending.split(b"\n")
                if on_line:
                    for raw in complete:
                        on_line(raw.decode("utf-8", "replace").replace("\r", ""))
        finally:
            _kill(proc)
            sel.close()
        if pending and on_line:
            on_line(pending.decode("utf-8", "replace").replace("\r", ""))
        status = proc.wait()
    text = b"".join(chunks).decode("utf-8", "replace")
    return text, (None if timed_out else status), timed_out
