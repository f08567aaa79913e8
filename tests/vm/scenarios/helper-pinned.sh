#!/bin/sh
# vm-timeout: 200
# Long-term pins. A process registers io_uring fixed buffers, which pins them
# (FOLL_PIN | FOLL_LONGTERM) and marks its memory as having pins. On 6.1,
# whose GUP does not unshare a merged page on a read-only long-term pin, no
# page of that process merges any more (UNSUPPORTED, PINNED), as target,
# source or zero page; on 6.12 its other pages merge and the pinned ones are
# BUSY. Nothing is lost either way.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test pinned
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
