#!/bin/sh
# vm-timeout: 400
# MERGE, MERGE_ZERO, GET_PAGES and UNMERGE between separate processes, and
# the kernel semantics merged pages keep (COW, fork, mremap, mlock,
# MADV_DONTNEED/FREE, munmap, owner exit, THP, memory pressure with swap).
# The module must own nothing afterwards and unload cleanly.
. /lib/ksmd-vm.sh

vm_zram_swap 512M
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-merge-test 2048 --pressure
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
