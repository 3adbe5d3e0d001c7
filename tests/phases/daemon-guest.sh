#!/usr/bin/env bash
# ovn-ipsecd end to end in one qemu boot (tests/vm/run.sh): a real ovsdb-server with the OVN
# Southbound schema, three chassis in network namespaces on a bridge, one ovn-ipsecd each
# (flags only), certificates from ikev2/tests/fixtures/pki. Checks every pair's CHILD_SAs, UDP to
# 6081 as ESP on the wire with zero plaintext, and chassis-del cleaning up. Guest half:
# tests/daemon/guest.sh. Needs the host packages ovn-central ovn-common openvswitch-common.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

start=$(date +%s.%N)
cargo build --locked -q -p controller --bin ovn-ipsecd
cargo build --locked -q -p ovn-ipsec-tests --bin udp-probe
cargo build --locked -q -p ipsecctl --bin ipsecctl
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/daemon-guest.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$target/debug/ovn-ipsecd" "$target/debug/udp-probe" "$target/debug/ipsecctl" tests/daemon/guest.sh "$share/"
mkdir "$share/pki"
fx=ikev2/tests/fixtures/pki
cp "$fx"/chassis-{1,2,3}-cert.pem "$fx"/chassis-{1,2,3}-privkey.pem "$fx/ca-bundle.pem" "$share/pki/"
# chassis-3 is issued by an intermediate CA: its certificate file carries the chain.
cat "$fx/chassis-3-cert.pem" "$fx/intermediate-ca-cert.pem" >"$share/pki/chassis-3-chain.pem"

set +e
OVN_IPSEC_VM_EXTRA="@tests/vm/extras/ovn-sb.list ${OVN_IPSEC_VM_EXTRA:-}" \
    OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-600}" bash tests/vm/run.sh "$share" guest.sh
rc=$?
set -e
printf 'daemon-guest: %s in %.1f s (build + boot + checks)\n' \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
