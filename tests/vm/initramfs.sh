#!/usr/bin/env bash
# Builds (or reuses) the guest's initramfs and prints its path:
#   $OVN_IPSEC_CACHE/vm/initramfs/<key>.cpio
# The key is a hash of everything that goes in: the kernel version, this folder's scripts and
# lists, OVN_IPSEC_VM_EXTRA / OVN_IPSEC_VM_MODULES and the files they name (path, size, mtime),
# the host's base binaries, and the host's package database (libraries come from it).
#
# Layout: a merged /usr like Debian 12's (/bin, /sbin, /lib, /lib64 are symlinks into /usr), so
# any host path resolves the same way in the guest. Files are copied with the libraries `ldd`
# lists. busybox provides every command no real binary provides; /bin/sh is dash.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vm_need_cmd cpio busybox modprobe ldd sha256sum flock

# Real binaries every guest gets (iproute2's ip/tc/ss/bridge, nft, tcpdump, dash).
BASE_BINARIES="/usr/sbin/ip /usr/sbin/tc /usr/bin/ss /usr/sbin/bridge /usr/sbin/nft /usr/bin/tcpdump /usr/bin/dash"
# glibc and the GCC runtime, so that dynamically linked binaries placed in the share run too.
BASE_LIBS="ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libresolv.so.2"
BASE_ETC="/etc/protocols /etc/services /etc/ethertypes"

tree=${VM_KERNEL_TREE:-$(bash "$VM_DIR/kernel.sh")}
kver=$(basename "$tree")

# extra_entries: OVN_IPSEC_VM_EXTRA split into entries, with @LISTFILE expanded (one entry per
# line, blank lines and #-comments skipped). An entry is PATH or SRC=DEST.
extra_entries() {
    local e line
    for e in ${OVN_IPSEC_VM_EXTRA:-}; do
        case "$e" in
            @*)
                [ -f "${e#@}" ] || vm_die "OVN_IPSEC_VM_EXTRA: list file ${e#@} does not exist"
                while read -r line; do
                    line=${line%%#*}
                    for e2 in $line; do echo "$e2"; done
                done <"${e#@}"
                ;;
            *) echo "$e" ;;
        esac
    done
}

# stat_inputs PATH...: path, size and mtime of each path (recursively for folders).
stat_inputs() {
    local p
    for p in "$@"; do
        [ -e "$p" ] || [ -L "$p" ] || vm_die "cannot put $p into the guest: it does not exist"
        find "$p" -printf '%p %s %T@ %l\n' | LC_ALL=C sort
    done
}

mapfile -t extras < <(extra_entries)
extra_srcs=()
for e in "${extras[@]}"; do extra_srcs+=("${e%%=*}"); done

key=$(
    {
        echo "kver $kver"
        cat "$VM_DIR/init" "$VM_DIR/modules.list" "$VM_DIR/initramfs.sh" "$VM_DIR/lib.sh"
        echo "modules ${OVN_IPSEC_VM_MODULES:-}"
        printf 'extra %s\n' "${extras[@]}"
        # shellcheck disable=SC2086
        stat_inputs $BASE_BINARIES $BASE_ETC "$(command -v busybox)" /var/lib/dpkg/status "${extra_srcs[@]}"
    } | sha256sum | cut -c1-16
)
out_dir="$VM_CACHE/initramfs"
out="$out_dir/$key.cpio"
if [ -f "$out" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$out_dir"
exec 9>"$out_dir/.lock"
flock 9
if [ -f "$out" ]; then
    echo "$out"
    exit 0
fi
vm_log "building the initramfs ($key)"
root="$out_dir/$key.root.$$"
rm -rf "$root"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,proc,sys,dev,tmp,run,mnt,root,var}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
ln -s ../run "$root/var/run"

