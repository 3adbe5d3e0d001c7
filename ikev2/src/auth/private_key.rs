//! Our own signing key, loaded from PEM as ovs-pki and openssl write it.
//!
//! `ovs-pki req` runs `openssl genrsa`, which with OpenSSL 3 writes PKCS#8
//! (`BEGIN PRIVATE KEY`) and with OpenSSL 1.x wrote PKCS#1 (`BEGIN RSA PRIVATE KEY`); both are
//! accepted, and so are EC keys as SEC1 (`BEGIN EC PRIVATE KEY`) or PKCS#8.

use core::fmt;

use ring::rand::SecureRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, RsaEncoding, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use super::der::{self, DerReader, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use super::error::AuthError;
use super::oid;
use super::public_key::KeyType;
use super::signature::{encode_auth_data, AuthData, AuthScheme, SignatureScheme};

/// The key pairs ring needs: ECDSA keys are loaded twice, once for DER signatures (RFC 7427)
/// and once for fixed-width `r || s` (RFC 4754).
enum KeyPair {
    Rsa(Box<RsaKeyPair>),
    Ecdsa(Box<EcdsaPair>),
}

/// One ECDSA key, loaded for both signature encodings.
struct EcdsaPair {
    key_type: KeyType,
    der_signing: EcdsaKeyPair,
    fixed_signing: EcdsaKeyPair,
}

/// A private key that signs AUTH payloads.
///
/// The key material never appears in `Debug` output; the DER we decode it from is zeroized.
// Limitation: ring keeps the expanded key inside `RsaKeyPair`/`EcdsaKeyPair` and does not
// zeroize it on drop; only our own copies of the encoded key are wiped.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Loads the first private key of a PEM file (PKCS#1, SEC1 or PKCS#8; any text around the
    /// PEM block is skipped). `rng` is used by ring to check EC keys.
    pub fn from_pem(pem: &[u8], rng: &dyn SecureRandom) -> Result<Self, AuthError> {
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => AuthError::NoPrivateKey,
            other => AuthError::MalformedPem(other.to_string()),
        })?;
        Self::from_der(&key, rng)
    }

    /// Loads a DER private key of a known format.
    pub fn from_der(key: &PrivateKeyDer<'_>, rng: &dyn SecureRandom) -> Result<Self, AuthError> {
        match key {
            PrivateKeyDer::Pkcs1(k) => Ok(PrivateKey {
                pair: KeyPair::Rsa(Box::new(
                    RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|e| {
                        AuthError::KeyRejected {
                            kind: "PKCS#1 RSA",
                            reason: e.to_string(),
                        }
                    })?,
                )),
            }),
            PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der(), rng),
            PrivateKeyDer::Sec1(k) => {
                let pkcs8 = sec1_to_pkcs8(k.secret_sec1_der())?;
                Self::from_pkcs8(&pkcs8, rng)
            }
            _ => Err(AuthError::NoPrivateKey),
        }
    }

    /// Loads a PKCS#8 PrivateKeyInfo (RFC 5208) holding an RSA or a P-256/P-384 key.
    fn from_pkcs8(pkcs8: &[u8], rng: &dyn SecureRandom) -> Result<Self, AuthError> {
        const WHAT: &str = "PKCS#8 PrivateKeyInfo";
        let mut outer = DerReader::new(pkcs8, WHAT);
        let mut r = DerReader::new(outer.read(TAG_SEQUENCE)?, WHAT);
        r.read(TAG_INTEGER)?;
        let mut alg = DerReader::new(r.read(TAG_SEQUENCE)?, WHAT);

        let rejected = |kind| {
            move |e: ring::error::KeyRejected| AuthError::KeyRejected {
                kind,
                reason: e.to_string(),
            }
        };
        match alg.read(TAG_OID)? {
            oid::RSA_ENCRYPTION => Ok(PrivateKey {
                pair: KeyPair::Rsa(Box::new(
                    RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected("PKCS#8 RSA"))?,
                )),
            }),
            oid::EC_PUBLIC_KEY => {
                let (key_type, der_alg, fixed_alg) = match alg.read(TAG_OID)? {
                    oid::P256 => (
                        KeyType::EcdsaP256,
                        &ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                        &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    ),
                    oid::P384 => (
                        KeyType::EcdsaP384,
                        &ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                        &ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                    ),
                    other => {
                        return Err(AuthError::UnsupportedCurve {
                            oid_hex: oid::to_hex(other),
                        })
                    }
                };
                Ok(PrivateKey {
                    pair: KeyPair::Ecdsa(Box::new(EcdsaPair {
                        key_type,
                        der_signing: EcdsaKeyPair::from_pkcs8(der_alg, pkcs8, rng)
                            .map_err(rejected("PKCS#8 EC"))?,
                        fixed_signing: EcdsaKeyPair::from_pkcs8(fixed_alg, pkcs8, rng)
                            .map_err(rejected("PKCS#8 EC"))?,
                    })),
                })
            }
            other => Err(AuthError::UnsupportedPublicKey {
                oid_hex: oid::to_hex(other),
            }),
        }
    }

    /// The key's type, which decides the schemes it can sign with.
    pub fn key_type(&self) -> KeyType {
        match &self.pair {
            KeyPair::Rsa(k) => KeyType::Rsa {
                bits: u32::try_from(k.public().modulus_len().saturating_mul(8)).unwrap_or(u32::MAX),
            },
            KeyPair::Ecdsa(pair) => pair.key_type,
        }
    }

    /// Signs `signed_octets` (RFC 7296 §2.15, see [`super::signed_octets`]) with `scheme` and
    /// returns the AUTH payload contents. `rng` feeds RSA blinding, PSS salts and ECDSA nonces.
    pub fn sign_auth(
        &self,
        scheme: AuthScheme,
        signed_octets: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<AuthData, AuthError> {
        let signature = self.sign(scheme, signed_octets, rng)?;
        Ok(encode_auth_data(scheme, &signature))
    }

    /// The bare signature of `message` under `scheme`.
    pub fn sign(
        &self,
        scheme: AuthScheme,
        message: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, AuthError> {
        let mismatch = || AuthError::SchemeKeyMismatch {
            scheme: scheme.to_string(),
            key: self.key_type(),
        };
        match &self.pair {
            KeyPair::Rsa(key) => {
                let padding = rsa_padding(scheme).ok_or_else(mismatch)?;
                let mut signature = vec![0u8; key.public().modulus_len()];
                key.sign(padding, rng, message, &mut signature)
                    .map_err(|_| AuthError::SigningFailed(scheme))?;
                Ok(signature)
            }
            KeyPair::Ecdsa(ecdsa) => {
                let EcdsaPair {
                    key_type,
                    der_signing,
                    fixed_signing,
                } = &**ecdsa;
                // ring signs P-256 only with SHA-256 and P-384 only with SHA-384.
                let pair = match (scheme, key_type) {
                    (
                        AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha256),
                        KeyType::EcdsaP256,
                    )
                    | (
                        AuthScheme::DigitalSignature(SignatureScheme::EcdsaSha384),
                        KeyType::EcdsaP384,
                    ) => der_signing,
                    (AuthScheme::EcdsaP256Sha256, KeyType::EcdsaP256)
                    | (AuthScheme::EcdsaP384Sha384, KeyType::EcdsaP384) => fixed_signing,
                    _ => return Err(mismatch()),
                };
                let signature = pair
                    .sign(rng, message)
                    .map_err(|_| AuthError::SigningFailed(scheme))?;
                Ok(signature.as_ref().to_vec())
            }
        }
    }
}

