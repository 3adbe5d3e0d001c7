#!/usr/bin/env bash
# Package phase: builds the ovn-ipsecd .deb (packaging/build-deb.sh) and installs it on a fresh
# Debian 12 the way an operator would: `apt install ./ovn-ipsecd_*.deb` in a debootstrap'd
# bookworm chroot with the Debian mirror this machine uses. Checks the installed unit with
# `systemd-analyze verify`, the binaries, man pages, completions and the conffile, then that
# `apt remove` leaves only configuration and `apt purge` removes that too.
#
# The bookworm tree (minbase with systemd and man-db) is cached as a tarball under
# $OVN_IPSEC_CACHE/deb/ and unpacked afresh for every run; a missing cache is built with
# debootstrap (about two minutes). DEB_PROFILE=release packages a release build instead of the
# test suite's debug build (several minutes more on two cores).
#
# Needs root, network access to the Debian mirror, debootstrap, zstd and cargo-deb
# (tests/setup/deb.sh installs them). Prints `ok - …` / `not ok - …` lines; exits non-zero if
# any check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root
need_rust

started=$SECONDS
suite=bookworm
base_packages="systemd,man-db"
cache_dir="$OVN_IPSEC_CACHE/deb"
tarball="$cache_dir/$suite-minbase-${base_packages//,/-}.tar.zst"
profile="${DEB_PROFILE:-dev}"

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check NAME COMMAND...: runs the command, `ok - NAME` if it succeeds; its output is shown when
# it fails.
check() {
    local name=$1
    shift
    local out
    if out="$("$@" 2>&1)"; then
        ok "$name"
    else
        not_ok "$name"
        printf '%s\n' "$out" | sed 's/^/    /' | tail -n 30
    fi
}
finish() {
    echo "deb: $((SECONDS - started)) s in all"
    echo "deb: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

work="$(mktemp -d)"
root="$work/root"
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    # Never remove a tree that still has something mounted in it.
    if awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "deb: $root still has mounts; leaving $work in place" >&2
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
mirror_url="$(mirror)"

# 1. The package.
t=$SECONDS
deb_dir="$work/deb"
if packaging/build-deb.sh --profile "$profile" --fast --output "$deb_dir" >"$work/build.log" 2>&1; then
    deb="$(ls "$deb_dir"/ovn-ipsecd_*.deb 2>/dev/null | head -n 1)"
fi
if [ -n "${deb:-}" ]; then
    ok "packaging/build-deb.sh --profile $profile builds $(basename "$deb") ($((SECONDS - t)) s, $(du -k "$deb" | cut -f1) KiB)"
else
    not_ok "packaging/build-deb.sh --profile $profile builds the package"
    tail -n 40 "$work/build.log" | sed 's/^/    /'
    finish
fi

# 2. A fresh bookworm: from the cache, or debootstrapped into it.
t=$SECONDS
if [ ! -s "$tarball" ]; then
    log "deb: no cached $suite tree; debootstrap from $mirror_url (a few minutes, once)"
    mkdir -p "$cache_dir"
    fresh="$work/debootstrap"
    if debootstrap --variant=minbase --include="$base_packages" "$suite" "$fresh" "$mirror_url" \
        >"$work/debootstrap.log" 2>&1 &&
        tar -C "$fresh" --zstd -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"; then
        log "deb: cached $tarball"
    else
        rm -f "$tarball.tmp"
        not_ok "debootstrap $suite from $mirror_url"
        tail -n 20 "$work/debootstrap.log" | sed 's/^/    /'
        finish
    fi
    rm -rf "$fresh"
fi
mkdir -p "$root"
if tar -C "$root" --zstd -xf "$tarball"; then
    ok "fresh $suite tree from $(basename "$tarball") ($((SECONDS - t)) s)"
else
    not_ok "unpack $tarball (delete it to rebuild)"
    finish
fi
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
echo "deb $mirror_url $suite main" >"$root/etc/apt/sources.list"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"; }

# 3. apt install ./ovn-ipsecd_*.deb, dependencies from the mirror.
t=$SECONDS
cp "$deb" "$root/tmp/"
pkg="/tmp/$(basename "$deb")"
check "apt-get update against $mirror_url" in_root apt-get update -qq
if out="$(in_root apt-get install -y -q --no-install-recommends "$pkg" 2>&1)"; then
    ok "apt install ./$(basename "$deb") on a fresh $suite ($((SECONDS - t)) s)"
else
    not_ok "apt install ./$(basename "$deb") on a fresh $suite"
    printf '%s\n' "$out" | tail -n 30 | sed 's/^/    /'
    finish
fi

# 4. What was installed.
unit=/usr/lib/systemd/system/ovn-ipsecd.service
verify_quiet() {
    # systemd-analyze verify only warns about unknown keys and the like: any output fails.
    local out
    out="$(in_root systemd-analyze verify "$unit" 2>&1)" || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
}
check "systemd-analyze verify $unit says nothing (man pages found, binaries executable)" verify_quiet
security() {
    local out
    out="$(in_root systemd-analyze security --offline=true "$unit" 2>&1 | tail -n 1)"
    echo "$out"
    # systemd rates 0–10; below 4.0 is "OK" or better.
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) { exit !($i < 4.0) } exit 1 }' <<<"$out"
}
if sec="$(security)"; then
    ok "systemd-analyze security rates the unit's exposure OK: ${sec#*: }"
else
    not_ok "systemd-analyze security: $sec"
