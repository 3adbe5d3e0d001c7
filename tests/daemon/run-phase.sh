#!/usr/bin/env bash
# Usage: tests/daemon/run-phase.sh NAME GUEST_SCRIPT [EXTRA_FILE...]
#
# The host half of an ovn-ipsecd phase: builds ovn-ipsecd, ipsecctl and udp-probe, puts them in
# a share folder with tests/daemon/lib.sh, GUEST_SCRIPT, any EXTRA_FILEs and the PKI fixtures
# (chassis-3's certificate file carries its intermediate CA), boots the kernel guest with a real
# Southbound ovsdb-server available (tests/vm/run.sh) and runs GUEST_SCRIPT there. Extra guest
# binaries come through OVN_IPSEC_VM_EXTRA as for run.sh. Needs the host packages ovn-central
# ovn-common openvswitch-common.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust
[ $# -ge 2 ] || { echo "usage: $0 NAME GUEST_SCRIPT [EXTRA_FILE...]" >&2; exit 2; }
name=$1
guest=$2
shift 2

start=$(date +%s.%N)
cargo build --locked -q -p controller --bin ovn-ipsecd
cargo build --locked -q -p ovn-ipsec-tests --bin udp-probe
cargo build --locked -q -p ipsecctl --bin ipsecctl
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$target/debug/ovn-ipsecd" "$target/debug/udp-probe" "$target/debug/ipsecctl" \
    tests/daemon/lib.sh "$guest" "$@" "$share/"
mkdir "$share/pki"
fx=ikev2/tests/fixtures/pki
cp "$fx"/*.pem "$share/pki/"
cat "$fx/chassis-3-cert.pem" "$fx/intermediate-ca-cert.pem" >"$share/pki/chassis-3-chain.pem"

set +e
OVN_IPSEC_VM_EXTRA="@tests/vm/extras/ovn-sb.list ${OVN_IPSEC_VM_EXTRA:-}" \
    OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-600}" bash tests/vm/run.sh "$share" "$(basename "$guest")"
rc=$?
set -e
printf '%s: %s in %.1f s (build + boot + checks)\n' "$name" \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
