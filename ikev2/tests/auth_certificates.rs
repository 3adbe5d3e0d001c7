//! Certificates from ovs-pki PEM files, chain validation against a CA bundle, CERTREQ, and
//! identity matching.

use std::time::{Duration, SystemTime};

use ikev2::auth::{
    certificate_proves, parse_certreq, signed_octets, verify_chassis_identity, AuthError,
    AuthScheme, Certificate, Identity, PeerCredentials, PrivateKey, SignatureScheme, TrustStore,
};
use ikev2::registry::{CertEncoding, IdType};
use ring::rand::SystemRandom;

const CA_A: &[u8] = include_bytes!("fixtures/pki/ca-a-cert.pem");
const CA_B: &[u8] = include_bytes!("fixtures/pki/ca-b-cert.pem");
const CA_BUNDLE: &[u8] = include_bytes!("fixtures/pki/ca-bundle.pem");
const ROGUE_CA: &[u8] = include_bytes!("fixtures/pki/rogue-ca-cert.pem");
const CHASSIS_1: &[u8] = include_bytes!("fixtures/pki/chassis-1-cert.pem");
const CHASSIS_1_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-1-privkey.pem");
const CHASSIS_2: &[u8] = include_bytes!("fixtures/pki/chassis-2-cert.pem");
const CHASSIS_3: &[u8] = include_bytes!("fixtures/pki/chassis-3-cert.pem");
const INTERMEDIATE: &[u8] = include_bytes!("fixtures/pki/intermediate-ca-cert.pem");
const ROGUE_CHASSIS_1: &[u8] = include_bytes!("fixtures/pki/rogue-chassis-1-cert.pem");
const ROGUE_CHASSIS_1_KEY: &[u8] = include_bytes!("fixtures/pki/rogue-chassis-1-privkey.pem");
const EXPIRED: &[u8] = include_bytes!("fixtures/pki/expired-cert.pem");
const NOSAN: &[u8] = include_bytes!("fixtures/pki/nosan-cert.pem");
const FORGED: &[u8] = include_bytes!("fixtures/pki/forged-by-chassis-1-cert.pem");
const EC: &[u8] = include_bytes!("fixtures/pki/chassis-ec-cert.pem");
const ROTATING_OLD: &[u8] = include_bytes!("fixtures/pki/rotating-ca-old-cert.pem");
const ROTATING_NEW: &[u8] = include_bytes!("fixtures/pki/rotating-ca-new-cert.pem");
const ROTATED_OLD_CHASSIS: &[u8] = include_bytes!("fixtures/pki/rotated-old-chassis-cert.pem");
const ROTATED_NEW_CHASSIS: &[u8] = include_bytes!("fixtures/pki/rotated-new-chassis-cert.pem");
const EKU_SERVER: &[u8] = include_bytes!("fixtures/pki/eku-server-cert.pem");
const EKU_CODESIGNING: &[u8] = include_bytes!("fixtures/pki/eku-codesigning-cert.pem");

/// 2027-06-01T00:00:00Z: inside every fixture's validity period except the expired one.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000)
}

fn cert(pem: &[u8]) -> Certificate {
    Certificate::from_pem(pem).unwrap()
}

fn bundle() -> TrustStore {
    TrustStore::from_pem(CA_BUNDLE).unwrap()
}

#[test]
fn ovs_pki_pem_with_leading_text_parses() {
    assert!(CHASSIS_1.starts_with(b"Certificate:"));
    let c = cert(CHASSIS_1);
    assert_eq!(
        c.subject(),
        "C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-1"
    );
    assert_eq!(c.dns_names(), ["chassis-1"]);
    assert_eq!(c.common_names(), ["chassis-1"]);
    assert!(!c.is_ca());
    assert!(cert(CA_A).is_ca());
}

#[test]
fn ca_bundle_holds_both_cas() {
    let store = bundle();
    assert_eq!(store.cas().len(), 2);
    assert_eq!(store.cas()[0], cert(CA_A));
    assert_eq!(store.cas()[1], cert(CA_B));
}

