#!/bin/sh
# vm-timeout: 300
# The module is unloaded while ksmd runs, once in the middle of merging and
# once when ksmd has converged and has nothing to merge: each time ksmd says
# clearly that it falls back to estimate mode, keeps scanning and finishes
# normally; nothing is lost (every process reads exactly its own content,
# merged pages included); the module loads again afterwards and starts clean.
. /lib/ksmd-vm.sh

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_check "the workload starts" \
	vm_workload_start wl --procs 4 --mib 32 --dup 0.4 --zero 0.2 --volatile 0.05 --seed 33
regs=$(vm_register_processes wl)
# Slow enough that merging spans seconds, so the unload lands in the middle of it.
ksmd --scans=6 --pages-to-scan=128 --sleep=10ms $regs > /tmp/ksmd.out 2> /tmp/ksmd.err &
ksmd_pid=$!

# Wait for shared pages (not only zero merges), so that pages mapping the
# module's own pages outlive it.
owned=0
i=0
while [ "$owned" -eq 0 ] && [ "$i" -lt 600 ]; do
	owned=$(vm_field pages_owned "$(ksmd-probe info)")
	owned=${owned:-0}
	i=$((i + 1))
	sleep 0.1
done
vm_diag "ksmd made $owned shared pages so far"
vm_check "ksmd starts merging" test "$owned" -gt 0
info=$(ksmd-probe info)
vm_diag "module just before rmmod: $info"
vm_check "the module unloads while ksmd merges" vm_rmmod_running ksmd_helper
vm_check "ksmd is still running after the unload" kill -0 "$ksmd_pid"

wait "$ksmd_pid"
status=$?
sed -e 's/^/# ksmd: /' /tmp/ksmd.err /tmp/ksmd.out
vm_check "ksmd finishes its 6 scans and exits 0" test "$status" -eq 0
vm_check "ksmd says clearly that it falls back to estimate mode" \
	grep -q 'ksmd_helper module stopped answering.*falling back to estimate mode' /tmp/ksmd.err
vm_check "ksmd ends in estimate mode" grep -q '^mode=estimate ' /tmp/ksmd.out
saving=$(sed -n 's/.* saving_bytes=\([0-9]*\).*/\1/p' /tmp/ksmd.out)
vm_diag "ksmd's final estimate: $saving bytes"
vm_check "ksmd still reports a saving estimate" test "${saving:-0}" -gt 0

vm_check "nothing is lost: every process reads exactly its own content" vm_workload_verify wl

# Again, but unloaded once ksmd has converged: no merge is due, it must
# notice at the end of its next full scan.
vm_check "idle: ksmd_helper loads again" insmod "$KSMD_HELPER_KO"
vm_workload_start wl2 --procs 2 --mib 8 --dup 0.5 --zero 0.2 --seed 34
regs=$(vm_register_processes wl2)
ksmd --scans=30 --sleep=200ms $regs > /tmp/ksmd2.out 2> /tmp/ksmd2.err &
ksmd_pid=$!
# Converged: the module's merge count holds still for 3 s (about 15 of ksmd's batches).
last=-1
merged=0
i=0
while [ "$i" -lt 300 ]; do
	sleep 3
	merged=$(vm_field merged "$(ksmd-probe info)")
	[ "${merged:-0}" -gt 0 ] && [ "$merged" = "$last" ] && break
	last=$merged
	i=$((i + 1))
done
vm_diag "the module merged $merged items"
vm_check "idle: ksmd converged" test "${merged:-0}" -gt 0
vm_check "idle: the module unloads while ksmd has nothing to merge" \
	vm_rmmod_running ksmd_helper
wait "$ksmd_pid"
status=$?
sed -e 's/^/# ksmd: /' /tmp/ksmd2.err /tmp/ksmd2.out
vm_check "idle: ksmd finishes its scans and exits 0" test "$status" -eq 0
vm_check "idle: ksmd still notices and says it falls back to estimate mode" \
	grep -q 'ksmd_helper module stopped answering.*falling back to estimate mode' /tmp/ksmd2.err
vm_check "idle: ksmd ends in estimate mode" grep -q '^mode=estimate ' /tmp/ksmd2.out
vm_check "idle: nothing is lost, every process reads exactly its own content" vm_workload_verify wl2

vm_check "ksmd_helper loads a third time" insmod "$KSMD_HELPER_KO"
info=$(ksmd-probe info)
vm_diag "module after reload: $info"
vm_check "the reloaded module starts clean" test "$(vm_field pages_owned "$info")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
