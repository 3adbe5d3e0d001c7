#!/usr/bin/env bash
# The mixed mesh, in one qemu boot of the real-kernel guest: a real Southbound ovsdb-server and
# four chassis in network namespaces on a bridge. chassis-1 and chassis-4 run ovn-ipsecd;
# chassis-2 runs Debian's strongSwan 5.9.8 (charon + swanctl) and chassis-3 Libreswan 4.10
# (pluto), both configured exactly as ovs-monitor-ipsec configures them for a full mesh of
# Geneve tunnels (tests/src/bin/swan-mesh-config.rs renders it with the peer harness), the way
# a cluster migrating from ovs-monitor-ipsec runs. Every pair (charon <-> pluto too) gets both
# CHILD_SAs on both sides, UDP to 6081 and ping over real Geneve devices flow both ways as ESP
# with zero plaintext 6081 on the wire, first with the ovn-ipsecd side (and charon towards
# pluto) initiating, then, after each IKE SA is deleted, with the swan side initiating.
# Guest half: tests/daemon/mixed-mesh.sh. Needs bash tests/setup/peers.sh and tests/setup/vm.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust

libreswan=${OVN_IPSEC_LIBRESWAN:-$OVN_IPSEC_CACHE/libreswan}
if [ ! -x /usr/lib/ipsec/charon ] || ! command -v swanctl >/dev/null || ! command -v certutil >/dev/null; then
    die "mixed-mesh-guest: strongSwan or the NSS tools are missing: run bash tests/setup/peers.sh"
fi
if [ ! -x "$libreswan/usr/libexec/ipsec/pluto" ]; then
    die "mixed-mesh-guest: no unpacked Libreswan in $libreswan: run bash tests/setup/peers.sh"
fi

cargo build --locked -q -p ovn-ipsec-tests --bin swan-mesh-config
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mixed-mesh.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The PKI (ovs-pki, as an OVN operator makes it) for all four chassis and the swan chassis's
# configuration, with the paths they will have in the guest (/tmp/mesh).
"$target/debug/swan-mesh-config" "$tmp/mesh" /tmp/mesh \
    chassis-1=10.0.0.1 chassis-2=10.0.0.2:strongswan chassis-3=10.0.0.3:libreswan chassis-4=10.0.0.4
tar -C "$tmp" -cf "$tmp/mesh.tar" mesh

# pluto and its helpers from the unpacked .deb, at the paths Libreswan expects: the guest has
# no strongSwan `ipsec` script, so nothing needs hiding there.
OVN_IPSEC_VM_EXTRA="@tests/vm/extras/swan-peers.list \
$libreswan/usr/libexec/ipsec=/usr/libexec/ipsec $libreswan/usr/sbin/ipsec=/usr/sbin/ipsec \
${OVN_IPSEC_VM_EXTRA:-}" \
    bash tests/daemon/run-phase.sh mixed-mesh-guest tests/daemon/mixed-mesh.sh "$tmp/mesh.tar"
