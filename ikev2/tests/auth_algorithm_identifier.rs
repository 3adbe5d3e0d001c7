//! RFC 7427 Appendix A: the AlgorithmIdentifier blobs, byte for byte.

use ikev2::auth::{decode_auth_data, encode_auth_data, AuthError, AuthScheme, SignatureScheme};
use ikev2::registry::AuthMethod;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

// RFC 7427 A.1.2 – A.1.4: sha{256,384,512}WithRSAEncryption, NULL parameters.
const SHA256_WITH_RSA: &str = "300d 0609 2a86 4886 f70d 0101 0b05 00";
const SHA384_WITH_RSA: &str = "300d 0609 2a86 4886 f70d 0101 0c05 00";
const SHA512_WITH_RSA: &str = "300d 0609 2a86 4886 f70d 0101 0d05 00";
// A.3.2 – A.3.3: ecdsa-with-SHA256/384, absent parameters.
const ECDSA_WITH_SHA256: &str = "300a 0608 2a86 48ce 3d04 0302";
const ECDSA_WITH_SHA384: &str = "300a 0608 2a86 48ce 3d04 0303";
// A.4.3: RSASSA-PSS with SHA-256, MGF1-SHA-256, saltLength 32.
const PSS_SHA256: &str = "3041 0609 2a86 4886 f70d 0101 0a30 34a0
    0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101
    0830 0d06 0960 8648 0165 0304 0201 0500 a203 0201 20";
// The same structure for SHA-384 (salt 48) and SHA-512 (salt 64).
const PSS_SHA384: &str = "3041 0609 2a86 4886 f70d 0101 0a30 34a0
    0f30 0d06 0960 8648 0165 0304 0202 0500 a11c 301a 0609 2a86 4886 f70d 0101
    0830 0d06 0960 8648 0165 0304 0202 0500 a203 0201 30";
const PSS_SHA512: &str = "3041 0609 2a86 4886 f70d 0101 0a30 34a0
    0f30 0d06 0960 8648 0165 0304 0203 0500 a11c 301a 0609 2a86 4886 f70d 0101
    0830 0d06 0960 8648 0165 0304 0203 0500 a203 0201 40";

// Appendix A entries we parse and refuse.
const SHA1_WITH_RSA: &str = "300d 0609 2a86 4886 f70d 0101 0505 00"; // A.1.1
const DSA_WITH_SHA1: &str = "3009 0607 2a86 48ce 3804 03"; // A.2.1
const DSA_WITH_SHA256: &str = "300b 0609 6086 4801 6503 0403 02"; // A.2.2
const ECDSA_WITH_SHA1: &str = "3009 0607 2a86 48ce 3d04 01"; // A.3.1
const ECDSA_WITH_SHA512: &str = "300a 0608 2a86 48ce 3d04 0304"; // A.3.4
const PSS_EMPTY_PARAMS: &str = "300d 0609 2a86 4886 f70d 0101 0a30 00"; // A.4.1
                                                                        // A.4.2: the defaults spelled out (SHA-1, MGF1-SHA-1, salt 20, trailer 1).
const PSS_DEFAULT_PARAMS: &str = "303e 0609 2a86 4886 f70d 0101 0a30 31a0
    0b30 0906 052b 0e03 021a 0500 a118 3016 0609 2a86 4886 f70d 0101 0830 0906
    052b 0e03 021a 0500 a203 0201 14a3 0302 0101";

const SUPPORTED: [(SignatureScheme, &str); 8] = [
    (SignatureScheme::RsaPkcs1Sha256, SHA256_WITH_RSA),
    (SignatureScheme::RsaPkcs1Sha384, SHA384_WITH_RSA),
    (SignatureScheme::RsaPkcs1Sha512, SHA512_WITH_RSA),
    (SignatureScheme::RsaPssSha256, PSS_SHA256),
    (SignatureScheme::RsaPssSha384, PSS_SHA384),
    (SignatureScheme::RsaPssSha512, PSS_SHA512),
    (SignatureScheme::EcdsaSha256, ECDSA_WITH_SHA256),
    (SignatureScheme::EcdsaSha384, ECDSA_WITH_SHA384),
];

#[test]
fn encoding_every_scheme_gives_the_rfc_7427_appendix_a_bytes() {
    for (scheme, blob) in SUPPORTED {
        assert_eq!(scheme.algorithm_identifier(), unhex(blob), "{scheme}");
    }
}

#[test]
fn decoding_the_rfc_7427_appendix_a_bytes_gives_every_scheme() {
    for (scheme, blob) in SUPPORTED {
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&unhex(blob)).unwrap(),
            scheme
        );
    }
}

