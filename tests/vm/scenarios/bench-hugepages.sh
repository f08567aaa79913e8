#!/bin/sh
# vm-timeout: 3000
# The huge-page benchmark (bench/hugepages): how many 2 MiB blocks the guest
# can still assemble after long merging with churn, on the same workload,
# for the guest kernel's KSM, ksmd with the module's pageblock pool off
# (pool=0: every shared page a single page, as before the pool) and ksmd
# with the pool, one after the other in one boot.
#
# Each system gets the same workload, started fresh: HP_GROUPS workloads of
# HP_PROCS processes x HP_MIB MiB (duplicates within a workload, zero,
# volatile and unique pages; each workload its own seed), started one at a
# time, each merged before the next starts; then HP_ROUNDS rounds of churn:
# one workload rewrites half its duplicate pages (copy-on-write breaks of
# merged pages, merged again with new contents), the next one verifies and
# exits and a new one with a new seed takes its place, and merging catches
# up. KSM and ksmd both scan 5000 pages without pause (ksmd never rests).
# Then the deduplicator stops (what it merged stays merged), caches are
# dropped, memory is compacted, and the guest is asked for huge pages:
# the free 2 MiB blocks in /proc/buddyinfo, the pageblocks of each migrate
# type in /proc/pagetypeinfo, the pageblocks that hold the workloads'
# shared pages (pagemap), and a real THP allocation (hugepage-probe thp:
# all free memory but HP_THP_RESERVE_MIB, MADV_HUGEPAGE, AnonHugePages).
# "# bench ..." lines carry the figures.
#
# The TAP results assert only facts that do not depend on timing: every
# workload process reads back exactly its own content; with pool=0 the
# module takes no block; with the pool, once the first workloads merged
# (before any churn freed a shared page), the pageblocks holding shared
# pages number at most ceil(pool_used / 512) + nodes + single pages, and
# after the churn every block holding one is a block the pool holds (at
# most pool_blocks + pool_single); every shared page is gone once the
# workloads exited; KSM's and THP's settings are restored.
#
# Parameters (vm-test --param, defaults in brackets): HP_GROUPS [4],
# HP_PROCS [3], HP_MIB [80], HP_DUP [0.4], HP_ZERO [0.1], HP_VOLATILE
# [0.02], HP_ROUNDS [3], HP_MERGE_S [180] (most seconds to wait for a
# merge to reach 95 %), HP_THP_RESERVE_MIB [160],
# HP_SYSTEMS [ksm,ksmd-nopool,ksmd-pool].
. /lib/ksmd-vm.sh

groups=${HP_GROUPS:-4}
procs=${HP_PROCS:-3}
mib=${HP_MIB:-80}
dup=${HP_DUP:-0.4}
zero=${HP_ZERO:-0.1}
vol=${HP_VOLATILE:-0.02}
rounds=${HP_ROUNDS:-3}
merge_s=${HP_MERGE_S:-180}
reserve_mib=${HP_THP_RESERVE_MIB:-160}
systems=${HP_SYSTEMS:-ksm,ksmd-nopool,ksmd-pool}
KSM=/sys/kernel/mm/ksm
THP=/sys/kernel/mm/transparent_hugepage
VM_WORKLOAD_READY_S=600

now_s() {
	cut -d. -f1 /proc/uptime
}

# The guest's settings this benchmark changes, restored at the end.
ksm_run0=$(cat $KSM/run)
ksm_pages0=$(cat $KSM/pages_to_scan)
ksm_sleep0=$(cat $KSM/sleep_millisecs)
thp_enabled0=$(sed -n 's/.*\[\(.*\)\].*/\1/p' $THP/enabled)
thp_defrag0=$(sed -n 's/.*\[\(.*\)\].*/\1/p' $THP/defrag)
# No THP while the workloads run (as in bench-vm-compare: the probes' own
# huge page faults under TCG only add noise); for the THP test, THP where
# asked for (MADV_HUGEPAGE), and such a fault compacts directly.
echo never > $THP/enabled
echo madvise > $THP/defrag

mkdir -p /etc/ksmd-hp
printf '[Scan]\nPagesToScan=5000\nSleep=0\nIdleSleep=0\n[AutoRegister]\nUser=0\nExecutable=ksmd-workload\n' \
	> /etc/ksmd-hp/ksmd.conf

nodes=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)
vm_diag "bench config groups=$groups procs=$procs mib=$mib dup=$dup zero=$zero volatile=$vol rounds=$rounds merge_s=$merge_s reserve_mib=$reserve_mib nodes=$nodes cpus=$(nproc) mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) kernel=$(uname -r) systems=$systems"

