#!/bin/sh
# vm-timeout: 400
# Checkpoint/restore of processes whose pages ksmd merged, with Debian's
# criu, as ksmd(8) tells an operator to do it:
#  1. a plain dump and restore: merged pages (module pages and the zero page)
#     are dumped and restored as private pages, every process reads exactly
#     what it wrote, and ksmd merges the restored processes once they are
#     registered again;
#  2. an incremental dump (pre-dump with --track-mem, then dump) without
#     ksmd(8)'s step, ksmd scanning the processes throughout: half of the
#     duplicate pages are rewritten after the pre-dump, and then ksmd starts
#     over on the processes (unregistered and registered again, as a restart
#     of ksmd with [AutoRegister] does). Its first pass clears their
#     soft-dirty bits, so criu takes every rewritten page from the pre-dump
#     and the restored processes read their old contents: the test requires
#     that loss, page for page, as ksmd(8) warns; or, where a page appeared
#     after the pre-dump, criu refuses the dump and the processes run on
#     intact (also ksmd(8)'s warning; which one depends on their stacks);
#  3. the same with ksmd(8)'s step: ksmd stops scanning the processes before
#     the pre-dump (ksmctl unregister for one, which keeps its pages merged
#     through both dumps, ksmctl unmerge for the other) and gets them back
#     only after the restore; every page is intact.
# criu 4.x (the 7 line's, from trixie: Debian 12's 3.17 cannot run on 7.3)
# reads pages with PAGEMAP_SCAN and leaves merged pages, file pages to it,
# out of a dump, as ksmd(8) warns: there the test requires that every
# merged duplicate page restores wrong in 1 and 2, page for page, and the
# step of 3 is ksmctl unmerge for every region, as ksmd(8) tells.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd/ksmd.sock
mkdir -p /etc/ksmd-test
printf '[Scan]\nSleep=5ms\n' > /etc/ksmd-test/ksmd.conf

# criu_workload NAME SEED: a workload in a session of its own with nothing
# on a terminal, so that its process tree is all criu has to dump. What its
# rewritten pages must hold is counted in /tmp/NAME.gen, outside the memory
# a checkpoint restores.
criu_workload() {
	echo 0 > "/tmp/$1.gen"
	vm_workload_run "$1" sh -c 'exec setsid ksmd-workload "$@" < /dev/null' sh \
		--procs 2 --mib 4 --dup 0.5 --zero 0.25 --seed "$2" --expect-gen "/tmp/$1.gen"
}

# register NAME: registers every process of the workload with ksmctl; the
# region ids go to /tmp/NAME.ids, one a line.
register() {
	local pid
	: > "/tmp/$1.ids"
	for pid in $(vm_workload_pids "$1"); do
		ksmctl --socket "$SOCK" register "$pid" >> "/tmp/$1.ids" || return 1
	done
}

# merged NAME: waits up to 120 s until the physical pages backing the
# workload are at most its pages less 99 % of its theoretical saving; prints
# what ksmd-probe saw last.
merged() {
	local exp ranges pages now end
	exp=$(vm_workload_expected_pages "$1")
	ranges=$(vm_workload_ranges "$1")
	pages=$(vm_workload_ranges "$1" | awk '{ n += $3 } END { print n }')
	end=$(($(date +%s) + 120))
	while :; do
		now=$(ksmd-probe pages $ranges)
		[ $(((pages - $(vm_field distinct "$now")) * 100)) -ge $((exp * 99)) ] && break
		[ "$(date +%s)" -lt "$end" ] || break
		sleep 0.2
	done
	echo "$now"
	[ $(((pages - $(vm_field distinct "$now")) * 100)) -ge $((exp * 99)) ]
}

# stop_scanning NAME: ksmd(8)'s step, for each region of the workload: with
# criu 3.x the first is unregistered (its merged pages stay merged), the
# others are unmerged (made private again, and unregistered), the two ways it
# gives; with criu 4.x every region is unmerged.
stop_scanning() {
	local id out cmd=unregister
	[ "$criu_scan" = 1 ] && cmd=unmerge
	for id in $(cat "/tmp/$1.ids"); do
		out=$(ksmctl --socket "$SOCK" "$cmd" "$id") || return 1
		vm_diag "ksmctl $cmd $id: $out"
		cmd=unmerge
	done
}

# rewrite NAME: the workload writes new contents to the first half of its
# duplicate pages and reports it (ksmd-workload on SIGUSR2).
rewrite() {
	local pid end
	eval "pid=\$${1}_pid"
	echo $(($(cat "/tmp/$1.gen") + 1)) > "/tmp/$1.gen"
	kill -USR2 "$pid" || return 1
	vm_workload_wait_rewritten "$1" 2 30
}

