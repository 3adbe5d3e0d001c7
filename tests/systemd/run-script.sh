#!/bin/sh
# In-guest runner for the rig's root-disk mode (tests/vm/run.sh with OVN_IPSEC_VM_DISK): the
# disk's systemd starts this (ovn-ipsec-test.service), and it does what the rig's own init does
# for an initramfs guest: runs `/bin/sh /mnt/SCRIPT` with the timeout from the kernel command
# line, reports with the tagged lines run.sh waits for, and powers the guest off.
nonce="unset"
script=
timeout=600
for w in $(cat /proc/cmdline); do
    case "$w" in
        ovn_ipsec.nonce=*) nonce=${w#*=} ;;
        ovn_ipsec.script=*) script=${w#*=} ;;
        ovn_ipsec.timeout=*) timeout=${w#*=} ;;
    esac
done
tag="ovn-ipsec-vm $nonce"

power_off() {
    sync
    # isa-debug-exit: qemu exits at once. The root disk is scratch, so no clean unmount.
    printf '\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    systemctl poweroff --force --force
}

if [ ! -f "/mnt/$script" ]; then
    echo "$tag error: /mnt/$script does not exist in the guest"
    power_off
fi
echo "$tag start $script"
cd /mnt || power_off
t0=$(cut -d' ' -f1 /proc/uptime)
timeout -s KILL "$timeout" /bin/sh "/mnt/$script" </dev/null
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
cd /
echo "$tag time $t0 $t1"
if [ "$rc" -eq 137 ]; then
    echo "$tag timeout $timeout"
else
    echo "$tag exit $rc"
fi
power_off
