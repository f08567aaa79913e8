#!/bin/sh
# vm-timeout: 400
# The daemon's estimate-mode scan on the guest kernel (soft-dirty change
# tracking works here, unlike on some hosts): the estimate must be exact.
. /lib/ksmd-vm.sh
export CMOCKA_MESSAGE_OUTPUT=TAP
vm_run_tap test-estimate-native /usr/bin/ksmd
vm_finish