#[test]
fn chassis_certificates_of_either_ca_in_the_bundle_verify() {
    let store = bundle();
    let ca = store.verify_chain(&cert(CHASSIS_1), &[], now()).unwrap();
    assert_eq!(ca, &cert(CA_A));
    let ca = store.verify_chain(&cert(CHASSIS_2), &[], now()).unwrap();
    assert_eq!(ca, &cert(CA_B));
    store.verify_chain(&cert(EC), &[], now()).unwrap();
}

#[test]
fn rekeyed_ca_with_the_same_name_validates_both_generations() {
    let (old, new) = (cert(ROTATING_OLD), cert(ROTATING_NEW));
    assert_eq!(old.subject(), new.subject());
    let store = TrustStore::new(vec![old.clone(), new.clone()]).unwrap();
    assert_eq!(
        store
            .verify_chain(&cert(ROTATED_OLD_CHASSIS), &[], now())
            .unwrap(),
        &old
    );
    assert_eq!(
        store
            .verify_chain(&cert(ROTATED_NEW_CHASSIS), &[], now())
            .unwrap(),
        &new
    );
    // After the rotation, only the new CA is configured: the old certificate's signature
    // does not verify under the new key of the same name.
    let new_only = TrustStore::new(vec![new]).unwrap();
    assert!(matches!(
        new_only.verify_chain(&cert(ROTATED_OLD_CHASSIS), &[], now()),
        Err(AuthError::UntrustedCertificate { .. })
    ));
}

#[test]
fn certificate_of_a_ca_not_in_the_store_is_untrusted() {
    let only_a = TrustStore::from_pem(CA_A).unwrap();
    assert!(matches!(
        only_a.verify_chain(&cert(CHASSIS_2), &[], now()),
        Err(AuthError::UntrustedCertificate { reason, .. })
            if reason == "issuer is not a configured CA"
    ));
    let err = bundle()
        .verify_chain(&cert(ROGUE_CHASSIS_1), &[], now())
        .unwrap_err();
    assert!(matches!(err, AuthError::UntrustedCertificate { .. }));
    assert!(err.to_string().contains("CN=chassis-1"), "{err}");
}

#[test]
fn expired_certificate_is_reported_with_its_subject_and_date() {
    let err = bundle()
        .verify_chain(&cert(EXPIRED), &[], now())
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::CertificateExpired {
            subject: "C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-old"
                .into(),
            not_after: "Jan  1 00:00:00 2021 +00:00".into(),
            now: "Jun  1 00:00:00 2027 +00:00".into(),
        }
    );
}

#[test]
fn certificate_before_its_validity_period_is_not_yet_valid() {
    let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
    assert!(matches!(
        bundle().verify_chain(&cert(CHASSIS_1), &[], before),
        Err(AuthError::CertificateNotYetValid { .. })
    ));
}

#[test]
fn chain_past_the_ca_validity_fails() {
    // 2037-01-01: after every notAfter (ten years from December 2026).
    let late = SystemTime::UNIX_EPOCH + Duration::from_secs(2_114_380_800);
    assert!(matches!(
        bundle().verify_chain(&cert(CHASSIS_1), &[], late),
        Err(AuthError::CertificateExpired { .. })
    ));
}

#[test]
fn extended_key_usage_must_allow_ike_when_present() {
    let store = bundle();
    store.verify_chain(&cert(EKU_SERVER), &[], now()).unwrap();
    assert!(matches!(
        store.verify_chain(&cert(EKU_CODESIGNING), &[], now()),
        Err(AuthError::UntrustedCertificate { reason, .. })
            if reason == "extendedKeyUsage allows neither serverAuth, clientAuth nor ipsecIKE"
    ));
}