# register_again NAME: ksmd starts over on the workload's processes: each
# region is unregistered and the processes are registered anew.
register_again() {
	local id
	for id in $(cat "/tmp/$1.ids"); do
		ksmctl --socket "$SOCK" unregister "$id" > /dev/null || return 1
	done
	register "$1"
}

# rewritten_pages NAME: how many pages SIGUSR2 rewrites in the workload, in
# total (a quarter of its pages: half of its duplicates, --dup 0.5).
rewritten_pages() {
	vm_workload_ranges "$1" | awk '{ n += int($3 * 0.5) / 2 } END { print n }'
}

# duplicate_pages NAME: the workload's duplicate pages, which ksmd merges, in
# total (--dup 0.5).
duplicate_pages() {
	vm_workload_ranges "$1" | awk '{ n += int($3 * 0.5) } END { print n }'
}

# lost_pages NAME: the pages the restored workload found changed, in total.
lost_pages() {
	sed -n 's/.*: \([0-9]*\) of [0-9]* pages differ from what it wrote$/\1/p' "/tmp/$1.err" |
		awk '{ n += $1 } END { print n + 0 }'
}

# dump_restore NAME [CRIU DUMP OPTIONS]: dumps the workload's tree to
# /tmp/criu-NAME and restores it detached. criu's logs go to /tmp/criu-NAME.
dump_restore() {
	local name=$1 pid dir=/tmp/criu-$1
	shift
	eval "pid=\$${name}_pid"
	mkdir -p "$dir"
	# On a failure, its errors and warnings first (the tail alone seldom names the cause).
	if ! criu dump -t "$pid" -D "$dir" -o dump.log -v4 "$@"; then
		grep -E 'Error|Warn' "$dir/dump.log" | head -n 20 | sed -e 's/^/# criu dump error: /'
		tail -n 20 "$dir/dump.log" | sed -e 's/^/# criu dump: /'
		return 1
	fi
	if ! criu restore -D "$dir" -o restore.log -v4 --restore-detached; then
		grep -E 'Error|Warn' "$dir/restore.log" | head -n 20 | sed -e 's/^/# criu restore error: /'
		tail -n 20 "$dir/restore.log" | sed -e 's/^/# criu restore: /'
		return 1
	fi
	kill -0 "$pid"
}

# verify_restored NAME: has the restored workload verify its pages. It is no
# longer this shell's child: wait for its "verified" line, not for its exit.
verify_restored() {
	local name=$1 pid end
	eval "pid=\$${name}_pid"
	kill -USR1 "$pid" || return 1
	end=$(($(date +%s) + 60))
	while ! grep -q '^verified' "/tmp/$name.out" && [ "$(date +%s)" -lt "$end" ]; do
		sleep 0.2
	done
	sed -e "s/^/# $name: /" "/tmp/$name.err"
	grep '^verified' "/tmp/$name.out" | sed -e "s/^/# $name: /"
	grep -q '^verified .*: every page intact$' "/tmp/$name.out"
}

# criu checks TCP repair over the loopback device at start.
ip link set lo up
vm_diag "criu: $(criu --version | tr '\n' ' ')"
# 1 if this criu reads pages with PAGEMAP_SCAN: 4.x, on Linux 6.7 or later.
criu_scan=0
criu_major=$(criu --version | sed -n 's/^Version: \([0-9]*\)\..*/\1/p')
kernel=$(uname -r | awk -F. '{ print $1 * 1000 + $2 }')
[ "${criu_major:-0}" -ge 4 ] && [ "$kernel" -ge 6007 ] && criu_scan=1
vm_diag "criu leaves merged pages out of its dumps: $criu_scan"
criu check > /tmp/criu-check.log 2>&1
vm_diag "criu check: exit $?: $(tail -n 1 /tmp/criu-check.log)"
vm_check "criu finds soft-dirty memory tracking on this kernel" criu check --feature mem_dirty_track
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_check "ksmd serves its socket" vm_ksmd_start "$SOCK" --config-dir /etc/ksmd-test

# 1. A plain dump and restore of merged pages.
vm_check "workload 'plain' starts in a session of its own" criu_workload plain 31
vm_check "plain: its processes are registered" register plain
state=$(merged plain)
vm_check "plain: ksmd merges 99 % of what can be saved" test $? -eq 0
vm_diag "plain before the dump: $state"
vm_check "plain: criu dumps and restores the workload with merged pages" dump_restore plain
vm_diag "plain after the restore: $(ksmd-probe pages $(vm_workload_ranges plain))"
# Registered at once, while ksmd may still list the dumped processes'
# regions (same pids, exited) and the shared pages they left: the restored
# processes must merge all the same (the last-mapper fix of the scanner).
vm_check "plain: the restored processes are registered again" register plain
state=$(merged plain)
vm_check "plain: ksmd merges the restored processes again" test $? -eq 0
vm_diag "plain after merging again: $state"
ksmctl --socket "$SOCK" list 2>&1 | sed -e 's/^/# ksmctl list: /'
if [ "$criu_scan" = 0 ]; then
	vm_check "plain: every restored process reads exactly its own content" verify_restored plain
