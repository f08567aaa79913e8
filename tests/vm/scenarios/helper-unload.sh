#!/bin/sh
# vm-timeout: 120
# Unloading the module while merged pages are mapped is safe: the pages keep
# their content and COW, fork and MADV_DONTNEED work; a reload starts clean.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-merge-test --unload
vm_check "nothing stays loaded" sh -c "! grep -q ^ksmd_helper /proc/modules"
vm_check "ksmd_helper loads again" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-merge-test 1024
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
