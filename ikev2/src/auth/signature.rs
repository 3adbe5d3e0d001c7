//! Signature schemes of the AUTH payload and their verification with a certificate's key.
//!
//! RFC 7296 §3.8 method 1 signs with RSA PKCS#1 v1.5 and SHA-1; RFC 4754 methods 9 and 10 sign
//! with ECDSA and encode the signature as the fixed-width `r || s`; RFC 7427 method 14 names the
//! algorithm in the AUTH data itself and, for ECDSA, carries the DER `ECDSA-Sig-Value`.

use core::fmt;

use ring::signature::{self as ring_sig, UnparsedPublicKey, VerificationAlgorithm};

use crate::registry::{AuthMethod, HashAlgorithm};

use super::algorithm_identifier;
use super::certificate::Certificate;
use super::error::AuthError;
use super::public_key::{KeyType, PublicKey};

/// A signature algorithm that can be named by an RFC 7427 AlgorithmIdentifier.
///
/// For ECDSA the curve is the key's; the scheme only fixes the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// sha256WithRSAEncryption (RSASSA-PKCS1-v1_5, RFC 8017 §8.2).
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption.
    RsaPkcs1Sha384,
    /// sha512WithRSAEncryption.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-octet salt (RFC 7427 §A.4.3).
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-octet salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512 and a 64-octet salt.
    RsaPssSha512,
    /// ecdsa-with-SHA256 (RFC 5758), on the key's curve.
    EcdsaSha256,
    /// ecdsa-with-SHA384, on the key's curve.
    EcdsaSha384,
}

impl SignatureScheme {
    /// Every scheme, in our order of preference for each key type.
    pub const ALL: [SignatureScheme; 8] = [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPkcs1Sha384,
        SignatureScheme::RsaPkcs1Sha512,
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha384,
        SignatureScheme::RsaPssSha512,
        SignatureScheme::EcdsaSha256,
        SignatureScheme::EcdsaSha384,
    ];

    /// The hash of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) this scheme signs with.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            SignatureScheme::RsaPkcs1Sha256
            | SignatureScheme::RsaPssSha256
            | SignatureScheme::EcdsaSha256 => HashAlgorithm::SHA2_256,
            SignatureScheme::RsaPkcs1Sha384
            | SignatureScheme::RsaPssSha384
            | SignatureScheme::EcdsaSha384 => HashAlgorithm::SHA2_384,
            SignatureScheme::RsaPkcs1Sha512 | SignatureScheme::RsaPssSha512 => {
                HashAlgorithm::SHA2_512
            }
        }
    }

    /// True for the RSA schemes (PKCS#1 v1.5 and PSS).
    pub fn is_rsa(self) -> bool {
        !matches!(
            self,
            SignatureScheme::EcdsaSha256 | SignatureScheme::EcdsaSha384
        )
    }

    /// The DER AlgorithmIdentifier that names this scheme in RFC 7427 AUTH data.
    pub fn algorithm_identifier(self) -> Vec<u8> {
        algorithm_identifier::encode(self)
    }

    /// Parses an RFC 7427 AlgorithmIdentifier into the scheme it names.
    pub fn from_algorithm_identifier(der: &[u8]) -> Result<Self, AuthError> {
        algorithm_identifier::decode(der)
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureScheme::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
            SignatureScheme::RsaPkcs1Sha384 => "sha384WithRSAEncryption",
            SignatureScheme::RsaPkcs1Sha512 => "sha512WithRSAEncryption",
            SignatureScheme::RsaPssSha256 => "RSASSA-PSS-SHA256",
            SignatureScheme::RsaPssSha384 => "RSASSA-PSS-SHA384",
            SignatureScheme::RsaPssSha512 => "RSASSA-PSS-SHA512",
            SignatureScheme::EcdsaSha256 => "ecdsa-with-SHA256",
            SignatureScheme::EcdsaSha384 => "ecdsa-with-SHA384",
        })
    }
}

