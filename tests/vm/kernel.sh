#!/usr/bin/env bash
# Makes sure the guest kernel is in the cache and prints its unpacked tree:
#   $OVN_IPSEC_CACHE/vm/kernel/<kver>/{boot/vmlinuz-<kver>,lib/modules/<kver>/…}
# The .deb is fetched with `apt-get download` (never installed on the host), unpacked with
# `dpkg -x`, and depmod is run on it because the package ships no modules.dep.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kver=$(vm_kver)
tree="$VM_CACHE/kernel/$kver"
if [ -f "$tree/.complete" ]; then
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
        (cd "$VM_CACHE/debs" && apt-get download -q "$pkg" >&2) ||
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
echo "$tree"