#[test]
fn expired_ca_is_reported_even_when_the_chassis_certificate_is_valid() {
    // ovs-pki signed the chassis certificate seconds after making the CA, both for ten years:
    // one second after the CA's notAfter, only the CA has expired.
    let (ca, leaf) = (cert(CA_A), cert(CHASSIS_1));
    let t = ca.not_after() + Duration::from_secs(1);
    assert!(leaf.not_after() > t);
    assert_eq!(
        bundle().verify_chain(&leaf, &[], t).unwrap_err(),
        ca.check_validity(t).unwrap_err()
    );
    assert!(matches!(
        ca.check_validity(t),
        Err(AuthError::CertificateExpired { subject, .. }) if subject == ca.subject()
    ));
}

#[test]
fn chain_through_an_intermediate_from_cert_payloads_verifies() {
    let store = TrustStore::from_pem(CA_A).unwrap();
    let leaf = cert(CHASSIS_3);
    let intermediate = cert(INTERMEDIATE);
    assert!(matches!(
        store.verify_chain(&leaf, &[], now()),
        Err(AuthError::UntrustedCertificate { .. })
    ));
    // Intermediates arrive in any order, mixed with unrelated certificates.
    let ca = store
        .verify_chain(&leaf, &[cert(CHASSIS_2), intermediate], now())
        .unwrap();
    assert_eq!(ca, &cert(CA_A));
}

#[test]
fn chain_through_an_end_entity_certificate_is_refused() {
    let store = TrustStore::from_pem(CA_A).unwrap();
    assert!(matches!(
        store.verify_chain(&cert(FORGED), &[cert(CHASSIS_1)], now()),
        Err(AuthError::UntrustedCertificate { reason, .. })
            if reason == "an issuer in the chain is not a CA (basicConstraints)"
    ));
}

#[test]
fn trust_store_refuses_non_ca_certificates_and_empty_bundles() {
    assert_eq!(
        TrustStore::from_pem(CHASSIS_1).unwrap_err(),
        AuthError::NotACaCertificate {
            subject: cert(CHASSIS_1).subject().to_owned()
        }
    );
    assert_eq!(
        TrustStore::new(Vec::new()).unwrap_err(),
        AuthError::EmptyCaBundle
    );
    assert_eq!(
        TrustStore::from_pem(b"no pem here").unwrap_err(),
        AuthError::NoCertificate
    );
}

#[test]
fn too_many_intermediates_are_refused() {
    let many = vec![cert(INTERMEDIATE); 9];
    assert_eq!(
        bundle().verify_chain(&cert(CHASSIS_3), &many, now()),
        Err(AuthError::TooManyIntermediates { count: 9, max: 8 })
    );
}

#[test]
fn cert_payload_is_x509_signature_der() {
    let c = cert(CHASSIS_1);
    let (encoding, data) = c.cert_payload();
    assert_eq!(encoding, CertEncoding::X509_SIGNATURE);
    assert_eq!(data[0], 0x30);
    assert_eq!(Certificate::from_cert_payload(encoding, data).unwrap(), c);
    assert_eq!(
        Certificate::from_cert_payload(CertEncoding::HASH_URL_X509_CERT, data),
        Err(AuthError::UnsupportedCertEncoding(
            CertEncoding::HASH_URL_X509_CERT
        ))
    );
}

