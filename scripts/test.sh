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

# Each phase's output is shown as it runs and kept, so that the closing summary can count the
# individual tests: cargo's "test result:" lines and the "ok - …" / "not ok - …" lines of the
# real-kernel and fuzz phases. A phase that fails without naming a failed check counts as one.
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
phases_passed=0
phases_failed=0
tests_passed=0
tests_failed=0
failed_names=()
phase() {
    local name=$1
    shift
    local out="$logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').log"
    log "phase: $name"
    local status=0
    "$@" 2>&1 | tee "$out" || status=$?
    local ok not_ok
    # awk, not grep: grep's "no match" status would end this script under pipefail.
    ok=$(awk '/^test result: / {s += $4} END {print s + 0}' "$out")
    not_ok=$(awk '/^test result: / {s += $6} END {print s + 0}' "$out")
    ok=$((ok + $(awk '/^ok - / {n++} END {print n + 0}' "$out")))
    not_ok=$((not_ok + $(awk '/^not ok - / {n++} END {print n + 0}' "$out")))
    if [ "$status" -eq 0 ]; then
        phases_passed=$((phases_passed + 1))
        [ "$ok" -gt 0 ] || ok=1
    else
        phases_failed=$((phases_failed + 1))
        failed_names+=("$name")
        [ "$not_ok" -gt 0 ] || not_ok=1
    fi
    tests_passed=$((tests_passed + ok))
    tests_failed=$((tests_failed + not_ok))
}

phase "cargo test (workspace)" cargo test --workspace --locked
for extra in tests/phases/*.sh; do
    [ -e "$extra" ] || continue
    phase "$(basename "$extra" .sh)" bash "$extra"
done

echo
[ "$phases_failed" -eq 0 ] || echo "failed phases: ${failed_names[*]}"
echo "phases: $phases_passed passed, $phases_failed failed"
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$phases_failed" -eq 0 ]
