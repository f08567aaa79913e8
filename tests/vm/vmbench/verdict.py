# SPDX-License-Identifier: GPL-2.0-or-later
"""Verdict logic of the VM bench. Pure functions over console text so that
they can be unit tested with recorded consoles (tests/vm/test_verdict.py)."""

import re
from dataclasses import dataclass, field

# Lines the guest's /init prints around the scenario (see tests/vm/init.sh).
MARK_START = "KSMD-VM: scenario start"
MARK_EXIT = re.compile(r"KSMD-VM: scenario exit (\d+)")
MARK_WATCHDOG = "KSMD-VM: watchdog fired"
MARK_DMESG_BEGIN = "KSMD-VM: dmesg begin"
MARK_DMESG_END = "KSMD-VM: dmesg end"

# Kernel messages that fail a run wherever they appear on the console.
# Each entry: (name shown in the verdict, regular expression).
# The debug kernel line (tools/build-debug-kernel) adds its own reports:
# most begin with BUG: or WARNING:, but each is named here so a verdict says
# which check fired, and a few print neither.
BAD_PATTERNS = [
    ("KASAN report", re.compile(r"BUG: KASAN:|KASAN: .*(out-of-bounds|use-after-free|invalid-free|double-free)")),
    ("lockdep: circular locking", re.compile(r"possible circular locking dependency")),
    ("lockdep: recursive locking", re.compile(r"possible recursive locking detected")),
    ("lockdep: inconsistent lock state", re.compile(r"inconsistent lock state|possible irq lock inversion")),
    ("lockdep: lock misuse", re.compile(
        r"bad unlock balance detected|held lock freed|lock held when returning to user space"
        r"|still has locks held|possible deadlock")),
    ("lockdep: suspicious RCU usage", re.compile(r"suspicious RCU usage")),
    ("lockdep turned itself off", re.compile(
        r"turning off the locking correctness validator|Disabling lock debugging due to kernel taint")),
    ("sleeping in atomic context", re.compile(r"sleeping function called from invalid context|scheduling while atomic")),
    ("page allocator poison corrupted", re.compile(r"pagealloc: (memory corruption|single bit error)")),
    ("page dump (VM_BUG_ON_PAGE/FOLIO, bad page)", re.compile(r"page dumped because:")),
    ("kernel BUG at", re.compile(r"kernel BUG at ")),
    ("slab corruption", re.compile(r"\bBUG [\w.:-]+ \((Not tainted|Tainted)")),
    ("list corruption", re.compile(r"list_(add|del) corruption")),
    ("UBSAN report", re.compile(r"UBSAN: ")),
    ("kernel BUG", re.compile(r"\bBUG:")),
    ("kernel WARNING", re.compile(r"\bWARNING:")),
    ("Oops", re.compile(r"\bOops\b")),
    ("general protection fault", re.compile(r"general protection")),
    ("Bad page", re.compile(r"\bBad page\b")),
    ("refcount_t error", re.compile(r"refcount_t:")),
    ("Bad rss-counter", re.compile(r"Bad rss-counter")),
    ("soft lockup", re.compile(r"soft lockup")),
    ("hard lockup", re.compile(r"hard LOCKUP", re.IGNORECASE)),
    ("hung task", re.compile(r"INFO: task .* blocked for more than")),
    ("RCU stall", re.compile(r"rcu_(sched|preempt) (self-)?detected stall|rcu: INFO: .*stall")),
    ("kernel panic", re.compile(r"Kernel panic")),
    ("unable to handle page fault", re.compile(r"unable to handle (kernel )?(paging request|page fault)")),
]

TAP_RESULT = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)\s*$")

# How many console lines to show around the first problem.
EXCERPT_BEFORE = 15
EXCERPT_AFTER = 40


@dataclass
class TapResult:
    ok: bool
    description: str
    directive: str = ""  # "SKIP ..." or "TODO ..."


@dataclass
class Problem:
    what: str
    line: int  # 0-based console line index, -1 when not tied to a line


@dataclass
class Verdict:
    passed: bool
    results: list = field(default_factory=list)  # guest TapResult, in order
    problems: list = field(default_factory=list)  # Problem, in order
    exit_code: int = None
    plan: int = None
    excerpt: list = field(default_factory=list)


