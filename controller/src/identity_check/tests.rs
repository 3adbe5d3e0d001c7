use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;

/// The fixtures are valid from 2026-12-03 for ten years; check at 2027-06-01T00:00:00Z.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

fn files(cert: &str, key: &str, ca: &str) -> IdentityFiles {
    IdentityFiles {
        certificate: fixture(cert),
        private_key: fixture(key),
        ca_cert: fixture(ca),
    }
}

fn check(cert: &str, key: &str, ca: &str, chassis: &str) -> Result<LocalIdentity, IdentityError> {
    check_local_identity(&files(cert, key, ca), chassis, now())
}

fn message(r: Result<LocalIdentity, IdentityError>) -> String {
    r.expect_err("identity accepted").to_string()
}

#[test]
fn ovs_pki_chassis_certificate_and_key_are_accepted() {
    let id = check(
        "chassis-1-cert.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    )
    .unwrap();
    assert!(id.intermediates.is_empty());
    assert!(id.ca_subject.contains("CN="), "{}", id.ca_subject);
}

#[test]
fn pkcs1_key_and_ca_bundle_are_accepted() {
    check(
        "chassis-1-cert.pem",
        "chassis-1-pkcs1-privkey.pem",
        "ca-bundle.pem",
        "chassis-1",
    )
    .unwrap();
    check(
        "chassis-2-cert.pem",
        "chassis-2-privkey.pem",
        "ca-bundle.pem",
        "chassis-2",
    )
    .unwrap();
}

#[test]
fn ecdsa_keys_are_accepted() {
    for key in [
        "chassis-ec-sec1-privkey.pem",
        "chassis-ec-pkcs8-privkey.pem",
    ] {
        check("chassis-ec-cert.pem", key, "ca-a-cert.pem", "chassis-ec").unwrap();
    }
    check(
        "chassis-ec384-cert.pem",
        "chassis-ec384-privkey.pem",
        "ca-a-cert.pem",
        "chassis-ec384",
    )
    .unwrap();
}

#[test]
fn chassis_name_matches_case_insensitively() {
    check(
        "chassis-1-cert.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "Chassis-1",
    )
    .unwrap();
}

#[test]
fn certificate_of_another_chassis_is_refused_naming_both() {
    let m = message(check(
        "chassis-2-cert.pem",
        "chassis-2-privkey.pem",
        "ca-bundle.pem",
        "chassis-1",
    ));
    let path = fixture("chassis-2-cert.pem");
    assert_eq!(
        m,
        format!(
            "certificate {} names chassis 'chassis-2' but this chassis is 'chassis-1'",
            path.display()
        )
    );
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let m = message(check(
        "chassis-2-cert.pem",
        "chassis-2-privkey.pem",
        "ca-a-cert.pem",
        "chassis-2",
    ));
    assert!(m.contains("is not accepted with the CA certificate"), "{m}");
    assert!(m.contains("ca-a-cert.pem"), "{m}");
    assert!(m.contains("issuer is not a configured CA"), "{m}");

    let m = message(check(
        "rogue-chassis-1-cert.pem",
        "rogue-chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    ));
    assert!(m.contains("rogue-chassis-1-cert.pem"), "{m}");
    assert!(m.contains("issuer is not a configured CA"), "{m}");
}

#[test]
fn expired_certificate_is_refused() {
    let m = message(check(
        "expired-cert.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "chassis-old",
    ));
    assert!(m.contains("expired-cert.pem"), "{m}");
    assert!(m.contains("expired"), "{m}");
}

#[test]
fn key_of_another_certificate_is_refused() {
    let r = check(
        "chassis-1-cert.pem",
        "chassis-2-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    );
    assert!(matches!(r, Err(IdentityError::KeyMismatch { .. })), "{r:?}");
    let m = message(r);
    assert!(
        m.starts_with(&format!(
            "private key {} does not belong to certificate {}",
            fixture("chassis-2-privkey.pem").display(),
            fixture("chassis-1-cert.pem").display()
        )),
        "{m}"
    );
}

#[test]
fn key_of_another_type_is_refused() {
    let r = check(
        "chassis-1-cert.pem",
        "chassis-ec-pkcs8-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    );
    let m = message(r);
    assert!(m.contains("is a ECDSA-P256 key but certificate"), "{m}");
    assert!(m.contains("holds a RSA-2048 key"), "{m}");
}

#[test]
fn chain_through_an_intermediate_in_the_certificate_file_is_accepted() {
    let dir = std::env::temp_dir().join(format!("ovn-ipsec-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chain = dir.join("chassis-3-chain.pem");
    let mut pem = std::fs::read(fixture("chassis-3-cert.pem")).unwrap();
    pem.extend(std::fs::read(fixture("intermediate-ca-cert.pem")).unwrap());
    std::fs::write(&chain, pem).unwrap();

    let mut f = files(
        "chassis-3-cert.pem",
        "chassis-3-privkey.pem",
        "ca-a-cert.pem",
    );
    // Without the intermediate the chain cannot be built.
    assert!(matches!(
        check_local_identity(&f, "chassis-3", now()),
        Err(IdentityError::Untrusted { .. })
    ));
    f.certificate = chain;
    let id = check_local_identity(&f, "chassis-3", now()).unwrap();
    assert_eq!(id.intermediates.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_and_malformed_files_are_named() {
    let mut f = files(
        "chassis-1-cert.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
    );
    f.private_key = fixture("no-such-key.pem");
    let m = message(check_local_identity(&f, "chassis-1", now()));
    assert!(m.starts_with("cannot read private key "), "{m}");
    assert!(m.contains("no-such-key.pem"), "{m}");

    // A key where the certificate should be.
    let m = message(check(
        "chassis-1-privkey.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    ));
    assert!(m.starts_with("certificate "), "{m}");
    assert!(m.contains("no certificate found"), "{m}");

    // An end-entity certificate where the CA should be.
    let m = message(check(
        "chassis-1-cert.pem",
        "chassis-1-privkey.pem",
        "chassis-2-cert.pem",
        "chassis-1",
    ));
    assert!(m.starts_with("CA certificate "), "{m}");
    assert!(m.contains("is not a CA"), "{m}");

    // A certificate where the key should be.
    let m = message(check(
        "chassis-1-cert.pem",
        "chassis-1-cert.pem",
        "ca-a-cert.pem",
        "chassis-1",
    ));
    assert!(m.contains("no private key found"), "{m}");
}

#[test]
fn expiry_within_the_warning_window_is_reported() {
    let id = check(
        "chassis-1-cert.pem",
        "chassis-1-privkey.pem",
        "ca-a-cert.pem",
        "chassis-1",
    )
    .unwrap();
    // Valid for ten years from 2026-12-03: no warning half a year in.
    assert_eq!(id.expires_within(now(), EXPIRY_WARNING), None);
    let near_end = id.certificate.not_after() - Duration::from_secs(3600);
    assert_eq!(
        id.expires_within(near_end, EXPIRY_WARNING),
        Some(Duration::from_secs(3600))
    );
    let after = id.certificate.not_after() + Duration::from_secs(1);
    assert_eq!(
        id.expires_within(after, EXPIRY_WARNING),
        Some(Duration::ZERO)
    );
}
