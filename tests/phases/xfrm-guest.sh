#!/usr/bin/env bash
# Real-kernel checks of the xfrm crate in one qemu boot (tests/vm/run.sh): ESP transport SAs
# and policies programmed by the crate between two namespaces, for each algorithm, IPv4 and
# IPv6; ESN, ESP-in-UDP, block policies, expire and flush events, ownership filtering. Then the
# guest benchmark: states + policies per second, the crate against `ip -batch`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

start=$(date +%s.%N)
cargo build --locked -q -p xfrm --example guest_checks
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
share=$(mktemp -d "${TMPDIR:-/tmp}/xfrm-guest.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$target/debug/examples/guest_checks" "$share/"
bench_n=${XFRM_GUEST_BENCH_N:-1000}
cat >"$share/xfrm-guest.sh" <<GUEST
# Runs in the guest under dash, with guest_checks beside it in the share.
here=\$(dirname "\$0")
"\$here/guest_checks"
rc=\$?
"\$here/guest_checks" bench $bench_n || echo "xfrm-guest: benchmark did not run"
exit \$rc
GUEST

set +e
OVN_IPSEC_VM_TIMEOUT="${OVN_IPSEC_VM_TIMEOUT:-300}" bash tests/vm/run.sh "$share" xfrm-guest.sh
rc=$?
set -e
printf 'xfrm-guest: %s in %.1f s (build + boot + checks)\n' \
    "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit status $rc)")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')"
exit "$rc"
