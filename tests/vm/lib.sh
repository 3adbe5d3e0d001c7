# shellcheck shell=bash disable=SC2034
# Shared helpers for the real-kernel rig. Source it; do not run it.
# Every message goes to stderr with a `vm:` prefix so it stands out from the guest console.

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$VM_DIR/../.." && pwd)"
# shellcheck source=../../scripts/lib.sh
. "$REPO_DIR/scripts/lib.sh"
VM_CACHE="$OVN_IPSEC_CACHE/vm"

vm_log() { printf 'vm: %s\n' "$*" >&2; }
# Exit status for "the rig itself failed" (no kernel, guest never came up, panic): like
# docker's 125, it says "the script could not be run", not "the script failed".
VM_EXIT_RIG=125
# Exit status for a timeout (script or guest), as timeout(1) uses.
VM_EXIT_TIMEOUT=124
vm_die() { printf 'vm: error: %s\n' "$*" >&2; exit "$VM_EXIT_RIG"; }

vm_need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] ||
            vm_die "'$c' is missing: run 'bash tests/setup/vm.sh' or apt-get install the package providing it (see tests/vm/README.md)"
    done
}

# vm_kver: the guest kernel version, e.g. 6.1.0-57-amd64. OVN_IPSEC_VM_KVER forces one;
# otherwise what linux-image-amd64 depends on, or (offline) the newest kernel in the cache.
vm_kver() {
    if [ -n "${OVN_IPSEC_VM_KVER:-}" ]; then
        echo "$OVN_IPSEC_VM_KVER"
        return
    fi
    local k memo="$VM_CACHE/kver"
    # apt-cache takes ~1 s: remember its answer until the package lists change.
    if [ -s "$memo" ] && [ "$memo" -nt /var/lib/apt/lists ] &&
        [ -d "$VM_CACHE/kernel/$(cat "$memo")" ]; then
        cat "$memo"
        return
    fi
    k=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*-amd64\)$/\1/p' | head -n1 || true)
    if [ -n "$k" ]; then
        mkdir -p "$VM_CACHE"
        echo "$k" >"$memo"
    fi
    if [ -z "$k" ] && [ -d "$VM_CACHE/kernel" ]; then
        k=$(find "$VM_CACHE/kernel" -mindepth 1 -maxdepth 1 -type d -name '*-amd64' -printf '%f\n' |
            sort -V | tail -n1)
    fi
    [ -n "$k" ] || vm_die "cannot tell the guest kernel version: 'apt-cache depends linux-image-amd64' found nothing (run apt-get update) and no kernel is cached in $VM_CACHE/kernel"
    echo "$k"
}
