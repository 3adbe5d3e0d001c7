# shellcheck shell=bash
# Sourced by scripts/test.sh (with scripts/lib.sh loaded): what the systemd guest phase
# (tests/phases/systemd-guest.sh) needs beyond the rig (tests/setup/vm.sh) and the package
# tools (tests/setup/deb.sh): debootstrap and zstd for the cached Debian tree, e2fsprogs for
# `mkfs.ext4 -d` (the tree as the guest's root disk), and the Southbound schema the guest's
# ovsdb-server serves (ovn-central).
need_pkgs debootstrap zstd e2fsprogs ovn-central
