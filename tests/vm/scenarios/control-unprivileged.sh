#!/bin/sh
# vm-timeout: 200
# The control plane with the module loaded: an unprivileged user in
# AllowGroups= registers its own process and is refused another user's; root
# registers anything; the daemon merges what was registered.
. /lib/ksmd-vm.sh

# busybox sh runs its own applets before PATH: name util-linux setpriv by its path.
NOBODY="/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups"
SOCK=/run/ksmd/ksmd.sock
mkdir -p /etc/ksmd-test
printf '[Control]\nSocketGroup=65534\nAllowGroups=65534\n[Scan]\nSleep=5ms\n' > /etc/ksmd-test/ksmd.conf

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_check "ksmd serves its socket" vm_ksmd_start "$SOCK" --config-dir /etc/ksmd-test
vm_check "ksmd merges (the module is loaded)" sh -c "ksmctl --socket $SOCK status | grep -q 'mode: merge'"

# One workload as root, one as nobody.
vm_workload_start root --procs 2 --mib 4 --zero 0.25
vm_workload_start_as 65534 nobody --procs 2 --mib 4 --zero 0.25 --seed 7
root_proc=$(vm_workload_pids root | head -n 1)
nobody_pids=$(vm_workload_pids nobody)

vm_check_status "nobody is refused before AllowGroups= lets it in (status as uid 65533)" 4 \
	/usr/bin/setpriv --reuid=65533 --regid=65533 --clear-groups ksmctl --socket "$SOCK" status
for p in $nobody_pids; do
	vm_check "nobody registers its own process $p" sh -c "$NOBODY ksmctl --socket $SOCK register $p > /dev/null"
done
vm_check_status "nobody may not register root's process $root_proc" 4 \
	$NOBODY ksmctl --socket "$SOCK" register "$root_proc"
vm_check "root registers its own process" sh -c "ksmctl --socket $SOCK register $root_proc > /dev/null"
vm_check "nobody lists only its two regions" sh -c "[ \$($NOBODY ksmctl --socket $SOCK --json list | grep -o '\"id\"' | wc -l) -eq 2 ]"

# The daemon merges nobody's duplicates: the helper reports pages saved.
i=0
while [ $i -lt 600 ]; do
	saved=$(ksmctl --socket "$SOCK" --json status | sed -n 's/.*"saving_bytes":\([0-9]*\).*/\1/p')
	[ "${saved:-0}" -ge 4194304 ] && break
	sleep 0.1
	i=$((i + 1))
done
vm_diag "saving reported by ksmd: ${saved:-0} bytes"
vm_check "the registered memory is merged (>= 4 MiB saved)" test "${saved:-0}" -ge 4194304

vm_check "root's workload reads exactly its own content" vm_workload_verify root
vm_check "nobody's workload reads exactly its own content" vm_workload_verify nobody
kill "$daemon"
wait "$daemon"
vm_check "ksmd exits cleanly on SIGTERM" test $? -eq 0
cat /tmp/ksmd.log | sed 's/^/# ksmd: /'
vm_finish
