//! Public keys as a certificate's SubjectPublicKeyInfo carries them (RFC 5280 §4.1.2.7).

use core::fmt;

use super::der::{DerReader, TAG_BIT_STRING, TAG_INTEGER, TAG_NULL, TAG_OID, TAG_SEQUENCE};
use super::error::AuthError;
use super::oid;

/// The type of a signing key, which decides the signature schemes it can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA on NIST P-256 (secp256r1).
    EcdsaP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcdsaP384,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyType::EcdsaP256 => f.write_str("ECDSA-P256"),
            KeyType::EcdsaP384 => f.write_str("ECDSA-P384"),
        }
    }
}

/// A public key taken from a SubjectPublicKeyInfo, in the form ring verifies with.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_type: KeyType,
    /// RSA: the DER RSAPublicKey (RFC 8017 A.1.1); EC: the uncompressed point (SEC1 §2.3.3).
    octets: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo with an rsaEncryption or id-ecPublicKey (P-256,
    /// P-384) key.
    pub fn from_spki(spki: &[u8]) -> Result<Self, AuthError> {
        const WHAT: &str = "SubjectPublicKeyInfo";
        let mut outer = DerReader::new(spki, WHAT);
        let body = outer.read(TAG_SEQUENCE)?;
        outer.finish()?;
        let mut r = DerReader::new(body, WHAT);
        let alg = r.read(TAG_SEQUENCE)?;
        let bits = r.read(TAG_BIT_STRING)?;
        r.finish()?;

        // A BIT STRING's first content octet counts the unused bits; keys use whole octets.
        let octets = match bits.split_first() {
            Some((0, key)) => key,
            _ => {
                return Err(AuthError::MalformedDer {
                    what: WHAT,
                    reason: "subjectPublicKey is not a whole number of octets",
                })
            }
        };

        let mut a = DerReader::new(alg, WHAT);
        let key_type = match a.read(TAG_OID)? {
            oid::RSA_ENCRYPTION => {
                a.read_optional(TAG_NULL)?;
                KeyType::Rsa {
                    bits: rsa_modulus_bits(octets)?,
                }
            }
            oid::EC_PUBLIC_KEY => match a.read(TAG_OID)? {
                oid::P256 => KeyType::EcdsaP256,
                oid::P384 => KeyType::EcdsaP384,
                other => {
                    return Err(AuthError::UnsupportedCurve {
                        oid_hex: oid::to_hex(other),
                    })
                }
            },
            other => {
                return Err(AuthError::UnsupportedPublicKey {
                    oid_hex: oid::to_hex(other),
                })
            }
        };
        a.finish()?;

        Ok(PublicKey {
            key_type,
            octets: octets.to_vec(),
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key in ring's input form (RSAPublicKey DER, or an uncompressed EC point).
    pub fn key_octets(&self) -> &[u8] {
        &self.octets
    }
}

/// The modulus and public exponent (big-endian INTEGER contents) of a DER
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1).
pub(crate) fn parse_rsa_public_key(der: &[u8]) -> Result<(&[u8], &[u8]), AuthError> {
    const WHAT: &str = "RSAPublicKey";
    let mut outer = DerReader::new(der, WHAT);
    let mut r = DerReader::new(outer.read(TAG_SEQUENCE)?, WHAT);
    outer.finish()?;
    let modulus = r.read(TAG_INTEGER)?;
    let exponent = r.read(TAG_INTEGER)?;
    r.finish()?;
    Ok((modulus, exponent))
}

/// Size in bits of the modulus of a DER RSAPublicKey ::= SEQUENCE { modulus, publicExponent }.
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Result<u32, AuthError> {
    const WHAT: &str = "RSAPublicKey";
    let (modulus, _exponent) = parse_rsa_public_key(rsa_public_key)?;
    let significant: Vec<u8> = modulus.iter().copied().skip_while(|&b| b == 0).collect();
    let Some(&top) = significant.first() else {
        return Err(AuthError::MalformedDer {
            what: WHAT,
            reason: "modulus is zero",
        });
    };
    let len = u32::try_from(significant.len()).map_err(|_| AuthError::MalformedDer {
        what: WHAT,
        reason: "modulus too long",
    })?;
    Ok(len
        .saturating_sub(1)
        .saturating_mul(8)
        .saturating_add(8 - top.leading_zeros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SubjectPublicKeyInfo (rsaEncryption) around the RSAPublicKey `rsa`.
    fn rsa_spki(rsa: &[u8]) -> Vec<u8> {
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0x03, u8::try_from(rsa.len() + 1).unwrap(), 0x00];
        bits.extend_from_slice(rsa);
        let mut spki = vec![0x30, u8::try_from(alg.len() + bits.len()).unwrap()];
        spki.extend_from_slice(&alg);
        spki.extend_from_slice(&bits);
        spki
    }

    #[test]
    fn rsa_key_size_is_the_modulus_bits_without_leading_zero_octets() {
        // modulus 0x00c1 (8 bits), publicExponent 3.
        let key = PublicKey::from_spki(&rsa_spki(&[
            0x30, 0x07, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x01, 0x03,
        ]))
        .unwrap();
        assert_eq!(key.key_type(), KeyType::Rsa { bits: 8 });
        assert_eq!(
            parse_rsa_public_key(key.key_octets()).unwrap(),
            (&[0x00, 0xc1][..], &[0x03][..])
        );
    }

    #[test]
    fn rsa_public_key_without_exponent_is_malformed() {
        let err =
            PublicKey::from_spki(&rsa_spki(&[0x30, 0x04, 0x02, 0x02, 0x00, 0xc1])).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::MalformedDer {
                    what: "RSAPublicKey",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
