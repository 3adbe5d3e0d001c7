#!/usr/bin/env bash
# Builds the Debian package ovn-ipsecd_VERSION-REVISION_ARCH.deb (both binaries, the systemd
# unit, the configuration file, man pages, bash/zsh/fish completions) with cargo-deb.
#
#   packaging/build-deb.sh [--profile release|dev] [--output DIR] [--fast]
#
# --profile release (the default) is what to ship. --profile dev packages the unoptimised
# binaries of the debug build the test suite already made: the package test
# (tests/phases/deb.sh) uses it, because a release build takes minutes on two cores.
# The package lands in DIR (default target/debian/); its path is printed last (with
# --profile release a -dbgsym.ddeb with the debug symbols lands beside it). --fast
# compresses it less (quicker, larger).
#
# Needs cargo-deb (`cargo install cargo-deb --locked`; tests/setup/deb.sh puts it under
# $OVN_IPSEC_CACHE/cargo-deb), dpkg-dev and gzip.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
output=""
fast=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs a value}"; shift 2 ;;
        --output) output="${2:?--output needs a value}"; shift 2 ;;
        --fast) fast=(--fast); shift ;;
        *) echo "usage: $0 [--profile release|dev] [--output DIR] [--fast]" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) profile_dir=release ;;
    dev | debug) profile=dev; profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac

cache="${OVN_IPSEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ovn-ipsec}"
if ! command -v cargo-deb >/dev/null 2>&1; then
    [ -x "$cache/cargo-deb/bin/cargo-deb" ] || {
        echo "build-deb: cargo-deb not found on PATH nor in $cache/cargo-deb/bin" >&2
        echo "           (cargo install cargo-deb --locked, or source tests/setup/deb.sh)" >&2
        exit 1
    }
    export PATH="$cache/cargo-deb/bin:$PATH"
fi
target_dir="${CARGO_TARGET_DIR:-target}"
out_dir="${output:-$target_dir/debian}"

echo "build-deb: building ovn-ipsecd and ipsecctl ($profile profile)" >&2
cargo build --locked --profile "$profile" -p controller -p ipsecctl --bins

# Generated documentation, where the package's `target/release/packaging/...` assets point.
docs="$target_dir/$profile_dir/packaging"
rm -rf "$docs"
mkdir -p "$docs/man" "$docs/completions"
ipsecctl="$target_dir/$profile_dir/ipsecctl"
"$ipsecctl" man "$docs/man"
"$ipsecctl" completions bash >"$docs/completions/ipsecctl.bash"
"$ipsecctl" completions zsh >"$docs/completions/_ipsecctl"
"$ipsecctl" completions fish >"$docs/completions/ipsecctl.fish"
# The daemon's page and completions come from its clap definition. Built in the dev profile
# whatever the package's: the text does not depend on optimisation.
cargo run --locked -q -p controller --example ovn_ipsecd_docs -- "$docs/daemon"
mv "$docs/daemon/ovn-ipsecd.8" "$docs/man/"
mv "$docs/daemon/ovn-ipsecd.bash" "$docs/daemon/_ovn-ipsecd" "$docs/daemon/ovn-ipsecd.fish" \
    "$docs/completions/"
rmdir "$docs/daemon"
# Debian policy 12.1: man pages compressed with gzip -9n.
gzip -9n "$docs"/man/*

mkdir -p "$out_dir"
# The release profile keeps debug info (`[profile.release] debug = 1`): it goes into a separate
# ovn-ipsecd-dbgsym_*.ddeb beside the package, whose binaries are stripped. A dev build's
# debug info is only stripped.
case "$profile" in
    release) symbols=(--dbgsym --compress-debug-symbols=zlib) ;;
    *) symbols=(--strip) ;;
esac
echo "build-deb: packaging with cargo-deb" >&2
# cargo-deb warns that the dev profile is meant for testing only; that is what it is for here.
cargo deb --locked -p controller --no-build --profile "$profile" --output "$out_dir" \
    "${symbols[@]}" "${fast[@]}" \
    2> >(grep -v -e 'dev profile is not supported' -e 'cargo-deb is for making releases' \
        -e 'To enable debug symbols' -e 'Cargo also supports custom profiles' >&2)
