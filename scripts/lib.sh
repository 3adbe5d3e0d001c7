# Shared helpers for the scripts in this folder. Source it; do not run it.
#
# Everything here is idempotent: a second run installs nothing and downloads nothing.

# Where downloads and built artefacts that outlive a checkout are kept (guest kernel, initramfs,
# cargo-fuzz). CI's fresh clones reuse it; deleting it only makes the next run slower.
OVN_IPSEC_CACHE="${OVN_IPSEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ovn-ipsec}"
export OVN_IPSEC_CACHE

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run this as root (it installs Debian packages and creates network namespaces)"
}

# need_pkgs PKG...: apt-get install the packages that are not installed yet.
need_pkgs() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    if [ ! -f "$OVN_IPSEC_CACHE/.apt-updated" ] || [ -n "$(find "$OVN_IPSEC_CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
        apt-get update -qq -o DPkg::Lock::Timeout=300
        mkdir -p "$OVN_IPSEC_CACHE" && touch "$OVN_IPSEC_CACHE/.apt-updated"
    fi
    # Wait for another apt/dpkg run (a parallel test setup) instead of failing at once.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# need_rust: make sure cargo is on PATH (rustup's default location first).
need_rust() {
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v cargo >/dev/null 2>&1; then
        need_pkgs curl ca-certificates gcc libc6-dev
        log "installing the Rust toolchain with rustup"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
}

# cargo_install_cached CRATE VERSION CONSEQUENCE: installs the cargo tool CRATE (whose binary
# is named like it) at VERSION into "$OVN_IPSEC_CACHE/CRATE" once, so CI's fresh clones reuse
# it. A failed install is logged, with CONSEQUENCE (what happens then), and is not an error:
# the setup files that call this are sourced and must not stop the run.
cargo_install_cached() {
    local crate="$1" version="$2" consequence="$3"
    local root="$OVN_IPSEC_CACHE/$crate"
    [ -x "$root/bin/$crate" ] && return 0
    log "installing $crate $version into $root (a few minutes, once)"
    mkdir -p "$root"
    if ! cargo install "$crate" --locked --version "$version" \
        --root "$root" >"$root/install.log" 2>&1; then
        log "$crate could not be installed (see $root/install.log); $consequence"
    fi
    return 0
}
