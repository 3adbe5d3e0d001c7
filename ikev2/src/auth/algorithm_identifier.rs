//! The ASN.1 AlgorithmIdentifier of RFC 7427 AUTH data: encoding ours, parsing the peer's.
//!
//! We encode exactly the forms of RFC 7427 Appendix A (PKCS#1 v1.5 with NULL parameters,
//! ECDSA with absent parameters, RSASSA-PSS with explicit parameters). On input we also accept
//! the variants that encoders produce in practice: absent instead of NULL parameters for
//! PKCS#1 v1.5 and for the hash inside the PSS parameters (RFC 4055 §2.1 asks readers to
//! accept both).

use super::der::{self, DerReader, TAG_INTEGER, TAG_NULL, TAG_OID, TAG_SEQUENCE};
use super::error::AuthError;
use super::oid;
use super::signature::SignatureScheme;

const WHAT: &str = "AlgorithmIdentifier";

/// DER of `SEQUENCE { OID, params... }` where `params` is already DER.
fn algorithm_identifier(oid: &[u8], params: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(oid.len() + params.len() + 2);
    der::write_element(&mut body, TAG_OID, oid);
    body.extend_from_slice(params);
    let mut out = Vec::with_capacity(body.len() + 2);
    der::write_element(&mut out, TAG_SEQUENCE, &body);
    out
}

