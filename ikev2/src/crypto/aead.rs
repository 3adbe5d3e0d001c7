//! The AEAD ciphers that protect SK payloads: AES-GCM with a 16-octet ICV (RFC 5282) and
//! ChaCha20-Poly1305 (RFC 7634). Both use a 4-byte salt from the keying material and an 8-byte
//! IV carried in the message, forming the 12-byte nonce `salt | IV`.

use super::UnsupportedAlgorithm;
use crate::registry::EncrId;

/// Length of the salt taken from the end of SK_e (RFC 5282 §7.1, RFC 7634 §2).
pub const SALT_LEN: usize = 4;
/// Length of the explicit IV at the start of the SK payload body (RFC 5282 §3).
pub const IV_LEN: usize = 8;
/// Length of the nonce handed to the cipher: salt then IV.
pub const NONCE_LEN: usize = SALT_LEN + IV_LEN;
/// Length of the Integrity Checksum Data (authentication tag) for every cipher here.
pub const ICV_LEN: usize = 16;

/// An AEAD cipher we implement for the SK payload (and whose keying material we derive for
/// ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadCipher {
    /// ENCR_AES_GCM_16 with a 128-bit key.
    AesGcm16_128,
    /// ENCR_AES_GCM_16 with a 256-bit key.
    AesGcm16_256,
    /// ENCR_CHACHA20_POLY1305.
    ChaCha20Poly1305,
}

impl AeadCipher {
    /// The cipher for a negotiated ENCR transform and its Key Length attribute (in bits).
    /// RFC 5282 §8 requires the attribute for AES-GCM; RFC 7634 §3 forbids it for
    /// ChaCha20-Poly1305.
    pub fn from_transform(id: EncrId, key_bits: Option<u16>) -> Result<Self, UnsupportedAlgorithm> {
        match (id, key_bits) {
            (EncrId::ENCR_AES_GCM_16, Some(128)) => Ok(AeadCipher::AesGcm16_128),
            (EncrId::ENCR_AES_GCM_16, Some(256)) => Ok(AeadCipher::AesGcm16_256),
            (EncrId::ENCR_CHACHA20_POLY1305, None) => Ok(AeadCipher::ChaCha20Poly1305),
            // Limitation: AES-GCM-192, the 8- and 12-octet ICV variants and CCM are not offered.
            _ => Err(UnsupportedAlgorithm::Encr { id, key_bits }),
        }
    }

    /// The ENCR transform ID.
    pub fn id(self) -> EncrId {
        match self {
            AeadCipher::AesGcm16_128 | AeadCipher::AesGcm16_256 => EncrId::ENCR_AES_GCM_16,
            AeadCipher::ChaCha20Poly1305 => EncrId::ENCR_CHACHA20_POLY1305,
        }
    }

    /// The Key Length attribute to send with the transform, in bits.
    pub fn key_length_attribute(self) -> Option<u16> {
        match self {
            AeadCipher::AesGcm16_128 => Some(128),
            AeadCipher::AesGcm16_256 => Some(256),
            AeadCipher::ChaCha20Poly1305 => None,
        }
    }

    /// Length of the cipher key proper, in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadCipher::AesGcm16_128 => 16,
            AeadCipher::AesGcm16_256 | AeadCipher::ChaCha20Poly1305 => 32,
        }
    }

    /// Length of the keying material for one direction: the key then the salt. This is the
    /// length of SK_ei/SK_er and of each ESP encryption key (RFC 5282 §7.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        self.key_len() + SALT_LEN
    }
}

/// A failure of the raw AEAD operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The key handed to the cipher has the wrong size.
    #[error("{cipher:?} needs a {expected}-byte key, got {actual} bytes")]
    WrongKeyLength {
        /// The cipher.
        cipher: AeadCipher,
        /// Required key length.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The ciphertext is shorter than the authentication tag.
    #[error("{cipher:?} ciphertext of {len} bytes is shorter than the {ICV_LEN}-byte tag")]
    CiphertextTooShort {
        /// The cipher.
        cipher: AeadCipher,
        /// Length given.
        len: usize,
    },
    /// The authentication tag does not match: wrong key, or altered data.
    #[error("{cipher:?} integrity check failed")]
    IntegrityCheckFailed {
        /// The cipher.
        cipher: AeadCipher,
    },
    /// The backend refused to encrypt (input beyond the cipher's limits).
    #[error("{cipher:?} encryption failed")]
    SealFailed {
        /// The cipher.
        cipher: AeadCipher,
    },
}
