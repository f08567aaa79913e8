#!/bin/sh
# vm-timeout: 60
# Load-time safety: when IBT is enforced (forced here by the test-only
# parameter test_assume_ibt, since QEMU cannot give a guest IBT) and the calls
# to kernel functions would be indirect (forced by test_assume_indirect_calls,
# as on a kernel without static calls), a module that would call a sealed
# kernel function must refuse to load, with exactly one kernel log line naming
# the function; so must it on a kernel built with CONFIG_CFI_CLANG (forced by
# test_assume_cfi). With direct calls (the real build) it loads under assumed
# IBT (helper-ibt checks that in depth). A normal load must still work.
. /lib/ksmd-vm.sh

# refused WHAT PARAMS PATTERN: loading with the module parameters PARAMS
# fails, with exactly one kernel log line matching PATTERN, and leaves
# nothing loaded.
refused() {
	dmesg -c > /dev/null
	# shellcheck disable=SC2086
	if insmod "$KSMD_HELPER_KO" $2 2>/dev/null; then
		vm_not_ok "loading $1 is refused"
		rmmod ksmd_helper
	else
		vm_ok "loading $1 is refused"
	fi
	# busybox insmod retries init_module() after finit_module() fails, so the
	# same line may appear once per attempt: count distinct lines.
	lines=$(dmesg | grep 'ksmd_helper: .*refusing to load' | sed -e 's/^\[[^]]*\] //' | sort -u | wc -l)
	dmesg | grep 'ksmd_helper: ' | sed -e 's/^/# /'
	if [ "$lines" -eq 1 ] && dmesg | grep -q "ksmd_helper: $3"; then
		vm_ok "the refusal $1 is one log line naming what it found"
	else
		vm_not_ok "the refusal $1 is one log line naming what it found ($lines lines)"
	fi
	vm_check "nothing stays loaded after the refusal $1" sh -c "! grep -q ^ksmd_helper /proc/modules"
}

refused "with IBT enforced and indirect calls" "test_assume_ibt=1 test_assume_indirect_calls=1" \
	'kernel function [a-z_]* has no ENDBR64'
vm_check "with direct calls it loads under assumed IBT" insmod "$KSMD_HELPER_KO" test_assume_ibt=1
vm_check "ksmd_helper unloads" rmmod ksmd_helper
# Kernel CFI (CONFIG_CFI_CLANG; Debian's kernels are built with GCC) checks
# every indirect call, and no CFI kernel was tested: refused before anything
# is resolved.
refused "on a CFI kernel" test_assume_cfi=1 '.*CONFIG_CFI_CLANG.*refusing to load'
vm_check "a normal load works" insmod "$KSMD_HELPER_KO"
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
