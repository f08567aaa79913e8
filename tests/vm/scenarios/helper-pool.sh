#!/bin/sh
# vm-timeout: 300
# Shared pages come from whole pageblocks: merges take blocks and fill them,
# slots freed by UNMERGE are reused before a new block, and the blocks go
# back to the kernel once the processes exit. Nothing is lost.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test pool
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
