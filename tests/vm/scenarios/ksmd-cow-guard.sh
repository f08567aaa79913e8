#!/bin/sh
# vm-timeout: 240
# The COW guard (CowReserve=) against a COW storm, in a 384 MiB guest with no
# swap. A process holds memory whose pages are all alike; a tenant ("fill")
# has taken what was free but 64 MiB and takes whatever merging frees, as a
# host packs guests into memory that looks free. With CowReserve=32M ksmd
# merges only while the headroom (MemAvailable minus the unmerge debt) stays
# above 32 MiB; when the tenant takes 8 MiB more the guard trips, says so and
# merges nothing more; every merged page written at once then fits, and
# nothing is OOM-killed. When memory returns it lets go and merges again. The
# same run without the guard merges everything, the tenant takes it all, and
# the same storm OOM-kills a process.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd/ksmd.sock
FLOOR_MIB=64
# More than the tenant leaves: paying the whole debt at once cannot fit.
HOLD_MIB=104
RESERVE_MIB=32
GROW_MIB=8
# Neither the scenario nor ksmd (its child) is ever the OOM killer's choice.
echo -1000 > /proc/self/oom_score_adj

mem_available_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
oom_kills() { awk '/^oom_kill / { print $2 }' /proc/vmstat; }
ctl() { ksmctl --socket "$SOCK" "$@"; }
# json_field KEY: KEY's number in ksmctl --json status (GetStatistics for stats).
status_field() { ctl --json status | sed -n "s/.*\"$1\":\([0-9a-z]*\).*/\1/p"; }
stats_field() { ctl --json stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# phase WHAT: a diagnostic line with the guest's uptime, to see where the time goes.
phase() { vm_diag "$(cut -d' ' -f1 /proc/uptime) s: $*"; }
# wait_for SECONDS CMD...: until CMD succeeds, at most SECONDS.
wait_for() {
	local n=$(($1 * 5))
	shift
	while ! "$@" > /dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.2
	done
}
holding() { [ "$(status_field cow_guard_holding)" = true ]; }
status_says() { ctl status | grep -q "$1"; }
not_holding() { [ "$(status_field cow_guard_holding)" = false ]; }

start_ksmd() {
	rm -f "$SOCK"
	ksmd --socket "$SOCK" --sleep=5ms --idle-sleep=0 --pages-to-scan=1024 "$@" > /tmp/ksmd.log 2>&1 &
	ksmd_pid=$!
	wait_for 30 ctl status
}
stop_ksmd() {
	kill "$ksmd_pid"
	wait "$ksmd_pid"
}
# stop NAME: ends a cow-storm process by its pid, if it still runs.
stop() {
	local pid
	eval "pid=\$${1}_pid"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
# start NAME hold|fill MIB: a cow-storm process the OOM killer prefers to others.
start() {
	local pid
	vm_workload_run "$1" cow-storm "$2" "$3" || return 1
	eval "pid=\$${1}_pid"
	echo 500 > "/proc/$pid/oom_score_adj"
}
# setup: the held memory, then the tenant down to FLOOR_MIB, then the held memory registered.
setup() {
	hold_mib=$HOLD_MIB
	vm_diag "MemAvailable $(mem_available_mib) MiB: holding ${hold_mib} MiB of alike pages," \
		"the tenant leaves ${FLOOR_MIB} MiB"
	start hold hold "$hold_mib" &&
		start fill fill "$FLOOR_MIB" &&
		sed -e 's/^/# fill: /' /tmp/fill.out &&
		held_id=$(ctl register --name=held "$hold_pid")
}
# storm: every held page written at once; 0 once the holder said so.
storm() {
	kill -USR1 "$hold_pid"
	wait_for 90 grep -q '^stormed' /tmp/hold.out
}

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"

# --- With the guard.
phase "with the guard"
vm_check "ksmd starts with CowReserve=${RESERVE_MIB}M" start_ksmd --cow-reserve=${RESERVE_MIB}M
vm_check "the memory is taken and registered" setup
t0=$(date +%s)
# Merges free memory, the tenant takes it: the headroom falls to the reserve, and merging waits there.
vm_check "merging stops at the reserve: the debt reaches what the tenant left, less the reserve" \
	wait_for 120 sh -c "[ \$(ksmctl --socket $SOCK --json status |
	sed -n 's/.*\"cow_debt_bytes\":\([0-9]*\).*/\1/p') -ge $(((FLOOR_MIB - RESERVE_MIB - 12) << 20)) ]"
