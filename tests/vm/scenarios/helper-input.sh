#!/bin/sh
# vm-timeout: 120
# Bad input: malformed, oversized or unprivileged requests are refused with
# a clear error and change nothing; per-item problems get their result.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-input-test
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
