//! Private keys from PEM, and AUTH sign/verify round trips for every scheme.

use ikev2::auth::{
    choose_auth_scheme, decode_signature_hash_algorithms, encode_signature_hash_algorithms,
    signed_octets, verify_auth, AuthError, AuthScheme, Certificate, KeyType, PrivateKey,
    RsaPadding, SignatureScheme, MAX_HASH_ALGORITHMS, OUR_HASH_ALGORITHMS,
};
use ikev2::codec::{Notify, NotifyData};
use ikev2::registry::{AuthMethod, HashAlgorithm};
use ring::rand::SystemRandom;

const CHASSIS_1_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-1-privkey.pem");
const CHASSIS_1_PKCS1_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-1-pkcs1-privkey.pem");
const CHASSIS_1_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-1-cert.pem");
const CHASSIS_2_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-2-cert.pem");
const EC_SEC1_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-ec-sec1-privkey.pem");
const EC_PKCS8_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-ec-pkcs8-privkey.pem");
const EC_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-ec-cert.pem");
const EC384_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-ec384-privkey.pem");
const EC384_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-ec384-cert.pem");
const CA_CERT: &[u8] = include_bytes!("fixtures/pki/ca-a-cert.pem");

fn key(pem: &[u8]) -> PrivateKey {
    PrivateKey::from_pem(pem, &SystemRandom::new()).unwrap()
}

fn cert(pem: &[u8]) -> Certificate {
    Certificate::from_pem(pem).unwrap()
}

/// Stand-in signed octets: RealMessage1 | NonceRData | MACedIDForI with made-up contents.
fn octets() -> Vec<u8> {
    signed_octets(&[0x11; 300], &[0x22; 32], &[0x33; 32])
}

fn round_trip(key: &PrivateKey, cert: &Certificate, scheme: AuthScheme) {
    let rng = SystemRandom::new();
    let msg = octets();
    let auth = key.sign_auth(scheme, &msg, &rng).unwrap();
    assert_eq!(auth.method, scheme.auth_method());
    assert_eq!(
        verify_auth(cert, auth.method, &auth.data, &msg).unwrap(),
        scheme
    );

    // Any flipped bit of the signed octets breaks the signature.
    for i in [0, 299, 300, 331, 332, msg.len() - 1] {
        let mut tampered = msg.clone();
        tampered[i] ^= 0x01;
        assert!(
            matches!(
                verify_auth(cert, auth.method, &auth.data, &tampered),
                Err(AuthError::BadSignature { .. })
            ),
            "{scheme}: tampered octet {i} verified"
        );
    }
    // So does a flipped bit of the signature itself.
    let mut bad = auth.data.clone();
    *bad.last_mut().unwrap() ^= 0x80;
    assert!(verify_auth(cert, auth.method, &bad, &msg).is_err());
}

#[test]
fn ovs_pki_key_is_pkcs8_and_loads() {
    assert!(CHASSIS_1_KEY.starts_with(b"-----BEGIN PRIVATE KEY-----"));
    assert_eq!(key(CHASSIS_1_KEY).key_type(), KeyType::Rsa { bits: 2048 });
}

#[test]
fn pkcs1_rsa_key_loads_and_signs_like_its_pkcs8_form() {
    assert!(CHASSIS_1_PKCS1_KEY.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let k = key(CHASSIS_1_PKCS1_KEY);
    assert_eq!(k.key_type(), KeyType::Rsa { bits: 2048 });
    // PKCS#1 v1.5 is deterministic: both encodings of one key give the same signature.
    let rng = SystemRandom::new();
    let scheme = AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256);
    assert_eq!(
        k.sign(scheme, b"x", &rng).unwrap(),
        key(CHASSIS_1_KEY).sign(scheme, b"x", &rng).unwrap()
    );
}

#[test]
fn ec_keys_load_from_sec1_and_pkcs8() {
    assert!(EC_SEC1_KEY.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
    assert_eq!(key(EC_SEC1_KEY).key_type(), KeyType::EcdsaP256);
    assert_eq!(key(EC_PKCS8_KEY).key_type(), KeyType::EcdsaP256);
    assert_eq!(key(EC384_KEY).key_type(), KeyType::EcdsaP384);
}

#[test]
fn private_key_debug_shows_only_the_key_type() {
    let shown = format!("{:?}", key(CHASSIS_1_KEY));
    assert_eq!(shown, "PrivateKey { key_type: Rsa { bits: 2048 }, .. }");
}

#[test]
fn pem_without_a_key_is_reported() {
    let rng = SystemRandom::new();
    assert_eq!(
        PrivateKey::from_pem(CA_CERT, &rng).unwrap_err(),
        AuthError::NoPrivateKey
    );
    assert_eq!(
        PrivateKey::from_pem(b"just text\n", &rng).unwrap_err(),
        AuthError::NoPrivateKey
    );
}

#[test]
fn corrupted_key_is_rejected_by_name() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMAMCAQA=\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(
        PrivateKey::from_pem(pem.as_bytes(), &SystemRandom::new()),
        Err(AuthError::KeyRejected {
            kind: "PKCS#1 RSA",
            ..
        })
    ));
}

