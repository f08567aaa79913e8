#!/bin/sh
# vm-timeout: 1500
# Not a test: the VM comparison benchmark (bench/vm-compare). On the same
# workload, started fresh for each, it runs the guest kernel's KSM at its
# defaults and at full speed, then ksmd with the helper module at its default
# rate, at full speed, at KSM's default rate and at its adaptive rate (each with
# its default MergePolicy=first-pass), and at full speed with
# MergePolicy=stable (KSM's wait for a stable checksum), one after the other,
# and prints what
# vm-compare-sampler measured ("# bench ..." lines): the physical saving over
# time, time and CPU to 95 % of the theoretical saving, steady-state CPU, and
# a memory-touching loop's throughput before and during deduplication, and
# ("# bench pass ...") each of ksmd's full scans with its CPU and the rest it
# began. The TAP results only say that each step ran and that every workload
# process read back exactly its own content; no timing is judged.
#
# Parameters (vm-test --param, defaults in brackets): BENCH_PROCS [4],
# BENCH_MIB per process [64], BENCH_DUP [0.5], BENCH_ZERO [0.125],
# BENCH_TOUCH_PROCS [1], BENCH_MAX_S per system [150], BENCH_STEADY_S [15],
# BENCH_BASELINE_S [8], BENCH_TARGET_SCAN_S [one pass at KSM's default rate],
# BENCH_SYSTEMS [ksm-default,ksm-fast,ksmd-default,ksmd-fast,ksmd-ksmrate,ksmd-adaptive,
# ksmd-fast-stable], BENCH_CHURN_PER_S [0], BENCH_CHURN_HOT [1].
#
# Churn (BENCH_CHURN_PER_S > 0): every workload process also writes that many
# words a second to random duplicate and zero pages, each with the value it
# holds (ksmd-workload --churn-per-s): a merge of such a page is undone by the
# next write, a COW fault for the writer. For each system a "# bench churn"
# line gives the writers' writes and nanoseconds alone (5 s before the
# sampler) and while it runs, their minor faults, and the merges the helper
# made meanwhile (ksmd; -1 for KSM, which does not count them).
# BENCH_CHURN_HOT below 1 sends the writes to that fraction of those pages only
# (ksmd-workload --churn-hot): a hot set, written again soon after each merge.
. /lib/ksmd-vm.sh

procs=${BENCH_PROCS:-4}
mib=${BENCH_MIB:-64}
dup=${BENCH_DUP:-0.5}
zero=${BENCH_ZERO:-0.125}
touch_procs=${BENCH_TOUCH_PROCS:-1}
max_s=${BENCH_MAX_S:-150}
steady_s=${BENCH_STEADY_S:-15}
baseline_s=${BENCH_BASELINE_S:-8}
systems=${BENCH_SYSTEMS:-ksm-default,ksm-fast,ksmd-default,ksmd-fast,ksmd-ksmrate,ksmd-adaptive,ksmd-fast-stable}
churn=${BENCH_CHURN_PER_S:-0}
churn_hot=${BENCH_CHURN_HOT:-1}
KSM=/sys/kernel/mm/ksm

# Workloads of 4 x 64 MiB take their time to fill.
VM_WORKLOAD_READY_S=300

start_workload() {
	rm -f /tmp/touch /tmp/churn
	[ "$churn" -gt 0 ] && set -- "$@" --churn-per-s "$churn" --churn-hot "$churn_hot" \
		--churn-counter /tmp/churn
	vm_workload_start wl --procs "$procs" --mib "$mib" --dup "$dup" --zero "$zero" --seed 5 \
		--touch-procs "$touch_procs" --touch-counter /tmp/touch "$@"
}
# churn_sum: "writes=N write_ns=N faults=N", the churn writers' counters summed.
churn_sum() {
	ksmd-workload --churn-sum /tmp/churn
}
# helper_merges: pages the module merged since it loaded, zero pages included.
helper_merges() {
	local info
	info=$(ksmd-probe info)
	echo $(($(vm_field merged "$info") + $(vm_field merged_zero "$info")))
}
# The KSM kernel thread (also named ksmd: a child of kthreadd, pid 2).
ksm_kthread() {
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = ksmd ] || continue
		[ "$(awk '{ print $4 }' "$d/stat" 2>/dev/null)" = 2 ] && { echo "${d#/proc/}"; return; }
	done
}
# stop_workload NAME: verifies every process's content, then lets it exit.
stop_workload() {
	vm_workload_verify wl
	s=$?
	echo "# bench intact $1 $([ "$s" -eq 0 ] && echo yes || echo no)"
	vm_check "$1: every workload process reads exactly its own content" test "$s" -eq 0
}

