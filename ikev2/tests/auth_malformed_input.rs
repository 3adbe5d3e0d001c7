//! Arbitrary and mutated input never panics the AUTH, certificate and identity parsers.

use ikev2::auth::{
    decode_auth_data, decode_signature_hash_algorithms, parse_certreq, recover_rsa_pkcs1_digest,
    verify_auth, Certificate, Identity, PrivateKey, PublicKey, SignatureScheme,
};
use ikev2::registry::{AuthMethod, IdType};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ring::rand::SystemRandom;

const CHASSIS_1: &[u8] = include_bytes!("fixtures/pki/chassis-1-cert.pem");
const EC_KEY: &[u8] = include_bytes!("fixtures/pki/chassis-ec-sec1-privkey.pem");

fn chassis_1() -> Certificate {
    Certificate::from_pem(CHASSIS_1).unwrap()
}

/// `valid` with up to four octets replaced and possibly truncated.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (prop::collection::vec((0..len, any::<u8>()), 1..5), 0..=len).prop_map(move |(edits, cut)| {
        let mut v = valid.clone();
        for (i, b) in edits {
            v[i] = b;
        }
        v.truncate(cut.max(1));
        v
    })
}

proptest! {
    // A fixed seed: the same cases on every run, so a failure reproduces.
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x1ce_a07),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_auth_data_is_rejected_or_decoded(
        method in prop_oneof![Just(1u8), Just(9), Just(10), Just(14), any::<u8>()],
        data in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = decode_auth_data(AuthMethod(method), &data);
        let _ = verify_auth(&chassis_1(), AuthMethod(method), &data, b"octets");
        let _ = recover_rsa_pkcs1_digest(&chassis_1(), AuthMethod(method), &data);
    }

    #[test]
    fn mutated_algorithm_identifiers_never_panic(
        blob in mutated(SignatureScheme::RsaPssSha384.algorithm_identifier()),
    ) {
        let _ = SignatureScheme::from_algorithm_identifier(&blob);
    }

    #[test]
    fn mutated_certificates_never_panic(blob in mutated(chassis_1().der().to_vec())) {
        let _ = Certificate::from_der(&blob);
    }

    #[test]
    fn mutated_public_keys_never_panic(blob in mutated(chassis_1().spki_der().to_vec())) {
        let _ = PublicKey::from_spki(&blob);
    }

    #[test]
    fn arbitrary_identification_data_never_panics(
        id_type in any::<u8>(),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(id) = Identity::from_id_payload(IdType(id_type), &data) {
            let _ = id.to_string();
        }
    }

    #[test]
    fn mutated_dn_identities_never_panic(blob in mutated(chassis_1().subject_der().to_vec())) {
        if let Ok(id) = Identity::from_id_payload(IdType::ID_DER_ASN1_DN, &blob) {
            let _ = id.to_string();
        }
    }

    #[test]
    fn mutated_pem_keys_never_panic(blob in mutated(EC_KEY.to_vec())) {
        let _ = PrivateKey::from_pem(&blob, &SystemRandom::new());
    }

    #[test]
    fn arbitrary_notification_and_certreq_data_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let _ = decode_signature_hash_algorithms(&data);
        let _ = parse_certreq(&data);
    }
}
