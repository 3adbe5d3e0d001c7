# Setup for the real-kernel rig (tests/vm): qemu, the guest's user space, and the guest kernel
# fetched into $OVN_IPSEC_CACHE/vm. Sourced by scripts/test.sh with scripts/lib.sh loaded.
# qemu-system-x86: the emulator; busybox-static: the guest's init and tools; cpio: packs the
# initramfs; kmod: depmod/modprobe resolve module dependencies on the unpacked kernel;
# nftables, tcpdump, iproute2, dash: real tools copied into the guest with their libraries.
need_pkgs qemu-system-x86 busybox-static cpio kmod nftables tcpdump iproute2 dash netbase
bash tests/vm/kernel.sh >/dev/null || die "tests/setup/vm.sh: could not fetch the guest kernel (see above)"
