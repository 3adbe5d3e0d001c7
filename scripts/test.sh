#!/usr/bin/env bash
# Runs every test of ovn-ipsec: unit and property tests, integration tests against real
# ovsdb-server / strongSwan / Libreswan processes, the real-kernel tests in a qemu guest, and a
# short fuzzing pass. Installs what it needs on Debian 12 (run as root); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
need_rust
# Packages every test phase needs. Each tests/setup/*.sh installs what one area's tests need
# (Debian packages, cached downloads) before anything runs; it is sourced with lib.sh loaded.
need_pkgs pkg-config gcc libc6-dev iproute2
for setup in tests/setup/*.sh; do
    [ -e "$setup" ] || continue
    log "setup: $setup"
    . "$setup"
done

passed=0
failed=0
failed_names=()
phase() {
    local name=$1
    shift
    log "phase: $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
}

phase "cargo test (workspace)" cargo test --workspace --locked
for extra in tests/phases/*.sh; do
    [ -e "$extra" ] || continue
    phase "$(basename "$extra" .sh)" bash "$extra"
done

echo
[ "$failed" -eq 0 ] || echo "failed phases: ${failed_names[*]}"
echo "test phases: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
