#!/usr/bin/env bash
# Fuzz phase: runs every cargo-fuzz target in fuzz/fuzz_targets/ for FUZZ_SECONDS (default 20)
# each, starting from its seed corpus fuzz/corpus/<target>/ (copied to a temporary directory,
# so the checkout is never written to). Fails if any target crashes, leaks or times out.
#
# cargo-fuzz is installed by tests/setup/fuzz.sh; when it could not be, this phase says so and
# skips. The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

seconds="${FUZZ_SECONDS:-20}"
cargo_fuzz_bin="$OVN_IPSEC_CACHE/cargo-fuzz/bin"
if [ ! -x "$cargo_fuzz_bin/cargo-fuzz" ]; then
    echo "fuzz: SKIPPED — cargo-fuzz is not installed in $cargo_fuzz_bin"
    echo "      (tests/setup/fuzz.sh installs it; see $OVN_IPSEC_CACHE/cargo-fuzz/install.log)"
    exit 0
fi
export PATH="$cargo_fuzz_bin:$PATH"
# Sanitizer builds of the fuzz crate are kept in the cache, outside the checkout.
target_dir="${FUZZ_TARGET_DIR:-$OVN_IPSEC_CACHE/fuzz-target}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

targets=()
for src in fuzz/fuzz_targets/*.rs; do
    [ -e "$src" ] && targets+=("$(basename "$src" .rs)")
done
[ "${#targets[@]}" -gt 0 ] || die "no fuzz targets in fuzz/fuzz_targets/"

failed=()
for name in "${targets[@]}"; do
    corpus="$work/corpus/$name"
    artifacts="$work/artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/corpus/$name" ]; then
        cp -R "fuzz/corpus/$name/." "$corpus/"
    fi
    log "fuzz: building $name"
    if ! RUSTC_BOOTSTRAP=1 cargo fuzz build --target-dir "$target_dir" "$name" >"$work/$name.build.log" 2>&1; then
        failed+=("$name")
        echo "fuzz: $name: BUILD FAILED; last lines of the build log:"
        tail -n 40 "$work/$name.build.log"
        continue
    fi
    # Run the libFuzzer binary itself: `cargo fuzz run` would create fuzz/artifacts/ in the checkout.
    binary="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release/$name"
    log "fuzz: $name for ${seconds}s ($(find "$corpus" -type f | wc -l) seed inputs)"
    # -timeout: one input running longer than FUZZ_INPUT_TIMEOUT seconds is a hang (libFuzzer
    # would wait 20 minutes by default, and -max_total_time is only checked between inputs).
    if "$binary" "$corpus" -max_total_time="$seconds" -timeout="${FUZZ_INPUT_TIMEOUT:-60}" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$work/$name.log" 2>&1; then
        execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$' || true)"
        echo "fuzz: $name: ok, ${execs:-?} executions, no crash"
    else
        failed+=("$name")
        echo "fuzz: $name: FAILED; last lines of its log:"
        tail -n 40 "$work/$name.log"
        for crash in "$artifacts"/*; do
            [ -f "$crash" ] || continue
            echo "fuzz: $name: crashing input $(basename "$crash") (hex):"
            od -An -tx1 -v "$crash" | head -n 20
        done
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failing targets: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${seconds}s without a crash"
