# shellcheck shell=bash
# Setup for the real-IKE-peer harness (tests/src/peers, tests/tests/peers_*.rs): Debian's
# strongSwan 5.9.8 installed, Libreswan 4.10 unpacked into $OVN_IPSEC_CACHE/libreswan (the two
# packages conflict, so Libreswan is never installed), ovs-pki for the certificates and the NSS
# tools that build pluto's certificate database. Sourced by scripts/test.sh with scripts/lib.sh
# loaded; also runs on its own (`bash tests/setup/peers.sh`). Idempotent.
if ! declare -F need_pkgs >/dev/null; then
    . "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
fi
# strongSwan: charon, swanctl and the plugins ovs-monitor-ipsec's configuration needs (vici,
# pem, x509, openssl for AES-GCM and MODP, kernel-netlink). openvswitch-common: ovs-pki.
# libnss3-tools: certutil and pk12util. The rest: what Libreswan's pluto links against.
need_pkgs strongswan-charon strongswan-swanctl libstrongswan-standard-plugins \
    libstrongswan-extra-plugins libcharon-extra-plugins openvswitch-common openssl \
    libnss3-tools libnss3 libnspr4 libldns3 libevent-core-2.1-7 libevent-pthreads-2.1-7 \
    libunbound8 libcurl3-nss libcap-ng0 libaudit1 libldap-2.5-0 iproute2 util-linux
# Libreswan's package conflicts with strongSwan's: fetch the .deb and unpack it into the cache.
PEERS_LIBRESWAN_DIR="$OVN_IPSEC_CACHE/libreswan"
if [ ! -x "$PEERS_LIBRESWAN_DIR/usr/libexec/ipsec/pluto" ]; then
    log "fetching Libreswan into $PEERS_LIBRESWAN_DIR"
    PEERS_TMP="$(mktemp -d)"
    if ! (cd "$PEERS_TMP" && apt-get download -qq libreswan >/dev/null 2>&1); then
        apt-get update -qq -o DPkg::Lock::Timeout=300
        (cd "$PEERS_TMP" && apt-get download -qq libreswan >/dev/null) \
            || die "tests/setup/peers.sh: 'apt-get download libreswan' failed"
    fi
    rm -rf "$PEERS_LIBRESWAN_DIR.partial"
    mkdir -p "$PEERS_LIBRESWAN_DIR.partial"
    dpkg-deb -x "$PEERS_TMP"/libreswan_*.deb "$PEERS_LIBRESWAN_DIR.partial" \
        || die "tests/setup/peers.sh: could not unpack the Libreswan .deb"
    rm -rf "$PEERS_LIBRESWAN_DIR" "$PEERS_TMP"
    mv "$PEERS_LIBRESWAN_DIR.partial" "$PEERS_LIBRESWAN_DIR"
    unset PEERS_TMP
fi
unset PEERS_LIBRESWAN_DIR
