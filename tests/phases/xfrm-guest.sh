#!/usr/bin/env bash
# Real-kernel checks of the xfrm crate in one qemu boot (tests/vm/run.sh): ESP transport SAs
# and policies programmed by the crate between two namespaces, for each algorithm, IPv4 and
# IPv6; ESN, ESP-in-UDP, block policies, expire and flush events, ownership filtering. Then the
# guest benchmark: states + policies per second, the crate against `ip -batch`.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash tests/vm/run-example.sh --label xfrm-guest --also "bench ${XFRM_GUEST_BENCH_N:-1000}" \
    xfrm guest_checks
