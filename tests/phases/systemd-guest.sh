#!/usr/bin/env bash
# systemd phase: the packaged ovn-ipsecd run by a real systemd as PID 1, beside openvswitch and
# ovn-host, as an operator installs it. Builds the .deb (packaging/build-deb.sh, dev profile),
# installs it with `apt install ./ovn-ipsecd_*.deb` into a Debian 12 tree that has systemd,
# openvswitch-switch and ovn-host (ovn-controller), makes an ext4 disk image of that tree and
# boots it in the real-kernel qemu guest (tests/vm/run.sh with OVN_IPSEC_VM_DISK) with systemd
# as PID 1. The guest half (tests/systemd/guest.sh) starts a Southbound ovsdb-server, sets up
# the local Open_vSwitch database as for ovn-controller, runs a second chassis as a plain
# ovn-ipsecd in a network namespace, and drives the unit with systemctl: READY, STATUS, SAs,
# ESP on the wire, ipsecctl, reload, stop/start adoption, the watchdog, Restart=on-failure and
# `systemd-analyze security`.
#
# The Debian tree without our package is cached as a tarball under
# $OVN_IPSEC_CACHE/systemd-guest/, keyed by its package list; a missing cache is built with
# debootstrap (about two minutes, needs the Debian mirror). Needs root, debootstrap, zstd,
# e2fsprogs (mkfs.ext4 -d), cargo-deb (tests/setup/deb.sh, tests/setup/systemd.sh) and the rig
# (tests/setup/vm.sh). Prints `ok - …` / `not ok - …` lines; exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root
need_rust

started=$SECONDS
suite=bookworm
# What a node running OVN has, plus the tools the checks use (nft for wire counters).
base_packages="systemd,openvswitch-switch,ovn-host,iproute2,nftables,procps,kmod"
cache_dir="$OVN_IPSEC_CACHE/systemd-guest"
key="$(printf '%s %s minbase' "$suite" "$base_packages" | sha256sum | cut -c1-12)"
tarball="$cache_dir/$suite-$key.tar.zst"

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
finish() {
    echo "systemd-guest: $((SECONDS - started)) s in all"
    echo "systemd-guest: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

for c in debootstrap zstd mkfs.ext4; do
    command -v "$c" >/dev/null 2>&1 || {
        not_ok "'$c' is installed (run: . scripts/lib.sh && . tests/setup/systemd.sh)"
        finish
    }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/systemd-guest.XXXXXX")"
root="$work/root"
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    # Never remove a tree that still has something mounted in it.
    if awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "systemd-guest: $root still has mounts; leaving $work in place" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# The Debian mirror this machine's apt uses (deb822 or one-line sources), else Debian's CDN.
mirror() {
    local m
    m="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')"
    [ -n "$m" ] || m="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
        /etc/apt/sources.list 2>/dev/null || true)"
    echo "${m:-http://deb.debian.org/debian}"
}

# 1. The package.
t=$SECONDS
deb_dir="$work/deb"
deb=
if packaging/build-deb.sh --profile dev --fast --output "$deb_dir" >"$work/build.log" 2>&1; then
    deb="$(ls "$deb_dir"/ovn-ipsecd_*.deb 2>/dev/null | head -n 1)"
fi
if [ -n "$deb" ]; then
    ok "packaging/build-deb.sh builds $(basename "$deb") ($((SECONDS - t)) s)"
else
    not_ok "packaging/build-deb.sh builds the package"
    tail -n 40 "$work/build.log" | sed 's/^/    /'
    finish
fi
cargo build --locked -q -p ovn-ipsec-tests --bin udp-probe
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

