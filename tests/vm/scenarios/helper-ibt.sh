#!/bin/sh
# vm-timeout: 300
# IBT: the module reaches every kernel function it resolves by a direct
# branch, so that landing pads sealed against indirect calls do not matter.
# QEMU cannot enforce IBT, so this checks the mechanism on the running kernel:
#  - the module's text, as the kernel patched it at load (read through
#    /proc/kcore and disassembled with objdump), holds no indirect call or jump
#    at all, and no call into a retpoline thunk; every resolved function is the
#    target of a direct call, and each static call trampoline jumps directly to
#    one of them;
#  - on the lines built with IBT (6.12, 7) those functions' landing pads are
#    really sealed in this guest, and the module's own count of sealed
#    functions agrees; on 6.1 (built without IBT) none carries ENDBR64;
#  - loaded as if the CPU enforced IBT (test_assume_ibt=1), the module loads
#    and merges pages through those sealed functions.
. /lib/ksmd-vm.sh

case $KSMD_VM_KERNEL_LINE in
6.1) FUNCS="mm_access page_add_file_rmap page_remove_rmap split_huge_page_to_list" ;;
6.12) FUNCS="mm_access folio_add_file_rmap_ptes folio_remove_rmap_ptes split_huge_page_to_list_to_order" ;;
*) FUNCS="ptrace_may_access folio_add_file_rmap_ptes folio_remove_rmap_ptes __split_huge_page_to_list_to_order" ;;
esac
FUNCS="kallsyms_lookup_name __mmu_notifier_invalidate_range_start __mmu_notifier_invalidate_range_end
ptep_clear_flush pidfd_get_task lru_add_drain_all folio_free_swap __mem_cgroup_charge __mem_cgroup_uncharge
$FUNCS"
nfuncs=$(echo $FUNCS | wc -w)

# The address of kernel (not module) symbol $1, as /proc/kallsyms prints it.
ksym() {
	awk -v n="$1" 'NF == 3 && $3 == n { print $1; exit }' /proc/kallsyms
}

# The 4 bytes at address $1, as "66 0f 1f 00".
first4() {
	kcore-read "$1" 4 | od -An -tx1 | sed -e 's/^ *//; s/ *$//'
}

dmesg -c > /dev/null
vm_check "ksmd_helper loads as if the CPU enforced IBT" insmod "$KSMD_HELPER_KO" test_assume_ibt=1
info=$(dmesg | sed -n 's/.*ksmd_helper: calls \([0-9]*\) kernel functions directly (static calls), \([0-9]*\) of them sealed.*/\1 \2/p' | tail -n 1)
vm_diag "module: ${info:-no summary line}"
set -- $info
if [ "${1:-0}" -eq "$nfuncs" ]; then
	vm_ok "the module calls all $nfuncs resolved kernel functions directly"
else
	vm_not_ok "the module calls all $nfuncs resolved kernel functions directly (its log: '${info}')"
fi
module_sealed=${2:-x}

# The module's executable sections (sizes from the .ko, addresses from sysfs);
# .init.text is gone after the load.
objdump -h "$KSMD_HELPER_KO" | awk '
	$1 ~ /^[0-9]+$/ { name = $2; size = $3; next }
	/CODE/ && name != "" && name !~ /^\.init/ { print name, size }
	{ name = "" }' > /tmp/sections
: > /tmp/module.dis
nsec=0
while read -r name size; do
	f=/sys/module/ksmd_helper/sections/$name
	[ -e "$f" ] || continue
	addr=$(cat "$f")
	[ "$((0x$size))" -gt 0 ] || continue
	if ! kcore-read "${addr#0x}" "$((0x$size))" > /tmp/section.bin; then
		vm_not_ok "read $name of the loaded module through /proc/kcore"
		continue
	fi
	objdump -D -b binary -m i386:x86-64 --adjust-vma="$addr" /tmp/section.bin |
		sed -e "s/^/$name: /" >> /tmp/module.dis
	nsec=$((nsec + 1))
	vm_diag "section $name at $addr, 0x$size bytes"
done < /tmp/sections
ninsn=$(grep -c '^[^:]*: *[0-9a-f]*:	' /tmp/module.dis)
vm_diag "$nsec sections, $ninsn instructions disassembled"
if [ "$nsec" -ge 2 ] && [ "$ninsn" -gt 1000 ]; then
	vm_ok "the loaded module's text was read and disassembled"
else
	vm_not_ok "the loaded module's text was read and disassembled ($nsec sections, $ninsn instructions)"
fi