#[test]
fn decoding_unimplemented_appendix_a_algorithms_names_them() {
    for (blob, name) in [
        (SHA1_WITH_RSA, "sha1WithRSAEncryption"),
        (DSA_WITH_SHA1, "dsa-with-sha1"),
        (DSA_WITH_SHA256, "dsa-with-sha256"),
        (ECDSA_WITH_SHA1, "ecdsa-with-SHA1"),
        (ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
    ] {
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&unhex(blob)),
            Err(AuthError::UnsupportedSignatureAlgorithm { name: name.into() })
        );
    }
}

#[test]
fn decoding_pss_with_sha1_defaults_reports_the_hash() {
    for blob in [PSS_EMPTY_PARAMS, PSS_DEFAULT_PARAMS] {
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&unhex(blob)),
            Err(AuthError::UnsupportedPssParameters {
                reason: "hash is not SHA-256, SHA-384 or SHA-512"
            })
        );
    }
}

#[test]
fn decoding_pss_with_other_salt_length_is_refused() {
    // PSS_SHA256 with saltLength 10.
    let mut blob = unhex(PSS_SHA256);
    *blob.last_mut().unwrap() = 0x0a;
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&blob),
        Err(AuthError::UnsupportedPssParameters {
            reason: "salt length differs from the hash length"
        })
    );
}

#[test]
fn decoding_pss_with_mismatched_mgf1_hash_is_refused() {
    // Hash SHA-256 but MGF1 with SHA-384.
    let blob = unhex(
        "3041 0609 2a86 4886 f70d 0101 0a30 34a0
        0f30 0d06 0960 8648 0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101
        0830 0d06 0960 8648 0165 0304 0202 0500 a203 0201 20",
    );
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&blob),
        Err(AuthError::UnsupportedPssParameters {
            reason: "MGF1 hash differs from the message hash"
        })
    );
}

#[test]
fn decoding_pkcs1_with_absent_parameters_is_accepted() {
    let blob = unhex("300b 0609 2a86 4886 f70d 0101 0b");
    assert_eq!(
        SignatureScheme::from_algorithm_identifier(&blob).unwrap(),
        SignatureScheme::RsaPkcs1Sha256
    );
}

#[test]
fn decoding_truncated_or_trailing_algorithm_identifier_fails() {
    let blob = unhex(SHA256_WITH_RSA);
    for cut in 0..blob.len() {
        assert!(SignatureScheme::from_algorithm_identifier(&blob[..cut]).is_err());
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        SignatureScheme::from_algorithm_identifier(&longer),
        Err(AuthError::MalformedDer { .. })
    ));
}

#[test]
fn method_14_auth_data_is_length_algorithm_identifier_signature() {
    let auth = encode_auth_data(
        AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256),
        &[0xaa; 4],
    );
    assert_eq!(auth.method, AuthMethod::DIGITAL_SIGNATURE);
    let mut expected = vec![0x0f];
    expected.extend(unhex(SHA256_WITH_RSA));
    expected.extend([0xaa; 4]);
    assert_eq!(auth.data, expected);

    let (scheme, signature) = decode_auth_data(auth.method, &auth.data).unwrap();
    assert_eq!(
        scheme,
        AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256)
    );
    assert_eq!(signature, &[0xaa; 4]);
}

#[test]
fn method_14_auth_data_errors_name_what_is_wrong() {
    let m = AuthMethod::DIGITAL_SIGNATURE;
    assert_eq!(
        decode_auth_data(m, &[]),
        Err(AuthError::MissingAlgorithmIdentifier)
    );
    assert_eq!(
        decode_auth_data(m, &[0x20, 0x30, 0x00]),
        Err(AuthError::TruncatedAlgorithmIdentifier {
            declared: 32,
            available: 2
        })
    );
    let mut no_signature = vec![0x0f];
    no_signature.extend(unhex(SHA256_WITH_RSA));
    assert_eq!(
        decode_auth_data(m, &no_signature),
        Err(AuthError::EmptySignature)
    );
    assert_eq!(
        decode_auth_data(AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE, &[1]),
        Err(AuthError::UnsupportedAuthMethod(
            AuthMethod::SHARED_KEY_MESSAGE_INTEGRITY_CODE
        ))
    );
}

#[test]
fn legacy_methods_carry_the_bare_signature() {
    for (scheme, method) in [
        (AuthScheme::RsaSha1, AuthMethod::RSA_DIGITAL_SIGNATURE),
        (AuthScheme::EcdsaP256Sha256, AuthMethod::ECDSA_SHA256_P256),
        (AuthScheme::EcdsaP384Sha384, AuthMethod::ECDSA_SHA384_P384),
    ] {
        let auth = encode_auth_data(scheme, &[1, 2, 3]);
        assert_eq!(auth.method, method);
        assert_eq!(auth.data, [1, 2, 3]);
        assert_eq!(
            decode_auth_data(method, &auth.data).unwrap(),
            (scheme, &[1u8, 2, 3][..])
        );
    }
}
