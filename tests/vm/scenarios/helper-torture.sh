#!/bin/sh
# vm-timeout: 300
# Torture: 4 processes x 3 writer threads write and verify random pages
# while 2 threads request random merges, zero merges, unmerges and dumps
# for 60 s. Zero lost writes, zero foreign data, nothing owned afterwards,
# clean unload, clean console.
. /lib/ksmd-vm.sh

vm_zram_swap 256M
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-torture "${KSMD_TORTURE_SECS:-60}" 4 3 2
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
