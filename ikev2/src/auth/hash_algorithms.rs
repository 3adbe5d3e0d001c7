//! SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) and the choice of how to sign our AUTH payload.

use crate::codec::payload::{encode_hash_algorithm_list, hash_algorithm_list};
use crate::registry::HashAlgorithm;

use super::error::AuthError;
use super::public_key::KeyType;
use super::signature::{AuthScheme, SignatureScheme};

/// The hashes we announce in SIGNATURE_HASH_ALGORITHMS, in our order of preference: the ones
/// we can verify with every supported key type.
pub const OUR_HASH_ALGORITHMS: [HashAlgorithm; 3] = [
    HashAlgorithm::SHA2_256,
    HashAlgorithm::SHA2_384,
    HashAlgorithm::SHA2_512,
];

/// Largest number of hash algorithms read from one notification.
pub const MAX_HASH_ALGORITHMS: usize = 64;

/// Notification Data of SIGNATURE_HASH_ALGORITHMS: each hash as a 16-bit value.
pub fn encode_signature_hash_algorithms(hashes: &[HashAlgorithm]) -> Vec<u8> {
    encode_hash_algorithm_list(hashes)
}

/// Parses SIGNATURE_HASH_ALGORITHMS Notification Data; unknown values are kept. At most
/// [`MAX_HASH_ALGORITHMS`] are read, the rest ignored.
pub fn decode_signature_hash_algorithms(data: &[u8]) -> Result<Vec<HashAlgorithm>, AuthError> {
    Ok(hash_algorithm_list(data)
        .ok_or(AuthError::MalformedHashAlgorithms(data.len()))?
        .take(MAX_HASH_ALGORITHMS)
        .collect())
}

/// Which RSA signature padding to use with method 14.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RsaPadding {
    /// RSASSA-PKCS1-v1_5: what strongSwan and Libreswan use by default with RSA keys.
    #[default]
    Pkcs1v15,
    /// RSASSA-PSS.
    Pss,
}

/// The schemes `key` signs with under method 14, in our order of preference.
fn digital_signature_schemes(key: KeyType, padding: RsaPadding) -> &'static [SignatureScheme] {
    use SignatureScheme as S;
    match (key, padding) {
        (KeyType::Rsa { .. }, RsaPadding::Pkcs1v15) => {
            &[S::RsaPkcs1Sha256, S::RsaPkcs1Sha384, S::RsaPkcs1Sha512]
        }
        (KeyType::Rsa { .. }, RsaPadding::Pss) => {
            &[S::RsaPssSha256, S::RsaPssSha384, S::RsaPssSha512]
        }
        // ring signs P-256 only with SHA-256 and P-384 only with SHA-384.
        (KeyType::EcdsaP256, _) => &[S::EcdsaSha256],
        (KeyType::EcdsaP384, _) => &[S::EcdsaSha384],
    }
}

/// Chooses how to sign our AUTH payload.
///
/// `peer_hashes` is the peer's SIGNATURE_HASH_ALGORITHMS list, or `None` when it sent none.
/// With a list we use method 14 with our most preferred hash the peer announced (RFC 7427
/// §4); without one, the peer predates RFC 7427 and gets method 9 or 10 for ECDSA keys.
// Limitation: an RSA key facing a peer without SIGNATURE_HASH_ALGORITHMS fails, because method
// 1 (PKCS#1 v1.5 with SHA-1) cannot be produced with ring.
pub fn choose_auth_scheme(
    key: KeyType,
    peer_hashes: Option<&[HashAlgorithm]>,
    padding: RsaPadding,
) -> Result<AuthScheme, AuthError> {
    let schemes = digital_signature_schemes(key, padding);
    let Some(peer) = peer_hashes else {
        return match key {
            KeyType::EcdsaP256 => Ok(AuthScheme::EcdsaP256Sha256),
            KeyType::EcdsaP384 => Ok(AuthScheme::EcdsaP384Sha384),
            KeyType::Rsa { .. } => Err(AuthError::NoCommonHashAlgorithm {
                peer: Vec::new(),
                ours: schemes.iter().map(|s| s.hash()).collect(),
                key,
            }),
        };
    };
    schemes
        .iter()
        .find(|s| peer.contains(&s.hash()))
        .map(|&s| AuthScheme::DigitalSignature(s))
        .ok_or_else(|| AuthError::NoCommonHashAlgorithm {
            peer: peer.to_vec(),
            ours: schemes.iter().map(|s| s.hash()).collect(),
            key,
        })
}
