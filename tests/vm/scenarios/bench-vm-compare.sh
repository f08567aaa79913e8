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
# Scanning on (BENCH_SCAN_ON_S > 0, once a system reached 95 %, after its
# steady window): the workload's processes are stopped (SIGSTOP: their
# touching and churn threads write registered memory), ksmd is told to scan
# without rests (IdleSleep=off in its config directory, and SIGHUP: a reload
# ends a rest), and after two more full scans, for BENCH_SCAN_ON_S seconds,
# the sampler counts the pages examined against the deduplicator's CPU
# ("# bench scanon"): KSM's pages_scanned, or where the kernel has none
# (before 6.7) its full_scans times the workload's pages, the window then
# running from one full scan's end to another's (with pages_scanned, that
# count too, "# bench scanon-alt": pages_scanned leaves out the pages smart
# scanning skips, full_scans counts every page of a pass); ksmd's
# full_scans x pages_scanned + current_scan_pages (ksmctl stats, over the
# socket /tmp/ksmd.sock). "# bench scanlast" gives ksmd's last full scan in
# that window: pages examined, read, proven unchanged by soft-dirty, skipped
# as still merged.
#
# Attribution (BENCH_ATTRIB=1, bench/vm-compare --attribute): where the CPU
# goes. The sampler gives user and system time apart anyway; with this, for
# each ksmd system, examine-cost times ksmd's primitives alone ("# bench
# prim": pagemap, maps, clear_refs, process_vm_readv, page_hash, ...) on the
# fresh workload before the deduplicator starts and on the merged one at the
# end of the scanning-on window (ksmd stopped meanwhile); and, where perf is
# in the guest (vm-test --prog perf), a cpu-clock profile of the whole guest
# runs from the deduplicator's start to 95 % and over the scanning-on window,
# reported after the system as "# bench perf SYSTEM WINDOW" lines (samples
# per command, shared object and symbol). "# bench at-goal" gives the
# deduplicator's counters at 95 %.
#
# Parameters (vm-test --param, defaults in brackets): BENCH_PROCS [4],
# BENCH_MIB per process [64], BENCH_DUP [0.5], BENCH_ZERO [0.125],
# BENCH_TOUCH_PROCS [1], BENCH_MAX_S per system [150], BENCH_STEADY_S [15],
# BENCH_BASELINE_S [8], BENCH_TARGET_SCAN_S [one pass at KSM's default rate],
# BENCH_SYSTEMS [ksm-default,ksm-fast,ksmd-default,ksmd-fast,ksmd-ksmrate,ksmd-adaptive,
# ksmd-fast-stable], BENCH_CHURN_PER_S [0], BENCH_CHURN_HOT [1], BENCH_SCAN_ON_S [10],
# BENCH_ATTRIB [0].
#
# Churn (BENCH_CHURN_PER_S > 0): every workload process also writes that many
# words a second to random duplicate and zero pages, each with the value it
# holds (ksmd-workload --churn-per-s): a merge of such a page is undone by the
# next write, a COW fault for the writer. Every system then runs the same
# window, exactly BENCH_MAX_S seconds from its start (vm-compare-sampler
# --window-s; the part after 95 % is still reported as steady), and the
# sampler reads, just before the start and just after the last sample
# ("# bench mark SYSTEM start|end ..." lines), the churn writers' counters
# (their writes and nanoseconds, their minor faults, and the COW breaks among
# them: writes that moved a page to a new frame, whoever merged it) and the
# module's merge counters (merged counts every item merged, zero pages
# included; merged_zero those of them that went to the zero page). A
# "# bench churn" line gives the writers' writes and nanoseconds alone (5 s
# before the sampler). BENCH_CHURN_HOT below 1 sends the writes to that
# fraction of those pages only (ksmd-workload --churn-hot): a hot set,
# written again soon after each merge.
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
scan_on_s=${BENCH_SCAN_ON_S:-10}
attrib=${BENCH_ATTRIB:-0}
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
# churn_sum: "writes=N write_ns=N faults=N breaks=N breaks_untold=N", the churn writers' counters summed.
churn_sum() {
	ksmd-workload --churn-sum /tmp/churn
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

# scan_on_args: the sampler's options for the scanning-on window, if any, for
# the system in $sys of kind $kind; each command a script of one word, as the
# sampler runs it through sh -c.
scan_on_args() {
	local pids pages
	[ "$scan_on_s" -gt 0 ] || return 0
	pids=$(vm_workload_ranges wl | awk '{ printf " %s", $1 }')
	pages=$(vm_workload_ranges wl | awk '{ n += $3 } END { print n }')
	printf '#!/bin/sh\nexec /tmp/scan_on_start %s%s\n' "$kind" "$pids" > "/tmp/scan_on_start_$sys"
	printf '#!/bin/sh\nexec /tmp/scan_on_end %s %s%s\n' "$kind" "$sys" "$pids" > "/tmp/scan_on_end_$sys"
	printf '#!/bin/sh\nexec /tmp/scanned %s %s\n' "$kind" "$pages" > "/tmp/scanned_$sys"
	vm_workload_ranges wl | tr '\n' ' ' > "/tmp/ranges_$sys"
	chmod +x "/tmp/scan_on_start_$sys" "/tmp/scan_on_end_$sys" "/tmp/scanned_$sys"
	echo "--scan-on-s $scan_on_s --scanned-counter $scanned_counter" \
		"--scan-on-start /tmp/scan_on_start_$sys --scan-on-end /tmp/scan_on_end_$sys" \
		"--scanned-cmd /tmp/scanned_$sys"
}
echo never > /sys/kernel/mm/transparent_hugepage/enabled
# wait_gone PID TENTHS: waits until PID is gone or a zombie (reparented to /init, which may leave
# it one), at most TENTHS tenths of a second.
cat > /tmp/wait_gone <<'EOF'
#!/bin/sh
i=0
while [ "$i" -lt "$2" ] && [ -e "/proc/$1" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; do
	i=$((i + 1))
	sleep 0.1
done
EOF
chmod +x /tmp/wait_gone
# The sampler stops ksmd with this script once it has measured.
cat > /tmp/stop_ksmd <<'EOF'
#!/bin/sh
pid=$(cat /tmp/ksmd.pid)
kill -TERM "$pid"
/tmp/wait_gone "$pid" 100
EOF
chmod +x /tmp/stop_ksmd
# The scanning-on window's scripts (see the top); KIND is ksm or ksmd.
# ksmd_stat [-k] KEY...: those of ksmd's statistics, their values on one line
# in that order ("-" for a key it does not give); with -k as " KEY=VALUE" pairs.
cat > /tmp/ksmd_stat <<'EOF'
#!/bin/sh
pairs=0
[ "$1" = -k ] && { pairs=1; shift; }
st=$(ksmctl --socket /tmp/ksmd.sock --json stats) || exit 1
line=
for k in "$@"; do
	v=$(echo "$st" | sed -n "s/.*\"$k\":\([0-9]*\).*/\1/p")
	if [ "$pairs" = 1 ]; then
		line="$line $k=${v:--}"
	else
		line="$line ${v:--}"
	fi
done
if [ "$pairs" = 1 ]; then echo "$line"; else echo $line; fi
EOF
# full_scans KIND: full scans so far.
cat > /tmp/full_scans <<'EOF'
#!/bin/sh
if [ "$1" = ksm ]; then
	cat /sys/kernel/mm/ksm/full_scans
else
	/tmp/ksmd_stat full_scans
fi
EOF
# scanned KIND PAGES: pages examined so far; for KSM with pages_scanned, then full_scans x PAGES.
cat > /tmp/scanned <<'EOF'
#!/bin/sh
if [ "$1" = ksm ]; then
	if [ -r /sys/kernel/mm/ksm/pages_scanned ]; then
		read -r n < /sys/kernel/mm/ksm/pages_scanned && read -r f < /sys/kernel/mm/ksm/full_scans &&
			echo "$n $((f * $2))"
	else
		echo $(($(cat /sys/kernel/mm/ksm/full_scans) * $2))
	fi
else
	set -- $(/tmp/ksmd_stat full_scans pages_scanned current_scan_pages)
	[ $# -eq 3 ] || exit 1
	echo $(($1 * $2 + $3))
fi
EOF
# scan_on_start KIND PID...: stops the workload's processes, lets ksmd scan
# without rests, and waits (at most 120 s) for two full scans since.
cat > /tmp/scan_on_start <<'EOF'
#!/bin/sh
kind=$1
shift
kill -STOP "$@" || exit 1
if [ "$kind" = ksmd ]; then
	printf '[Scan]\nIdleSleep=off\n' > /tmp/ksmd.conf.d/ksmd.conf
	kill -HUP "$(cat /tmp/ksmd.pid)" || exit 1
fi
n0=$(/tmp/full_scans "$kind") || exit 1
i=0
while [ "$(/tmp/full_scans "$kind")" -lt $((n0 + 2)) ]; do
	i=$((i + 1))
	[ "$i" -le 1200 ] || exit 1
	sleep 0.1
done
[ -e /tmp/attrib ] && /tmp/perf_on scanon
exit 0
EOF
# scan_on_end KIND SYSTEM PID...: ksmd's last full scan; with /tmp/attrib
# (BENCH_ATTRIB) the window's profile ends, and the primitives are timed on the
# merged workload, ksmd stopped meanwhile; the workload goes on.
cat > /tmp/scan_on_end <<'EOF'
#!/bin/sh
kind=$1 sys=$2
shift 2
[ -e /tmp/attrib ] && /tmp/perf_off
if [ "$kind" = ksmd ]; then
	echo "# bench scanlast $sys$(/tmp/ksmd_stat -k full_scans pages_scanned pages_read pages_unchanged \
		pages_skipped_merged pages_zero_mapped pages_not_present last_full_scan_usec)"
	if [ -e /tmp/attrib ]; then
		pid=$(cat /tmp/ksmd.pid)
		kill -STOP "$pid"
		examine-cost --label "$sys" --when merged $(cat "/tmp/ranges_$sys")
		kill -CONT "$pid"
	fi
fi
kill -CONT "$@"
EOF
# perf_on WINDOW: a cpu-clock profile of the whole guest (both vCPUs) into
# /tmp/perf-WINDOW.data until perf_off; nothing without perf in the guest.
cat > /tmp/perf_on <<'EOF'
#!/bin/sh
command -v perf > /dev/null || exit 0
perf record -a -g -F 999 -e cpu-clock -B -N -o "/tmp/perf-$1.data" > "/tmp/perf-$1.log" 2>&1 &
echo $! > /tmp/perf.pid
# perf lists every process's mappings as it starts: before, not in, what it profiles.
sleep 2
EOF
cat > /tmp/perf_off <<'EOF'
#!/bin/sh
[ -e /tmp/perf.pid ] || exit 0
pid=$(cat /tmp/perf.pid)
rm -f /tmp/perf.pid
kill -INT "$pid"
/tmp/wait_gone "$pid" 300
EOF
# at_goal KIND: at 95 %, the profile ends, and the deduplicator's counters.
cat > /tmp/at_goal <<'EOF'
#!/bin/sh
/tmp/perf_off
if [ "$1" = ksm ]; then
	k=/sys/kernel/mm/ksm
	echo "full_scans=$(cat $k/full_scans) pages_scanned=$(cat $k/pages_scanned 2>/dev/null || echo -)" \
		"pages_shared=$(cat $k/pages_shared) pages_sharing=$(cat $k/pages_sharing)"
else
	/tmp/ksmd_stat -k full_scans current_scan_pages pages_scanned pages_read merge_requests merge_items \
		merge_retries
fi
EOF
chmod +x /tmp/full_scans /tmp/scanned /tmp/scan_on_start /tmp/scan_on_end /tmp/ksmd_stat /tmp/perf_on \
	/tmp/perf_off /tmp/at_goal
rm -f /tmp/attrib
[ "$attrib" = 1 ] && touch /tmp/attrib
# perf_report WINDOW SYSTEM: the profile's samples by command, and by command,
# shared object and symbol (those of at least 0.05 % of all, idle included);
# and the kernel's functions with what they called (callers' share, from the
# kernel's stacks; user stacks are not walked: no frame pointers).
perf_report() {
	local f="/tmp/perf-$1.data"
	[ -s "$f" ] || return 0
	perf report -i "$f" --stdio -n -g none --sort comm -q 2> /dev/null | grep -v '^$' | head -n 20 |
		sed "s/^/# bench perfcomm $2 $1 /"
	perf report -i "$f" --stdio -n -g none --no-children --sort comm,dso,sym --percent-limit 0.05 -q \
		2> /dev/null | grep -v '^$' | head -n 400 | sed "s/^/# bench perf $2 $1 /"
	perf report -i "$f" --stdio -n -g none --children --sort comm,sym --percent-limit 0.2 -q 2> /dev/null |
		grep '\[k\]' | head -n 200 | sed "s/^/# bench perfch $2 $1 /"
	sed "s/^/# perf $2 $1: /" "/tmp/perf-$1.log" | tail -n 5
	rm -f "$f"
}
# And starts it with this one: ksmd logs each full scan at debug level (its CPU
# and the rest it takes after it); a reader stamps each line with the guest's
# uptime, so that the scans can be placed in the sampler's windows. Every 5 s
# a loop of shell builtins notes each ksmd thread's CPU (ns) and how many
# times it ran (/proc/PID/task/TID/schedstat), to tell wake-ups apart.
cat > /tmp/start_ksmd <<'EOF'
#!/bin/sh
rm -rf /tmp/ksmd.fifo /tmp/ksmd.pid /tmp/ksmd.conf.d
mkdir /tmp/ksmd.conf.d
mkfifo /tmp/ksmd.fifo
while IFS= read -r line; do
	echo "$(cut -d' ' -f1 /proc/uptime) $line"
done < /tmp/ksmd.fifo > /tmp/ksmd.err &
cut -d' ' -f1 /proc/uptime > /tmp/ksmd.t0
KSMD_LOG_LEVEL=debug ksmd --socket /tmp/ksmd.sock --config-dir /tmp/ksmd.conf.d "$@" > /tmp/ksmd.out 2> /tmp/ksmd.fifo &
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
# With churn the sampler reads the writers' counters and the module's merges
# with this, at the start of its window and at its end. The module counts a
# zero-page merge both in merged and in merged_zero.
cat > /tmp/churn_mark <<'EOF'
#!/bin/sh
info=$(ksmd-probe info) || exit 1
field() { echo "$info" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
echo "$(ksmd-workload --churn-sum /tmp/churn) merged=$(field merged) merged_zero=$(field merged_zero)"
EOF
chmod +x /tmp/churn_mark
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
		scanned_counter=pages_scanned
		[ -r $KSM/pages_scanned ] || scanned_counter=full_scans
	else
		vm_check "$sys: workload starts" start_workload || continue
		regs=$(vm_register_processes wl)
		[ "$attrib" = 1 ] && examine-cost --label "$sys" --when fresh $(vm_workload_ranges wl)
		start="/tmp/start_ksmd $rate$regs"
		cpu="--cpu-pid-file /tmp/ksmd.pid"
		scanned_counter=ksmd_stats
		stop=/tmp/stop_ksmd
	fi
	echo "# bench system $sys kind=$kind pages_per_batch=$pages sleep_ms=$sleep_ms"
	window=
	goal_cmd=
	if [ "$attrib" = 1 ]; then
		start="/tmp/perf_on goal && $start"
		printf '#!/bin/sh\nexec /tmp/at_goal %s\n' "$kind" > "/tmp/at_goal_$sys"
		chmod +x "/tmp/at_goal_$sys"
		goal_cmd="--goal-cmd /tmp/at_goal_$sys"
	fi
	if [ "$churn" -gt 0 ]; then
		c0=$(churn_sum)
		sleep 5
		c1=$(churn_sum)
		w0=$(vm_field writes "$c0") w1=$(vm_field writes "$c1")
		n0=$(vm_field write_ns "$c0") n1=$(vm_field write_ns "$c1")
		echo "# bench churn $sys per_s=$churn alone_writes=$((w1 - w0)) alone_ns=$((n1 - n0))" \
			"window_s=$max_s"
		window="--window-s $max_s --mark-cmd /tmp/churn_mark"
	fi
	vm_check "$sys: sampled" vm-compare-sampler --label "$sys" --expected "$(vm_workload_expected_pages wl)" --start "$start" \
		--stop "$stop" $cpu $(scan_on_args) \
		--touch-counter /tmp/touch --baseline-s "$baseline_s" --interval-ms 500 --max-s "$max_s" \
		--steady-s "$steady_s" $window $goal_cmd $(vm_workload_ranges wl)
	if [ "$attrib" = 1 ]; then
		/tmp/perf_off
		perf_report goal "$sys"
		perf_report scanon "$sys"
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
