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

# vm_field KEY LINE: the value of KEY=value in LINE (ksmd-probe's and ksmd's
# statistics lines).
vm_field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# vm_rmmod_running MODULE: rmmod while ksmd talks to the module. A request in
# flight (a GET_PAGES dump holds a module reference for its milliseconds)
# makes rmmod fail with EAGAIN, as it would for an operator: retry for up to
# 5 s, as "modprobe -r --wait" does. Any other failure fails at once.
vm_rmmod_running() {
	local i=0 err
	while [ "$i" -lt 50 ]; do
		err=$(rmmod "$1" 2>&1) && return 0
		case $err in
		*"temporarily unavailable"*|*"in use"*) ;;
		*) echo "$err" >&2; return 1 ;;
		esac
		i=$((i + 1))
		sleep 0.1
	done
	echo "$err (still busy after 5 s)" >&2
	return 1
}

# vm_ksmd_start SOCKET [ARGS...]: starts "ksmd --socket SOCKET ARGS" in the
# background, its output in /tmp/ksmd.log and its pid in $daemon, and waits up
# to 10 s for the socket. Fails if the socket is not there by then.
vm_ksmd_start() {
	local sock=$1 i=0
	shift
	ksmd --socket "$sock" "$@" > /tmp/ksmd.log 2>&1 &
	daemon=$!
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	test -S "$sock"
}

# A workload is a ksmd-workload run in the background under a NAME: its
# standard output (one "pid PID addr ADDR pages PAGES" line per process, the
# "expected ..." line, "ready", at the end "verified ...") goes to
# /tmp/NAME.out, its standard error to /tmp/NAME.err, its pid to $NAME_pid.

# vm_workload_start NAME [ARGS...]: starts ksmd-workload ARGS as NAME and
# waits for it to be ready: at most VM_WORKLOAD_READY_S seconds (120). Fails,
# showing its standard error, if it exits or is not ready by then.
vm_workload_start() {
	local name=$1
	shift
	vm_workload_run "$name" ksmd-workload "$@"
}

# vm_workload_start_as UID NAME [ARGS...]: the same, as user and group UID
# without supplementary groups.
vm_workload_start_as() {
	local uid=$1 name=$2
	shift 2
	# busybox sh runs its own applets before PATH: util-linux setpriv by its path.
	vm_workload_run "$name" /usr/bin/setpriv --reuid="$uid" --regid="$uid" --clear-groups ksmd-workload "$@"
}

vm_workload_run() {
	local name=$1 tries=0 pid
	shift
	# The redirections happen in the background child: remove an earlier run's
	# output first, or its "ready" could be read before it is truncated.
	rm -f "/tmp/$name.out" "/tmp/$name.err"
	"$@" > "/tmp/$name.out" 2> "/tmp/$name.err" &
	pid=$!
	eval "${name}_pid=$pid"
	while ! grep -q '^ready' "/tmp/$name.out" 2>/dev/null; do
		tries=$((tries + 1))
		if [ "$tries" -gt $((${VM_WORKLOAD_READY_S:-120} * 5)) ] || ! kill -0 "$pid" 2>/dev/null; then
			sed -e "s/^/# $name: /" "/tmp/$name.err"
			return 1
		fi
		sleep 0.2
	done
}

# vm_workload_pids NAME...: the pids of the workloads' processes, one a line.
vm_workload_pids() {
	local name
	for name in "$@"; do
		sed -n 's/^pid \([0-9]*\) .*/\1/p' "/tmp/$name.out"
	done
}

# vm_workload_ranges NAME...: the workloads' memory as "PID ADDR PAGES" lines
# (ksmd-probe pages takes them as arguments).
vm_workload_ranges() {
	local name
	for name in "$@"; do
		sed -n 's/^pid \([0-9]*\) addr \(0x[0-9a-f]*\) pages \([0-9]*\)$/\1 \2 \3/p' "/tmp/$name.out"
	done
}

# vm_metrics_snapshot SOCKET: ksmd's metrics now, into /tmp/metrics (one
# fetch, so that all figures read from it are of one scan).
vm_metrics_snapshot() {
	ksmctl --socket "$1" stats --format=prometheus > /tmp/metrics
}

# vm_metric NAME: the value of one metric line of the last snapshot (its name
# with labels, as printed).
vm_metric() {
	awk -v n="$1" '$1 == n { print $2 }' /tmp/metrics
}

