# SPDX-License-Identifier: GPL-2.0-or-later
"""A process of nobody's holding one guess of another user's page.

guess_holder.py TEXT
  maps one private page filled with TEXT, repeated; prints "ready PID ADDR"
  and runs until its stdin closes."""

import ctypes
import mmap
import os
import sys

guess = sys.argv[1].encode()
page = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
page.write((guess * (4096 // len(guess) + 1))[:4096])
print(f"ready {os.getpid()} {ctypes.addressof(ctypes.c_char.from_buffer(page)):#x}", flush=True)
sys.stdin.read()
