#!/bin/sh
# vm-timeout: 540
# Where the helper's shared pages sit after merging with churn (#15 item 2,
# the facts bench/hugepages measures that timing cannot change), with the
# pageblock pool and then, in the same boot, with pool=0.
#
# ksmd (5000 pages, no sleep) merges two workloads of 3 processes x 8 MiB;
# then the churn: the first rewrites half of its duplicate pages
# (copy-on-write breaks of merged pages, merged again with new contents),
# one process of the second is unmerged (ksmctl unmerge) and the second
# exits, a third takes its place and is merged. ksmd stops (what it merged
# stays merged), the collector frees what nobody maps, memory is compacted.
#
# With the pool: before the churn (no shared page freed yet) the pool holds
# at most ceil(used / 512) + nodes blocks (a block is taken only when the
# node has no free slot) and the pageblocks holding shared pages (pagemap)
# are at most ceil(used / 512) + nodes + single pages; after the churn and
# compaction they are at most the blocks the pool holds + single pages
# (every shared page in a pool block), which is ceil(used / 512) + nodes +
# ceil(free slots / 512) + single pages: the slack is the slots the churn
# freed, which stay where they are (the pool moves no page) until reused.
# With pool=0 (merging alone, no churn: a shorter run) the module takes no
# block; how many pageblocks its single
# pages spread over is printed, not asserted: in a guest with much free
# memory the page allocator's own fallback (an unmovable order-0 allocation
# claims a whole free pageblock) keeps them nearly as close
# (bench/README.md). Every process reads back exactly its own content, the
# module owns no page once the workloads exited, the console stays clean.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd-pool-churn.sock
WL="--procs 3 --mib 8 --dup 0.5 --zero 0.1"
mkdir -p /etc/ksmd-pool-churn
printf '[Scan]\nPagesToScan=5000\nSleep=0\nIdleSleep=0\n' > /etc/ksmd-pool-churn/ksmd.conf
nodes=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)

# start NAME SEED: a workload, its processes registered with ksmd; the
# region ids go to /tmp/NAME.ids.
start() {
	local pid
	vm_workload_start "$1" $WL --seed "$2" || return 1
	: > "/tmp/$1.ids"
	for pid in $(vm_workload_pids "$1"); do
		ksmctl --socket "$SOCK" register "$pid" >> "/tmp/$1.ids" || return 1
	done
}

# merged NAME...: waits up to 120 s until the workloads are backed by at most
# their pages less 95 % of their theoretical saving.
merged() {
	local ranges pages target end d
	ranges=$(vm_workload_ranges "$@")
	pages=$(vm_workload_ranges "$@" | awk '{ n += $3 } END { print n }')
	target=$((pages - $(vm_workload_expected_pages "$@") * 95 / 100))
	end=$(($(date +%s) + 120))
	while :; do
		d=$(vm_field distinct "$(ksmd-probe pages $ranges)")
		[ -n "$d" ] && [ "$d" -le "$target" ] && return 0
		[ "$(date +%s)" -lt "$end" ] || break
		sleep 1
	done
	vm_diag "$*: $d pages back them, target $target"
	return 1
}

# rewrite NAME: SIGUSR2, and wait until each of its 3 processes rewrote.
rewrite() {
	local pid
	for pid in $(vm_workload_pids "$1"); do
		kill -USR2 "$pid" || return 1
	done
	vm_workload_wait_rewritten "$1" 3 60
}

# settled: waits up to 30 s until the module's pages_owned holds still for
# 6 s (the collector frees pages nobody maps within 5 s).
settled() {
	local i=0 last now
	last=$(vm_field pages_owned "$(ksmd-probe info)")
	while [ "$i" -lt 5 ]; do
		sleep 6
		now=$(vm_field pages_owned "$(ksmd-probe info)")
		[ "$now" = "$last" ] && return 0
		last=$now
		i=$((i + 1))
	done
	return 1
}