echo never > /sys/kernel/mm/transparent_hugepage/enabled
# The sampler stops ksmd with this script once it has measured.
cat > /tmp/stop_ksmd <<'EOF'
#!/bin/sh
pid=$(cat /tmp/ksmd.pid)
kill -TERM "$pid"
# It was reparented to /init, which may leave it a zombie: wait for that at most.
i=0
while [ "$i" -lt 100 ] && [ -e "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
	i=$((i + 1))
	sleep 0.1
done
EOF
chmod +x /tmp/stop_ksmd
# And starts it with this one: ksmd logs each full scan at debug level (its CPU
# and the rest it takes after it); a reader stamps each line with the guest's
# uptime, so that the scans can be placed in the sampler's windows. Every 5 s
# a loop of shell builtins notes each ksmd thread's CPU (ns) and how many
# times it ran (/proc/PID/task/TID/schedstat), to tell wake-ups apart.
cat > /tmp/start_ksmd <<'EOF'
#!/bin/sh
rm -f /tmp/ksmd.fifo /tmp/ksmd.pid
mkfifo /tmp/ksmd.fifo
while IFS= read -r line; do
	echo "$(cut -d' ' -f1 /proc/uptime) $line"
done < /tmp/ksmd.fifo > /tmp/ksmd.err &
cut -d' ' -f1 /proc/uptime > /tmp/ksmd.t0
KSMD_LOG_LEVEL=debug ksmd --no-socket "$@" > /tmp/ksmd.out 2> /tmp/ksmd.fifo &
pid=$!
echo "$pid" > /tmp/ksmd.pid
while read -r st < "/proc/$pid/stat" && set -- $st && [ "$3" != Z ]; do
	read -r up idle < /proc/uptime
	line="$up"
	for t in /proc/$pid/task/*; do
		[ -r "$t/schedstat" ] && read -r run wait slices < "$t/schedstat" && line="$line ${t##*/}:$run:$slices"
	done
	echo "$line"
	sleep 5
done > /tmp/ksmd.sched 2> /dev/null &
EOF
chmod +x /tmp/start_ksmd
vm_diag "bench config procs=$procs mib=$mib dup=$dup zero=$zero touch_procs=$touch_procs max_s=$max_s steady_s=$steady_s baseline_s=$baseline_s churn_per_s=$churn churn_hot=$churn_hot cpus=$(nproc) mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) kernel=$(uname -r)"
vm_check "the kernel has KSM" test -w "$KSM/run"
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
kthread=$(ksm_kthread)
vm_diag "KSM defaults: pages_to_scan=$(cat $KSM/pages_to_scan) sleep_millisecs=$(cat $KSM/sleep_millisecs) use_zero_pages=$(cat $KSM/use_zero_pages 2>/dev/null); kthread pid $kthread"
ksm_pages=$(cat $KSM/pages_to_scan)
ksm_sleep=$(cat $KSM/sleep_millisecs)
# One full scan of the workload at KSM's default rate, in whole seconds.
target_scan_s=${BENCH_TARGET_SCAN_S:-$(( (procs * mib * 256 * ksm_sleep / ksm_pages + 999) / 1000 ))}
vm_diag "ksmd-adaptive: --target-scan-time=${target_scan_s}s"

