//! Random ECP groups over the NIST primes (RFC 5903), generic over the RustCrypto curve.

use p256::elliptic_curve::{
    ecdh,
    sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint},
    AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey,
};
use zeroize::Zeroizing;

use super::{KeError, KeMethod, SharedSecret, MAX_PRIVATE_KEY_ATTEMPTS};
use crate::crypto::Random;

/// SEC1 tag of an uncompressed point, which the KE payload leaves out (RFC 5903 §7).
const SEC1_UNCOMPRESSED: u8 = 0x04;

/// Draws scalars until one lies in [1, n-1] (rejection sampling keeps it uniform).
pub(super) fn generate<C>(method: KeMethod, rng: &mut dyn Random) -> Result<SecretKey<C>, KeError>
where
    C: CurveArithmetic,
{
    let mut bytes = Zeroizing::new(vec![0u8; method.shared_len()]);
    for _ in 0..MAX_PRIVATE_KEY_ATTEMPTS {
        rng.fill(&mut bytes);
        if let Ok(key) = SecretKey::<C>::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(KeError::NoValidPrivateKey {
        method,
        attempts: MAX_PRIVATE_KEY_ATTEMPTS,
    })
}

pub(super) fn from_bytes<C>(method: KeMethod, private: &[u8]) -> Result<SecretKey<C>, KeError>
where
    C: CurveArithmetic,
{
    if private.len() != method.shared_len() {
        return Err(KeError::PrivateKeyWrongLength {
            method,
            expected: method.shared_len(),
            actual: private.len(),
        });
    }
    SecretKey::<C>::from_slice(private).map_err(|_| KeError::PrivateKeyOutOfRange { method })
}

/// `x | y` of our public point.
pub(super) fn public_value<C>(private: &SecretKey<C>) -> Vec<u8>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let point = private.public_key().to_encoded_point(false);
    point.as_bytes().get(1..).unwrap_or_default().to_vec()
}

/// Checks that the peer's `x | y` is on the curve and returns the x coordinate of the shared
/// point (RFC 5903 §7: the shared secret is x alone, where RFC 4753 had used x | y).
pub(super) fn agree<C>(
    method: KeMethod,
    private: &SecretKey<C>,
    peer: &[u8],
) -> Result<SharedSecret, KeError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let mut sec1 = Vec::with_capacity(1 + peer.len());
    sec1.push(SEC1_UNCOMPRESSED);
    sec1.extend_from_slice(peer);
    // from_sec1_bytes rejects coordinates not below p and points not on the curve; the
    // point at infinity has no uncompressed encoding.
    let peer_key =
        PublicKey::<C>::from_sec1_bytes(&sec1).map_err(|_| KeError::PointNotOnCurve { method })?;

    let shared = ecdh::diffie_hellman(private.to_nonzero_scalar(), peer_key.as_affine());
    Ok(SharedSecret::from_slice(shared.raw_secret_bytes()))
}
