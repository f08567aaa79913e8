#!/bin/sh
# vm-timeout: 200
# UNMERGE walks page tables, not addresses: a 64 TiB PROT_NONE/NORESERVE
# reservation (as ASan's shadow or a JVM's heap reserve) with merged pages in
# three windows unmerges in milliseconds of guest time, and so does the whole
# user address space. A walk of every 4 KiB would be 2^34 steps.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test sparse-unmerge
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
