#!/bin/sh
# vm-timeout: 240
# The demo (tools/demo, the README's first command): processes holding
# duplicate and zero pages, some content shared across processes and some
# not; ksmd merges them through the module while a progress line shows the
# daemon's status and what physically backs the processes; memory before and
# after, the daemon's statistics, and every process verifies that it still
# reads exactly its own content. Also a test: the saving must reach 99 % of
# the theoretical one and nothing may be lost.
. /lib/ksmd-vm.sh

say() {
	echo "$*"
}
# mib PAGES: pages as MiB with one decimal.
mib() {
	awk -v p="$1" 'BEGIN { printf "%.1f MiB", p * 4096 / 1048576 }'
}
percent() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", b ? 100 * a / b : 0 }'
}
# memory_table TITLE: one row per process, what backs its memory, and the total.
memory_table() {
	say ""
	say "Memory $1:"
	say "  process              pid    private     shared      zero page"
	n=0
	for w in app thp; do
		vm_workload_ranges "$w" | while read -r pid addr pages; do
			p=$(ksmd-probe pages "$pid" "$addr" "$pages")
			kind="app (4 KiB pages)"
			[ "$w" = thp ] && kind="app (huge pages)"
			printf "  %-18s %6s  %10s  %10s  %10s\n" "$kind" "$pid" "$(mib "$(vm_field private "$p")")" \
				"$(mib "$(vm_field shared "$p")")" "$(mib "$(vm_field zero "$p")")"
		done
	done
	total=$(ksmd-probe pages $all_ranges)
	say "  physical memory backing all of them: $(mib "$(vm_field distinct "$total")") ($(vm_field distinct "$total") pages)"
}

say ""
say "=================================================================="
say " ksmd demo: userspace memory deduplication, on $(uname -r)"
say "=================================================================="
vm_check "the ksmd_helper module loads" insmod "$KSMD_HELPER_KO"
info=$(ksmd-probe info)
say "ksmd_helper loaded: it swaps verified-identical private pages for one"
say "shared copy-on-write page (or the zero page); THP split: $(vm_field thp_split "$info")."

say ""
say "Starting the processes:"
say "  4 x 32 MiB on 4 KiB pages: 40 % of pages identical in all four,"
say "    20 % zero pages, 5 % rewritten all the time, the rest unique"
vm_check "four processes on 4 KiB pages start" \
	vm_workload_start app --procs 4 --mib 32 --dup 0.4 --zero 0.2 --volatile 0.05 --seed 7
say "  2 x 16 MiB on transparent huge pages: half the pages identical in"
say "    both (other content than the four above), a quarter zero"
vm_check "two processes on huge pages start" \
	vm_workload_start thp --procs 2 --mib 16 --dup 0.5 --zero 0.25 --thp --seed 8
all_ranges=$(vm_workload_ranges app thp)
exp=$(vm_workload_expected_pages app thp)
say "What an ideal deduplicator saves here: $(mib "$exp") ($exp pages)."

memory_table "before ksmd"
before=$(ksmd-probe pages $all_ranges)

regs=$(vm_register_processes app thp)
say ""
say "Starting ksmd, registering the six processes:"
say "  ksmd --scans=4 --pages-to-scan=1024 --sleep=100ms$regs"
say "(a slow rate, to watch it: 1024 pages every 100 ms; ksmd's own figures also"
say "count the processes' stacks and heaps, the right-hand ones only the workload)"
say "Progress, once a second: the daemon's own status line | what backs the processes"
ksmd-probe listen /tmp/ksmd.notify > /tmp/status.out 2>/dev/null &
listen_pid=$!
NOTIFY_SOCKET=/tmp/ksmd.notify ksmd --scans=4 --pages-to-scan=1024 --sleep=100ms $regs \
	> /tmp/ksmd.out 2> /tmp/ksmd.err &
ksmd_pid=$!
t0=$(date +%s)
t=0
while kill -0 "$ksmd_pid" 2>/dev/null; do
	sleep 1
	t=$(($(date +%s) - t0))
	now=$(ksmd-probe pages $all_ranges)
	saved=$(($(vm_field distinct "$before") - $(vm_field distinct "$now")))
	status=$(tail -n 1 /tmp/status.out)
	printf "  [%3d s] ksmd: %s | saved %s (%s of ideal)\n" "$t" "${status:-starting}" "$(mib "$saved")" \
		"$(percent "$saved" "$exp")"
	[ "$t" -ge 150 ] && break
done
wait "$ksmd_pid"
ksmd_status=$?
kill "$listen_pid"
wait "$listen_pid" 2>/dev/null
vm_check "ksmd runs its 4 full scans and exits 0" test "$ksmd_status" -eq 0

say ""
say "ksmd's log:"
sed -e 's/^/  /' /tmp/ksmd.err
say "ksmd's statistics after its last full scan:"
sed -e 's/^/  /' /tmp/ksmd.out

memory_table "after ksmd"
after=$(ksmd-probe pages $all_ranges)
saved=$(($(vm_field distinct "$before") - $(vm_field distinct "$after")))
info=$(ksmd-probe info)
say ""
say "Saved: $(mib "$saved") of the ideal $(mib "$exp") ($(percent "$saved" "$exp")); the module reports"
say "$(vm_field pages_owned "$info") shared pages mapped $(vm_field pages_mapped "$info") times and $(vm_field merged_zero "$info") zero-page merges."
vm_check "ksmd saved at least 99 % of what an ideal deduplicator saves" test $((saved * 100)) -ge $((exp * 99))

say ""
say "Verifying: every process re-reads each of its pages and compares it"
say "with what it wrote (merged, zero-page and rewritten pages alike)..."
vm_workload_verify app "  "
s1=$?
vm_workload_verify thp "  "
s2=$?
vm_check "every process reads exactly its own content" test "$s1" -eq 0 -a "$s2" -eq 0

info=$(ksmd-probe info)
say ""
say "All processes exited: the module now owns $(vm_field pages_owned "$info") pages."
vm_check "the module owns nothing once the processes exited" test "$(vm_field pages_owned "$info")" = 0
vm_check "the ksmd_helper module unloads" rmmod ksmd_helper
say "Done."
vm_finish
