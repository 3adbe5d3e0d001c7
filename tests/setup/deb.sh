# Sourced by scripts/test.sh (with scripts/lib.sh loaded): what the package phase
# (tests/phases/deb.sh) needs: cargo-deb, installed once into the cache so that CI's fresh
# clones reuse it, and debootstrap for the fresh Debian 12 the package is installed into.
#
# A failed cargo-deb install is not fatal here: the phase then reports it as a failed check.
# dpkg-dev: dpkg-shlibdeps, which cargo-deb runs to fill in Depends (libc6 …); zstd for the
# cached bookworm tarball.
need_pkgs debootstrap dpkg-dev zstd
cargo_install_cached cargo-deb 3.8.0 "the deb phase will fail"
