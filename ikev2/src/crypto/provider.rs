//! The crypto provider trait and its ring implementation.

use core::fmt;

use ring::{aead, hmac};

use super::aead::{AeadCipher, AeadError, ICV_LEN, NONCE_LEN};
use super::ke::{KeError, KeMethod, KeyExchange};
use super::prf::{PrfAlgorithm, PrfOutput};
use super::Random;

/// The cryptographic primitives the IKEv2 engine uses, behind one object so an
/// implementation (ring today) can be swapped without touching the protocol code.
pub trait CryptoProvider: Send + Sync + fmt::Debug {
    /// `prf(key, data[0] | data[1] | …)`.
    fn prf(&self, prf: PrfAlgorithm, key: &[u8], data: &[&[u8]]) -> PrfOutput;

    /// Encrypts `in_out` in place and appends the [`ICV_LEN`]-byte tag.
    fn aead_seal(
        &self,
        cipher: AeadCipher,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<(), AeadError>;

    /// Checks the tag at the end of `in_out` and decrypts in place; returns the plaintext
    /// length (the plaintext is `in_out[..len]`).
    fn aead_open(
        &self,
        cipher: AeadCipher,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, AeadError>;

    /// Generates a fresh key exchange private key and its public value.
    fn key_exchange(&self, method: KeMethod, rng: &mut dyn Random) -> Result<KeyExchange, KeError>;
}

/// [`CryptoProvider`] backed by ring for HMAC and AEAD. Key exchange goes to the RustCrypto
/// implementations in [`super::ke`], because ring's ECDH only accepts its own sealed random
/// source and so cannot be driven from a seed or a test vector.
// Limitation: ring's hmac::Key and aead keys are not zeroized by ring when dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct RingProvider;

impl RingProvider {
    fn hmac_algorithm(prf: PrfAlgorithm) -> hmac::Algorithm {
        match prf {
            PrfAlgorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            PrfAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
            PrfAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
            PrfAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    fn aead_key(cipher: AeadCipher, key: &[u8]) -> Result<aead::LessSafeKey, AeadError> {
        let algorithm = match cipher {
            AeadCipher::AesGcm16_128 => &aead::AES_128_GCM,
            AeadCipher::AesGcm16_256 => &aead::AES_256_GCM,
            AeadCipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let wrong_length = AeadError::WrongKeyLength {
            cipher,
            expected: cipher.key_len(),
            actual: key.len(),
        };
        if key.len() != cipher.key_len() {
            return Err(wrong_length);
        }
        let unbound = aead::UnboundKey::new(algorithm, key).map_err(|_| wrong_length)?;
        Ok(aead::LessSafeKey::new(unbound))
    }
}

impl CryptoProvider for RingProvider {
    fn prf(&self, prf: PrfAlgorithm, key: &[u8], data: &[&[u8]]) -> PrfOutput {
        let key = hmac::Key::new(Self::hmac_algorithm(prf), key);
        let mut ctx = hmac::Context::with_key(&key);
        for part in data {
            ctx.update(part);
        }
        PrfOutput::from_slice(ctx.sign().as_ref())
    }

    fn aead_seal(
        &self,
        cipher: AeadCipher,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        let key = Self::aead_key(cipher, key)?;
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), in_out)
            .map_err(|_| AeadError::SealFailed { cipher })
    }

    fn aead_open(
        &self,
        cipher: AeadCipher,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, AeadError> {
        let key = Self::aead_key(cipher, key)?;
        if in_out.len() < ICV_LEN {
            return Err(AeadError::CiphertextTooShort {
                cipher,
                len: in_out.len(),
            });
        }
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        let plaintext = key
            .open_in_place(nonce, aead::Aad::from(aad), in_out)
            .map_err(|_| AeadError::IntegrityCheckFailed { cipher })?;
        Ok(plaintext.len())
    }

    fn key_exchange(&self, method: KeMethod, rng: &mut dyn Random) -> Result<KeyExchange, KeError> {
        KeyExchange::generate(method, rng)
    }
}
