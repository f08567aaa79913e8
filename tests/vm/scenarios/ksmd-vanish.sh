#!/bin/sh
# vm-timeout: 300
# Registered memory goes away while ksmd merges: a process exits mid-scan,
# a region is unregistered mid-scan, a process exits and leaves the
# other's merged pages the last mappers of their shared pages, which a
# process registered later must join (the Manager driven in process by
# ksmd-manager-test). The scan goes on, nothing of an unregistered process is
# merged afterwards, the rest converges, every process keeps its content, the
# module owns nothing at the end and unloads cleanly.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap ksmd-manager-test
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
