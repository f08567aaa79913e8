#!/bin/sh
# vm-timeout: 300
# A read-only long-term pin of merged pages, as vfio takes for a device behind
# an IOMMU: QEMU's edu device (a DMA engine) bound to vfio-pci behind the
# emulated intel-iommu (vm-test boots q35 with both) reads a process's pages
# by DMA. On 6.12 the pin unshares merged pages and the device reads what the
# process wrote; on 6.1 it does not (the limit the README states) and so,
# once the process has pins, none of its pages merge.
. /lib/ksmd-vm.sh

edu=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		edu=$d
	fi
done
vm_check "QEMU's edu device is on the PCI bus" test -n "$edu"
vm_check "the IOMMU puts it in a group" test -e "$edu/iommu_group"
# The emulated IOMMU does no interrupt remapping; the test uses no interrupts.
echo Y > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts
echo vfio-pci > "$edu/driver_override"
echo "${edu##*/}" > /sys/bus/pci/drivers_probe
vm_check "vfio-pci drives it" test "$(basename "$(readlink "$edu/driver")")" = vfio-pci
group=$(basename "$(readlink "$edu/iommu_group")")
vm_diag "edu device ${edu##*/}, IOMMU group $group"

vm_check "ksmd_helper loads" insmod "$KSMD_HELPER_KO"
vm_run_tap helper-edge-test dma-pin "$group"
vm_check "the module owns no page once the processes exited" \
	test "$(vm_field pages_owned "$(ksmd-probe info)")" = 0
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
