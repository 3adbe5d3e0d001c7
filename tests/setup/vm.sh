# shellcheck shell=bash
# Setup for the real-kernel rig (tests/vm): qemu, the guest's user space, and the guest kernel
# fetched into $OVN_IPSEC_CACHE/vm. Sourced by scripts/test.sh with scripts/lib.sh loaded.
# qemu-system-x86: the emulator; busybox-static: the guest's init and tools; cpio: packs the
# initramfs; kmod: depmod/modprobe resolve module dependencies on the unpacked kernel; xz-utils:
# extracts the bootable vmlinux; nftables, tcpdump, iproute2, dash, netbase: real tools and
# files copied into the guest with their libraries.
need_pkgs qemu-system-x86 busybox-static cpio kmod xz-utils nftables tcpdump iproute2 dash netbase
bash tests/vm/kernel.sh >/dev/null || die "tests/setup/vm.sh: could not fetch the guest kernel (see above)"
# The base initramfs, so that the first test does not pay for it (extras build their own).
bash tests/vm/initramfs.sh >/dev/null || die "tests/setup/vm.sh: could not build the initramfs (see above)"
