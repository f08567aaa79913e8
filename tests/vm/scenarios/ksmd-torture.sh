#!/bin/sh
# vm-timeout: 200
# The daemon merges correctly under the torture with several scan threads:
# helper-torture's 4 processes x 3 writer threads write and verify random
# pages with values from {0, 1, 2}, so that duplicates and zero pages are
# common, while ksmd (ScanThreads=2, PagesToScan=1024 with Sleep=0: no pause
# between batches, each short enough for the bus to answer within a second or
# so under TCG; no rests) merges them. Every 8 s (or at once after a slower
# cycle) one process in turn is unregistered and registered again a second
# later; exits, checking all its pages, and a new one takes its place; or is
# unmerged and registered again. Zero lost writes and zero foreign data; the
# writers read their pages merged and broke merges of shared and of zero
# pages by writing (pagemap, before each write); ksmd merged during the
# writes, still answers, drops the processes that exited and exits cleanly;
# the module then owns no page and unloads; the console stays clean
# (vm-test). KSMD_TORTURE_SECS sets the torture's length (60 s, from the
# start of its first process), KSMD_SCAN_THREADS ksmd's scan threads (2).
. /lib/ksmd-vm.sh

SOCK=/run/ksmd/ksmd.sock
SECS=${KSMD_TORTURE_SECS:-60}
THREADS=${KSMD_SCAN_THREADS:-2}
PAGES=2048

# snapshot: ksmd's metrics now, into /tmp/metrics.
snapshot() {
	ksmctl --socket "$SOCK" stats --format=prometheus > /tmp/metrics
}
# metric NAME: the value of one metric line of the snapshot (its name with labels, as printed).
metric() {
	awk -v n="$1" '$1 == n { print $2 }' /tmp/metrics
}
merged() { metric 'ksmd_merge_results_total{result="merged"}'; }
# status KEY: a figure of ksmctl status --json.
status() {
	ksmctl --socket "$SOCK" --json status | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
# regions_gone: waits up to 30 s until ksmd has dropped every region.
regions_gone() {
	local i=0
	while [ "$(status regions)" != 0 ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(status regions)" = 0 ]
}

mkdir -p /etc/ksmd-test /tmp/torture-ids
printf '[Scan]\nScanThreads=%s\nPagesToScan=1024\nSleep=0\nIdleSleep=0\n' "$THREADS" \
	> /etc/ksmd-test/ksmd.conf
# helper-torture's --hook: "register PID", "unregister PID" or "unmerge PID" through ksmctl,
# with the region id register printed kept by pid.
cat > /tmp/torture-hook <<EOF
#!/bin/sh
case \$1 in
register) ksmctl --socket $SOCK register "\$2" > /tmp/torture-ids/\$2 ;;
unregister|unmerge) ksmctl --socket $SOCK "\$1" "\$(cat /tmp/torture-ids/\$2)" > /dev/null ;;
*) exit 2 ;;
esac
EOF
chmod +x /tmp/torture-hook

vm_zram_swap 256M
vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_ksmd_start "$SOCK" --config-dir /etc/ksmd-test
vm_check "ksmd serves its socket and merges" sh -c "ksmctl --socket $SOCK status | grep -q 'mode: merge'"
vm_check "ksmd scans with $THREADS threads" grep -q "Scanning with $THREADS thread" /tmp/ksmd.log

snapshot
merged0=$(merged)
scans0=$(status full_scans)
info0=$(ksmd-probe info)
t0=$(date +%s)
vm_run_tap helper-torture --hook=/tmp/torture-hook --cycle-secs=8 --write-pause-usec=2000 \
	"$SECS" 4 3 0 "$PAGES"
vm_diag "the torture took $(($(date +%s) - t0)) s"

vm_check "ksmd is still running" kill -0 "$daemon"
snapshot
vm_check "ksmd answers (ksmctl stats)" test -s /tmp/metrics
info=$(ksmd-probe info)
scans=$(($(status full_scans) - scans0))
merges=$(($(merged) - merged0))
results=$(sed -n 's/^ksmd_merge_results_total{result="\([a-z_-]*\)"} /\1=/p' /tmp/metrics | tr '\n' ' ')
vm_diag "ksmd during the torture: $scans full scans, $merges pages merged; results: $results"
cow=$(metric ksmd_cow_breaks_total)
[ -n "$cow" ] && vm_diag "ksmd counted $cow COW breaks"
delta() { echo $(($(vm_field "$1" "$info") - $(vm_field "$1" "$info0"))); }
vm_diag "the module during the torture: $(delta merged) items merged ($(delta merged_zero) to the zero" \
	"page), $(delta changed) changed, $(delta differs) differed, $(delta busy) busy"
vm_check "ksmd kept scanning during the torture (>= 4 full scans)" test "$scans" -ge 4
vm_check "ksmd merged pages while the writers wrote" test "$merges" -gt 0
vm_check "ksmd drops the regions of the processes that exited" regions_gone

kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
sed -e 's/^/# ksmd: /' /tmp/ksmd.log | tail -n 15
info=$(ksmd-probe info)
vm_diag "module after the torture: $info"
vm_check "the module owns no page once the torture's processes exited" \
	test "$(vm_field pages_owned "$info")" = 0
vm_check "no page of the module is mapped any more" test "$(vm_field pages_mapped "$info")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
