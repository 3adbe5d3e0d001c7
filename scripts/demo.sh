#!/usr/bin/env bash
# The demo of ovn-ipsec: what runs today on real components. Installs what it needs on Debian 12
# (run as root); idempotent. The multi-chassis demo of the daemon comes when ovn-ipsecd is
# assembled from these parts; until then this script says so rather than pretend.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
need_rust
need_pkgs pkg-config gcc libc6-dev iproute2
. tests/setup/vm.sh

banner() { printf '\n\033[1m== %s\033[0m\n\n' "$*"; }

banner "ovn-ipsecd, the daemon, is not assembled yet; these are its parts, running for real"

banner "1/2  ipsecctl decode: a real strongSwan 5.9.8 IKEv2 exchange, decrypted and checked"
fixture=ikev2/tests/fixtures/strongswan-5.9.8
cargo run --release --locked -q -p ipsecctl -- decode "$fixture/transport-two-children.pcap" \
    --keys "$fixture/transport-two-children.ikev2_decryption_table" \
    --ca "$fixture/ca-cert.pem"

banner "2/2  controller::kernel on Debian's kernel in qemu: a Geneve pair between two namespaces"
echo "Tunnel traffic is dropped before any SA exists, ESP on the wire once the SAs are in,"
echo "and repaired after 'ip xfrm state flush' behind the controller's back."
bash tests/phases/controller-kernel-guest.sh
