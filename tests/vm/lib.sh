# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by VM scenarios: TAP helpers and common setup. Scenarios print TAP
# on stdout and end with vm_finish, which prints the plan and exits non-zero
# if anything failed.

VM_N=0
VM_FAILED=0
KSMD_HELPER_KO=/lib/modules/ksmd/ksmd_helper.ko

vm_ok() {
	VM_N=$((VM_N + 1))
	echo "ok $VM_N - $*"
}

vm_not_ok() {
	VM_N=$((VM_N + 1))
	VM_FAILED=1
	echo "not ok $VM_N - $*"
}

vm_diag() {
	echo "# $*"
}

# vm_check DESCRIPTION COMMAND [ARGS...]: one TAP result from a command's status.
vm_check() {
	desc=$1
	shift
	if "$@"; then
		vm_ok "$desc"
	else
		vm_not_ok "$desc (exit $?: $*)"
	fi
}

# vm_check_status DESCRIPTION STATUS COMMAND [ARGS...]: expects exactly STATUS.
vm_check_status() {
	desc=$1
	want=$2
	shift 2
	"$@"
	got=$?
	if [ "$got" -eq "$want" ]; then
		vm_ok "$desc"
	else
		vm_not_ok "$desc (expected exit $want, got $got: $*)"
	fi
}

# vm_run_tap COMMAND [ARGS...]: runs a program that prints its own TAP and
# folds its results into this scenario's numbering.
vm_run_tap() {
	out=/tmp/vm_run_tap.$$
	"$@" > "$out" 2>&1
	status=$?
	while IFS= read -r line; do
		case "$line" in
		"ok "*)
			vm_ok "$(echo "$line" | sed -e 's/^ok [0-9]* *-* *//')" ;;
		"not ok "*)
			vm_not_ok "$(echo "$line" | sed -e 's/^not ok [0-9]* *-* *//')" ;;
		1..*) ;;
		"#"*)
			echo "$line" ;;
		*)
			echo "# $line" ;;
		esac
	done < "$out"
	rm -f "$out"
	if [ "$status" -ne 0 ]; then
		vm_not_ok "$1 exited with status $status"
	fi
	return "$status"
}

vm_zram_swap() {
	size=${1:-512M}
	for alg in lz4 lzo-rle lzo deflate; do
		echo "$alg" > /sys/block/zram0/comp_algorithm 2>/dev/null && break
	done
	echo "$size" > /sys/block/zram0/disksize && mkswap /dev/zram0 > /dev/null && swapon /dev/zram0
}

vm_finish() {
	echo "1..$VM_N"
	exit "$VM_FAILED"
}