for sys in $(echo "$systems" | tr ',' ' '); do
	case "$sys" in
	ksm-default) pages=$ksm_pages; sleep_ms=$ksm_sleep; kind=ksm ;;
	ksm-fast) pages=5000; sleep_ms=0; kind=ksm ;;
	ksmd-default) pages=4096; sleep_ms=20; kind=ksmd; rate="--pages-to-scan=$pages --sleep=${sleep_ms}ms" ;;
	ksmd-fast) pages=5000; sleep_ms=0; kind=ksmd; rate="--pages-to-scan=$pages --sleep=${sleep_ms}ms" ;;
	# Full speed, waiting for a stable hash as KSM does: what first-pass merging gains.
	ksmd-fast-stable) pages=5000; sleep_ms=0; kind=ksmd
		rate="--pages-to-scan=$pages --sleep=${sleep_ms}ms --merge-policy=stable" ;;
	# ksmd at KSM's default rate, and at its adaptive rate aiming at the full-scan
	# time KSM's default rate would take (BENCH_TARGET_SCAN_S), under its default 20 % CPU cap.
	ksmd-ksmrate) pages=$ksm_pages; sleep_ms=$ksm_sleep; kind=ksmd; rate="--pages-to-scan=$pages --sleep=${sleep_ms}ms" ;;
	ksmd-adaptive) pages=adaptive; sleep_ms=adaptive; kind=ksmd; rate="--target-scan-time=${target_scan_s}s" ;;
	*) vm_not_ok "unknown system $sys"; continue ;;
	esac
	sync
	echo 3 > /proc/sys/vm/drop_caches
	if [ "$kind" = ksm ]; then
		vm_check "$sys: workload starts (MADV_MERGEABLE)" start_workload --mergeable || continue
		echo "$pages" > $KSM/pages_to_scan
		echo "$sleep_ms" > $KSM/sleep_millisecs
		start="echo 1 > $KSM/run"
		stop="echo 0 > $KSM/run"
		cpu="--cpu-pid $kthread"
	else
		vm_check "$sys: workload starts" start_workload || continue
		regs=$(vm_register_processes wl)
		start="/tmp/start_ksmd $rate$regs"
		cpu="--cpu-pid-file /tmp/ksmd.pid"
		stop=/tmp/stop_ksmd
	fi
	echo "# bench system $sys kind=$kind pages_per_batch=$pages sleep_ms=$sleep_ms"
	if [ "$churn" -gt 0 ]; then
		c0=$(churn_sum)
		sleep 5
		c1=$(churn_sum)
		m1=$(helper_merges)
	fi
	vm_check "$sys: sampled" vm-compare-sampler --label "$sys" --expected "$(vm_workload_expected_pages wl)" --start "$start" \
		--stop "$stop" $cpu \
		--touch-counter /tmp/touch --baseline-s "$baseline_s" --interval-ms 500 --max-s "$max_s" \
		--steady-s "$steady_s" $(vm_workload_ranges wl)
	if [ "$churn" -gt 0 ]; then
		c2=$(churn_sum)
		merges=-1
		[ "$kind" = ksmd ] && merges=$(($(helper_merges) - m1))
		w0=$(vm_field writes "$c0") w1=$(vm_field writes "$c1") w2=$(vm_field writes "$c2")
		n0=$(vm_field write_ns "$c0") n1=$(vm_field write_ns "$c1") n2=$(vm_field write_ns "$c2")
		f1=$(vm_field faults "$c1") f2=$(vm_field faults "$c2")
		echo "# bench churn $sys per_s=$churn alone_writes=$((w1 - w0)) alone_ns=$((n1 - n0))" \
			"writes=$((w2 - w1)) write_ns=$((n2 - n1)) faults=$((f2 - f1)) merges=$merges"
	fi
	if [ "$kind" = ksm ]; then
		vm_diag "$sys: KSM pages_shared=$(cat $KSM/pages_shared) pages_sharing=$(cat $KSM/pages_sharing) full_scans=$(cat $KSM/full_scans)"
		stop_workload "$sys"
		echo 2 > $KSM/run
		echo 0 > $KSM/run
		echo "$ksm_pages" > $KSM/pages_to_scan
		echo "$ksm_sleep" > $KSM/sleep_millisecs
	else
		# Every full scan, at seconds since ksmd started (the sampler's t, within milliseconds).
		awk -v t0="$(cat /tmp/ksmd.t0)" -v sys="$sys" '/Full scan [0-9]+ done/ {
			wall = $0; sub(/.* done in /, "", wall); sub(/ ms.*/, "", wall)
			cpu = $0; sub(/.* ms [(]/, "", cpu); sub(/ ms of CPU.*/, "", cpu)
			rest = 0
			if ($0 ~ /resting/) { rest = $0; sub(/.*resting /, "", rest); sub(/ ms.*/, "", rest) }
			printf "# bench pass %s t=%.2f wall_ms=%s cpu_ms=%s rest_ms=%s\n", sys, $1 - t0, wall, cpu, rest
		}' /tmp/ksmd.err
		# Each thread's CPU (ns) and times run, every 5 s: tid:ns:times ...
		awk -v t0="$(cat /tmp/ksmd.t0)" -v sys="$sys" '{ $1 = sprintf("%.2f", $1 - t0); print "# bench sched " sys " t=" $0 }' \
			/tmp/ksmd.sched
		grep -v 'Full scan [0-9]* done' /tmp/ksmd.err | cut -d' ' -f2- | cat - /tmp/ksmd.out |
			sed -e 's/^/# ksmd: /' | tail -n 20
		stop_workload "$sys"
		vm_diag "$sys: module after the workload exited: $(ksmd-probe info)"
	fi
done
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
