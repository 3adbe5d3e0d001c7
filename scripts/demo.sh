#!/usr/bin/env bash
# The demo of ovn-ipsec on real components. Installs what it needs on Debian 12 (run as root);
# idempotent. Where the host kernel has no ESP (as on our machines) the chassis run inside a
# qemu guest booting Debian's kernel (tests/vm).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
need_rust
need_pkgs pkg-config gcc libc6-dev iproute2
. tests/setup/ovsdb.sh
. tests/setup/vm.sh

banner() { printf '\n\033[1m== %s\033[0m\n\n' "$*"; }

banner "1/2  three chassis, one ovn-ipsecd each, a real OVN Southbound DB, Debian's kernel in qemu"
cat <<'TEXT'
In the guest: ovsdb-server with the OVN Southbound schema; chassis-1..3 in network namespaces on
a bridge, each running ovn-ipsecd (IKEv2 with ovs-pki certificates, ESP programmed over XFRM),
and real Geneve links (ip link add ... type geneve) between every pair, with an overlay subnet
per pair; the chassis registered with ovn-sbctl and SB_Global.ipsec=true. Each "ok" line below
is a check: tunnel policies before any SA, every pair's CHILD_SAs up, ping over the Geneve links
between every pair (with the round trip), the Geneve packets as ESP on the wire with zero
plaintext packets (nftables counters), ipsecctl's view, chassis-del, forced UDP encapsulation,
a chassis presenting another chassis's certificate rejected, kill -9 and restart.
TEXT
bash tests/phases/daemon-guest.sh

banner "2/2  ipsecctl decode: a real strongSwan 5.9.8 IKEv2 exchange, decrypted and checked"
fixture=ikev2/tests/fixtures/strongswan-5.9.8
cargo run --release --locked -q -p ipsecctl -- decode "$fixture/transport-two-children.pcap" \
    --keys "$fixture/transport-two-children.ikev2_decryption_table" \
    --ca "$fixture/ca-cert.pem"
