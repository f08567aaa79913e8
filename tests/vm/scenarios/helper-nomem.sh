#!/bin/sh
# vm-timeout: 300
# No merge is worth a process. With no swap, the module alone against a
# source whose memory cgroup is at memory.max (helper-edge-test memcg), then
# ksmd merging a workload whose cgroup is full, then ksmd merging while the
# whole guest is held near OOM: merges that need memory fail NO_MEMORY and
# are retried, no process is OOM-killed, every process reads exactly what it
# wrote, and once memory is back ksmd merges all there is to merge.
. /lib/ksmd-vm.sh

# Guest seconds since boot, for the time each part takes.
now() {
	cut -d. -f1 /proc/uptime
}
oom_kills() {
	awk '$1 == "oom_kill" { print $2 }' /proc/vmstat
}
no_memory() {
	vm_field no_memory "$(ksmd-probe info)"
}
# distinct NAME: physical pages backing the workload's memory now.
distinct() {
	vm_field distinct "$(ksmd-probe pages $(vm_workload_ranges "$1"))"
}

oom0=$(oom_kills)
vm_diag "swap: $(awk 'NR > 1' /proc/swaps | wc -l) devices (none wanted); oom_kill so far: $oom0"
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
t0=$(now)
vm_run_tap helper-edge-test memcg 1024
vm_diag "the module against a full cgroup took $(($(now) - t0)) s"
t0=$(now)

# ksmd against a full memory cgroup: duplicates only (no zero pages, whose
# merges need no memory), and a few pages rewritten all along.
cg=/sys/fs/cgroup/kh-full
echo +memory > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p "$cg"
# The shell joins the cgroup and becomes the workload (same pid, for vm_workload_verify).
vm_check "a workload starts in its own memory cgroup" \
	vm_workload_run full sh -c 'echo $$ > /sys/fs/cgroup/kh-full/cgroup.procs && exec ksmd-workload "$@"' \
	sh --procs 2 --mib 16 --dup 0.6 --zero 0 --volatile 0.05 --seed 41
exp=$(vm_workload_expected_pages full)
before=$(distinct full)
vm_memcg_drain "$cg"
cat "$cg/memory.current" > "$cg/memory.max"
vm_diag "the workload's cgroup is full: memory.max $(cat "$cg/memory.max") bytes; theoretical saving $exp pages"
nm0=$(no_memory)
regs=$(vm_register_processes full)
ksmd --scans=100000 --sleep=20ms $regs > /tmp/ksmd.out 2> /tmp/ksmd.err &
ksmd_pid=$!
# Bounded in guest time (each NO_MEMORY answer comes within a scan), so that
# a cgroup that is not full fails the check below rather than the watchdog.
deadline=$(($(now) + 60))
while [ "$(now)" -lt "$deadline" ] && [ $(($(no_memory) - nm0)) -lt 200 ]; do
	sleep 0.2
done
# A few more seconds of full passes, each retried with backoff.
sleep 4
nm=$(($(no_memory) - nm0))
events=$(tr '\n' ' ' < "$cg/memory.events")
full_saved=$((before - $(distinct full)))
vm_diag "while the cgroup was full: $nm NO_MEMORY answers, $full_saved pages freed; memory.events: $events"
vm_check "with its cgroup full, ksmd's merges are answered NO_MEMORY" test "$nm" -ge 200
vm_check "the cgroup's OOM killer was not invoked" \
	test "$(awk '$1 == "oom" || $1 == "oom_kill" { s += $2 } END { print s + 0 }' "$cg/memory.events")" = 0
vm_check "no process was OOM-killed" test "$(oom_kills)" = "$oom0"
alive=1
for p in $(vm_workload_pids full) "$full_pid" "$ksmd_pid"; do
	kill -0 "$p" 2> /dev/null || alive=0
done
vm_check "every workload process and ksmd are alive" test "$alive" = 1

