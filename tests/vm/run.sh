#!/usr/bin/env bash
# Usage: tests/vm/run.sh SHARE_DIR SCRIPT
#
# Boots a Debian kernel under qemu with SHARE_DIR mounted at /mnt (9p), runs
# `/bin/sh /mnt/SCRIPT` inside (SCRIPT is relative to SHARE_DIR), streams the guest's console to
# stdout and exits with the script's exit status. When the script could not run it says why
# on stderr (lines starting with "vm:") and exits with
#   124  the script or the guest timed out,
#   125  the rig failed: no kernel, qemu failed, the guest never came up or panicked.
# Environment (see tests/vm/README.md): OVN_IPSEC_VM_TIMEOUT (seconds, default 600),
# OVN_IPSEC_VM_ACCEL (tcg|kvm), OVN_IPSEC_VM_MEM (MiB, default 1024), OVN_IPSEC_VM_SMP (1),
# OVN_IPSEC_VM_EXTRA, OVN_IPSEC_VM_MODULES, OVN_IPSEC_VM_KVER, OVN_IPSEC_VM_BOOT_TIMEOUT,
# OVN_IPSEC_VM_LOG (keep the console log at this path), OVN_IPSEC_VM_APPEND (more kernel
# command line), OVN_IPSEC_CACHE.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 2 ] || { echo "usage: $0 SHARE_DIR SCRIPT" >&2; exit 2; }
share=$(cd "$1" 2>/dev/null && pwd) || vm_die "share folder $1 does not exist"
script=$2
script=${script#./}
case "$script" in
    /* | *..* | '') vm_die "SCRIPT must be a path relative to SHARE_DIR without '..': $2" ;;
    *[[:space:]]*) vm_die "SCRIPT must not contain white space: $2" ;;
esac
[ -f "$share/$script" ] || vm_die "$share/$script does not exist"
timeout_s=${OVN_IPSEC_VM_TIMEOUT:-600}
case "$timeout_s" in '' | *[!0-9]*) vm_die "OVN_IPSEC_VM_TIMEOUT must be whole seconds: $timeout_s" ;; esac
boot_timeout=${OVN_IPSEC_VM_BOOT_TIMEOUT:-120}
mem=${OVN_IPSEC_VM_MEM:-1024}
smp=${OVN_IPSEC_VM_SMP:-1}

vm_need_cmd qemu-system-x86_64 timeout
# OVN_IPSEC_VM_DISK: a raw ext4 image to boot as the root file system (virtio disk), its own
# /lib/systemd/systemd as PID 1; the disk's init must run the script and report (see
# tests/systemd/run-script.sh).
disk=${OVN_IPSEC_VM_DISK:-}
if [ -n "$disk" ]; then
    [ -f "$disk" ] || vm_die "OVN_IPSEC_VM_DISK $disk does not exist"
    export OVN_IPSEC_VM_MODULES="virtio_blk ext4 ${OVN_IPSEC_VM_MODULES:-}"
fi
tree=$(bash "$VM_DIR/kernel.sh") || vm_die "could not get the guest kernel (see above)"
kver=$(basename "$tree")
# The uncompressed vmlinux (PVH entry) when kernel.sh could extract it: it boots ~3 s faster.
kernel="$tree/boot/vmlinux-$kver"
[ -f "$kernel" ] || kernel="$tree/boot/vmlinuz-$kver"
initrd=$(VM_KERNEL_TREE="$tree" bash "$VM_DIR/initramfs.sh") || vm_die "could not build the initramfs (see above)"

work=$(mktemp -d "${TMPDIR:-/tmp}/ovn-ipsec-vm.XXXXXX")
qpid=
tpid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
    [ -n "$tpid" ] && kill "$tpid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log="$work/console.log"
: >"$log"
nonce=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')

# qemu_cmd ACCEL APPEND...: the qemu command line.
qemu_cmd() {
    local accel=$1 clock=
    shift
    # Under emulation the guest calibrates its TSC against a timer while the host may be busy;
    # a bad calibration makes the guest clock run fast (seen: 65 s of uptime in 9 s), so
    # timeouts inside the guest would fire early. The emulated HPET always ticks at its rate.
    [ "$accel" = tcg ] && clock=clocksource=hpet
    # shellcheck disable=SC2054 # commas belong to qemu's option syntax
    local -a a=(qemu-system-x86_64 -machine q35 -nodefaults -no-user-config -display none -no-reboot
        -m "$mem" -smp "$smp" -kernel "$kernel" -initrd "$initrd"
        -chardev "file,id=con,path=${log//,/,,}" -serial chardev:con
        -device virtio-rng-pci
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
        -append "console=ttyS0 quiet panic=-1 random.trust_cpu=on $clock ${OVN_IPSEC_VM_APPEND:-} $*")
    if [ "$accel" = kvm ]; then
        a+=(-accel kvm -cpu host)
    else
        # shellcheck disable=SC2054
        a+=(-accel tcg,thread=multi -cpu max)
    fi
    printf '%s\0' "${a[@]}"
}

# choose_accel: OVN_IPSEC_VM_ACCEL if set; otherwise kvm when the CPU has VMX/SVM, /dev/kvm is
# usable and a probe boot under KVM powers off (some paravirtual /dev/kvm make stock kernels
# hang); the probe's answer is cached per host kernel and guest kernel.
choose_accel() {
    case "${OVN_IPSEC_VM_ACCEL:-}" in
        tcg | kvm) echo "$OVN_IPSEC_VM_ACCEL"; return ;;
        '') ;;
        *) vm_die "OVN_IPSEC_VM_ACCEL must be tcg or kvm: $OVN_IPSEC_VM_ACCEL" ;;
    esac
    if ! grep -Eq '\b(vmx|svm)\b' /proc/cpuinfo || [ ! -w /dev/kvm ]; then
        echo tcg
        return
    fi
    local mark
    mark="$VM_CACHE/accel-$(uname -r)-$kver"
    if [ ! -f "$mark" ]; then
        local -a cmd
        mapfile -d '' cmd < <(qemu_cmd kvm "ovn_ipsec.nonce=$nonce ovn_ipsec.probe=1")
        timeout -k 5 30 "${cmd[@]}" </dev/null >/dev/null 2>&1 || true
        if grep -aq "ovn-ipsec-vm $nonce probe-ok" "$log"; then
            echo kvm >"$mark"
        else
            echo tcg >"$mark"
            vm_log "KVM is advertised but a probe boot did not finish: using software emulation (TCG)"
        fi
        : >"$log"
    fi
    cat "$mark"
}
accel=$(choose_accel)

root_arg=
[ -n "$disk" ] && root_arg="ovn_ipsec.root=/dev/vda"
mapfile -d '' cmd < <(qemu_cmd "$accel" "ovn_ipsec.nonce=$nonce ovn_ipsec.script=$script ovn_ipsec.timeout=$timeout_s $root_arg")
# qemu's option syntax takes a doubled comma as a literal one.
cmd+=(-virtfs "local,path=${share//,/,,},mount_tag=host,security_model=none,id=host")
if [ -n "$disk" ]; then
    # The root disk is scratch: cache=unsafe skips flushes, which are slow under emulation.
    cmd+=(-drive "file=${disk//,/,,},format=raw,if=virtio,cache=unsafe")
fi
vm_log "booting $kver ($accel), running $script from $share (timeout ${timeout_s}s)"
start=$(date +%s.%N)
timeout -k 10 $((timeout_s + boot_timeout)) "${cmd[@]}" </dev/null >"$work/qemu.out" 2>&1 &
qpid=$!
# The console streams to stdout as it is written, without the serial line's carriage returns;
# tail stops once qemu has exited.
tail -n +1 -s 0.2 -f --pid="$qpid" "$log" | sed -u 's/\r$//' &
tpid=$!
set +e
wait "$qpid"
qrc=$?
set -e
qpid=
wait "$tpid" 2>/dev/null || true
tpid=
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1fs", e - s }')
if [ -n "${OVN_IPSEC_VM_LOG:-}" ]; then tr -d '\r' <"$log" >"$OVN_IPSEC_VM_LOG"; fi

tag="ovn-ipsec-vm $nonce"
# Not anchored at line start: a script's last line may lack its newline. The nonce keeps the
# match unique.
result=$(tr -d '\r' <"$log" | grep -ao "$tag \(exit\|timeout\|error\).*" | tail -n1 || true)
show_tail() {
    echo "vm: ---- last 40 lines of the guest console ----" >&2
    tr -d '\r' <"$log" | tail -n 40 >&2
    if [ -s "$work/qemu.out" ]; then
        echo "vm: ---- qemu said ----" >&2
        tail -n 20 "$work/qemu.out" >&2
    fi
    echo "vm: ----" >&2
}
# "time T0 T1": guest uptime when the script started and ended.
times=$(tr -d '\r' <"$log" | sed -n "s/.*$tag time \([0-9.]*\) \([0-9.]*\)$/\1 \2/p" | tail -n1)
if [ -n "$times" ]; then
    # shellcheck disable=SC2086
    set -- $times
    elapsed="$elapsed: kernel up $(printf "%.1f" "$1")s when the script started, script $(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }')s"
fi
case "$result" in
    "$tag exit "*)
        rc=${result#"$tag exit "}
        if [ "$rc" -eq 0 ]; then
            vm_log "$script passed (qemu ran ${elapsed})"
        else
            show_tail
            vm_log "$script FAILED with exit status $rc (qemu ran ${elapsed})"
        fi
        exit "$rc"
        ;;
    "$tag timeout "*)
        show_tail
        vm_log "$script TIMED OUT after ${timeout_s}s (OVN_IPSEC_VM_TIMEOUT) and was killed"
        exit "$VM_EXIT_TIMEOUT"
        ;;
    "$tag error "*)
        show_tail
        vm_die "the guest could not run $script: ${result#"$tag error: "}"
        ;;
esac
show_tail
if grep -aq 'Kernel panic' "$log"; then
    vm_die "the guest kernel panicked (see the console above)"
elif [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
    if grep -aq "$tag start" "$log"; then
        vm_log "the guest hung: $script started but the guest did not power off within $((timeout_s + boot_timeout))s"
        exit "$VM_EXIT_TIMEOUT"
    fi
    hint=
    [ "$accel" = kvm ] && hint=" (KVM was used: try OVN_IPSEC_VM_ACCEL=tcg)"
    vm_die "the guest never came up: $script had not started after $((timeout_s + boot_timeout))s (OVN_IPSEC_VM_BOOT_TIMEOUT + OVN_IPSEC_VM_TIMEOUT)$hint"
elif grep -aq "$tag start" "$log"; then
    vm_die "the guest stopped while $script was running, without reporting its status (qemu exit status $qrc)"
else
    vm_die "the guest never came up (qemu exit status $qrc)"
fi