# start_group SLOT: a new workload in SLOT (named gSLOT) with the next seed;
# seeds differ in bits 20 and up, so no page of one workload equals a page
# of another (the unique pages' contents mix the seed with the page index).
start_group() {
	seq_n=$((seq_n + 1))
	vm_workload_start "g$1" --procs "$procs" --mib "$mib" --dup "$dup" --zero "$zero" --volatile "$vol" \
		--seed $((seq_n << 20)) $mergeable
}

# live_names: the workloads of this system started so far (an earlier
# system's are removed when it ends: their pids are gone).
live_names() {
	i=0
	while [ "$i" -lt "$groups" ]; do
		[ -e "/tmp/g$i.out" ] && echo "g$i"
		i=$((i + 1))
	done
}

# wait_merged STEP: until the workloads are backed by at most their pages
# minus 95 % of the ideal saving (distinct PFNs from pagemap), at most
# merge_s seconds. Prints what it waited.
wait_merged() {
	names=$(live_names)
	total=$(vm_workload_ranges $names | awk '{ s += $3 } END { print s }')
	target=$((total - $(vm_workload_expected_pages $names) * 95 / 100))
	t0=$(now_s)
	while :; do
		d=$(vm_field distinct "$(ksmd-probe pages $(vm_workload_ranges $names))")
		[ -n "$d" ] && [ "$d" -le "$target" ] && break
		if [ $(($(now_s) - t0)) -ge "$merge_s" ]; then
			echo "# bench merged $sys step=$1 seconds=$(($(now_s) - t0)) distinct=$d target=$target reached=0"
			return 1
		fi
		sleep 2
	done
	echo "# bench merged $sys step=$1 seconds=$(($(now_s) - t0)) distinct=$d target=$target reached=1"
}

# verify_group SLOT: every process of gSLOT reads its own content, then exits.
verify_group() {
	vm_workload_verify "g$1"
	s=$?
	[ "$s" -eq 0 ] || intact=no
	vm_check "$sys: every process of workload g$1 reads exactly its own content" test "$s" -eq 0
}

# run_workload: the workloads' whole life up to the measurement: merged
# one by one, then the churn.
run_workload() {
	seq_n=0
	i=0
	while [ "$i" -lt "$groups" ]; do
		vm_check "$sys: workload g$i starts" start_group "$i" || return 1
		wait_merged "start-g$i"
		i=$((i + 1))
	done
	initial_pages=$(ksmd-probe pages $(vm_workload_ranges $(live_names)))
	echo "# bench initial $sys $initial_pages $(hugepage-probe free)"
	if [ "$kind" = ksmd ]; then
		initial_info=$(ksmd-probe info)
		echo "# bench initial-info $sys $initial_info"
	fi
	r=0
	while [ "$r" -lt "$rounds" ]; do
		w=$((r % groups))
		x=$(((r + 1) % groups))
		# Copy-on-write breaks of merged pages in gW, merged again with new contents.
		vm_workload_pids "g$w" | while read -r pid; do kill -USR2 "$pid"; done
		# gX exits (its shared pages go), a new workload takes its place.
		verify_group "$x"
		vm_check "$sys: round $r: workload g$x starts again" start_group "$x" || return 1
		wait_merged "round-$r"
		r=$((r + 1))
	done
}

# measure: with the deduplicator stopped and the pages still merged, drop
# caches, compact, and count what can still become a huge page.
measure() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	t0=$(now_s)
	echo 1 > /proc/sys/vm/compact_memory
	echo "# bench compacted $sys seconds=$(($(now_s) - t0))"
	pages=$(ksmd-probe pages $(vm_workload_ranges $(live_names)))
	free=$(hugepage-probe free)
	echo "# bench pages $sys $pages"
	echo "# bench free $sys $free"
	ask=$(($(vm_field mem_free_mib "$free") - reserve_mib))
	if [ "$ask" -gt 0 ]; then
		echo madvise > $THP/enabled
		thp=$(hugepage-probe thp "$ask")
		echo never > $THP/enabled
		vm_check "$sys: the THP test ran" test -n "$thp"
		echo "# bench thp $sys $thp"
	else
		vm_not_ok "$sys: no free memory left for the THP test ($(vm_field mem_free_mib "$free") MiB free)"
	fi
	echo "# bench after-thp $sys $(hugepage-probe free)"
}