/// ring's RSA padding for a scheme, if it is an RSA scheme.
fn rsa_padding(scheme: AuthScheme) -> Option<&'static dyn RsaEncoding> {
    use SignatureScheme as S;
    Some(match scheme {
        AuthScheme::DigitalSignature(S::RsaPkcs1Sha256) => &ring_sig::RSA_PKCS1_SHA256,
        AuthScheme::DigitalSignature(S::RsaPkcs1Sha384) => &ring_sig::RSA_PKCS1_SHA384,
        AuthScheme::DigitalSignature(S::RsaPkcs1Sha512) => &ring_sig::RSA_PKCS1_SHA512,
        AuthScheme::DigitalSignature(S::RsaPssSha256) => &ring_sig::RSA_PSS_SHA256,
        AuthScheme::DigitalSignature(S::RsaPssSha384) => &ring_sig::RSA_PSS_SHA384,
        AuthScheme::DigitalSignature(S::RsaPssSha512) => &ring_sig::RSA_PSS_SHA512,
        // Limitation: ring cannot sign PKCS#1 v1.5 with SHA-1, so AUTH method 1 is verified
        // (for old peers) but never produced.
        _ => return None,
    })
}

/// Wraps a SEC1 ECPrivateKey (RFC 5915) in a PKCS#8 PrivateKeyInfo, the only EC private key
/// form ring loads, naming the curve from the key's own `parameters`.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    const WHAT: &str = "SEC1 ECPrivateKey";
    let mut outer = DerReader::new(sec1, WHAT);
    let mut r = DerReader::new(outer.read(TAG_SEQUENCE)?, WHAT);
    outer.finish()?;
    if r.read_small_uint()? != 1 {
        return Err(AuthError::MalformedDer {
            what: WHAT,
            reason: "version is not 1",
        });
    }
    r.read(TAG_OCTET_STRING)?;
    let params = r
        .read_optional(der::context(0))?
        .ok_or(AuthError::MalformedDer {
            what: WHAT,
            reason: "no curve parameters",
        })?;
    let mut p = DerReader::new(params, WHAT);
    let curve = p.read(TAG_OID)?;

    let mut alg = Vec::new();
    der::write_element(&mut alg, TAG_OID, oid::EC_PUBLIC_KEY);
    der::write_element(&mut alg, TAG_OID, curve);
    let mut body = Zeroizing::new(Vec::with_capacity(sec1.len() + 32));
    der::write_element(&mut body, TAG_INTEGER, &[0]);
    der::write_element(&mut body, TAG_SEQUENCE, &alg);
    der::write_element(&mut body, TAG_OCTET_STRING, sec1);
    let mut pkcs8 = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    der::write_element(&mut pkcs8, TAG_SEQUENCE, &body);
    Ok(pkcs8)
}
