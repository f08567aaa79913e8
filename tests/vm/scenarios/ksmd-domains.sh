#!/bin/sh
# vm-timeout: 400
# Merge domains hold with the module: two workloads with identical content,
# registered in two domains, share no page frame (only the zero page); in one
# domain every page of one maps a page of the other. Measured from pagemap
# PFNs (ksmd-probe), not from the daemon's word; every process still reads
# its own content.
. /lib/ksmd-vm.sh

SOCK=/run/ksmd/ksmd.sock
mkdir -p /etc/ksmd-test
printf '[Scan]\nPagesToScan=8192\nSleep=5ms\nIdleSleep=0\n' > /etc/ksmd-test/ksmd.conf

# full_scans: ksmd's count of full scans.
full_scans() {
	ksmctl --socket "$SOCK" --json status | sed -n 's/.*"full_scans":\([0-9]*\).*/\1/p'
}

# wait_scans N: until N more full scans are done (at most 120 s).
wait_scans() {
	local until=$(($(full_scans) + $1)) i=0
	while [ "$(full_scans)" -lt "$until" ] && [ $i -lt 1200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(full_scans)" -ge "$until" ]
}

# register NAME DOMAIN: registers every process of workload NAME in DOMAIN; prints the region ids.
register() {
	local p
	for p in $(vm_workload_pids "$1"); do
		ksmctl --socket "$SOCK" register --domain="$2" "$p" || return 1
	done
}

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_ksmd_start "$SOCK" --config-dir /etc/ksmd-test
vm_check "ksmd serves its socket and merges" sh -c "ksmctl --socket $SOCK status | grep -q 'mode: merge'"

# The same seed: page for page the same content in both; a quarter zero pages, no duplicates within.
vm_check "workload a starts" vm_workload_start a --procs 1 --mib 8 --dup 0 --zero 0.25 --seed 5
vm_check "workload b starts, with a's content" vm_workload_start b --procs 1 --mib 8 --dup 0 --zero 0.25 --seed 5
ranges_a=$(vm_workload_ranges a)
ranges_b=$(vm_workload_ranges b)
pages=$(echo "$ranges_a" | awk '{ print $3 }')
zero=$((pages / 4))

ids=$(register a tenant-a) && ids_b=$(register b tenant-b)
vm_check "root registers a in domain tenant-a and b in domain tenant-b" test -n "$ids" -a -n "$ids_b"
vm_check "ksmd scans them four times" wait_scans 4
both=$(ksmd-probe pages $ranges_a $ranges_b)
one=$(ksmd-probe pages $ranges_a)
vm_diag "two domains: a: $one; a and b: $both"
vm_check "two domains share no page frame: a and b together cost twice what a costs" \
	test "$(vm_field distinct "$both")" -eq $((2 * $(vm_field distinct "$one")))
vm_check "zero pages merge in either domain: all $((2 * zero)) map the zero page" \
	test "$(vm_field zero "$both")" -eq $((2 * zero))
vm_check "ksmctl domains lists both" sh -c "ksmctl --socket $SOCK domains | grep -q tenant-a && \
	ksmctl --socket $SOCK domains | grep -q tenant-b"

for id in $ids_b; do
	ksmctl --socket "$SOCK" unmerge "$id" > /dev/null
done
ids_b=$(register b tenant-a)
vm_check "root registers b again, in domain tenant-a" test -n "$ids_b"
vm_check "ksmd scans them four times more" wait_scans 4
both=$(ksmd-probe pages $ranges_a $ranges_b)
one=$(ksmd-probe pages $ranges_a)
vm_diag "one domain: a: $one; a and b: $both"
vm_check "in one domain every page of b shares a's page frame" \
	test "$(vm_field distinct "$both")" -eq "$(vm_field distinct "$one")"

vm_check "workload a reads exactly its own content" vm_workload_verify a
vm_check "workload b reads exactly its own content" vm_workload_verify b
kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
sed 's/^/# ksmd: /' /tmp/ksmd.log
vm_finish
