//! AUTH payload signing and verification, and certificate chain validation.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use ikev2::auth::{
    signed_octets, verify_auth, AuthScheme, Certificate, PrivateKey, SignatureScheme, TrustStore,
};
use ring::rand::SystemRandom;

const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ikev2/tests/fixtures/pki");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PKI}/{name}")).unwrap()
}

/// Signed octets of a realistic size: an IKE_SA_INIT message, a nonce and a PRF output.
fn octets() -> Vec<u8> {
    signed_octets(&[0x5a; 450], &[0x4e; 32], &[0x4d; 32])
}

fn sign_and_verify(c: &mut Criterion, name: &str, key: &str, cert: &str, scheme: AuthScheme) {
    let rng = SystemRandom::new();
    let key = PrivateKey::from_pem(&read(key), &rng).unwrap();
    let cert = Certificate::from_pem(&read(cert)).unwrap();
    let msg = octets();
    let auth = key.sign_auth(scheme, &msg, &rng).unwrap();

    c.bench_function(&format!("auth/{name}/sign"), |b| {
        b.iter(|| key.sign_auth(scheme, &msg, &rng).unwrap())
    });
    c.bench_function(&format!("auth/{name}/verify"), |b| {
        b.iter(|| verify_auth(&cert, auth.method, &auth.data, &msg).unwrap())
    });
}

fn signatures(c: &mut Criterion) {
    sign_and_verify(
        c,
        "rsa2048-pkcs1-sha256",
        "chassis-1-privkey.pem",
        "chassis-1-cert.pem",
        AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256),
    );
    sign_and_verify(
        c,
        "rsa2048-pss-sha256",
        "chassis-1-privkey.pem",
        "chassis-1-cert.pem",
        AuthScheme::DigitalSignature(SignatureScheme::RsaPssSha256),
    );
    sign_and_verify(
        c,
        "ecdsa-p256-sha256",
        "chassis-ec-sec1-privkey.pem",
        "chassis-ec-cert.pem",
        AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha256),
    );
}

fn chain_validation(c: &mut Criterion) {
    let store = TrustStore::from_pem(&read("ca-bundle.pem")).unwrap();
    let cert = Certificate::from_pem(&read("chassis-1-cert.pem")).unwrap();
    let der = cert.der().to_vec();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000);

    c.bench_function("auth/chain/verify-chassis-cert", |b| {
        b.iter(|| store.verify_chain(&cert, &[], now).unwrap())
    });
    c.bench_function("auth/chain/parse-and-verify-cert-payload", |b| {
        b.iter(|| {
            let cert = Certificate::from_der(&der).unwrap();
            store.verify_chain(&cert, &[], now).unwrap();
        })
    });
}

criterion_group!(benches, signatures, chain_validation);
criterion_main!(benches);
