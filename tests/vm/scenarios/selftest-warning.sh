#!/bin/sh
# vm-timeout: 60
# Test of the bench itself: a module that WARNs on load. The scenario's own
# results pass; the bench must still fail the run because of the console.
. /lib/ksmd-vm.sh

vm_check "the self-test module loads (and warns)" insmod /lib/modules/ksmd/vmtest_warn.ko
vm_finish