/// The hash of a PSS scheme: its OID and its output length (the salt length we use).
fn pss_hash(scheme: SignatureScheme) -> Option<(&'static [u8], u32)> {
    match scheme {
        SignatureScheme::RsaPssSha256 => Some((oid::SHA256, 32)),
        SignatureScheme::RsaPssSha384 => Some((oid::SHA384, 48)),
        SignatureScheme::RsaPssSha512 => Some((oid::SHA512, 64)),
        _ => None,
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1) with MGF1 over the message hash and salt = hash length;
/// the trailer field keeps its DEFAULT and so is not encoded.
fn pss_params(hash_oid: &[u8], salt_len: u32) -> Vec<u8> {
    let mut null = Vec::new();
    der::write_element(&mut null, TAG_NULL, &[]);
    let hash = algorithm_identifier(hash_oid, &null);
    let mgf = algorithm_identifier(oid::MGF1, &hash);
    // Salt lengths are 32, 48 or 64: one content octet, no sign bit.
    let salt = [u8::try_from(salt_len).unwrap_or(u8::MAX)];

    let mut body = Vec::new();
    der::write_element(&mut body, der::context(0), &hash);
    der::write_element(&mut body, der::context(1), &mgf);
    let mut salt_der = Vec::new();
    der::write_element(&mut salt_der, TAG_INTEGER, &salt);
    der::write_element(&mut body, der::context(2), &salt_der);
    let mut out = Vec::new();
    der::write_element(&mut out, TAG_SEQUENCE, &body);
    out
}

/// Encodes the AlgorithmIdentifier naming `scheme` (RFC 7427 Appendix A forms).
pub(crate) fn encode(scheme: SignatureScheme) -> Vec<u8> {
    let mut null = Vec::new();
    der::write_element(&mut null, TAG_NULL, &[]);
    match scheme {
        SignatureScheme::RsaPkcs1Sha256 => algorithm_identifier(oid::SHA256_WITH_RSA, &null),
        SignatureScheme::RsaPkcs1Sha384 => algorithm_identifier(oid::SHA384_WITH_RSA, &null),
        SignatureScheme::RsaPkcs1Sha512 => algorithm_identifier(oid::SHA512_WITH_RSA, &null),
        SignatureScheme::EcdsaSha256 => algorithm_identifier(oid::ECDSA_WITH_SHA256, &[]),
        SignatureScheme::EcdsaSha384 => algorithm_identifier(oid::ECDSA_WITH_SHA384, &[]),
        SignatureScheme::RsaPssSha256
        | SignatureScheme::RsaPssSha384
        | SignatureScheme::RsaPssSha512 => {
            let (hash, salt) = pss_hash(scheme).unwrap_or((oid::SHA256, 32));
            algorithm_identifier(oid::RSASSA_PSS, &pss_params(hash, salt))
        }
    }
}

/// Parses an AlgorithmIdentifier from RFC 7427 AUTH data into a supported scheme.
pub(crate) fn decode(input: &[u8]) -> Result<SignatureScheme, AuthError> {
    let mut outer = DerReader::new(input, WHAT);
    let body = outer.read(TAG_SEQUENCE)?;
    outer.finish()?;
    let mut r = DerReader::new(body, WHAT);
    let algorithm = r.read(TAG_OID)?;

    let pkcs1 = |scheme| -> Result<SignatureScheme, AuthError> {
        // Parameters: NULL (RFC 7427 A.1) or absent.
        let mut r = DerReader::new(body, WHAT);
        r.read(TAG_OID)?;
        if r.read_optional(TAG_NULL)?.is_some_and(|c| !c.is_empty()) {
            return Err(AuthError::MalformedDer {
                what: WHAT,
                reason: "NULL parameters with contents",
            });
        }
        r.finish()?;
        Ok(scheme)
    };
    let ecdsa = |scheme| -> Result<SignatureScheme, AuthError> {
        // RFC 5758 §3.2: parameters MUST be absent.
        r.finish()?;
        Ok(scheme)
    };

    match algorithm {
        oid::SHA256_WITH_RSA => pkcs1(SignatureScheme::RsaPkcs1Sha256),
        oid::SHA384_WITH_RSA => pkcs1(SignatureScheme::RsaPkcs1Sha384),
        oid::SHA512_WITH_RSA => pkcs1(SignatureScheme::RsaPkcs1Sha512),
        oid::ECDSA_WITH_SHA256 => ecdsa(SignatureScheme::EcdsaSha256),
        oid::ECDSA_WITH_SHA384 => ecdsa(SignatureScheme::EcdsaSha384),
        oid::RSASSA_PSS => {
            let params = r.read(TAG_SEQUENCE)?;
            r.finish()?;
            decode_pss_params(params)
        }
        other => Err(AuthError::UnsupportedSignatureAlgorithm {
            name: unsupported_name(other),
        }),
    }
}

/// Names the algorithms of RFC 7427 Appendix A that we parse but do not implement.
fn unsupported_name(algorithm: &[u8]) -> String {
    match algorithm {
        oid::SHA1_WITH_RSA => "sha1WithRSAEncryption".into(),
        oid::ECDSA_WITH_SHA1 => "ecdsa-with-SHA1".into(),
        oid::ECDSA_WITH_SHA512 => "ecdsa-with-SHA512".into(),
        oid::DSA_WITH_SHA1 => "dsa-with-sha1".into(),
        oid::DSA_WITH_SHA256 => "dsa-with-sha256".into(),
        other => format!("OID {}", oid::to_hex(other)),
    }
}

/// Reads a hash AlgorithmIdentifier (parameters NULL or absent) and returns its OID.
fn read_hash_algorithm(input: &[u8]) -> Result<&[u8], AuthError> {
    let mut outer = DerReader::new(input, "RSASSA-PSS hash AlgorithmIdentifier");
    let body = outer.read(TAG_SEQUENCE)?;
    outer.finish()?;
    read_hash_algorithm_body(body)
}

/// Like [`read_hash_algorithm`], given the SEQUENCE's contents.
fn read_hash_algorithm_body(body: &[u8]) -> Result<&[u8], AuthError> {
    let mut r = DerReader::new(body, "RSASSA-PSS hash AlgorithmIdentifier");
    let hash = r.read(TAG_OID)?;
    r.read_optional(TAG_NULL)?;
    r.finish()?;
    Ok(hash)
}

/// RSASSA-PSS-params ::= SEQUENCE { [0] hashAlgorithm DEFAULT sha1, [1] maskGenAlgorithm
/// DEFAULT mgf1SHA1, [2] saltLength DEFAULT 20, [3] trailerField DEFAULT 1 } (RFC 4055 §3.1).
/// ring verifies PSS with MGF1 over the same hash and salt = hash length, so only those are
/// accepted.
fn decode_pss_params(params: &[u8]) -> Result<SignatureScheme, AuthError> {
    let mut r = DerReader::new(params, "RSASSA-PSS-params");

    let hash = match r.read_optional(der::context(0))? {
        Some(alg) => read_hash_algorithm(alg)?,
        None => oid::SHA1,
    };
    let mgf_hash = match r.read_optional(der::context(1))? {
        Some(alg) => {
            let mut outer = DerReader::new(alg, "RSASSA-PSS maskGenAlgorithm");
            let body = outer.read(TAG_SEQUENCE)?;
            outer.finish()?;
            let mut m = DerReader::new(body, "RSASSA-PSS maskGenAlgorithm");
            if m.read(TAG_OID)? != oid::MGF1 {
                return Err(AuthError::UnsupportedPssParameters {
                    reason: "mask generation function is not MGF1",
                });
            }
            let mgf_hash = read_hash_algorithm_body(m.read(TAG_SEQUENCE)?)?;
            m.finish()?;
            mgf_hash
        }
        None => oid::SHA1,
    };
    let salt_len = match r.read_optional(der::context(2))? {
        Some(salt) => {
            let mut s = DerReader::new(salt, "RSASSA-PSS saltLength");
            let v = s.read_small_uint()?;
            s.finish()?;
            v
        }
        None => 20,
    };
    if let Some(trailer) = r.read_optional(der::context(3))? {
        let mut t = DerReader::new(trailer, "RSASSA-PSS trailerField");
        if t.read_small_uint()? != 1 {
            return Err(AuthError::UnsupportedPssParameters {
                reason: "trailerField is not 1 (0xBC)",
            });
        }
        t.finish()?;
    }
    r.finish()?;

    let (scheme, hash_len) = match hash {
        oid::SHA256 => (SignatureScheme::RsaPssSha256, 32),
        oid::SHA384 => (SignatureScheme::RsaPssSha384, 48),
        oid::SHA512 => (SignatureScheme::RsaPssSha512, 64),
        _ => {
            return Err(AuthError::UnsupportedPssParameters {
                reason: "hash is not SHA-256, SHA-384 or SHA-512",
            })
        }
    };
    if mgf_hash != hash {
        return Err(AuthError::UnsupportedPssParameters {
            reason: "MGF1 hash differs from the message hash",
        });
    }
    if salt_len != hash_len {
        return Err(AuthError::UnsupportedPssParameters {
            reason: "salt length differs from the hash length",
        });
    }
    Ok(scheme)
}