def strip_console(line):
    """Drops the carriage returns and terminal escapes a serial console adds."""
    line = line.replace("\r", "")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)


def parse_tap_line(line):
    m = TAP_RESULT.match(line)
    if not m:
        return None
    desc = m.group(3).strip()
    directive = ""
    if "#" in desc:
        desc, directive = (s.strip() for s in desc.split("#", 1))
    return TapResult(ok=(m.group(1) == "ok"), description=desc, directive=directive)


def find_bad_lines(lines):
    """Returns a Problem for every console line that matches a bad pattern."""
    found = []
    for i, line in enumerate(lines):
        for name, rx in BAD_PATTERNS:
            if rx.search(line):
                found.append(Problem(f"{name}: {line.strip()}", i))
                break
    return found


def excerpt(lines, index):
    lo = max(0, index - EXCERPT_BEFORE)
    hi = min(len(lines), index + EXCERPT_AFTER)
    return lines[lo:hi]


def judge(console_text, timed_out=False, qemu_status=0):
    """Judges one guest run from its whole console text.

    A run passes only when the scenario started and printed its exit marker
    with status 0, every guest TAP result is ok (SKIP counts as a failure:
    nothing is silently skipped), the guest's TAP plan matches what it
    printed, no bad kernel message appeared anywhere, the guest watchdog did
    not fire and the host did not have to kill QEMU.
    """
    lines = [strip_console(l) for l in console_text.split("\n")]
    v = Verdict(passed=False)
    started = False
    in_dmesg = False

    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(MARK_START):
            started = True
            continue
        if s.startswith(MARK_DMESG_BEGIN):
            in_dmesg = True
            continue
        if s.startswith(MARK_DMESG_END):
            in_dmesg = False
            continue
        m = MARK_EXIT.search(s)
        if m:
            v.exit_code = int(m.group(1))
            continue
        if s.startswith(MARK_WATCHDOG):
            v.problems.append(Problem("the guest watchdog fired: the scenario did not finish in its time limit", i))
            continue
        if not started or in_dmesg:
            continue
        m = TAP_PLAN.match(s)
        if m:
            v.plan = int(m.group(1))
            continue
        r = parse_tap_line(s)
        if r:
            v.results.append(r)
            if not r.ok:
                v.problems.append(Problem(f"guest test failed: {r.description}", i))
            elif r.directive.upper().startswith("SKIP"):
                v.problems.append(Problem(f"guest test skipped (a skip is not a pass): {r.description} # {r.directive}", i))

    # The final dmesg dump repeats what the console showed live: report each
    # kernel message once, at its first appearance.
    seen = set()
    for pr in find_bad_lines(lines):
        if pr.what not in seen:
            seen.add(pr.what)
            v.problems.append(pr)

    if not started:
        v.problems.append(Problem("the scenario never started (the guest did not boot to /init)", -1))
    if timed_out:
        v.problems.append(Problem("timed out: the host killed QEMU", -1))
    elif qemu_status not in (0, None):
        v.problems.append(Problem(f"QEMU exited with status {qemu_status}", -1))
    if started and v.exit_code is None and not timed_out:
        v.problems.append(Problem("the scenario printed no exit status (guest crashed or powered off early)", -1))
    if v.exit_code not in (None, 0):
        v.problems.append(Problem(f"the scenario exited with status {v.exit_code}", -1))
    if started and v.exit_code is not None:
        if v.plan is None:
            v.problems.append(Problem("the scenario printed no TAP plan (1..N)", -1))
        elif v.plan != len(v.results):
            v.problems.append(Problem(f"the scenario planned {v.plan} tests but reported {len(v.results)}", -1))
        if not v.results:
            v.problems.append(Problem("the scenario reported no test results", -1))

    v.passed = not v.problems
    tied = [p.line for p in v.problems if p.line >= 0]
    if tied:
        v.excerpt = excerpt(lines, min(tied))
    elif not v.passed:
        v.excerpt = lines[-(EXCERPT_BEFORE + EXCERPT_AFTER):]
    return v
