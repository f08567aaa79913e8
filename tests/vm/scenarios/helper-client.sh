#!/bin/sh
# vm-timeout: 120
# The daemon's netlink client against the real module: batched merges, merge
# by handle, zero merges, refusals, copy-on-write, GET_PAGES, UNMERGE, INFO.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-client-test
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