seed=0
for pool in 1 0; do
	p="pool=$pool"
	vm_check "$p: ksmd_helper loads" insmod "$KSMD_HELPER_KO" pool="$pool"
	vm_check "$p: INFO says pool=$pool" test "$(vm_field pool "$(ksmd-probe info)")" = "$pool"
	vm_check "$p: ksmd serves its socket" vm_ksmd_start "$SOCK" --config-dir /etc/ksmd-pool-churn

	vm_check "$p: workload a starts, registered" start a $((seed + 1 << 20))
	vm_check "$p: workload b starts, registered" start b $((seed + 2 << 20))
	vm_check "$p: ksmd merges a and b to 95 %" merged a b
	pre=$(ksmd-probe pages $(vm_workload_ranges a b))
	pre_info=$(ksmd-probe info)
	vm_diag "$p before the churn: $pre"
	vm_diag "$p before the churn: $pre_info"
	used=$(vm_field pool_used "$pre_info")
	single=$(vm_field pool_single "$pre_info")
	blocks=$(vm_field shared_blocks "$pre")
	if [ "$pool" = 1 ]; then
		vm_check "$p: a shared page merged at all" test "$used" -gt 0
		bound=$(((used + 511) / 512 + nodes))
		vm_check "$p: before the churn the pool holds $(vm_field pool_blocks "$pre_info") blocks, at most ceil($used / 512) + $nodes" \
			test "$(vm_field pool_blocks "$pre_info")" -le "$bound"
		vm_check "$p: before the churn the $blocks pageblocks holding shared pages are at most ceil($used / 512) + $nodes + $single single" \
			test "$blocks" -le $((bound + single))
	fi

	# The churn, with the pool only; pool=0 is asserted on what merging alone does.
	second=b
	if [ "$pool" = 1 ]; then
		vm_check "$p: a rewrites half its duplicate pages (copy-on-write breaks)" rewrite a
		id=$(head -n 1 /tmp/b.ids)
		out=$(ksmctl --socket "$SOCK" unmerge "$id")
		vm_check "$p: ksmctl unmerge of b's first process ($out)" test $? -eq 0
		vm_workload_verify b
		vm_check "$p: every process of b reads exactly its own content, and exits" test $? -eq 0
		# The slots of b's pages and of a's rewritten ones are free before c merges.
		settled || vm_diag "$p: the module's pages_owned did not settle"
		vm_diag "$p before c: $(ksmd-probe info)"
		second=c
		vm_check "$p: workload c starts in b's place, registered" start c $((seed + 3 << 20))
		vm_check "$p: ksmd merges a and c to 95 %" merged a c
	fi
	kill -TERM "$daemon"
	wait "$daemon"
	vm_check "$p: ksmd stops" test $? -eq 0
	tail -n 3 /tmp/ksmd.log | sed -e 's/^/# ksmd: /'
	settled || vm_diag "$p: the module's pages_owned did not settle"

	sync
	echo 3 > /proc/sys/vm/drop_caches
	echo 1 > /proc/sys/vm/compact_memory
	post=$(ksmd-probe pages $(vm_workload_ranges a $second))
	info=$(ksmd-probe info)
	vm_diag "$p after ksmd stopped and compaction: $post"
	vm_diag "$p after ksmd stopped and compaction: $info"
	shared=$(vm_field shared_distinct "$post")
	blocks=$(vm_field shared_blocks "$post")
	used=$(vm_field pool_used "$info")
	free=$(vm_field pool_free "$info")
	single=$(vm_field pool_single "$info")
	pblocks=$(vm_field pool_blocks "$info")
	vm_check "$p: shared pages after ksmd stopped" test "$shared" -gt 0
	if [ "$pool" = 1 ]; then
		# a's blocks keep its pages that were not rewritten, so the slots of the
		# rewritten ones stay free in them until c's merges take them.
		vm_check "$p: the pool reused freed slots ($(vm_field pool_reused "$info"))" \
			test "$(vm_field pool_reused "$info")" -gt 0
		vm_check "$p: the pool fell back to no single page" test "$single" = 0
		vm_check "$p: after compaction the $blocks pageblocks holding $shared shared pages are at most the $pblocks blocks the pool holds + $single single" \
			test "$blocks" -le $((pblocks + single))
		vm_check "$p: ... that is at most ceil($used / 512) + $nodes + ceil($free free slots / 512) + $single" \
			test "$blocks" -le $(((used + 511) / 512 + nodes + (free + 511) / 512 + single))
	else
		vm_check "$p: the module took no block" test "$(vm_field pool_taken "$info")" = 0
		vm_diag "$p: $shared single shared pages sit in $blocks pageblocks (at least $(((shared + 511) / 512)))"
	fi
	vm_workload_verify a
	vm_check "$p: every process of a reads exactly its own content" test $? -eq 0
	vm_workload_verify $second
	vm_check "$p: every process of $second reads exactly its own content" test $? -eq 0
	vm_check "$p: the module owns no page once the workloads exited" vm_module_wait_unowned 30
	info=$(ksmd-probe info)
	vm_diag "$p at the end: $info"
	vm_check "$p: ksmd_helper unloads" rmmod ksmd_helper
	seed=$((seed + 8))
done
vm_finish
