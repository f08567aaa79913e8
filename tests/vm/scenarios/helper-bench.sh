#!/bin/sh
# vm-timeout: 300
# Not a test: merges per second for batches of 1, 64 and 512, for new pairs,
# joins to an existing shared page and zero merges (lines "# bench ...").
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-bench "${KSMD_BENCH_PAGES:-8192}"
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
