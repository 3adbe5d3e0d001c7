//! ESP algorithms and their keys, named as the kernel's crypto layer names them.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Key material; zeroized on drop and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: &[u8]) -> Key {
        Key(Zeroizing::new(bytes.to_vec()))
    }

    /// The key bytes, for encoding into a request.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes, redacted)", self.0.len())
    }
}

/// Length of the salt that RFC 4106 and RFC 7634 append to the key.
pub const AEAD_SALT_LEN: usize = 4;
/// ICV length in bits for every algorithm we program (RFC 4106 16-octet ICV).
pub const ICV_BITS: u32 = 128;
/// Truncation of HMAC-SHA-256 for ESP (RFC 4868 §2.3: 128 bits).
pub const HMAC_SHA256_TRUNC_BITS: u32 = 128;

/// The kernel name of AES-GCM for ESP (RFC 4106).
pub const AES_GCM_NAME: &str = "rfc4106(gcm(aes))";
/// The kernel name of ChaCha20-Poly1305 for ESP (RFC 7634).
pub const CHACHA20_POLY1305_NAME: &str = "rfc7539esp(chacha20,poly1305)";
/// The kernel name of AES-CBC.
pub const AES_CBC_NAME: &str = "cbc(aes)";
/// The kernel name of HMAC-SHA-256.
pub const HMAC_SHA256_NAME: &str = "hmac(sha256)";

/// An ESP transform with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    /// AES-GCM with a 16-byte ICV; key is 16 or 32 bytes of AES key followed by a 4-byte salt.
    AesGcm {
        /// AES key ‖ salt (20 or 36 bytes).
        key: Key,
    },
    /// ChaCha20-Poly1305; key is 32 bytes followed by a 4-byte salt.
    ChaCha20Poly1305 {
        /// ChaCha20 key ‖ salt (36 bytes).
        key: Key,
    },
    /// AES-CBC for encryption with HMAC-SHA-256-128 for integrity.
    AesCbcHmacSha256 {
        /// AES key (16, 24 or 32 bytes).
        enc_key: Key,
        /// HMAC key (32 bytes).
        auth_key: Key,
    },
}

impl Algorithm {
    /// AES-GCM-128 (`key` = 16-byte key ‖ 4-byte salt).
    pub fn aes_gcm_128(key: &[u8]) -> Result<Algorithm> {
        check_len(AES_GCM_NAME, 16 + AEAD_SALT_LEN, key)?;
        Ok(Algorithm::AesGcm { key: Key::new(key) })
    }

    /// AES-GCM-256 (`key` = 32-byte key ‖ 4-byte salt).
    pub fn aes_gcm_256(key: &[u8]) -> Result<Algorithm> {
        check_len(AES_GCM_NAME, 32 + AEAD_SALT_LEN, key)?;
        Ok(Algorithm::AesGcm { key: Key::new(key) })
    }

    /// ChaCha20-Poly1305 (`key` = 32-byte key ‖ 4-byte salt).
    pub fn chacha20_poly1305(key: &[u8]) -> Result<Algorithm> {
        check_len(CHACHA20_POLY1305_NAME, 32 + AEAD_SALT_LEN, key)?;
        Ok(Algorithm::ChaCha20Poly1305 { key: Key::new(key) })
    }

    /// AES-CBC (16, 24 or 32-byte key) with HMAC-SHA-256 (32-byte key).
    pub fn aes_cbc_hmac_sha256(enc_key: &[u8], auth_key: &[u8]) -> Result<Algorithm> {
        if ![16, 24, 32].contains(&enc_key.len()) {
            return Err(Error::InvalidKeyLength {
                algorithm: AES_CBC_NAME,
                expected: 32,
                got: enc_key.len(),
            });
        }
        check_len(HMAC_SHA256_NAME, 32, auth_key)?;
        Ok(Algorithm::AesCbcHmacSha256 {
            enc_key: Key::new(enc_key),
            auth_key: Key::new(auth_key),
        })
    }

    /// The kernel's name of the (first) transform.
    pub fn kernel_name(&self) -> &'static str {
        match self {
            Algorithm::AesGcm { .. } => AES_GCM_NAME,
            Algorithm::ChaCha20Poly1305 { .. } => CHACHA20_POLY1305_NAME,
            Algorithm::AesCbcHmacSha256 { .. } => AES_CBC_NAME,
        }
    }

    /// The kernel module that usually provides the transform, for error messages.
    pub fn kernel_module(&self) -> &'static str {
        match self {
            Algorithm::AesGcm { .. } => "gcm",
            Algorithm::ChaCha20Poly1305 { .. } => "chacha20poly1305",
            Algorithm::AesCbcHmacSha256 { .. } => "authenc",
        }
    }

    /// True for AEAD transforms (one attribute, combined mode).
    pub fn is_aead(&self) -> bool {
        !matches!(self, Algorithm::AesCbcHmacSha256 { .. })
    }
}

fn check_len(algorithm: &'static str, expected: usize, key: &[u8]) -> Result<()> {
    if key.len() != expected {
        return Err(Error::InvalidKeyLength {
            algorithm,
            expected,
            got: key.len(),
        });
    }
    Ok(())
}

/// Copies an algorithm name into the kernel's fixed 64-byte, NUL-padded field.
pub(crate) fn name_field(name: &str) -> [u8; 64] {
    let mut field = [0u8; 64];
    for (dst, src) in field.iter_mut().zip(name.as_bytes().iter().take(63)) {
        *dst = *src;
    }
    field
}

/// Reads the kernel's NUL-padded algorithm name field.
pub(crate) fn name_from_field(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_gcm_key_length_names_algorithm_and_lengths() {
        let err = Algorithm::aes_gcm_256(&[0u8; 32]).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidKeyLength {
                algorithm: AES_GCM_NAME,
                expected: 36,
                got: 32
            }
        ));
    }

    #[test]
    fn key_debug_output_hides_bytes() {
        let alg = Algorithm::aes_gcm_128(&[0x42u8; 20]).unwrap();
        let text = format!("{alg:?}");
        assert!(text.contains("redacted") && !text.contains("66"), "{text}");
    }

    #[test]
    fn name_field_is_nul_padded_and_round_trips() {
        let f = name_field(CHACHA20_POLY1305_NAME);
        assert_eq!(f[CHACHA20_POLY1305_NAME.len()], 0);
        assert_eq!(name_from_field(&f), CHACHA20_POLY1305_NAME);
    }
}
