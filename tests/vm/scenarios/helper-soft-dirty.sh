#!/bin/sh
# vm-timeout: 200
# A merge changes no byte, so it changes nothing the kernel tracks of writes:
# every PTE it replaces passes its soft-dirty bit (/proc/PID/pagemap bit 55,
# what CRIU's incremental dumps read after clear_refs) on to the shared page's
# or the zero page's, for target and source alike; pages write-protected by
# userfaultfd are refused.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test soft-dirty 256
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
