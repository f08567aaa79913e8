#!/bin/sh
# vm-timeout: 450
# MergePolicy=first-pass with the real module: ksmd reaches the saving in the
# full scan that first reads the pages, where MergePolicy=stable (KSM's wait
# for a stable checksum) has merged nothing yet; the next full scan merges
# nothing more. Then the workload rewrites half of its duplicate pages, all
# merged: cow_breaks counts exactly the merged pages written (by pagemap,
# before the write), no more as they are merged again after their backoff,
# nor when a region is unmerged (ksmctl unmerge); every process reads exactly
# its own content at the end.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd-test.sock

metric() { vm_metric "$1"; }
scans() { vm_metrics_snapshot "$SOCK" && metric ksmd_full_scans_total; }
merges() { metric 'ksmd_merge_results_total{result="merged"}'; }
breaks() { metric ksmd_cow_breaks_total; }
# region_breaks: the per-region cow_breaks of the snapshot, summed.
region_breaks() {
	awk '$1 ~ /^ksmd_region_cow_breaks_total[{]/ { n += $2 } END { print n + 0 }' /tmp/metrics
}

# until_scans N: waits up to 180 s until at least N full scans have completed (then a snapshot).
until_scans() { vm_metrics_wait_scans "$SOCK" "$1"; }
# after_scans N: N more full scans, then a snapshot of the last.
after_scans() {
	until_scans $(($(scans) + $1))
}

distinct() { vm_workload_distinct w; }
# freed: physical pages merging freed in the workload's memory.
freed() {
	echo $((DISTINCT_BEFORE - $(distinct)))
}
# merged FRACTION_PERCENT: waits up to 120 s until that share of the theoretical saving is freed.
merged() { vm_workload_wait_freed w "$DISTINCT_BEFORE" "$EXP" "$1"; }

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_check "workload starts" vm_workload_start w --procs 2 --mib 8 --dup 0.5 --zero 0.25 --seed 9
EXP=$(vm_workload_expected_pages w)
PAGES=$(vm_workload_ranges w | awk '{ n += $3 } END { print n }')
DISTINCT_BEFORE=$(distinct)
# SIGUSR2 rewrites the first half of each process's duplicate pages: these ranges.
REWRITE_RANGES=$(vm_workload_ranges w | awk '{ print $1, $2, int(int($3 * 0.5) / 2) }')
vm_diag "workload: $PAGES pages, theoretical saving $EXP pages"

regs=$(vm_workload_ranges w | awk '{ printf " --register=%s:%s:%d", $1, $2, $3 * 4096 }')

# MergePolicy=stable: one full scan reads every page and merges none.
ksmd --config-dir /nonexistent --socket /run/ksmd-stable.sock --merge-policy=stable --scans=1 \
	--pages-to-scan=512 --sleep=0 $regs > /tmp/stable.out 2> /tmp/stable.err
vm_check "ksmd --merge-policy=stable --scans=1 exits cleanly" test $? -eq 0
sed -e 's/^/# stable: /' /tmp/stable.out
vm_check "stable: after one full scan nothing is saved (saving_bytes=0)" grep -q ' saving_bytes=0$' /tmp/stable.out
vm_check "stable: after one full scan nothing is physically merged" test "$(freed)" -eq 0

# MergePolicy=first-pass (the default), no rests, a full scan of the 4096 pages in about 4 s.
vm_check "ksmd serves its socket" vm_ksmd_start "$SOCK" --config-dir /nonexistent --idle-sleep=off \
	--pages-to-scan=512 --sleep=500ms $regs
vm_check "the first full scan completes" until_scans 1
# The merges a step submits are sent in that step: the scan's end is the merges' end.
f1=$(freed) s1=$(metric ksmd_saving_bytes) m1=$(merges)
vm_diag "after the first full scan: freed $f1 pages, saving $((s1 / 4096)) pages, $m1 merges"
vm_check "first-pass: the first full scan physically frees 99 % of the theoretical saving" \
	test $((f1 * 100)) -ge $((EXP * 99))
vm_check "first-pass: the first full scan reports that saving" test $((s1 / 4096 * 100)) -ge $((EXP * 99))
vm_check "the second full scan completes" until_scans 2
m2=$(merges)
vm_diag "after the second full scan: $m2 merges, skipped_merged $(metric 'ksmd_scan_pages{kind="skipped_merged"}')"
vm_check "the second full scan has (almost) nothing left to merge (<= 1 % more merges)" \
	test $(((m2 - m1) * 100)) -le "$EXP"
vm_check "no COW break while nothing writes" test "$(breaks)" -eq 0

# Every page the rewrite will write is merged now (maps the helper's page): one break each.
probe=$(ksmd-probe pages $REWRITE_RANGES)
MERGED_REWRITTEN=$(vm_field shared "$probe")
vm_diag "pages the rewrite writes: $probe"
vm_check "the pages the rewrite writes are merged (>= 99 %)" \
	test $((MERGED_REWRITTEN * 100)) -ge $(($(echo "$REWRITE_RANGES" | awk '{ n += $3 } END { print n }') * 99))

kill -USR2 "$w_pid"
vm_check "the workload rewrote half of its duplicate pages" vm_workload_wait_rewritten w 2 30
vm_check "two full scans complete after the rewrite" after_scans 2
b=$(breaks)
vm_diag "cow_breaks $b (regions: $(region_breaks)); merged pages written: $MERGED_REWRITTEN"
vm_check "cow_breaks counts exactly the merged pages written" test "$b" -eq "$MERGED_REWRITTEN"
vm_check "the regions' cow_breaks add up to it" test "$(region_breaks)" -eq "$b"

t0=$(scans)
vm_check "ksmd merges the rewritten pages again, after their backoff (99 % physically freed)" merged 99
vm_diag "merged again within $(($(scans) - t0)) full scans of the breaks being counted"
vm_check "two more full scans complete" after_scans 2
vm_check "merging them again and finding them merged counts no break" test "$(breaks)" -eq "$MERGED_REWRITTEN"

# Unmerging a region makes its pages private by ksmd's own hand: no break.
vm_check "ksmctl unmerge backs out region 1" ksmctl --socket "$SOCK" unmerge 1
vm_check "two more full scans complete" after_scans 2
vm_check "an unmerged region counts no break" test "$(breaks)" -eq "$MERGED_REWRITTEN"

kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
sed -e 's/^/# ksmd: /' /tmp/ksmd.log | tail -n 20
vm_check "every process reads exactly its own content" vm_workload_verify w
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