#[test]
fn malformed_cert_payloads_fail_without_panicking() {
    let der = cert(CHASSIS_1).der().to_vec();
    for cut in [0, 1, 4, 100, der.len() - 1] {
        assert!(matches!(
            Certificate::from_der(&der[..cut]),
            Err(AuthError::MalformedCertificate(_))
        ));
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(Certificate::from_der(&trailing).is_err());
    assert!(matches!(
        Certificate::from_der(&vec![0x30; 20_000]),
        Err(AuthError::CertificateTooLarge { len: 20_000, .. })
    ));
}

#[test]
fn certreq_data_is_sha1_of_each_ca_spki_and_matches_back() {
    let store = bundle();
    let data = store.certreq_data();
    assert_eq!(data.len(), 40);
    // SHA-1 over the SubjectPublicKeyInfo DER, as `openssl x509 -pubkey | openssl sha1` shows.
    let a = cert(CA_A);
    let spki_sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, a.spki_der());
    assert_eq!(&data[..20], spki_sha1.as_ref());

    // A peer asking for CA B and an unknown CA gets CA B.
    let mut request = cert(ROGUE_CA).spki_sha1().to_vec();
    request.extend(cert(CA_B).spki_sha1());
    let named = store.cas_named_by_certreq(&request).unwrap();
    assert_eq!(named, [&cert(CA_B)]);
    assert!(store
        .cas_named_by_certreq(&cert(ROGUE_CA).spki_sha1())
        .unwrap()
        .is_empty());
    assert_eq!(
        parse_certreq(&[0; 21]),
        Err(AuthError::MalformedCertReq(21))
    );
}

#[test]
fn fqdn_identity_matches_san_case_insensitively() {
    let c = cert(CHASSIS_1);
    certificate_proves(&c, &Identity::Fqdn("chassis-1".into())).unwrap();
    certificate_proves(&c, &Identity::Fqdn("CHASSIS-1".into())).unwrap();
    certificate_proves(&c, &Identity::Fqdn("chassis-1.".into())).unwrap();
}

#[test]
fn fqdn_identity_mismatch_names_both_identities() {
    let err =
        certificate_proves(&cert(CHASSIS_1), &Identity::Fqdn("chassis-2".into())).unwrap_err();
    assert_eq!(
        err,
        AuthError::IdentityMismatch {
            expected: "ID_FQDN chassis-2".into(),
            presented: "certificate of C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch \
                        certifier, CN=chassis-1 (DNS:chassis-1)"
                .into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "identity mismatch: expected ID_FQDN chassis-2, peer presented certificate of C=US, \
         ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-1 (DNS:chassis-1)"
    );
}

#[test]
fn fqdn_identity_falls_back_to_cn_only_without_san() {
    let c = cert(NOSAN);
    assert!(!c.has_subject_alt_name());
    certificate_proves(&c, &Identity::Fqdn("chassis-nosan".into())).unwrap();
    assert!(certificate_proves(&c, &Identity::Fqdn("chassis-1".into())).is_err());
}

#[test]
fn dn_identity_must_equal_the_subject() {
    let c = cert(CHASSIS_1);
    let id = Identity::from_id_payload(IdType::ID_DER_ASN1_DN, c.subject_der()).unwrap();
    certificate_proves(&c, &id).unwrap();
    let other =
        Identity::from_id_payload(IdType::ID_DER_ASN1_DN, cert(CHASSIS_2).subject_der()).unwrap();
    let err = certificate_proves(&c, &other).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected ID_DER_ASN1_DN C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-2"),
        "{err}"
    );
}

#[test]
fn ip_identity_needs_a_san_ip_address() {
    let err =
        certificate_proves(&cert(CHASSIS_1), &Identity::Ipv4([10, 0, 0, 1].into())).unwrap_err();
    assert!(err.to_string().contains("ID_IPV4_ADDR 10.0.0.1"), "{err}");
}

#[test]
fn id_payload_parsing_checks_each_type() {
    assert_eq!(
        Identity::from_id_payload(IdType::ID_FQDN, b"chassis-1").unwrap(),
        Identity::Fqdn("chassis-1".into())
    );
    assert!(matches!(
        Identity::from_id_payload(IdType::ID_FQDN, b"bad name"),
        Err(AuthError::MalformedIdentity { .. })
    ));
    assert!(Identity::from_id_payload(IdType::ID_FQDN, b"").is_err());
    assert!(Identity::from_id_payload(IdType::ID_IPV4_ADDR, &[1, 2, 3]).is_err());
    assert!(Identity::from_id_payload(IdType::ID_DER_ASN1_DN, &[0x30, 0x05]).is_err());
    assert_eq!(
        Identity::from_id_payload(IdType::ID_KEY_ID, b"k"),
        Err(AuthError::UnsupportedIdType(IdType::ID_KEY_ID))
    );
    let id = Identity::from_id_payload(IdType::ID_IPV6_ADDR, &[0; 16]).unwrap();
    assert_eq!(id.id_type(), IdType::ID_IPV6_ADDR);
    assert_eq!(id.id_data(), [0; 16]);
}