# guest_path HOSTPATH: where a host path lives in the merged-/usr guest.
guest_path() {
    case "$1" in
        /bin/* | /sbin/* | /lib/* | /lib64/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}

declare -A added=()
# add SRC DEST: copy SRC to DEST in the guest, following symlinks (each link is recreated, its
# target added too), folders recursively, and for ELF files the libraries `ldd` lists.
add() {
    local src=$1 dest=$2 t lib f
    [ -n "${added[$dest]:-}" ] && return 0
    added[$dest]=1
    mkdir -p "$root$(dirname "$dest")"
    if [ -L "$src" ]; then
        t=$(readlink "$src")
        ln -sfn "$t" "$root$dest"
        case "$t" in
            /*) add "$t" "$(guest_path "$t")" ;;
            *) add "$(dirname "$src")/$t" "$(dirname "$dest")/$t" ;;
        esac
    elif [ -d "$src" ]; then
        mkdir -p "$root$dest"
        while IFS= read -r -d '' f; do
            add "$src/$f" "$dest/$f"
        done < <(find "$src" -mindepth 1 -maxdepth 1 -printf '%f\0')
    elif [ -f "$src" ]; then
        cp -p "$src" "$root$dest"
        if [ "$(head -c 4 "$src" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            while read -r lib; do
                add "$lib" "$(guest_path "$lib")"
            done < <(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
            if ldd "$src" 2>/dev/null | grep 'not found' >/dev/null; then
                vm_log "warning: $src needs libraries the host does not have: $(ldd "$src" | grep 'not found' | tr -s ' \t' ' ')"
            fi
        fi
    else
        vm_die "cannot put $src into the guest: not a file, folder or symlink"
    fi
}

for b in $BASE_BINARIES; do add "$b" "$(guest_path "$b")"; done
ldconfig -p >"$root.ldconfig"
for l in $BASE_LIBS; do
    p=$(awk -v n="$l" '$1 == n && /x86-64/ && !found { print $NF; found = 1 }' "$root.ldconfig")
    [ -n "$p" ] || vm_die "the host has no $l (install libc6 and libgcc-s1)"
    add "$p" "$(guest_path "$p")"
done
for e in "${extras[@]}"; do
    case "$e" in
        *=*) add "${e%%=*}" "${e#*=}" ;;
        *) add "$e" "$(guest_path "$e")" ;;
    esac
done
for f in $BASE_ETC; do [ -e "$f" ] && add "$f" "$f"; done

# busybox for everything else; dash is /bin/sh.
bb=$(command -v busybox)
cp "$bb" "$root/usr/bin/busybox"
for a in $(busybox --list); do
    [ -e "$root/usr/bin/$a" ] || [ -e "$root/usr/sbin/$a" ] || ln -s busybox "$root/usr/bin/$a"
done
ln -sfn dash "$root/usr/bin/sh"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tcpdump:x:101:101:tcpdump:/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
tcpdump:x:101:
nogroup:x:65534:
GROUP
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1 localhost guest
::1 localhost ip6-localhost ip6-loopback
HOSTS
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\nservices: files\nprotocols: files\n' >"$root/etc/nsswitch.conf"
: >"$root/etc/resolv.conf"
echo guest >"$root/etc/hostname"

# Modules: resolve the load order on the host; the guest just insmods the list.
mkdir -p "$root/etc/ovn-ipsec-vm"
: >"$root/etc/ovn-ipsec-vm/modules"
declare -A loaded=()
mods=$(sed 's/#.*//' "$VM_DIR/modules.list")
for m in $mods ${OVN_IPSEC_VM_MODULES:-}; do
    deps=$(modprobe -d "$tree" -S "$kver" --show-depends "$m" 2>&1) ||
        vm_die "module $m is not in kernel $kver: $deps"
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        rel=${path#"$tree"}
        [ -n "${loaded[$rel]:-}" ] && continue
        loaded[$rel]=1
        mkdir -p "$root$(dirname "$rel")"
        case "$rel" in
            *.ko.xz) xz -dc "$path" >"$root${rel%.xz}"; rel=${rel%.xz} ;;
            *.ko.zst) zstd -qdc "$path" >"$root${rel%.zst}"; rel=${rel%.zst} ;;
            *) cp "$path" "$root$rel" ;;
        esac
        echo "$rel" >>"$root/etc/ovn-ipsec-vm/modules"
    done <<<"$deps"
done

install -m 0755 "$VM_DIR/init" "$root/init"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$out.tmp.$$"
mv "$out.tmp.$$" "$out"
rm -rf "$root" "$root.ldconfig"
# Keep the eight newest images (callers differ in OVN_IPSEC_VM_EXTRA); a running qemu has
# already read its copy.
find "$out_dir" -maxdepth 1 -name '*.cpio' -printf '%T@ %p\n' | sort -rn | tail -n +9 | cut -d' ' -f2- | xargs -r rm -f
vm_log "initramfs $(du -h "$out" | cut -f1) at $out"
echo "$out"