else
	verify_restored plain
	lost=$(lost_pages plain)
	dup=$(duplicate_pages plain)
	vm_diag "plain: $lost pages restored wrong ($dup duplicate pages were merged at the dump)"
	vm_check "plain: criu 4.x restores every merged duplicate page wrong and no other (ksmd(8))" \
		test "$lost" -eq "$dup"
fi

# 2. Incremental without the step, ksmd scanning throughout: what ksmd(8)
# warns of.
vm_check "workload 'scanned' starts in a session of its own" criu_workload scanned 32
vm_check "scanned: its processes are registered" register scanned
state=$(merged scanned)
vm_check "scanned: ksmd merges 99 % of what can be saved" test $? -eq 0
mkdir -p /tmp/criu-scanned/pre
vm_check "scanned: criu pre-dumps the workload with memory tracking" \
	criu pre-dump -t "$scanned_pid" -D /tmp/criu-scanned/pre -o pre-dump.log --track-mem
vm_check "scanned: both processes rewrite half their duplicate pages after the pre-dump" rewrite scanned
vm_check "scanned: ksmd starts over on the processes (registered anew)" register_again scanned
state=$(merged scanned)
vm_check "scanned: ksmd scans them and merges the rewritten pages again" test $? -eq 0
# ksmd's clear also makes a page that appeared after the pre-dump (a stack page
# a signal frame reached, say) look unchanged, and such a page is not in the
# parent: criu then refuses the dump instead ("Missing ... in parent pagemap"),
# and the process runs on. Which of the two happens depends on where the
# processes' stacks reached at the pre-dump; both are ksmd(8)'s warning.
if dump_restore scanned --track-mem --prev-images-dir pre; then
	vm_check "scanned: criu dumps on top of the pre-dump and restores" true
	verify_restored scanned
	lost=$(lost_pages scanned)
	rewritten=$(rewritten_pages scanned)
	vm_diag "scanned: $lost pages read back wrong ($rewritten pages were rewritten after the pre-dump," \
		"$(duplicate_pages scanned) duplicate pages were merged at both dumps)"
	if [ "$criu_scan" = 0 ]; then
		vm_check "scanned: without the step, every page rewritten after the pre-dump comes back old (ksmd(8))" \
			test "$lost" -eq "$rewritten"
	else
		vm_check "scanned: without the step, criu 4.x restores every merged duplicate page wrong (ksmd(8))" \
			test "$lost" -eq "$(duplicate_pages scanned)"
	fi
else
	vm_check "scanned: without the step, criu refuses the dump: a page that appeared after the pre-dump looks unchanged (ksmd(8))" \
		grep -q 'in parent pagemap' /tmp/criu-scanned/dump.log
	vm_check "scanned: the processes criu did not dump read exactly what they last wrote" verify_restored scanned
fi

# 3. Incremental with ksmd(8)'s step: unregister before the pre-dump.
vm_check "workload 'incr' starts in a session of its own" criu_workload incr 33
vm_check "incr: its processes are registered" register incr
state=$(merged incr)
vm_check "incr: ksmd merges 99 % of what can be saved" test $? -eq 0
if [ "$criu_scan" = 0 ]; then
	vm_check "incr: ksmctl unregister for one region, ksmctl unmerge for the other" stop_scanning incr
else
	vm_check "incr: ksmctl unmerge for every region" stop_scanning incr
fi
mkdir -p /tmp/criu-incr/pre
vm_check "incr: criu pre-dumps the workload with memory tracking" \
	criu pre-dump -t "$incr_pid" -D /tmp/criu-incr/pre -o pre-dump.log --track-mem
vm_check "incr: both processes rewrite half their duplicate pages after the pre-dump" rewrite incr
first=$(vm_workload_ranges incr | head -n 1)
kept=$(echo "$first" | awk '{ print int($3 * 0.5) - int($3 * 0.5) / 2 }')
state=$(ksmd-probe pages $first)
vm_diag "incr: the first process before the dump: $state"
if [ "$criu_scan" = 0 ]; then
	vm_check "incr: the unregistered process still maps its $kept untouched duplicate pages merged" \
		test "$(vm_field shared "$state")" -ge "$kept"
fi
vm_check "incr: criu dumps on top of the pre-dump and restores" \
	dump_restore incr --track-mem --prev-images-dir pre
vm_check "incr: the restored processes are registered again" register incr
state=$(merged incr)
vm_check "incr: ksmd merges the restored processes again" test $? -eq 0
vm_check "incr: every restored process reads exactly what it last wrote" verify_restored incr

kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
sed -e 's/^/# ksmd: /' /tmp/ksmd.log | tail -n 60
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