#[test]
fn rsa_pkcs1_schemes_round_trip() {
    let (k, c) = (key(CHASSIS_1_KEY), cert(CHASSIS_1_CERT));
    for s in [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPkcs1Sha384,
        SignatureScheme::RsaPkcs1Sha512,
    ] {
        round_trip(&k, &c, AuthScheme::DigitalSignature(s));
    }
}

#[test]
fn rsa_pss_schemes_round_trip() {
    let (k, c) = (key(CHASSIS_1_KEY), cert(CHASSIS_1_CERT));
    for s in [
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha384,
        SignatureScheme::RsaPssSha512,
    ] {
        round_trip(&k, &c, AuthScheme::DigitalSignature(s));
    }
}

#[test]
fn ecdsa_p256_schemes_round_trip() {
    let c = cert(EC_CERT);
    for k in [key(EC_SEC1_KEY), key(EC_PKCS8_KEY)] {
        round_trip(
            &k,
            &c,
            AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha256),
        );
        round_trip(&k, &c, AuthScheme::EcdsaP256Sha256);
    }
}

#[test]
fn ecdsa_p384_schemes_round_trip() {
    let (k, c) = (key(EC384_KEY), cert(EC384_CERT));
    round_trip(
        &k,
        &c,
        AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha384),
    );
    round_trip(&k, &c, AuthScheme::EcdsaP384Sha384);
}

#[test]
fn ecdsa_signature_encodings_differ_between_rfc_7427_and_rfc_4754() {
    let rng = SystemRandom::new();
    let k = key(EC_SEC1_KEY);
    let fixed = k.sign(AuthScheme::EcdsaP256Sha256, b"m", &rng).unwrap();
    assert_eq!(fixed.len(), 64, "RFC 4754: r || s, 32 octets each");
    let der = k
        .sign(
            AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha256),
            b"m",
            &rng,
        )
        .unwrap();
    assert_eq!(der[0], 0x30, "RFC 7427: DER ECDSA-Sig-Value");
    // One form does not pass for the other.
    let c = cert(EC_CERT);
    let mut auth_data = vec![0x0c];
    auth_data.extend(SignatureScheme::EcdsaSha256.algorithm_identifier());
    auth_data.extend(&fixed);
    assert!(verify_auth(&c, AuthMethod::DIGITAL_SIGNATURE, &auth_data, b"m").is_err());
    assert!(verify_auth(&c, AuthMethod::ECDSA_SHA256_P256, &der, b"m").is_err());
}

#[test]
fn signature_by_another_key_fails() {
    let rng = SystemRandom::new();
    let msg = octets();
    let scheme = AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256);
    let auth = key(CHASSIS_1_KEY).sign_auth(scheme, &msg, &rng).unwrap();
    let other = cert(CHASSIS_2_CERT);
    assert_eq!(
        verify_auth(&other, auth.method, &auth.data, &msg),
        Err(AuthError::BadSignature {
            scheme,
            subject: other.subject().to_owned()
        })
    );
}

#[test]
fn scheme_not_fitting_the_key_is_refused_on_both_sides() {
    let rng = SystemRandom::new();
    let ecdsa = AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha256);
    assert!(matches!(
        key(CHASSIS_1_KEY).sign(ecdsa, b"m", &rng),
        Err(AuthError::SchemeKeyMismatch { .. })
    ));
    // ring signs P-256 with SHA-256 only.
    let p256_sha384 = AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha384);
    assert!(key(EC_SEC1_KEY).sign(p256_sha384, b"m", &rng).is_err());
    assert!(key(EC_SEC1_KEY)
        .sign(AuthScheme::EcdsaP384Sha384, b"m", &rng)
        .is_err());
    // An RSA AUTH checked against an ECDSA certificate.
    let auth = key(CHASSIS_1_KEY)
        .sign_auth(
            AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256),
            b"m",
            &rng,
        )
        .unwrap();
    assert!(matches!(
        verify_auth(&cert(EC_CERT), auth.method, &auth.data, b"m"),
        Err(AuthError::SchemeKeyMismatch { .. })
    ));
}

