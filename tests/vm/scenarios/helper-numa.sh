#!/bin/sh
# vm-timeout: 300
# On a guest with two NUMA nodes (vm-test --numa-nodes 2): a new shared page
# is allocated on the node of the target's page, not on the caller's; a
# transparent huge page migrating between the nodes while it is merged is
# BUSY or CHANGED, never NO_PAGE, and since its bytes differ it is never
# split.
. /lib/ksmd-vm.sh

vm_diag "nodes: $(ls -d /sys/devices/system/node/node* | tr '\n' ' ')"
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test numa
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