# vm_metrics_wait_scans SOCKET N: waits up to 180 s until ksmd has completed
# at least N full scans; the last snapshot is of that moment. Fails if not.
vm_metrics_wait_scans() {
	local end
	end=$(($(date +%s) + 180))
	until vm_metrics_snapshot "$1" && [ "$(vm_metric ksmd_full_scans_total)" -ge "$2" ]; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# vm_workload_wait_rewritten NAME COUNT SECONDS: waits up to SECONDS until
# workload NAME reported COUNT rewrites (ksmd-workload's "rewritten" lines
# after SIGUSR2). Fails unless exactly COUNT are there by then.
vm_workload_wait_rewritten() {
	local end
	end=$(($(date +%s) + $3))
	while [ "$(grep -c '^rewritten' "/tmp/$1.out")" -lt "$2" ] && [ "$(date +%s)" -lt "$end" ]; do
		sleep 0.2
	done
	[ "$(grep -c '^rewritten' "/tmp/$1.out")" -eq "$2" ]
}

# vm_module_wait_unowned SECONDS: waits up to SECONDS until ksmd_helper owns
# no page (its collector frees pages nothing maps within 5 s). Fails if it
# still owns some then.
vm_module_wait_unowned() {
	local i=0
	while [ "$i" -lt "$1" ] && [ "$(vm_field pages_owned "$(ksmd-probe info)")" != 0 ]; do
		sleep 1
		i=$((i + 1))
	done
	[ "$(vm_field pages_owned "$(ksmd-probe info)")" = 0 ]
}

# vm_workload_distinct NAME: the page frames backing workload NAME's memory,
# other than the zero page.
vm_workload_distinct() {
	vm_field distinct "$(ksmd-probe pages $(vm_workload_ranges "$1"))"
}

# vm_workload_wait_freed NAME BEFORE EXPECTED PERCENT: waits up to 120 s until
# merging freed PERCENT of EXPECTED pages in workload NAME's memory, which
# BEFORE distinct frames backed at first. Fails if it did not.
vm_workload_wait_freed() {
	local end
	end=$(($(date +%s) + 120))
	while [ $((($2 - $(vm_workload_distinct "$1")) * 100)) -lt $(($3 * $4)) ]; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# vm_workload_expected_pages NAME...: how many pages an ideal deduplicator
# saves in these workloads together.
vm_workload_expected_pages() {
	local name sum=0 n
	for name in "$@"; do
		n=$(sed -n 's/^expected .* saved_pages \([0-9]*\) .*/\1/p' "/tmp/$name.out")
		sum=$((sum + n))
	done
	echo "$sum"
}

# vm_register_processes NAME...: ksmd's options that register every process
# of the workloads, each with a blank before it.
vm_register_processes() {
	local pid
	for pid in $(vm_workload_pids "$@"); do
		printf ' --register-process=%s' "$pid"
	done
}

# vm_workload_verify NAME [PREFIX]: has every process of the workload re-read
# each of its pages and compare it with what it wrote, waits for the workload
# to exit and shows what it said, each line behind PREFIX ("# NAME: ").
# Returns its exit status: 0 when every page was intact.
vm_workload_verify() {
	local name=$1 prefix=${2-"# $1: "} pid rc
	eval "pid=\$${name}_pid"
	kill -USR1 "$pid"
	wait "$pid"
	rc=$?
	{
		cat "/tmp/$name.err"
		grep '^verified' "/tmp/$name.out"
	} | sed -e "s/^/$prefix/"
	return "$rc"
}

vm_zram_swap() {
	size=${1:-512M}
	for alg in lz4 lzo-rle lzo deflate; do
		echo "$alg" > /sys/block/zram0/comp_algorithm 2>/dev/null && break
	done
	echo "# zram swap of $size compresses with $alg"
	echo "$size" > /sys/block/zram0/disksize && mkswap /dev/zram0 > /dev/null && swapon /dev/zram0
}

# vm_memcg_drain CGROUP_DIR: returns the pages every CPU holds charged ahead
# for the memory cgroup, so that memory.current counts only what it uses and
# a memory.max set to it leaves no room. A charge of another cgroup on each
# CPU gave them back up to 6.15; since 6.16 a CPU keeps such pages for
# several cgroups at once, and that no longer works. A memory.high below
# memory.current makes the kernel drain them on every CPU before it would
# reclaim (a memory.high write never OOM-kills); one page below, as little as
# possible is reclaimed if nothing was held ahead, and memory.high is lifted
# at once. Other CPUs drain from a work item: memory.current is read until it
# holds still.
vm_memcg_drain() {
	cur=$(cat "$1/memory.current")
	echo $((cur - 4096)) > "$1/memory.high"
	echo max > "$1/memory.high"
	prev=
	i=0
	while [ "$cur" != "$prev" ] && [ "$i" -lt 20 ]; do
		prev=$cur
		sleep 0.2
		cur=$(cat "$1/memory.current")
		i=$((i + 1))
	done
}

vm_finish() {
	echo "1..$VM_N"
	exit "$VM_FAILED"
}
