//! Signatures made by openssl (see `fixtures/pki/generate.sh`) verify with our AUTH code, for
//! every scheme we accept, so our verification is not only checked against our own signing.

use ikev2::auth::{
    encode_auth_data, verify_auth, AuthError, AuthScheme, Certificate, SignatureScheme,
};

const MESSAGE: &[u8] = include_bytes!("fixtures/pki/openssl-signatures/message.bin");
const RSA_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-1-cert.pem");
const P256_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-ec-cert.pem");
const P384_CERT: &[u8] = include_bytes!("fixtures/pki/chassis-ec384-cert.pem");

macro_rules! sig {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/pki/openssl-signatures/", $name))
    };
}

fn check(cert_pem: &[u8], scheme: AuthScheme, signature: &[u8]) {
    let cert = Certificate::from_pem(cert_pem).unwrap();
    let auth = encode_auth_data(scheme, signature);
    assert_eq!(
        verify_auth(&cert, auth.method, &auth.data, MESSAGE),
        Ok(scheme),
        "{scheme}"
    );
    let mut other = MESSAGE.to_vec();
    other[0] ^= 1;
    assert!(matches!(
        verify_auth(&cert, auth.method, &auth.data, &other),
        Err(AuthError::BadSignature { .. })
    ));
}

#[test]
fn openssl_rsa_pkcs1_signatures_verify_as_method_14() {
    let ds = AuthScheme::DigitalSignature;
    check(
        RSA_CERT,
        ds(SignatureScheme::RsaPkcs1Sha256),
        sig!("rsa-pkcs1-sha256.sig"),
    );
    check(
        RSA_CERT,
        ds(SignatureScheme::RsaPkcs1Sha512),
        sig!("rsa-pkcs1-sha512.sig"),
    );
}

#[test]
fn openssl_rsa_pss_signatures_verify_as_method_14() {
    let ds = AuthScheme::DigitalSignature;
    check(
        RSA_CERT,
        ds(SignatureScheme::RsaPssSha256),
        sig!("rsa-pss-sha256.sig"),
    );
    check(
        RSA_CERT,
        ds(SignatureScheme::RsaPssSha384),
        sig!("rsa-pss-sha384.sig"),
    );
}

#[test]
fn openssl_rsa_sha1_signature_verifies_as_method_1() {
    check(RSA_CERT, AuthScheme::RsaSha1, sig!("rsa-pkcs1-sha1.sig"));
}

#[test]
fn openssl_der_ecdsa_signatures_verify_as_method_14() {
    let ds = AuthScheme::DigitalSignature;
    check(
        P256_CERT,
        ds(SignatureScheme::EcdsaSha256),
        sig!("ecdsa-p256-sha256.der.sig"),
    );
    check(
        P384_CERT,
        ds(SignatureScheme::EcdsaSha384),
        sig!("ecdsa-p384-sha384.der.sig"),
    );
}

#[test]
fn openssl_ecdsa_as_r_s_verifies_as_methods_9_and_10() {
    check(
        P256_CERT,
        AuthScheme::EcdsaP256Sha256,
        sig!("ecdsa-p256-sha256.fixed.sig"),
    );
    check(
        P384_CERT,
        AuthScheme::EcdsaP384Sha384,
        sig!("ecdsa-p384-sha384.fixed.sig"),
    );
}

#[test]
fn pkcs1_signature_is_not_accepted_as_pss() {
    let cert = Certificate::from_pem(RSA_CERT).unwrap();
    let auth = encode_auth_data(
        AuthScheme::DigitalSignature(SignatureScheme::RsaPssSha256),
        sig!("rsa-pkcs1-sha256.sig"),
    );
    assert!(verify_auth(&cert, auth.method, &auth.data, MESSAGE).is_err());
}
