#!/bin/sh
# vm-timeout: 60
# Load-time safety: when IBT is enforced (forced here by the test-only
# parameter test_assume_ibt, since QEMU cannot give a guest IBT) and the calls
# to kernel functions would be indirect (forced by test_assume_indirect_calls,
# as on a kernel without static calls), a module that would call a sealed
# kernel function must refuse to load, with exactly one kernel log line naming
# the function. With direct calls (the real build) it loads under assumed IBT
# (helper-ibt checks that in depth). A normal load must still work.
. /lib/ksmd-vm.sh

dmesg -c > /dev/null
if insmod "$KSMD_HELPER_KO" test_assume_ibt=1 test_assume_indirect_calls=1 2>/dev/null; then
	vm_not_ok "loading with IBT enforced and indirect calls is refused"
	rmmod ksmd_helper
else
	vm_ok "loading with IBT enforced and indirect calls is refused"
fi
# busybox insmod retries init_module() after finit_module() fails, so the
# same line may appear once per attempt: count distinct lines.
lines=$(dmesg | grep 'ksmd_helper: .*refusing to load' | sed -e 's/^\[[^]]*\] //' | sort -u | wc -l)
dmesg | grep 'ksmd_helper: ' | sed -e 's/^/# /'
if [ "$lines" -eq 1 ] && dmesg | grep -q 'ksmd_helper: kernel function [a-z_]* has no ENDBR64'; then
	vm_ok "the refusal is one log line naming the kernel function"
else
	vm_not_ok "the refusal is one log line naming the kernel function ($lines lines)"
fi
vm_check "nothing stays loaded after a refused load" sh -c "! grep -q ^ksmd_helper /proc/modules"
vm_check "with direct calls it loads under assumed IBT" insmod "$KSMD_HELPER_KO" test_assume_ibt=1
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_check "a normal load works" insmod "$KSMD_HELPER_KO"
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