# The merges stopped short of the reserve, or the guard tripped already as MemAvailable moved.
vm_diag "after $(($(date +%s) - t0)) s: $(ctl status | grep 'COW guard')"
# The tenant grows: now the headroom is below the reserve.
vm_check "the tenant takes ${GROW_MIB} MiB more" start fill2 fill $((FLOOR_MIB - GROW_MIB))
vm_check "the COW guard trips" wait_for 30 holding
vm_diag "tripped after $(($(date +%s) - t0)) s: $(ctl status | grep 'COW guard')"
vm_check "ksmd logs that it holds merging" grep -q 'COW guard: headroom .* is below CowReserve=' /tmp/ksmd.log
vm_check "its status line says so" status_says 'COW guard holding'
vm_check "ksmctl status says it holds" status_says 'HOLDING, no new page is merged'
items=$(stats_field merge_items)
sleep 2
debt=$(status_field cow_debt_bytes)
vm_diag "merge_items ${items} then $(stats_field merge_items); unmerge debt $((debt >> 20)) MiB;" \
	"held back: $(stats_field reason_cow_guard) pages"
vm_check "merging stops while the guard holds" test "$(stats_field merge_items)" -eq "$items"
vm_check "pages are held back under the reason cow_guard" test "$(stats_field reason_cow_guard)" -gt 0
# The tenant keeps MemAvailable up to 4 MiB above its floor and the kernel's own use moves: 12 MiB slack.
vm_check "the debt stayed within what the tenant left, less the reserve" \
	test $((debt >> 20)) -le $((FLOOR_MIB - RESERVE_MIB + 12)) -a $((debt >> 20)) -gt 0
kills=$(oom_kills)
phase "the storm, guarded"
vm_check "the COW storm completes" storm
sed -e 's/^/# hold: /' /tmp/hold.out | tail -n 1
vm_check "every page reads back intact" grep -q '^stormed .*: intact' /tmp/hold.out
vm_check "no process was OOM-killed with the guard on" test "$(oom_kills)" -eq "$kills"
vm_check "the process that stormed still runs" kill -0 "$hold_pid"
# Its pages are all different now: nothing more to merge there, and shorter scans from here.
ctl unregister "$held_id"

phase "the tenant ends"
stop fill2
stop fill
vm_check "the guard lets go when memory returns" wait_for 30 not_holding
vm_check "ksmd logs that merging resumes" grep -q 'is back above CowReserve=.*merging resumes' /tmp/ksmd.log
items=$(stats_field merge_items)
vm_check "a new process of alike pages starts" start again hold 16
ctl register --name=again "$again_pid" > /dev/null
vm_check "merging restarts" wait_for 60 sh -c "[ \$(ksmctl --socket $SOCK --json stats |
	sed -n 's/.*\"merge_items\":\([0-9]*\).*/\1/p') -gt $((items + 1000)) ]"
stop again
stop hold
stop_ksmd
grep 'COW guard' /tmp/ksmd.log | sed -e 's/^/# ksmd: /'

# --- The same without the guard.
phase "without the guard"
vm_check "ksmd starts without CowReserve=" start_ksmd
vm_check "the memory is taken and registered (no guard)" setup
vm_check "everything merges: the debt grows past what the tenant left" \
	wait_for 120 sh -c "[ \$(ksmctl --socket $SOCK --json status |
	sed -n 's/.*\"cow_debt_bytes\":\([0-9]*\).*/\1/p') -gt $(((hold_mib - 8) << 20)) ]"
vm_diag "$(ctl status | grep 'COW guard')"
vm_check "the guard never held" test "$(status_field cow_guard_holding)" = false
kills=$(oom_kills)
phase "the storm, unguarded"
kill -USR1 "$hold_pid"
wait_for 90 sh -c "grep -q '^stormed' /tmp/hold.out || ! kill -0 $hold_pid || ! kill -0 $fill_pid"
sleep 1
vm_diag "OOM kills: $((${kills} + 0)) before the storm, $(oom_kills) after; $(dmesg | grep -c 'Out of memory') OOM messages"
vm_check "the same storm without the guard OOM-kills a process" test "$(oom_kills)" -gt "$kills"
stop fill
stop hold
stop_ksmd
phase "done"
vm_check "ksmd_helper unloads" vm_rmmod_running ksmd_helper
vm_finish