#[test]
fn method_1_cannot_be_produced_with_ring() {
    assert!(matches!(
        key(CHASSIS_1_KEY).sign(AuthScheme::RsaSha1, b"m", &SystemRandom::new()),
        Err(AuthError::SchemeKeyMismatch { .. })
    ));
}

#[test]
fn signature_hash_algorithms_round_trip_and_keep_unknown_values() {
    let data = encode_signature_hash_algorithms(&OUR_HASH_ALGORITHMS);
    assert_eq!(data, [0, 2, 0, 3, 0, 4]);
    assert_eq!(
        decode_signature_hash_algorithms(&[0, 2, 0x12, 0x34]).unwrap(),
        [HashAlgorithm::SHA2_256, HashAlgorithm(0x1234)]
    );
    assert_eq!(
        decode_signature_hash_algorithms(&[0, 2, 0]),
        Err(AuthError::MalformedHashAlgorithms(3))
    );
}

#[test]
fn signature_hash_algorithms_for_auth_stop_at_the_limit_while_the_notify_keeps_all() {
    let many: Vec<HashAlgorithm> = (0..100).map(HashAlgorithm).collect();
    let notify = Notify::signature_hash_algorithms(&many);
    assert_eq!(notify.data, encode_signature_hash_algorithms(&many));
    assert_eq!(
        notify.typed_data(),
        Ok(NotifyData::SignatureHashAlgorithms(many.clone()))
    );
    assert_eq!(
        decode_signature_hash_algorithms(&notify.data).unwrap(),
        many[..MAX_HASH_ALGORITHMS]
    );
}

#[test]
fn scheme_choice_follows_peer_hashes_and_key_type() {
    use HashAlgorithm as H;
    use SignatureScheme as S;
    let rsa = KeyType::Rsa { bits: 2048 };
    let ds = AuthScheme::DigitalSignature;
    // strongSwan 5.9 announces SHA-256, SHA-384, SHA-512 and IDENTITY.
    let strongswan = [H::SHA2_256, H::SHA2_384, H::SHA2_512, H::IDENTITY];
    assert_eq!(
        choose_auth_scheme(rsa, Some(&strongswan), RsaPadding::Pkcs1v15),
        Ok(ds(S::RsaPkcs1Sha256))
    );
    assert_eq!(
        choose_auth_scheme(rsa, Some(&strongswan), RsaPadding::Pss),
        Ok(ds(S::RsaPssSha256))
    );
    assert_eq!(
        choose_auth_scheme(rsa, Some(&[H::SHA2_512]), RsaPadding::Pkcs1v15),
        Ok(ds(S::RsaPkcs1Sha512))
    );
    assert_eq!(
        choose_auth_scheme(KeyType::EcdsaP256, Some(&strongswan), RsaPadding::default()),
        Ok(ds(S::EcdsaSha256))
    );
    assert_eq!(
        choose_auth_scheme(KeyType::EcdsaP384, Some(&strongswan), RsaPadding::default()),
        Ok(ds(S::EcdsaSha384))
    );
    // A peer without SIGNATURE_HASH_ALGORITHMS gets RFC 4754 ECDSA.
    assert_eq!(
        choose_auth_scheme(KeyType::EcdsaP256, None, RsaPadding::default()),
        Ok(AuthScheme::EcdsaP256Sha256)
    );
    assert_eq!(
        choose_auth_scheme(KeyType::EcdsaP384, None, RsaPadding::default()),
        Ok(AuthScheme::EcdsaP384Sha384)
    );
    // Nothing in common is an error naming both lists.
    assert_eq!(
        choose_auth_scheme(rsa, Some(&[H::SHA1]), RsaPadding::Pkcs1v15),
        Err(AuthError::NoCommonHashAlgorithm {
            peer: vec![H::SHA1],
            ours: vec![H::SHA2_256, H::SHA2_384, H::SHA2_512],
            key: rsa
        })
    );
    assert!(choose_auth_scheme(rsa, None, RsaPadding::Pkcs1v15).is_err());
}

#[test]
fn chosen_scheme_signs_and_verifies_for_every_key() {
    let rng = SystemRandom::new();
    let peer = [HashAlgorithm::SHA2_256, HashAlgorithm::SHA2_384];
    for (k, c) in [
        (CHASSIS_1_KEY, CHASSIS_1_CERT),
        (EC_SEC1_KEY, EC_CERT),
        (EC384_KEY, EC384_CERT),
    ] {
        let (k, c) = (key(k), cert(c));
        let scheme = choose_auth_scheme(k.key_type(), Some(&peer), RsaPadding::Pss).unwrap();
        let auth = k.sign_auth(scheme, &octets(), &rng).unwrap();
        verify_auth(&c, auth.method, &auth.data, &octets()).unwrap();
    }
}