#[test]
fn rest_of_id_payload_is_type_reserved_data() {
    assert_eq!(
        Identity::chassis("ch1").rest_of_id_payload(),
        [2, 0, 0, 0, b'c', b'h', b'1']
    );
}

#[test]
fn chassis_identity_needs_matching_id_and_certificate() {
    let c1 = cert(CHASSIS_1);
    verify_chassis_identity(&c1, &Identity::chassis("chassis-1"), "chassis-1").unwrap();
    // A DN identity works too when the certificate names the chassis.
    let dn = Identity::DerAsn1Dn(c1.subject_der().to_vec());
    verify_chassis_identity(&c1, &dn, "chassis-1").unwrap();

    // A valid certificate of another chassis is refused, naming both names.
    assert_eq!(
        verify_chassis_identity(
            &cert(CHASSIS_2),
            &Identity::chassis("chassis-2"),
            "chassis-1"
        ),
        Err(AuthError::IdentityMismatch {
            expected: "ID_FQDN chassis-1".into(),
            presented: "ID_FQDN chassis-2".into(),
        })
    );
    // Claiming the expected name with another chassis' certificate is refused too.
    assert!(matches!(
        verify_chassis_identity(
            &cert(CHASSIS_2),
            &Identity::chassis("chassis-1"),
            "chassis-1"
        ),
        Err(AuthError::IdentityMismatch { .. })
    ));
}

/// A peer's whole IKE_AUTH proof, signed with the given key.
fn prove(key_pem: &[u8], cert_pem: &[u8], id: &str, chassis: &str) -> Result<(), AuthError> {
    let rng = SystemRandom::new();
    let key = PrivateKey::from_pem(key_pem, &rng).unwrap();
    let end_entity = cert(cert_pem);
    let id = Identity::chassis(id);
    // MACedIDForI would be prf(SK_pi, RestOfInitIDPayload); any bytes do here.
    let octets = signed_octets(b"IKE_SA_INIT request", b"Nr", &id.rest_of_id_payload());
    let scheme = AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256);
    let auth = key.sign_auth(scheme, &octets, &rng).unwrap();
    let proof = PeerCredentials {
        id: &id,
        end_entity: &end_entity,
        intermediates: &[],
        auth_method: auth.method,
        auth_data: &auth.data,
        signed_octets: &octets,
    };
    proof.prove_chassis(&bundle(), chassis, now()).map(|_| ())
}

#[test]
fn peer_proves_its_chassis_name() {
    prove(CHASSIS_1_KEY, CHASSIS_1, "chassis-1", "chassis-1").unwrap();
}

#[test]
fn peer_with_the_right_name_from_an_unrelated_ca_is_refused() {
    assert!(matches!(
        prove(
            ROGUE_CHASSIS_1_KEY,
            ROGUE_CHASSIS_1,
            "chassis-1",
            "chassis-1"
        ),
        Err(AuthError::UntrustedCertificate { .. })
    ));
}

#[test]
fn peer_signing_with_a_key_not_of_its_certificate_is_refused() {
    assert!(matches!(
        prove(ROGUE_CHASSIS_1_KEY, CHASSIS_1, "chassis-1", "chassis-1"),
        Err(AuthError::BadSignature { .. })
    ));
}

#[test]
fn peer_proving_another_chassis_is_refused() {
    assert!(matches!(
        prove(CHASSIS_1_KEY, CHASSIS_1, "chassis-1", "chassis-2"),
        Err(AuthError::IdentityMismatch { .. })
    ));
}
