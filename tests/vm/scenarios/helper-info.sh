#!/bin/sh
# vm-timeout: 60
# Smoke test of the whole path: load the module, exchange INFO with it over
# generic netlink from userspace, unload it; the console must stay clean.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-info
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_run_tap helper-info --absent
vm_finish