for sys in $(echo "$systems" | tr ',' ' '); do
	intact=yes
	case "$sys" in
	ksm) kind=ksm; mergeable=--mergeable ;;
	ksmd-pool) kind=ksmd; mergeable=; pool=1 ;;
	ksmd-nopool) kind=ksmd; mergeable=; pool=0 ;;
	*) vm_not_ok "unknown system $sys"; continue ;;
	esac
	sync
	echo 3 > /proc/sys/vm/drop_caches
	echo 1 > /proc/sys/vm/compact_memory
	echo "# bench system $sys kind=$kind $(hugepage-probe free)"
	if [ "$kind" = ksm ]; then
		echo 5000 > $KSM/pages_to_scan
		echo 0 > $KSM/sleep_millisecs
		echo 1 > $KSM/run
	else
		vm_check "$sys: ksmd_helper loads with pool=$pool" insmod "$KSMD_HELPER_KO" pool="$pool"
		vm_check "$sys: the module says pool=$pool in INFO" \
			test "$(vm_field pool "$(ksmd-probe info)")" = "$pool"
		ksmd --no-socket --config-dir /etc/ksmd-hp > /tmp/ksmd.out 2> /tmp/ksmd.err &
		ksmd_pid=$!
	fi
	t_start=$(now_s)
	run_workload
	echo "# bench churned $sys seconds=$(($(now_s) - t_start))"
	if [ "$kind" = ksm ]; then
		echo 0 > $KSM/run
		echo "# bench ksm $sys pages_shared=$(cat $KSM/pages_shared) pages_sharing=$(cat $KSM/pages_sharing) full_scans=$(cat $KSM/full_scans)"
	else
		kill -TERM "$ksmd_pid"
		wait "$ksmd_pid"
		vm_check "$sys: ksmd stops" test $? -eq 0
		tail -n 5 /tmp/ksmd.err | sed -e 's/^/# ksmd: /'
		info=$(ksmd-probe info)
		echo "# bench info $sys $info"
	fi
	measure
	# ksmd: the assertions on where the shared pages sit.
	if [ "$kind" = ksmd ] && [ "$pool" = 0 ]; then
		vm_check "$sys: with pool=0 the module took no block" test "$(vm_field pool_taken "$info")" = 0
	fi
	if [ "$kind" = ksmd ] && [ "$pool" = 1 ]; then
		ib=$(vm_field shared_blocks "$initial_pages")
		iu=$(vm_field pool_used "$initial_info")
		is=$(vm_field pool_single "$initial_info")
		bound=$(((iu + 511) / 512 + nodes + is))
		vm_check "$sys: before the churn, the $ib pageblocks holding shared pages are at most ceil($iu / 512) + $nodes + $is single = $bound" \
			test "$ib" -le "$bound"
		sb=$(vm_field shared_blocks "$pages")
		pb=$(vm_field pool_blocks "$info")
		ps=$(vm_field pool_single "$info")
		vm_check "$sys: after the churn, the $sb pageblocks holding shared pages are at most the $pb blocks the pool holds + $ps single" \
			test "$sb" -le $((pb + ps))
	fi
	i=0
	while [ "$i" -lt "$groups" ]; do
		verify_group "$i"
		i=$((i + 1))
	done
	echo "# bench intact $sys $intact"
	rm -f /tmp/g[0-9]*.out /tmp/g[0-9]*.err
	if [ "$kind" = ksm ]; then
		echo 2 > $KSM/run
		echo 0 > $KSM/run
		echo "$ksm_pages0" > $KSM/pages_to_scan
		echo "$ksm_sleep0" > $KSM/sleep_millisecs
	else
		# The collector frees pages nothing maps within 5 s, the pool's spare block within 10 s more.
		vm_check "$sys: the module owns no page once the workloads exited" vm_module_wait_unowned 30
		info=$(ksmd-probe info)
		echo "# bench info-end $sys $info"
		vm_check "$sys: ksmd_helper unloads" rmmod ksmd_helper
	fi
done

echo "$ksm_pages0" > $KSM/pages_to_scan
echo "$ksm_sleep0" > $KSM/sleep_millisecs
echo "$ksm_run0" > $KSM/run
echo "$thp_enabled0" > $THP/enabled
echo "$thp_defrag0" > $THP/defrag
vm_check "KSM's and THP's settings are as they were" test \
	"$(cat $KSM/run) $(cat $KSM/pages_to_scan) $(cat $KSM/sleep_millisecs) $(sed -n 's/.*\[\(.*\)\].*/\1/p' $THP/enabled) $(sed -n 's/.*\[\(.*\)\].*/\1/p' $THP/defrag)" = \
	"$ksm_run0 $ksm_pages0 $ksm_sleep0 $thp_enabled0 $thp_defrag0"
vm_finish