echo max > "$cg/memory.max"
i=0
saved=0
while [ "$i" -lt 240 ]; do
	saved=$((before - $(distinct full)))
	[ $((saved * 100)) -ge $((exp * 99)) ] && break
	sleep 0.5
	i=$((i + 1))
done
vm_diag "with memory back: $saved of $exp pages freed after $((i / 2)) s"
vm_check "with memory back, the same ksmd merges at least 99 % of the theoretical saving" \
	test $((saved * 100)) -ge $((exp * 99))
kill -TERM "$ksmd_pid"
wait "$ksmd_pid"
status=$?
sed -e 's/^/# ksmd: /' /tmp/ksmd.err
vm_check "ksmd exits 0 on SIGTERM" test "$status" -eq 0
vm_check "every process of the full cgroup reads exactly its own content" vm_workload_verify full
vm_check "still no OOM kill" test "$(oom_kills)" = "$oom0"
vm_diag "ksmd against a full cgroup took $(($(now) - t0)) s"
t0=$(now)

# The whole guest near OOM: a hog holds MemAvailable at about 48 MiB
# (allocating as merges free memory) while ksmd merges; then it leaves.
vm_check "a second workload starts" \
	vm_workload_start near --procs 2 --mib 32 --dup 0.5 --zero 0.2 --volatile 0.05 --seed 42
exp=$(vm_workload_expected_pages near)
before=$(distinct near)
mkfifo /tmp/hog.in
helper-edge-test hog 48 < /tmp/hog.in > /tmp/hog.out 2>&1 &
hog_pid=$!
exec 3> /tmp/hog.in
i=0
while ! grep -q '^ready' /tmp/hog.out && [ "$i" -lt 600 ]; do
	sleep 0.2
	i=$((i + 1))
done
vm_diag "hog: $(cat /tmp/hog.out); MemAvailable $(awk '/^MemAvailable/ { print $2 }' /proc/meminfo) kB"
vm_check "the guest is held near OOM" grep -q '^ready' /tmp/hog.out
vm_diag "filling the guest took $(($(now) - t0)) s"
t0=$(now)
nm0=$(no_memory)
regs=$(vm_register_processes near)
ksmd --scans=4 --sleep=20ms $regs > /tmp/ksmd2.out 2> /tmp/ksmd2.err
status=$?
sed -e 's/^/# ksmd: /' /tmp/ksmd2.err
near_saved=$((before - $(distinct near)))
vm_diag "near OOM: $near_saved of $exp pages freed, $(($(no_memory) - nm0)) NO_MEMORY answers;" \
	"MemAvailable $(awk '/^MemAvailable/ { print $2 }' /proc/meminfo) kB"
vm_check "ksmd runs 4 full scans near OOM and exits 0" test "$status" -eq 0
vm_check "no process was OOM-killed near OOM" test "$(oom_kills)" = "$oom0"
vm_check "the hog is alive" kill -0 "$hog_pid"
exec 3>&-
wait "$hog_pid"
vm_diag "hog: $(tail -n 1 /tmp/hog.out)"
ksmd --scans=3 --sleep=20ms $regs > /tmp/ksmd3.out 2> /tmp/ksmd3.err
status=$?
saved=$((before - $(distinct near)))
vm_diag "with memory back: $saved of $exp pages freed"
vm_check "with memory back, ksmd merges at least 99 % of the theoretical saving" \
	test "$status" -eq 0 -a $((saved * 100)) -ge $((exp * 99))
vm_check "every process of the near-OOM workload reads exactly its own content" vm_workload_verify near
vm_diag "ksmd near OOM and after took $(($(now) - t0)) s"

vm_check "no process was OOM-killed in the whole run" test "$(oom_kills)" = "$oom0"
vm_check "the kernel log has no OOM kill" sh -c "! dmesg | grep -q -e 'Out of memory' -e 'oom-kill'"
info=$(ksmd-probe info)
vm_diag "module: $info"
vm_check "the module owns no page once the workloads exited" test "$(vm_field pages_owned "$info")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