/// How an AUTH payload is signed: its Auth Method and, for method 14, the algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthScheme {
    /// Method 14, Digital Signature (RFC 7427).
    DigitalSignature(SignatureScheme),
    /// Method 1, RSA Digital Signature: PKCS#1 v1.5 with SHA-1 (RFC 7296 §3.8), for old peers.
    RsaSha1,
    /// Method 9, ECDSA with SHA-256 on P-256, signature `r || s` (RFC 4754).
    EcdsaP256Sha256,
    /// Method 10, ECDSA with SHA-384 on P-384, signature `r || s` (RFC 4754).
    EcdsaP384Sha384,
}

impl AuthScheme {
    /// The Auth Method field of the AUTH payload for this scheme.
    pub fn auth_method(self) -> AuthMethod {
        match self {
            AuthScheme::DigitalSignature(_) => AuthMethod::DIGITAL_SIGNATURE,
            AuthScheme::RsaSha1 => AuthMethod::RSA_DIGITAL_SIGNATURE,
            AuthScheme::EcdsaP256Sha256 => AuthMethod::ECDSA_SHA256_P256,
            AuthScheme::EcdsaP384Sha384 => AuthMethod::ECDSA_SHA384_P384,
        }
    }

    /// True when `key` can make or check signatures of this scheme.
    pub fn fits(self, key: KeyType) -> bool {
        match (self, key) {
            (AuthScheme::DigitalSignature(s), KeyType::Rsa { .. }) => s.is_rsa(),
            (AuthScheme::DigitalSignature(s), KeyType::EcdsaP256 | KeyType::EcdsaP384) => {
                !s.is_rsa()
            }
            (AuthScheme::RsaSha1, KeyType::Rsa { .. }) => true,
            (AuthScheme::EcdsaP256Sha256, KeyType::EcdsaP256) => true,
            (AuthScheme::EcdsaP384Sha384, KeyType::EcdsaP384) => true,
            _ => false,
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthScheme::DigitalSignature(s) => write!(f, "DIGITAL_SIGNATURE({s})"),
            AuthScheme::RsaSha1 => f.write_str("RSA_DIGITAL_SIGNATURE(sha1)"),
            AuthScheme::EcdsaP256Sha256 => f.write_str("ECDSA_SHA256_P256"),
            AuthScheme::EcdsaP384Sha384 => f.write_str("ECDSA_SHA384_P384"),
        }
    }
}

/// The contents of an AUTH payload after its generic header: Auth Method and Authentication
/// Data (RFC 7296 §3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthData {
    /// The Auth Method field.
    pub method: AuthMethod,
    /// The Authentication Data field (for method 14: length, AlgorithmIdentifier, signature).
    pub data: Vec<u8>,
}

/// Builds the Authentication Data for `scheme` around a finished `signature`.
///
/// RFC 7427 §3: for method 14 it is one length octet, the AlgorithmIdentifier and the
/// signature; for methods 1, 9 and 10 it is the signature alone.
pub fn encode_auth_data(scheme: AuthScheme, signature: &[u8]) -> AuthData {
    let data = match scheme {
        AuthScheme::DigitalSignature(s) => {
            let alg = s.algorithm_identifier();
            let mut data = Vec::with_capacity(1 + alg.len() + signature.len());
            // Every AlgorithmIdentifier we encode is shorter than 256 octets (at most 67).
            data.push(u8::try_from(alg.len()).unwrap_or(u8::MAX));
            data.extend_from_slice(&alg);
            data.extend_from_slice(signature);
            data
        }
        AuthScheme::RsaSha1 | AuthScheme::EcdsaP256Sha256 | AuthScheme::EcdsaP384Sha384 => {
            signature.to_vec()
        }
    };
    AuthData {
        method: scheme.auth_method(),
        data,
    }
}

