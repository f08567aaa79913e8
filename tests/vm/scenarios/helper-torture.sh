#!/bin/sh
# vm-timeout: 300
# Torture: 4 processes x 3 writer threads write and verify random pages
# while 2 threads request random merges, zero merges, unmerges and dumps
# for 60 s. Zero lost writes, zero foreign data, nothing owned afterwards,
# clean unload, clean console.
# With KSMD_KHUGEPAGED_AGGRESSIVE=1 (the suite sets it on every line)
# khugepaged scans without pause and collapses ranges that are mostly empty,
# swapped or shared, so that its scans and collapses race with the merges:
# one that meets a merged page must give up (on a CONFIG_DEBUG_VM kernel the
# module keeps it from starting: kmod-helper/README.md).
. /lib/ksmd-vm.sh

khp=/sys/kernel/mm/transparent_hugepage/khugepaged
khugepaged_aggressive() {
	echo 0 > $khp/scan_sleep_millisecs &&
		echo 0 > $khp/alloc_sleep_millisecs &&
		echo 511 > $khp/max_ptes_none &&
		echo 511 > $khp/max_ptes_swap &&
		echo 511 > $khp/max_ptes_shared &&
		echo 4096 > $khp/pages_to_scan
}

vm_zram_swap 256M
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
if [ "${KSMD_KHUGEPAGED_AGGRESSIVE:-0}" = 1 ]; then
	vm_check "khugepaged made aggressive (no sleep, max_ptes_none/swap/shared 511)" khugepaged_aggressive
	vm_diag "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled); khugepaged:" \
		"$(cd $khp && grep . scan_sleep_millisecs max_ptes_none pages_to_scan | tr '\n' ' ')"
	scans0=$(cat $khp/full_scans)
	collapsed0=$(cat $khp/pages_collapsed)
fi
vm_run_tap helper-torture "${KSMD_TORTURE_SECS:-60}" 4 3 2
if [ "${KSMD_KHUGEPAGED_AGGRESSIVE:-0}" = 1 ]; then
	scans=$(($(cat $khp/full_scans) - scans0))
	vm_diag "khugepaged during the torture: $scans full scans," \
		"$(($(cat $khp/pages_collapsed) - collapsed0)) huge pages collapsed"
	# How often varies widely with how TCG shares its one thread: 2 (7.3) to
	# 5803 (6.12) full scans seen in 60 s runs. One full scan means it went
	# over every page of the torture while merges ran.
	vm_check "khugepaged scanned all the torture's memory while merges ran (>= 1 full scan)" test "$scans" -ge 1
fi
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