indirect=$(grep -E '	(notrack )?(call|jmp)[a-z]*[[:space:]]+\*' /tmp/module.dis)
if [ -z "$indirect" ]; then
	vm_ok "no indirect call or jump anywhere in the module's text"
else
	vm_not_ok "no indirect call or jump anywhere in the module's text"
	echo "$indirect" | head -20 | sed -e 's/^/# /'
fi
thunked=""
for a in $(awk 'NF == 3 && $3 ~ /^__x86_indirect_(call_|jump_)?thunk/ { print $1 }' /proc/kallsyms); do
	hit=$(grep -E "	(call|jmp)[a-z]*[[:space:]]+0x$a\$" /tmp/module.dis | head -n 3)
	[ -z "$hit" ] || thunked="$thunked$hit
"
done
if [ -z "$thunked" ]; then
	vm_ok "no call into a retpoline thunk (an indirect call in disguise)"
else
	vm_not_ok "no call into a retpoline thunk (an indirect call in disguise)"
	echo "$thunked" | sed -e 's/^/# /'
fi

# Every resolved function: a direct call site, its landing pad's state.
missing="" targets="" sealed=0 endbr=0
for f in $FUNCS; do
	a=$(ksym "$f")
	if [ -z "$a" ]; then
		missing="$missing $f(not in kallsyms)"
		continue
	fi
	targets="$targets $a"
	sites=$(grep -cE "	(call|jmp)[a-z]*[[:space:]]+0x$a\$" /tmp/module.dis)
	pad=$(first4 "$a")
	# The seal: OSP NOP3 on 6.12, a NOPL carrying UDB on 7 (gen_endbr_poison()).
	case $pad in
	"66 0f 1f 00"|"0f 1f 40 d6") sealed=$((sealed + 1)); state="sealed ($pad)" ;;
	"f3 0f 1e fa") endbr=$((endbr + 1)); state=ENDBR64 ;;
	*) state="no landing pad ($pad)" ;;
	esac
	vm_diag "$f at $a: $sites direct branches from the module; $state"
	# The trampoline counts as one; a call site must exist besides it.
	[ "$sites" -ge 2 ] || missing="$missing $f($sites)"
done
if [ -z "$missing" ]; then
	vm_ok "every resolved kernel function is the target of direct calls in the module"
else
	vm_not_ok "every resolved kernel function is the target of direct calls in the module; not:$missing"
fi

# Each static call trampoline is one direct jump to one of those functions.
ntramp=0 bad=""
for t in $(awk '$4 == "[ksmd_helper]" && $3 ~ /^__SCT__kh_/ { print $1 "=" $3 }' /proc/kallsyms); do
	a=${t%%=*} name=${t#*=}
	ntramp=$((ntramp + 1))
	kcore-read "$a" 8 > /tmp/tramp.bin
	insn=$(objdump -D -b binary -m i386:x86-64 --adjust-vma="0x$a" /tmp/tramp.bin |
		sed -n 's/^ *[0-9a-f]*:	[0-9a-f ]*	//p' | head -n 1)
	to=$(echo "$insn" | sed -n 's/^jmp[a-z]* *0x\([0-9a-f]*\)$/\1/p')
	case " $targets " in
	*" $to "*) ;;
	*) bad="$bad $name($insn)" ;;
	esac
done
if [ "$ntramp" -eq "$nfuncs" ] && [ -z "$bad" ]; then
	vm_ok "the module's $ntramp static call trampolines each jump directly to a resolved function"
else
	vm_not_ok "the module's static call trampolines ($ntramp of $nfuncs) each jump directly to a resolved function:$bad"
fi

vm_diag "landing pads: $sealed sealed, $endbr ENDBR64, of $nfuncs"
case $KSMD_VM_KERNEL_LINE in
6.1)
	vm_check "6.1 is built without IBT: no resolved function has a landing pad" [ "$sealed" -eq 0 -a "$endbr" -eq 0 ]
	;;
*)
	vm_check "IBT is built in: the resolved functions' landing pads are sealed in this guest ($sealed of $nfuncs)" \
		[ "$sealed" -gt 0 -a $((sealed + endbr)) -eq "$nfuncs" ]
	;;
esac
vm_check "the module's count of sealed functions ($module_sealed) agrees" [ "$module_sealed" = "$sealed" ]

# Merging goes through every one of the direct calls (rmap, notifiers, flush,
# pidfd and access checks, memcg charge, the THP split) with IBT assumed.
vm_run_tap helper-merge-test 512
vm_check "ksmd_helper unloads" rmmod ksmd_helper
vm_finish
