# Sourced by scripts/test.sh (with scripts/lib.sh loaded): installs cargo-fuzz for the fuzz
# phase (tests/phases/fuzz.sh) into the cache, so CI's fresh clones build it only once.
#
# cargo-fuzz only drives the build; the toolchain stays stable (the phase sets RUSTC_BOOTSTRAP=1
# for the sanitizer flags libFuzzer needs). A failed install is not fatal here: the fuzz phase
# then prints that it skips and why.
# libFuzzer is C++: the libfuzzer-sys build script compiles it for every fresh fuzz build.
need_pkgs g++
cargo_install_cached cargo-fuzz 0.13.2 "the fuzz phase will skip"
