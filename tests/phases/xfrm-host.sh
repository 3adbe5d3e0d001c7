#!/usr/bin/env bash
# Host checks of the xfrm crate: the namespace tests against the host kernel's XFRM netlink
# (policies, SPI allocation, ownership filtering, events, the "kernel lacks ESP" error), then a
# short fuzzing pass over the netlink decoder when cargo-fuzz is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root
need_rust
command -v ip >/dev/null || die "xfrm host tests need iproute2's ip (apt-get install iproute2)"

cargo test --locked -q -p xfrm --test host

fuzz_seconds=${XFRM_FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" -gt 0 ] && [ -f fuzz/Cargo.toml ] && grep -q 'name = "xfrm_netlink"' fuzz/Cargo.toml; then
    if cargo fuzz --version >/dev/null 2>&1; then
        log "fuzzing xfrm_netlink for ${fuzz_seconds}s"
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run xfrm_netlink -- -max_total_time="$fuzz_seconds" 2>&1 | tail -n 3)
    else
        log "xfrm fuzz pass skipped: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
    fi
fi
echo "xfrm-host: passed"
