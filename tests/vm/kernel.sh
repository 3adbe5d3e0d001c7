#!/usr/bin/env bash
# Makes sure the guest kernel is in the cache and prints its unpacked tree:
#   $OVN_IPSEC_CACHE/vm/kernel/<kver>/{boot/vmlinuz-<kver>,lib/modules/<kver>/…}
# The .deb is fetched with `apt-get download` (never installed on the host), unpacked with
# `dpkg -x`, and depmod is run on it because the package ships no modules.dep.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kver=$(vm_kver)
tree="$VM_CACHE/kernel/$kver"
if [ -f "$tree/.complete" ] && [ -f "$tree/.vmlinux-done" ]; then
    echo "$tree"
    exit 0
fi
vm_need_cmd depmod dpkg apt-get
mkdir -p "$VM_CACHE/debs" "$VM_CACHE/kernel"
exec 9>"$VM_CACHE/kernel.lock"
flock 9
if [ ! -f "$tree/.complete" ]; then
    pkg="linux-image-$kver"
    deb=$(find "$VM_CACHE/debs" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
    if [ -z "$deb" ]; then
        vm_log "downloading $pkg into $VM_CACHE/debs"
        (cd "$VM_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) ||
            vm_die "apt-get download $pkg failed (run apt-get update, or set OVN_IPSEC_VM_KVER to a version that exists)"
        deb=$(find "$VM_CACHE/debs" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n1)
    fi
    vm_log "unpacking $(basename "$deb")"
    tmp="$tree.tmp.$$"
    rm -rf "$tmp"
    dpkg -x "$deb" "$tmp"
    [ -f "$tmp/boot/vmlinuz-$kver" ] || vm_die "$deb has no boot/vmlinuz-$kver"
    depmod -b "$tmp" "$kver"
    touch "$tmp/.complete"
    rm -rf "$tree"
    mv "$tmp" "$tree"
fi
# qemu boots an uncompressed ELF vmlinux through its PVH entry point, skipping the bzImage's
# self-decompression (xz), which costs ~3 s per boot under software emulation. Fall back to the
# bzImage when the kernel has no PVH entry or the payload is not xz.
if [ ! -f "$tree/.vmlinux-done" ]; then
    vmlinuz="$tree/boot/vmlinuz-$kver"
    if grep -q '^CONFIG_PVH=y' "$tree/boot/config-$kver" 2>/dev/null && command -v xz >/dev/null; then
        off=$(grep -aob $'\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
        if [ -n "$off" ] &&
            xz -dc --single-stream < <(tail -c +$((off + 1)) "$vmlinuz") >"$tree/boot/vmlinux.tmp" 2>/dev/null &&
            [ "$(head -c 4 "$tree/boot/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            mv "$tree/boot/vmlinux.tmp" "$tree/boot/vmlinux-$kver"
        else
            rm -f "$tree/boot/vmlinux.tmp"
            vm_log "could not extract an ELF vmlinux from $vmlinuz: booting the bzImage (slower)"
        fi
    fi
    touch "$tree/.vmlinux-done"
fi
echo "$tree"
