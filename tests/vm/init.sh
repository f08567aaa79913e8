#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# /init of the VM bench's guest: mount, start a watchdog, load the kernel's
# own modules (zram), run /scenario.sh, dump dmesg, power off. The host reads
# the KSMD-VM: marker lines (tests/vm/vmbench/verdict.py).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname ksmd-vm

# Parameters come on the kernel command line as ksmd.KEY=VALUE (vm-test).
for word in $(cat /proc/cmdline); do
	case "$word" in
	ksmd.*=*)
		kv=${word#ksmd.}
		export "${kv%%=*}=${kv#*=}"
		;;
	esac
done

dump_dmesg() {
	echo "KSMD-VM: dmesg begin"
	dmesg
	echo "KSMD-VM: dmesg end"
}

echo 1 > /proc/sys/kernel/sysrq
# Report tasks stuck in D state after 60 s (TCG is slow; the default is 120).
echo 60 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null

(
	sleep "$KSMD_VM_TIMEOUT"
	echo "KSMD-VM: watchdog fired after ${KSMD_VM_TIMEOUT}s"
	echo w > /proc/sysrq-trigger
	echo l > /proc/sysrq-trigger
	sleep 1
	dump_dmesg
	poweroff -f
) &
watchdog=$!

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/kernel/$m" || echo "KSMD-VM: could not load kernel module $m"
done < /lib/modules/kernel/load-order

echo "KSMD-VM: scenario start (kernel $(uname -r))"
cd /tmp
/bin/sh /scenario.sh
rc=$?
kill "$watchdog" 2>/dev/null
dump_dmesg
echo "KSMD-VM: scenario exit $rc"
sync
poweroff -f