fi
check "the unit is enabled for multi-user.target" \
    test -L "$root/etc/systemd/system/multi-user.target.wants/ovn-ipsecd.service"
version_is() {
    local want="ovn-ipsecd $(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)"
    local got
    got="$(in_root ovn-ipsecd --version)"
    [ "$got" = "$want" ] || { echo "got '$got', want '$want'"; return 1; }
}
check "ovn-ipsecd --version prints its version" version_is
check "ipsecctl --help" in_root ipsecctl --help
check "ipsecctl completions bash" in_root ipsecctl completions bash
check "man pages ovn-ipsecd(8), ipsecctl(1), ipsecctl-status(1) resolve" \
    in_root man -w ovn-ipsecd.8 ipsecctl.1 ipsecctl-status.1
check "bash, zsh and fish completions installed" test -s "$root/usr/share/bash-completion/completions/ipsecctl" \
    -a -s "$root/usr/share/bash-completion/completions/ovn-ipsecd" \
    -a -s "$root/usr/share/zsh/vendor-completions/_ipsecctl" \
    -a -s "$root/usr/share/fish/vendor_completions.d/ipsecctl.fish"
check "copyright file installed" test -s "$root/usr/share/doc/ovn-ipsecd/copyright"
conffile=/etc/ovn-ipsec/ovn-ipsecd.toml
check "$conffile is a conffile" \
    sh -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' ovn-ipsecd | grep -q '$conffile'"
# The shipped file parses, and each commented key, once uncommented, is a key the daemon knows:
# --print-config then names the file as the source of every one of them. ovs_db is checked on
# its own: an Open_vSwitch database named in the file must be readable, and there is none here,
# so the error must name the file as where the remote came from.
config_keys_agree() {
    local out keys missing=0 key
    out="$(in_root ovn-ipsecd --config "$conffile" --print-config 2>&1 || true)"
    grep -q '^# ovn-ipsecd effective configuration' <<<"$out" || { echo "$out"; return 1; }
    sed -E '/^#ovs_db = /!s/^#([a-z_]+ = )/\1/' "$root$conffile" >"$root/tmp/uncommented.toml"
    keys="$(sed -nE 's/^([a-z_]+) = .*/\1/p' "$root/tmp/uncommented.toml")"
    [ "$(wc -w <<<"$keys")" -ge 9 ] || { echo "too few commented keys in $conffile: $keys"; return 1; }
    out="$(in_root ovn-ipsecd --config /tmp/uncommented.toml --print-config 2>&1 || true)"
    for key in $keys; do
        grep -qE "^$key = .*# file /tmp/uncommented.toml" <<<"$out" || { echo "key $key not taken from the file"; missing=1; }
    done
    [ "$missing" -eq 0 ] || { echo "$out"; return 1; }
    grep '^#ovs_db = ' "$root$conffile" | sed 's/^#//' >"$root/tmp/ovs_db.toml"
    out="$(in_root ovn-ipsecd --config /tmp/ovs_db.toml --print-config 2>&1 || true)"
    grep -q "Open_vSwitch database (file /tmp/ovs_db.toml)" <<<"$out" || { echo "ovs_db: $out"; return 1; }
}
check "the shipped configuration parses and every key in it is one ovn-ipsecd reads" config_keys_agree

# 5. apt remove: nothing of the package is left but its configuration.
in_root dpkg -L ovn-ipsecd | sort >"$work/files"
if out="$(in_root apt-get remove -y -q ovn-ipsecd 2>&1)"; then
    ok "apt remove ovn-ipsecd"
else
    not_ok "apt remove ovn-ipsecd"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
fi
left_after_remove() {
    local f left=0
    while read -r f; do
        [ -n "$f" ] && [ "$f" != "/." ] || continue
        if [ "$f" = "$conffile" ]; then
            [ -f "$root$f" ] || { echo "the conffile $f went with remove"; left=1; }
        elif [ -e "$root$f" ] && [ ! -d "$root$f" ]; then
            echo "left behind: $f"
            left=1
        fi
    done <"$work/files"
    for d in /usr/share/doc/ovn-ipsecd; do
        [ ! -e "$root$d" ] || { echo "left behind: $d"; left=1; }
    done
    in_root dpkg-query -W -f='${Status}\n' ovn-ipsecd | grep -qx 'deinstall ok config-files' ||
        { echo "status: $(in_root dpkg-query -W -f='${Status}' ovn-ipsecd)"; left=1; }
    [ "$left" -eq 0 ]
}
check "after remove only the configuration is left ($(grep -c . "$work/files") paths checked)" left_after_remove

# 6. apt purge: the configuration and the unit's enablement go too.
check "apt purge ovn-ipsecd" in_root apt-get purge -y -q ovn-ipsecd
nothing_after_purge() {
    local bad=0 f
    [ ! -e "$root$conffile" ] || { echo "$conffile survived purge"; bad=1; }
    [ ! -e "$root/etc/ovn-ipsec" ] || { echo "/etc/ovn-ipsec survived purge"; bad=1; }
    for f in $(cd "$root" && find etc/systemd -name '*ovn-ipsecd*'); do
        echo "left behind: /$f"
        bad=1
    done
    if in_root dpkg-query -W -f='${Status}' ovn-ipsecd 2>/dev/null | grep -q installed; then
        echo "dpkg still knows the package"
        bad=1
    fi
    [ "$bad" -eq 0 ]
}
check "after purge nothing of ovn-ipsecd is left" nothing_after_purge

finish
