#!/bin/sh
# vm-timeout: 400
# ksmd does not read a merged page again while it still maps what it was
# merged into, and reads one that was written. A workload is merged by a
# running ksmd; in the full scans after that, its merged pages are counted
# as skipped (pages_skipped_merged, as the metrics show it) and not read,
# while what pagemap and the physical frames show stays merged. Then the
# workload rewrites half of its duplicate pages (new contents, the same in
# both processes): ksmd must read them again to merge them again, and does
# (within two full scans: a page whose merge a write undid is read every
# other full scan for a while, its backoff; MergePolicy= in ksmd.conf(5)),
# the saving it reports drops no lower than what is physically merged, and
# every process reads exactly its own content at the end.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd-test.sock

metric() { vm_metric "$1"; }
scans() { vm_metrics_snapshot "$SOCK" && metric ksmd_full_scans_total; }
pages() { metric "ksmd_scan_pages{kind=\"$1\"}"; }

# after_scans N: waits up to 180 s until N more full scans have completed, then takes a snapshot
# of the scan that ended last (a scan takes seconds here: see the rate below). Fails if more did.
after_scans() {
	local want
	want=$(($(scans) + $1))
	vm_metrics_wait_scans "$SOCK" "$want" && [ "$(metric ksmd_full_scans_total)" -eq "$want" ]
}

distinct() { vm_workload_distinct w; }
# freed: physical pages merging freed in the workload's memory.
freed() {
	echo $((DISTINCT_BEFORE - $(distinct)))
}

# merged FRACTION_PERCENT: waits up to 120 s until that share of the theoretical saving is freed.
merged() { vm_workload_wait_freed w "$DISTINCT_BEFORE" "$EXP" "$1"; }

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_check "workload starts" vm_workload_start w --procs 2 --mib 8 --dup 0.5 --zero 0.25 --seed 5
EXP=$(vm_workload_expected_pages w)
PAGES=$(vm_workload_ranges w | awk '{ n += $3 } END { print n }')
DISTINCT_BEFORE=$(distinct)
# SIGUSR2 rewrites half of each process's duplicate pages (--dup 0.5): REWRITTEN pages in all,
# of which those of the second process were saved (one merge each to save them again).
REWRITTEN=$(vm_workload_ranges w | awk '{ n += int(int($3 * 0.5) / 2) } END { print n }')
PAIRS=$((REWRITTEN / 2))
vm_diag "workload: $PAGES pages, theoretical saving $EXP pages; a rewrite writes $REWRITTEN of them"

# The workload's ranges only, so that ksmd's figures and the frames count the same pages. No
# rests, and a rate at which a full scan of its 4096 pages takes about 4 s: the test sees each
# scan's figures before the next one ends.
regs=$(vm_workload_ranges w | awk '{ printf " --register=%s:%s:%d", $1, $2, $3 * 4096 }')
vm_check "ksmd serves its socket" vm_ksmd_start "$SOCK" --config-dir /nonexistent --idle-sleep=off \
	--pages-to-scan=512 --sleep=500ms ${KSMD_SCAN_THREADS:+--scan-threads=$KSMD_SCAN_THREADS} $regs
vm_check "ksmd merges 99 % of the theoretical saving (physical frames)" merged 99

vm_check "two more full scans complete" after_scans 2
s=$(pages skipped_merged) r=$(pages read) sh=$(pages sharing) z=$(pages zero)
vm_diag "a full scan once merged: skipped_merged=$s read=$r sharing=$sh zero=$z"
# Each merged page counts once: a shared page's first mapper, the others and the zero pages.
vm_check "the merged pages are counted as skipped (skipped_merged >= 99 % of the theoretical saving)" \
	test $((s * 100)) -ge $((EXP * 99))
vm_check "no page is both read and skipped (read <= pages - skipped_merged)" test "$r" -le $((PAGES - s))
vm_check "ksmd's saving is what is physically freed" test $((sh + z)) -eq "$(freed)"

vm_metrics_snapshot "$SOCK"
merges_before=$(metric 'ksmd_merge_results_total{result="merged"}')
kill -USR2 "$w_pid"
vm_check "the workload rewrote half of its duplicate pages" vm_workload_wait_rewritten w 2 30
# The scan running at the rewrite may have seen some pages before it; the next one sees them all
# written: new contents, which only a read can learn (read again there, as they are not yet merged).
vm_check "two full scans complete after the rewrite" after_scans 2
s=$(pages skipped_merged) r=$(pages read) sh=$(pages sharing) z=$(pages zero) f=$(freed)
vm_diag "a full scan after the rewrite: skipped_merged=$s read=$r sharing=$sh zero=$z; physically freed $f"
# Read after the counters, the frames include every merge the scan submitted.
vm_check "ksmd counts no written page as merged (its saving <= what is physically freed)" \
	test $((sh + z)) -le "$f"
# A break raises a page's volatility by two (merge-policy.h): a written page is read at its tick,
# one full scan in four while it backs off, and once more before it merges again; the ticks of
# neighbouring pages fall in different scans, so each is read in these four full scans.
r2=0
for i in 1 2 3; do
	vm_check "another full scan completes ($i of 3)" after_scans 1
	r2=$((r2 + $(pages read)))
done
vm_diag "the three full scans after: read=$r2 skipped_merged=$(pages skipped_merged)"
vm_check "the rewritten pages are read (pages read in the four full scans >= pages rewritten)" \
	test $((r + r2)) -ge "$REWRITTEN"
vm_check "ksmd reads the rewritten pages and merges them again (99 % physically freed)" merged 99
# merged_again: waits up to 120 s until the helper has merged every rewritten pair again. At 99 %
# freed, up to 1 % of the pairs may still be backing off (a page and its partner are offered in
# the same scan only once their volatility ticks agree, merge-policy.h), so it waits.
merged_again() {
	local end
	end=$(($(date +%s) + 120))
	while :; do
		vm_metrics_snapshot "$SOCK"
		merges_after=$(metric 'ksmd_merge_results_total{result="merged"}')
		[ $((merges_after - merges_before)) -ge "$PAIRS" ] && return 0
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.5
	done
}
merged_again
ok=$?
vm_diag "pages the helper merged: $merges_before before the rewrite, $merges_after after"
vm_check "the helper merged at least the rewritten pages again" test "$ok" -eq 0
vm_check "two more full scans complete" after_scans 2
s=$(pages skipped_merged)
vm_diag "a full scan once merged again: skipped_merged=$s read=$(pages read)"
vm_check "merged again, they are skipped again" test $((s * 100)) -ge $((EXP * 99))

kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
sed -e 's/^/# ksmd: /' /tmp/ksmd.log | tail -n 20
vm_check "every process reads exactly its own content" vm_workload_verify w
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
