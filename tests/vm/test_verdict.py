# SPDX-License-Identifier: GPL-2.0-or-later
"""Unit tests of the VM bench's verdict logic against recorded consoles.

fixtures/clean-6.1.log and fixtures/warning-6.1.log are consoles recorded
from real guest runs; the others are edited copies that each inject one
failure the bench must catch."""

import os
import unittest

from vmbench import verdict

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def load(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8", errors="replace") as f:
        return f.read()


def inject(text, after_marker, lines):
    """Returns text with lines inserted after the first line containing after_marker."""
    out = []
    done = False
    for line in text.split("\n"):
        out.append(line)
        if not done and after_marker in line:
            out.extend(lines)
            done = True
    assert done, after_marker
    return "\n".join(out)


class RecordedConsoles(unittest.TestCase):
    def test_clean_console_passes(self):
        v = verdict.judge(load("clean-6.1.log"))
        self.assertTrue(v.passed, [p.what for p in v.problems])
        self.assertEqual(v.exit_code, 0)
        self.assertGreater(len(v.results), 0)
        self.assertEqual(v.plan, len(v.results))

    def test_recorded_warning_fails_with_excerpt(self):
        v = verdict.judge(load("warning-6.1.log"))
        self.assertFalse(v.passed)
        self.assertTrue(any("kernel WARNING" in p.what for p in v.problems))
        self.assertTrue(any("WARNING:" in l for l in v.excerpt))


class InjectedFailures(unittest.TestCase):
    def setUp(self):
        self.clean = load("clean-6.1.log")

    def assert_fails_with(self, text, what, **kw):
        v = verdict.judge(text, **kw)
        self.assertFalse(v.passed)
        hits = [p.what for p in v.problems if what in p.what]
        self.assertTrue(hits, f"expected a problem with '{what}', got {[p.what for p in v.problems]}")
        self.assertTrue(v.excerpt, "a failing verdict carries a console excerpt")
        return v

    def test_each_bad_kernel_message_fails(self):
        samples = {
            "kernel BUG": "[   12.1] BUG: unable to handle page fault for address: ffff8880deadbeef",
            "Oops": "[   12.2] Oops: 0000 [#1] PREEMPT SMP NOPTI",
            "general protection fault": "[   12.3] general protection fault, probably for non-canonical address",
            "Bad page": "[   12.4] BUG: Bad page state in process kt  pfn:1234",
            "refcount_t error": "[   12.5] refcount_t: underflow; use-after-free.",
            "Bad rss-counter": "[   12.6] BUG: Bad rss-counter state mm:0000 type:MM_ANONPAGES val:-1",
            "soft lockup": "[   40.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kt:99]",
            "hung task": "[  130.0] INFO: task kt:99 blocked for more than 61 seconds.",
            "kernel WARNING": "[   12.7] WARNING: CPU: 0 PID: 1 at mm/rmap.c:1234 page_remove_rmap+0x1/0x2",
            # The debug kernel line's reports.
            "KASAN report": "[   13.0] BUG: KASAN: slab-use-after-free in kh_merge_one+0x1a/0x2b [ksmd_helper]",
            "lockdep: circular locking": "[   13.1] WARNING: possible circular locking dependency detected",
            "lockdep: recursive locking": "[   13.2] WARNING: possible recursive locking detected",
            "lockdep: inconsistent lock state": "[   13.3] WARNING: inconsistent lock state",
            "lockdep: lock misuse": "[   13.4] WARNING: bad unlock balance detected!",
            "lockdep: suspicious RCU usage": "[   13.5] WARNING: suspicious RCU usage",
            "lockdep turned itself off": "[   13.6] turning off the locking correctness validator.",
            "sleeping in atomic context":
                "[   13.7] BUG: sleeping function called from invalid context at mm/memory.c:6100",
            "page allocator poison corrupted": "[   13.8] pagealloc: memory corruption",
            "page dump (VM_BUG_ON_PAGE/FOLIO, bad page)":
                "[   13.9] page dumped because: VM_BUG_ON_FOLIO(!folio_test_anon(folio))",
            "kernel BUG at": "[   14.0] kernel BUG at mm/khugepaged.c:612!",
            "slab corruption": "[   14.1] BUG kmalloc-64 (Tainted: G           O      ): Redzone overwritten",
            "list corruption": "[   14.2] list_del corruption. prev->next should be ffff888003c1e0a8",
            "UBSAN report": "[   14.3] UBSAN: shift-out-of-bounds in mm/page_alloc.c:123:4",
        }
        for name, line in samples.items():
            with self.subTest(name=name):
                text = inject(self.clean, verdict.MARK_START, [line])
                v = self.assert_fails_with(text, name)
                self.assertTrue(any(line.strip() in l for l in v.excerpt))

    def test_bad_message_only_in_dmesg_dump_fails(self):
        text = inject(self.clean, verdict.MARK_DMESG_BEGIN, ["[    1.0] WARNING: CPU: 1 PID: 7 at x.c:1 f+0x0/0x1"])
        self.assert_fails_with(text, "kernel WARNING")

    def test_failed_guest_test_fails(self):
        text = inject(self.clean, verdict.MARK_START, ["not ok 99 - contents intact after merge"])
        self.assert_fails_with(text, "contents intact after merge")

    def test_skipped_guest_test_fails(self):
        text = inject(self.clean, verdict.MARK_START, ["ok 99 - THP split # SKIP no THP"])
        self.assert_fails_with(text, "skip is not a pass")

    def test_nonzero_exit_fails(self):
        text = self.clean.replace("KSMD-VM: scenario exit 0", "KSMD-VM: scenario exit 3")
        self.assert_fails_with(text, "exited with status 3")

    def test_missing_exit_marker_fails(self):
        text = self.clean.replace("KSMD-VM: scenario exit 0", "")
        self.assert_fails_with(text, "no exit status")

    def test_plan_mismatch_fails(self):
        text = inject(self.clean, verdict.MARK_START, ["ok 99 - an extra result"])
        self.assert_fails_with(text, "planned")

    def test_watchdog_fails(self):
        text = inject(self.clean, verdict.MARK_START, ["KSMD-VM: watchdog fired after 15s"])
        self.assert_fails_with(text, "watchdog fired")

    def test_host_timeout_fails(self):
        head = self.clean.split(verdict.MARK_START)[0] + verdict.MARK_START + "\nok 1 - about to hang\n"
        self.assert_fails_with(head, "timed out", timed_out=True, qemu_status=None)

    def test_no_boot_fails(self):
        self.assert_fails_with("SeaBIOS (version 1.16)\nno kernel\n", "never started")

    def test_qemu_failure_fails(self):
        self.assert_fails_with(self.clean, "QEMU exited with status 1", qemu_status=1)

    def test_tap_inside_dmesg_is_ignored(self):
        text = inject(self.clean, verdict.MARK_DMESG_BEGIN, ["not ok 1 - printed by a kernel message"])
        v = verdict.judge(text)
        self.assertTrue(v.passed, [p.what for p in v.problems])


class Parsing(unittest.TestCase):
    def test_tap_line(self):
        r = verdict.parse_tap_line("ok 3 - merges # SKIP not here")
        self.assertTrue(r.ok)
        self.assertEqual(r.description, "merges")
        self.assertEqual(r.directive, "SKIP not here")
        self.assertFalse(verdict.parse_tap_line("not ok 4 - x").ok)
        self.assertIsNone(verdict.parse_tap_line("okay then"))

    def test_console_escapes_are_stripped(self):
        self.assertEqual(verdict.strip_console("\x1b[0mok 1 - a\r"), "ok 1 - a")


if __name__ == "__main__":
    unittest.main()
