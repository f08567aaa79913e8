#!/bin/sh
# vm-timeout: 15
# Test of the bench itself: a scenario that never ends. The guest watchdog
# (or, with a short --host-timeout, the host) must end the run as a failure.
. /lib/ksmd-vm.sh

vm_ok "about to hang"
sleep 100000
vm_finish
