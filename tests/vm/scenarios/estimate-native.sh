#!/bin/sh
# vm-timeout: 400
# The daemon's estimate-mode scan on the guest kernel (soft-dirty change
# tracking works here, unlike on some hosts): the estimate must be exact.
. /lib/ksmd-vm.sh

# The daemon's host probe on a kernel whose build is known: Debian's cloud
# kernels have CONFIG_MEM_SOFT_DIRTY and THP, map the zero page on a read
# fault, and have PAGEMAP_SCAN from 6.7 on. The zram swap gives it a page to
# page out.
vm_zram_swap
host=$(ksmd-probe host)
echo "$host" | sed 's/^/# /'
answer() { echo "$host" | sed -n "s/^$1 \([a-z]*\):.*/\1/p"; }
release=$(uname -r)
major=${release%%.*}
minor=${release#*.}
minor=${minor%%[!0-9]*}
scan=no
[ "$major" -gt 6 ] || [ "$major" -eq 6 -a "$minor" -ge 7 ] && scan=yes
for f in pagemap pagemap-exclusive pagemap-shared pagemap-swap pfn zero-page soft-dirty process-vm-readv; do
	vm_check "host probe on $release: $f yes" test "$(answer "$f")" = yes
done
vm_check "host probe on $release: pagemap-scan $scan (Linux 6.7 added it)" test "$(answer pagemap-scan)" = "$scan"
vm_check "host probe on $release: thp answered, not refused" test "$(answer thp)" != no
swapoff /dev/zram0

export CMOCKA_MESSAGE_OUTPUT=TAP
vm_run_tap test-estimate-native /usr/bin/ksmd
vm_finish