/// Splits received Authentication Data into the scheme it uses and the signature octets.
pub fn decode_auth_data(method: AuthMethod, data: &[u8]) -> Result<(AuthScheme, &[u8]), AuthError> {
    let (scheme, signature) = match method {
        AuthMethod::DIGITAL_SIGNATURE => {
            let (&len, rest) = data
                .split_first()
                .ok_or(AuthError::MissingAlgorithmIdentifier)?;
            let (alg, signature) = rest.split_at_checked(usize::from(len)).ok_or(
                AuthError::TruncatedAlgorithmIdentifier {
                    declared: usize::from(len),
                    available: rest.len(),
                },
            )?;
            let scheme = SignatureScheme::from_algorithm_identifier(alg)?;
            (AuthScheme::DigitalSignature(scheme), signature)
        }
        AuthMethod::RSA_DIGITAL_SIGNATURE => (AuthScheme::RsaSha1, data),
        AuthMethod::ECDSA_SHA256_P256 => (AuthScheme::EcdsaP256Sha256, data),
        AuthMethod::ECDSA_SHA384_P384 => (AuthScheme::EcdsaP384Sha384, data),
        other => return Err(AuthError::UnsupportedAuthMethod(other)),
    };
    if signature.is_empty() {
        return Err(AuthError::EmptySignature);
    }
    Ok((scheme, signature))
}

/// Verifies the peer's AUTH payload: `signed_octets` (RFC 7296 §2.15, see
/// [`super::signed_octets`]) signed by the key of `signer`, the peer's end-entity certificate.
///
/// Returns the scheme the peer used, so the caller can log it or refuse old methods by
/// policy. The certificate itself must be validated separately ([`super::TrustStore`]).
pub fn verify_auth(
    signer: &Certificate,
    method: AuthMethod,
    auth_data: &[u8],
    signed_octets: &[u8],
) -> Result<AuthScheme, AuthError> {
    let (scheme, signature) = decode_auth_data(method, auth_data)?;
    verify_signature(signer.public_key(), scheme, signed_octets, signature).map_err(
        |e| match e {
            AuthError::BadSignature { scheme, .. } => AuthError::BadSignature {
                scheme,
                subject: signer.subject().to_owned(),
            },
            other => other,
        },
    )?;
    Ok(scheme)
}

/// Verifies `signature` over `message` with `key` under `scheme`.
pub(crate) fn verify_signature(
    key: &PublicKey,
    scheme: AuthScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), AuthError> {
    let algorithm = verification_algorithm(scheme, key.key_type()).ok_or_else(|| {
        AuthError::SchemeKeyMismatch {
            scheme: scheme.to_string(),
            key: key.key_type(),
        }
    })?;
    UnparsedPublicKey::new(algorithm, key.key_octets())
        .verify(message, signature)
        .map_err(|_| AuthError::BadSignature {
            scheme,
            subject: String::new(),
        })
}

/// ring's verification algorithm for a scheme and key type, if they fit together.
fn verification_algorithm(
    scheme: AuthScheme,
    key: KeyType,
) -> Option<&'static dyn VerificationAlgorithm> {
    use SignatureScheme as S;
    // Limitation: RSA keys shorter than 2048 bits are refused (ring's minimum).
    Some(match (scheme, key) {
        (AuthScheme::DigitalSignature(s), KeyType::Rsa { .. }) => match s {
            S::RsaPkcs1Sha256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
            S::RsaPkcs1Sha384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
            S::RsaPkcs1Sha512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
            S::RsaPssSha256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
            S::RsaPssSha384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
            S::RsaPssSha512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
            S::EcdsaSha256 | S::EcdsaSha384 => return None,
        },
        (AuthScheme::DigitalSignature(S::EcdsaSha256), KeyType::EcdsaP256) => {
            &ring_sig::ECDSA_P256_SHA256_ASN1
        }
        (AuthScheme::DigitalSignature(S::EcdsaSha384), KeyType::EcdsaP256) => {
            &ring_sig::ECDSA_P256_SHA384_ASN1
        }
        (AuthScheme::DigitalSignature(S::EcdsaSha256), KeyType::EcdsaP384) => {
            &ring_sig::ECDSA_P384_SHA256_ASN1
        }
        (AuthScheme::DigitalSignature(S::EcdsaSha384), KeyType::EcdsaP384) => {
            &ring_sig::ECDSA_P384_SHA384_ASN1
        }
        (AuthScheme::RsaSha1, KeyType::Rsa { .. }) => {
            &ring_sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (AuthScheme::EcdsaP256Sha256, KeyType::EcdsaP256) => &ring_sig::ECDSA_P256_SHA256_FIXED,
        (AuthScheme::EcdsaP384Sha384, KeyType::EcdsaP384) => &ring_sig::ECDSA_P384_SHA384_FIXED,
        _ => return None,
    })
}
