# Sourced by scripts/test.sh (with scripts/lib.sh loaded): installs cargo-fuzz for the fuzz
# phase (tests/phases/fuzz.sh) into the cache, so CI's fresh clones build it only once.
#
# cargo-fuzz only drives the build; the toolchain stays stable (the phase sets RUSTC_BOOTSTRAP=1
# for the sanitizer flags libFuzzer needs). A failed install is not fatal here: the fuzz phase
# then prints that it skips and why.
CARGO_FUZZ_ROOT="$OVN_IPSEC_CACHE/cargo-fuzz"
CARGO_FUZZ_VERSION="0.13.2"
# libFuzzer is C++: the libfuzzer-sys build script compiles it for every fresh fuzz build.
need_pkgs g++
if [ ! -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (a few minutes, once)"
    mkdir -p "$CARGO_FUZZ_ROOT"
    if ! cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" \
        --root "$CARGO_FUZZ_ROOT" >"$CARGO_FUZZ_ROOT/install.log" 2>&1; then
        log "cargo-fuzz could not be installed (see $CARGO_FUZZ_ROOT/install.log); the fuzz phase will skip"
    fi
fi
unset CARGO_FUZZ_ROOT CARGO_FUZZ_VERSION
