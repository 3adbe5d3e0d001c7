#!/usr/bin/env bash
# Real-kernel checks of the controller's kernel layer in one qemu boot (tests/vm/run.sh): two
# namespaces on a veth pair, each reconciled by its own KernelSync. Before any SA Geneve is
# dropped both ways and nothing leaves in plaintext; with CHILD_SAs it is ESP; a rekey under a
# steady stream loses nothing; `ip xfrm state flush` is repaired; restart adopts the installed
# states; removing a pair removes exactly its objects; foreign objects are untouched.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

start=$(date +%s.%N)
cargo build --locked -q -p controller --example kernel_guest_checks
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/controller-kernel-guest.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$target/debug/examples/kernel_guest_checks" "$share/"
cat >"$share/controller-kernel-guest.sh" <<'GUEST'
# Runs in the guest under dash, with kernel_guest_checks beside it in the share.
"$(dirname "$0")/kernel_guest_checks"
GUEST

set +e
OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-300}" bash tests/vm/run.sh "$share" controller-kernel-guest.sh
rc=$?
set -e
printf 'controller-kernel-guest: %s in %.1f s (build + boot + checks)\n' \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
