//! Opening an RSA PKCS#1 v1.5 signature with the public key, to see its DigestInfo.
//!
//! ring verifies a signature against a message but never shows what a signature contains.
//! When the message is not known — the strongSwan capture comes with SK_e but not SK_pi/SK_pr,
//! so MACedIDFor{I,R} and hence the signed octets cannot be rebuilt — the public-key operation
//! still shows whether the AUTH data is a well-formed signature by the certificate's key and
//! which digest it carries (RFC 8017 §8.2.2 steps 2 and 3, EMSA-PKCS1-v1_5 §9.2).
//!
//! The modular exponentiation uses `num-bigint`, which x509-parser already brings in. It is
//! not constant time; that is fine here because only public values are involved.

use x509_parser::num_bigint::BigUint;

use crate::registry::{AuthMethod, HashAlgorithm};

use super::certificate::Certificate;
use super::der::{DerReader, TAG_NULL, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE};
use super::error::AuthError;
use super::oid;
use super::public_key::parse_rsa_public_key;
use super::public_key::KeyType;
use super::signature::{decode_auth_data, AuthScheme, SignatureScheme};

/// The DigestInfo found inside an RSA PKCS#1 v1.5 signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredDigest {
    /// The hash the DigestInfo names.
    pub hash: HashAlgorithm,
    /// The digest of the signed octets.
    pub digest: Vec<u8>,
}

/// Largest public exponent accepted, in octets (ring accepts e < 2^33).
const MAX_EXPONENT_LEN: usize = 5;

/// Largest modulus accepted, in octets (8192 bits).
const MAX_MODULUS_LEN: usize = 1024;

/// Length of a big-endian unsigned integer without its leading zero octets.
fn significant_len(int: &[u8]) -> usize {
    int.iter().skip_while(|&&b| b == 0).count()
}

fn malformed(reason: &'static str) -> AuthError {
    AuthError::MalformedPkcs1Signature { reason }
}

/// Applies the public key of `signer` to the signature in an AUTH payload of method 1, or of
/// method 14 with sha{256,384,512}WithRSAEncryption, and returns the digest it carries.
///
/// Success shows the AUTH data was made with the private key of `signer` and that its
/// padding and DigestInfo are well formed; comparing the digest with a hash of the signed
/// octets (when they are known) completes the verification.
pub fn recover_rsa_pkcs1_digest(
    signer: &Certificate,
    method: AuthMethod,
    auth_data: &[u8],
) -> Result<RecoveredDigest, AuthError> {
    let (scheme, signature) = decode_auth_data(method, auth_data)?;
    let expected_hash = match scheme {
        AuthScheme::RsaSha1 => HashAlgorithm::SHA1,
        AuthScheme::DigitalSignature(
            s @ (SignatureScheme::RsaPkcs1Sha256
            | SignatureScheme::RsaPkcs1Sha384
            | SignatureScheme::RsaPkcs1Sha512),
        ) => s.hash(),
        other => {
            return Err(AuthError::SchemeKeyMismatch {
                scheme: other.to_string(),
                key: signer.key_type(),
            })
        }
    };
    let KeyType::Rsa { .. } = signer.key_type() else {
        return Err(AuthError::SchemeKeyMismatch {
            scheme: scheme.to_string(),
            key: signer.key_type(),
        });
    };

    let (modulus, exponent) = parse_rsa_public_key(signer.public_key().key_octets())?;
    // Bound the work an unvalidated certificate can cause: ring's own limits for RSA keys.
    if significant_len(exponent) > MAX_EXPONENT_LEN || significant_len(modulus) > MAX_MODULUS_LEN {
        return Err(malformed("public key outside the supported sizes"));
    }
    let n = BigUint::from_bytes_be(modulus);
    let e = BigUint::from_bytes_be(exponent);
    let k = significant_len(modulus);
    if signature.len() != k {
        return Err(malformed(
            "signature length differs from the modulus length",
        ));
    }
    let s = BigUint::from_bytes_be(signature);
    if s >= n {
        return Err(malformed("signature representative out of range"));
    }

    // EM = 0x00 || 0x01 || PS (0xff, at least 8) || 0x00 || DigestInfo.
    let m = s.modpow(&e, &n).to_bytes_be();
    let mut em = vec![0u8; k.saturating_sub(m.len())];
    em.extend_from_slice(&m);
    let rest = em
        .strip_prefix(&[0x00, 0x01])
        .ok_or_else(|| malformed("block does not start with 00 01"))?;
    let ps_len = rest.iter().take_while(|&&b| b == 0xff).count();
    if ps_len < 8 {
        return Err(malformed("padding shorter than 8 octets"));
    }
    let digest_info = rest
        .get(ps_len..)
        .and_then(|r| r.strip_prefix(&[0x00]))
        .ok_or_else(|| malformed("padding not followed by 00"))?;

    let (hash, digest) = parse_digest_info(digest_info)?;
    if hash != expected_hash {
        return Err(malformed("DigestInfo hash differs from the AUTH scheme's"));
    }
    Ok(RecoveredDigest {
        hash,
        digest: digest.to_vec(),
    })
}

/// DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING digest } (RFC 8017 §9.2).
fn parse_digest_info(der: &[u8]) -> Result<(HashAlgorithm, &[u8]), AuthError> {
    const WHAT: &str = "DigestInfo";
    let mut outer = DerReader::new(der, WHAT);
    let mut r = DerReader::new(outer.read(TAG_SEQUENCE)?, WHAT);
    outer.finish()?;
    let mut alg = DerReader::new(r.read(TAG_SEQUENCE)?, WHAT);
    let (hash, len) = match alg.read(TAG_OID)? {
        oid::SHA1 => (HashAlgorithm::SHA1, 20),
        oid::SHA256 => (HashAlgorithm::SHA2_256, 32),
        oid::SHA384 => (HashAlgorithm::SHA2_384, 48),
        oid::SHA512 => (HashAlgorithm::SHA2_512, 64),
        _ => return Err(malformed("DigestInfo names an unknown hash")),
    };
    alg.read_optional(TAG_NULL)?;
    alg.finish()?;
    let digest = r.read(TAG_OCTET_STRING)?;
    r.finish()?;
    if digest.len() != len {
        return Err(malformed("digest length does not fit its hash"));
    }
    Ok((hash, digest))
}
