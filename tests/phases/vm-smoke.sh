#!/usr/bin/env bash
# Proves the real-kernel rig (tests/vm) in one boot: ESP transport mode with rfc4106(gcm(aes))
# between two namespaces in a qemu guest running Debian's kernel, ESP on the wire and decrypted
# on arrival (nftables counters, tcpdump). See tests/vm/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

start=$(date +%s.%N)
# The receiver/sender runs in the guest from the share; it is linked against the host's glibc,
# which the initramfs carries.
cargo build --locked -q -p ovn-ipsec-tests --bin udp-probe
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/vm-smoke.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp tests/vm/smoke.sh "$target/debug/udp-probe" "$share/"

set +e
OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-120}" bash tests/vm/run.sh "$share" smoke.sh
rc=$?
set -e
printf 'vm-smoke: %s in %.1f s (build + boot + checks)\n' \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
