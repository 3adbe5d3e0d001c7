#!/usr/bin/env bash
# Host half of tests/daemon/crossing-repro.sh: the crossed initiation between ovn-ipsecd and
# charon, repeated (ROUNDS, default 12), in one boot of the real-kernel guest. Not a phase:
# a reproduction to run by hand (bash tests/daemon/crossing-repro-host.sh). Needs what
# tests/phases/mixed-mesh-guest.sh needs (bash tests/setup/peers.sh and tests/setup/vm.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust
cargo build --locked -q -p ovn-ipsec-tests --bin swan-mesh-config
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crossing-repro.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$target/debug/swan-mesh-config" "$tmp/mesh" /tmp/mesh \
    chassis-1=10.0.0.1 chassis-2=10.0.0.2:strongswan chassis-3=10.0.0.3:libreswan chassis-4=10.0.0.4
tar -C "$tmp" -cf "$tmp/mesh.tar" mesh
printf 'ROUNDS=%s\n' "${ROUNDS:-12}" >"$tmp/rounds.env"
OVN_IPSEC_VM_EXTRA="@tests/vm/extras/swan-peers.list ${OVN_IPSEC_VM_EXTRA:-}" \
    OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-1500}" \
    bash tests/daemon/run-phase.sh crossing-repro tests/daemon/crossing-repro.sh "$tmp/mesh.tar" "$tmp/rounds.env"