# 2. The Debian tree: from the cache, or debootstrapped into it. The package lists stay in it
# so that `apt install ./…deb` resolves without the network.
t=$SECONDS
if [ ! -s "$tarball" ]; then
    mirror_url="$(mirror)"
    log "systemd-guest: no cached $suite tree; debootstrap from $mirror_url (a few minutes, once)"
    mkdir -p "$cache_dir"
    fresh="$work/debootstrap"
    if debootstrap --variant=minbase --include="$base_packages" "$suite" "$fresh" "$mirror_url" \
        >"$work/debootstrap.log" 2>&1 &&
        rm -f "$fresh"/var/cache/apt/archives/*.deb &&
        tar -C "$fresh" --zstd -cf "$tarball.tmp.$$" . && mv "$tarball.tmp.$$" "$tarball"; then
        log "systemd-guest: cached $tarball"
        # Older trees of other package lists are of no more use.
        find "$cache_dir" -maxdepth 1 -name "$suite-*.tar.zst" ! -name "$(basename "$tarball")" -delete
    else
        rm -f "$tarball.tmp.$$"
        not_ok "debootstrap $suite with $base_packages from $mirror_url"
        tail -n 20 "$work/debootstrap.log" | sed 's/^/    /'
        finish
    fi
    rm -rf "$fresh"
fi
mkdir -p "$root"
if tar -C "$root" --zstd -xf "$tarball"; then
    ok "$suite tree with $base_packages from $(basename "$tarball") ($((SECONDS - t)) s)"
else
    not_ok "unpack $tarball (delete it to rebuild)"
    finish
fi

# 3. apt install ./ovn-ipsecd_*.deb, as an operator would.
t=$SECONDS
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"; }
cp "$deb" "$root/tmp/"
if out="$(in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" 2>&1)"; then
    ok "apt install ./$(basename "$deb") beside openvswitch-switch and ovn-host ($((SECONDS - t)) s)"
else
    not_ok "apt install ./$(basename "$deb") beside openvswitch-switch and ovn-host"
    printf '%s\n' "$out" | tail -n 30 | sed 's/^/    /'
    finish
fi
rm -f "$root/tmp/$(basename "$deb")"

# 4. The node's own setup, before its first boot.
# The package enables the unit; the guest starts it by hand once the Southbound is up (as the
# packaging README tells an operator to), so that boot does not wait for it.
in_root systemctl disable -q ovn-ipsecd.service
# Units a test guest does not need, masked to shorten the boot under emulation: consoles
# (the serial one would share the test's console), timers, first-boot setup, logind (no D-Bus).
in_root systemctl mask -q getty@tty1.service serial-getty@ttyS0.service console-getty.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer systemd-firstboot.service \
    systemd-logind.service systemd-pstore.service systemd-random-seed.service \
    systemd-journal-flush.service remote-fs.target uuidd.socket ovs-record-hostname.service
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/etc/machine-id"
echo >>"$root/etc/machine-id"
echo node-1 >"$root/etc/hostname"
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$root/etc/systemd/journald.conf.d/volatile.conf"
# The chassis name ovs-ctl writes into external_ids:system-id at every start.
mkdir -p "$root/etc/openvswitch"
echo chassis-1 >"$root/etc/openvswitch/system-id.conf"
# This chassis' certificate, key and CA, root-owned as ovs-pki leaves them.
fx=ikev2/tests/fixtures/pki
install -d -m 0755 "$root/etc/ovn-ipsec/pki"
install -m 0644 "$fx/chassis-1-cert.pem" "$fx/ca-bundle.pem" "$root/etc/ovn-ipsec/pki/"
install -m 0600 "$fx/chassis-1-privkey.pem" "$root/etc/ovn-ipsec/pki/"
# The runner that starts the script from the share and reports to the rig.
install -m 0755 tests/systemd/run-script.sh "$root/usr/local/sbin/ovn-ipsec-run-script"
install -m 0644 tests/systemd/ovn-ipsec-test.service "$root/etc/systemd/system/"
in_root systemctl enable -q ovn-ipsec-test.service
umount "$root/proc"

# 5. The disk image.
t=$SECONDS
img="$work/root.ext4"
size_mb=$(($(du -sm "$root" | cut -f1) + 384))
if out="$(mkfs.ext4 -q -F -L root -d "$root" "$img" "${size_mb}M" 2>&1)"; then
    ok "ext4 image of the tree (${size_mb} MiB, $((SECONDS - t)) s)"
else
    not_ok "mkfs.ext4 -d of the tree"
    printf '%s\n' "$out" | tail -n 10 | sed 's/^/    /'
    finish
fi
# The tree is in the image now; it has nothing mounted (proc went above).
if ! awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    rm -rf "$root"
fi

# 6. Boot it. The share: the guest script, the peer's PKI, the Southbound schema and udp-probe.
share="$work/share"
mkdir -p "$share/pki"
cp tests/systemd/guest.sh "$target/debug/udp-probe" "$share/"
cp "$fx/chassis-2-cert.pem" "$fx/chassis-2-privkey.pem" "$fx/ca-bundle.pem" "$share/pki/"
schema=/usr/share/ovn/ovn-sb.ovsschema
if [ ! -f "$schema" ]; then
    not_ok "the Southbound schema $schema is on the host (apt-get install ovn-central)"
    finish
fi
cp "$schema" "$share/"
# The console streams by with the guest's checks left out (also from the tail run.sh repeats on
# failure): they are counted and printed once, from the console log, as this phase's own.
set +e
OVN_IPSEC_VM_DISK="$img" OVN_IPSEC_VM_MODULES="openvswitch vport_geneve ${OVN_IPSEC_VM_MODULES:-}" \
    OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-420}" OVN_IPSEC_VM_LOG="$work/console.log" \
    bash tests/vm/run.sh "$share" guest.sh 2>&1 | grep -v '^ok - \|^not ok - '
rc=${PIPESTATUS[0]}
set -e
while IFS= read -r line; do
    case "$line" in
        "ok - "*) ok "${line#ok - }" ;;
        "not ok - "*) not_ok "${line#not ok - }" ;;
    esac
done < <(cat "$work/console.log" 2>/dev/null)
[ "$rc" -eq 0 ] || not_ok "the systemd guest finished cleanly (tests/vm/run.sh exit status $rc)"
finish
