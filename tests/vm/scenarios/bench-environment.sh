#!/bin/sh
# vm-timeout: 60
# The guest provides what the other scenarios rely on: parameters from the
# kernel command line, our programs run with
# their shared libraries, zram swap can be enabled, cgroup v2, THP and the
# kernel's own KSM are there, and the guest has the memory it was given.
. /lib/ksmd-vm.sh

vm_check "parameters from the kernel command line reach the scenario" \
	sh -c 'grep -q "ksmd.KSMD_VM_TIMEOUT=$KSMD_VM_TIMEOUT" /proc/cmdline && [ "$KSMD_VM_TIMEOUT" -gt 0 ]'
vm_check "our programs start (shared libraries present)" sh -c 'helper-info --absent > /dev/null'
vm_check "zram swap can be enabled" vm_zram_swap 256M
vm_check "swap is active" grep -q zram0 /proc/swaps
vm_check "cgroup v2 is mounted" test -f /sys/fs/cgroup/cgroup.controllers
vm_check "transparent huge pages are available" test -f /sys/kernel/mm/transparent_hugepage/enabled
vm_check "the kernel's KSM is available" test -f /sys/kernel/mm/ksm/run
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
vm_diag "MemTotal ${mem_kb} kB, kernel $(uname -r)"
vm_check "the guest has at least 1 GiB of memory" test "$mem_kb" -gt 900000
vm_check "swap can be disabled again" swapoff /dev/zram0
vm_finish
