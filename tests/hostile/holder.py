# SPDX-License-Identifier: GPL-2.0-or-later
"""A process that holds memory for the hostile tests and does what it is told.

holder.py PAGES FILL [--sparse-pages N]
  maps PAGES private pages filled with the byte FILL (hex), and with
  --sparse-pages a MAP_NORESERVE mapping of N pages that nothing touches; prints
  "ready PID ADDR [SPARSE_ADDR SPARSE_BYTES]" and then reads commands on
  stdin: "exec PATH ARG..." executes PATH, "quit" exits."""

import ctypes
import mmap
import os
import sys

MAP_NORESERVE = 0x4000


def address(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def main():
    pages, fill = int(sys.argv[1]), int(sys.argv[2], 16)
    area = mmap.mmap(-1, pages * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.write(bytes([fill]) * (pages * 4096))
    line = f"ready {os.getpid()} {address(area):#x}"
    if "--sparse-pages" in sys.argv:
        size = int(sys.argv[sys.argv.index("--sparse-pages") + 1]) * 4096
        sparse = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE)
        line += f" {address(sparse):#x} {size}"
    print(line, flush=True)
    for cmd in sys.stdin:
        w = cmd.split()
        if w and w[0] == "exec":
            os.execv(w[1], w[1:])
        if w and w[0] == "quit":
            return


main()
