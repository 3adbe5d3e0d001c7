# Sourced by scripts/test.sh (with scripts/lib.sh loaded): what the package phase
# (tests/phases/deb.sh) needs: cargo-deb, installed once into the cache so that CI's fresh
# clones reuse it, and debootstrap for the fresh Debian 12 the package is installed into.
#
# A failed cargo-deb install is not fatal here: the phase then reports it as a failed check.
CARGO_DEB_ROOT="$OVN_IPSEC_CACHE/cargo-deb"
CARGO_DEB_VERSION="3.8.0"
# dpkg-dev: dpkg-shlibdeps, which cargo-deb runs to fill in Depends (libc6 …); zstd for the
# cached bookworm tarball.
need_pkgs debootstrap dpkg-dev zstd
if [ ! -x "$CARGO_DEB_ROOT/bin/cargo-deb" ]; then
    log "installing cargo-deb $CARGO_DEB_VERSION into $CARGO_DEB_ROOT (a few minutes, once)"
    mkdir -p "$CARGO_DEB_ROOT"
    if ! cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" \
        --root "$CARGO_DEB_ROOT" >"$CARGO_DEB_ROOT/install.log" 2>&1; then
        log "cargo-deb could not be installed (see $CARGO_DEB_ROOT/install.log); the deb phase will fail"
    fi
fi
unset CARGO_DEB_ROOT CARGO_DEB_VERSION
