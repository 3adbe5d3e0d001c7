//! Curve25519 key exchange (RFC 7748, RFC 8031).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{KeError, KeMethod, SharedSecret};
use crate::crypto::Random;

/// An X25519 private scalar; x25519-dalek zeroizes it on drop.
pub(super) type PrivateKey = x25519_dalek::StaticSecret;

pub(super) fn generate(rng: &mut dyn Random) -> PrivateKey {
    // RFC 7748 §5: any 32 bytes are a valid scalar (clamping happens inside X25519).
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill(bytes.as_mut());
    PrivateKey::from(*bytes)
}

pub(super) fn from_bytes(private: &[u8]) -> Result<PrivateKey, KeError> {
    let bytes: [u8; 32] = private
        .try_into()
        .map_err(|_| KeError::PrivateKeyWrongLength {
            method: KeMethod::Curve25519,
            expected: 32,
            actual: private.len(),
        })?;
    let bytes = Zeroizing::new(bytes);
    Ok(PrivateKey::from(*bytes))
}

pub(super) fn public_value(private: &PrivateKey) -> Vec<u8> {
    x25519_dalek::PublicKey::from(private).as_bytes().to_vec()
}

pub(super) fn agree(private: &PrivateKey, peer: &[u8]) -> Result<SharedSecret, KeError> {
    // The caller checked the length; a failure here is reported the same way.
    let peer: [u8; 32] = peer.try_into().map_err(|_| KeError::PeerValueWrongLength {
        method: KeMethod::Curve25519,
        expected: 32,
        actual: peer.len(),
    })?;
    let shared = private.diffie_hellman(&x25519_dalek::PublicKey::from(peer));

    // RFC 7748 §6.1, RFC 8031 §2.3: reject the all-zero output (a low-order peer value).
    if bool::from(shared.as_bytes().ct_eq(&[0u8; 32])) {
        return Err(KeError::AllZeroSharedSecret);
    }
    Ok(SharedSecret::from_slice(shared.as_bytes()))
}
