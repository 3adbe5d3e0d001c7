//! Sealing and opening the body of an SK payload with an AEAD cipher (RFC 7296 §3.14,
//! RFC 5282 §3–5, RFC 7634 §2–3).
//!
//! The body is `IV (8) | ciphertext | ICV (16)`, where the plaintext is
//! `inner payloads | Padding | Pad Length (1)`. The nonce is the 4-byte salt at the end of
//! SK_e followed by the IV. The AAD is the message from the first octet of the IKE header to
//! the last octet of the SK payload's generic header (RFC 5282 §5.1); the caller computes it
//! from the message with its final lengths already in place (see [`sealed_body_len`]).

use super::aead::{AeadCipher, AeadError, ICV_LEN, IV_LEN, NONCE_LEN, SALT_LEN};
use super::CryptoProvider;

/// The shortest body that can be valid: IV, an empty inner chain with the Pad Length octet,
/// and the ICV.
pub const MIN_BODY_LEN: usize = IV_LEN + 1 + ICV_LEN;

/// Why an SK payload body could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// SK_e must be the cipher key followed by the 4-byte salt.
    #[error("{cipher:?} SK_e must be {expected} bytes (key and salt), got {actual}")]
    WrongKeyLength {
        /// The cipher.
        cipher: AeadCipher,
        /// Key plus salt length.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The body cannot even hold the IV, the Pad Length octet and the ICV.
    #[error("SK payload body of {len} bytes is shorter than the minimum of {min}")]
    BodyTooShort {
        /// Body length received.
        len: usize,
        /// [`MIN_BODY_LEN`].
        min: usize,
    },
    /// The ICV does not match: wrong keys, a wrong AAD, or a modified message.
    #[error("{cipher:?} integrity check of the SK payload failed")]
    IntegrityCheckFailed {
        /// The cipher.
        cipher: AeadCipher,
    },
    /// The Pad Length octet claims more padding than the decrypted plaintext holds.
    #[error("Pad Length {pad_length} does not fit in a {plaintext_len}-byte plaintext")]
    BadPadding {
        /// The Pad Length octet.
        pad_length: u8,
        /// Decrypted plaintext length, Pad Length octet included.
        plaintext_len: usize,
    },
    /// The cipher backend refused the operation.
    #[error("AEAD failure: {0}")]
    Aead(AeadError),
}

/// Length of the body [`seal_padded`] produces for `inner_len` bytes of inner payloads and
/// `pad_len` bytes of padding, so the caller can write the IKE header and SK payload lengths
/// (which are part of the AAD) before sealing. The same for every AEAD cipher: all have an
/// 8-octet IV and a 16-octet ICV (RFC 5282 §3, RFC 7634 §2).
pub fn sealed_body_len(inner_len: usize, pad_len: u8) -> usize {
    IV_LEN
        .saturating_add(inner_len)
        .saturating_add(usize::from(pad_len))
        .saturating_add(1)
        .saturating_add(ICV_LEN)
}

/// Seals `inner` (the encoded inner payload chain) with no padding. AEAD ciphers need no
/// block alignment (RFC 5282 §3, RFC 7634 §3). `iv` must never repeat under one SK_e;
/// a message counter is the usual choice.
pub fn seal(
    provider: &dyn CryptoProvider,
    cipher: AeadCipher,
    sk_e: &[u8],
    iv: &[u8; IV_LEN],
    aad: &[u8],
    inner: &[u8],
) -> Result<Vec<u8>, SkError> {
    seal_padded(provider, cipher, sk_e, iv, aad, inner, 0)
}

/// Seals `inner` followed by `pad_len` zero octets of padding and the Pad Length octet.
pub fn seal_padded(
    provider: &dyn CryptoProvider,
    cipher: AeadCipher,
    sk_e: &[u8],
    iv: &[u8; IV_LEN],
    aad: &[u8],
    inner: &[u8],
    pad_len: u8,
) -> Result<Vec<u8>, SkError> {
    let (key, nonce) = split_key(cipher, sk_e, iv)?;

    let mut body = Vec::with_capacity(sealed_body_len(inner.len(), pad_len));
    body.extend_from_slice(iv);
    // Room for the tag too, so sealing in place does not reallocate.
    let mut plaintext = Vec::with_capacity(body.capacity().saturating_sub(IV_LEN));
    plaintext.extend_from_slice(inner);
    plaintext.extend(core::iter::repeat_n(0u8, usize::from(pad_len)));
    plaintext.push(pad_len);

    provider
        .aead_seal(cipher, key, &nonce, aad, &mut plaintext)
        .map_err(SkError::Aead)?;
    body.extend_from_slice(&plaintext);
    Ok(body)
}

/// Opens an SK payload body: checks the ICV against `aad`, decrypts, and strips the padding.
/// Returns the inner payload chain (whose first payload type is the SK payload's Next
/// Payload field).
pub fn open(
    provider: &dyn CryptoProvider,
    cipher: AeadCipher,
    sk_e: &[u8],
    aad: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, SkError> {
    if body.len() < MIN_BODY_LEN {
        return Err(SkError::BodyTooShort {
            len: body.len(),
            min: MIN_BODY_LEN,
        });
    }
    let (iv, sealed) = body.split_at(IV_LEN);
    let mut iv_array = [0u8; IV_LEN];
    iv_array.copy_from_slice(iv);
    let (key, nonce) = split_key(cipher, sk_e, &iv_array)?;

    let mut buf = sealed.to_vec();
    let plaintext_len = provider
        .aead_open(cipher, key, &nonce, aad, &mut buf)
        .map_err(|e| match e {
            AeadError::IntegrityCheckFailed { cipher } => SkError::IntegrityCheckFailed { cipher },
            other => SkError::Aead(other),
        })?;
    buf.truncate(plaintext_len);

    // RFC 7296 §3.14: the last plaintext octet is the Pad Length; the padding before it is
    // not checked (its content is the sender's choice).
    let Some(&pad_length) = buf.last() else {
        return Err(SkError::BodyTooShort {
            len: body.len(),
            min: MIN_BODY_LEN,
        });
    };
    let inner_len = plaintext_len
        .checked_sub(1)
        .and_then(|n| n.checked_sub(usize::from(pad_length)))
        .ok_or(SkError::BadPadding {
            pad_length,
            plaintext_len,
        })?;
    buf.truncate(inner_len);
    Ok(buf)
}

/// Splits SK_e into the cipher key and the salt, and builds the nonce `salt | IV`.
fn split_key<'k>(
    cipher: AeadCipher,
    sk_e: &'k [u8],
    iv: &[u8; IV_LEN],
) -> Result<(&'k [u8], [u8; NONCE_LEN]), SkError> {
    if sk_e.len() != cipher.keymat_len() {
        return Err(SkError::WrongKeyLength {
            cipher,
            expected: cipher.keymat_len(),
            actual: sk_e.len(),
        });
    }
    let (key, salt) = sk_e.split_at(cipher.key_len());
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..SALT_LEN].copy_from_slice(salt);
    nonce[SALT_LEN..].copy_from_slice(iv);
    Ok((key, nonce))
}
