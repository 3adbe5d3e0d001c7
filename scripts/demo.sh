#!/usr/bin/env bash
# The demo of ovn-ipsec. Installs what it needs on Debian 12 (run as root); idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
need_rust
need_pkgs pkg-config gcc libc6-dev

echo "ovn-ipsecd, the daemon, is not implemented yet: there is no multi-chassis demo to run."
echo "What works today is shown instead: decoding and decrypting a real strongSwan IKEv2 exchange."
cargo build --release --locked -p ipsecctl
fixture=ikev2/tests/fixtures/strongswan-5.9.8
./target/release/ipsecctl decode "$fixture/transport-two-children.pcap" \
    --keys "$fixture/transport-two-children.ikev2_decryption_table"
