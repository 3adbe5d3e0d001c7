#!/usr/bin/env bash
# ovn-ipsecd under faults, in one qemu boot (guest half: tests/daemon/faults.sh): kill -9 and
# restart with the loss of a steady probe stream measured, SB_Global.ipsec off and on, the
# Southbound server stopped for longer than a CHILD_SA lifetime, `ip xfrm state/policy flush`
# behind the daemon's back, a chassis whose certificate has expired, a certificate replaced on
# disk, a chassis removed; after each the count of plaintext Geneve packets on the wire.
#
# This host half makes the certificates the fixtures lack (their CA keys were thrown away): a CA
# of this run, a second valid certificate for chassis-1 (same key, another subject) and a
# chassis-4 certificate that expires EXPIRY_AFTER seconds after it is made, so that its daemon
# starts with it and its peers see it expired later in the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_rust
need_pkgs openssl
EXPIRY_AFTER=${DAEMON_FAULTS_EXPIRY_AFTER:-100}

# The binaries first (run-phase.sh finds them built), so the expiry clock starts near the boot.
cargo build --locked -q -p controller --bin ovn-ipsecd
cargo build --locked -q -p ovn-ipsec-tests --bin udp-probe
cargo build --locked -q -p ipsecctl --bin ipsecctl

work=$(mktemp -d "${TMPDIR:-/tmp}/daemon-faults-pki.XXXXXX")
trap 'rm -rf "$work"' EXIT
fx=ikev2/tests/fixtures/pki
(
    cd "$work"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out faults-ca-cert.pem -days 3650 \
        -subj "/O=ovn-ipsec faults/CN=faults CA" \
        -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    # chassis-1, rotated: the same key, a certificate of another CA in the bundle.
    openssl req -new -key "$OLDPWD/$fx/chassis-1-privkey.pem" -out c1.csr \
        -subj "/O=ovn-ipsec faults/CN=chassis-1" -addext subjectAltName=DNS:chassis-1
    openssl x509 -req -in c1.csr -CA faults-ca-cert.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -copy_extensions copy -out chassis-1-rotated-cert.pem 2>/dev/null
    # chassis-4, expiring: `openssl ca` is the tool that takes an end date to the second.
    openssl req -new -newkey rsa:2048 -nodes -keyout chassis-4-privkey.pem -out c4.csr \
        -subj "/O=ovn-ipsec faults/CN=chassis-4" -addext subjectAltName=DNS:chassis-4 2>/dev/null
    : >index.txt
    echo 1000 >serial
    cat >ca.cnf <<CNF
[ca]
default_ca = faults
[faults]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
organizationName = optional
CNF
    expiry=$(($(date +%s) + EXPIRY_AFTER))
    openssl ca -batch -notext -config ca.cnf -cert faults-ca-cert.pem -keyfile ca.key -in c4.csr \
        -startdate 20200101000000Z -enddate "$(date -u -d "@$expiry" +%Y%m%d%H%M%SZ)" \
        -out chassis-4-expiring-cert.pem 2>/dev/null
    echo "$expiry" >chassis-4-expiry
)
echo "daemon-faults: chassis-4's certificate expires at $(date -u -d "@$(cat "$work/chassis-4-expiry")" +%T) UTC (in ${EXPIRY_AFTER} s)"

bash tests/daemon/run-phase.sh daemon-faults tests/daemon/faults.sh \
    "$work/faults-ca-cert.pem" "$work/chassis-1-rotated-cert.pem" \
    "$work/chassis-4-expiring-cert.pem" "$work/chassis-4-privkey.pem" "$work/chassis-4-expiry"
