//! Finite-field Diffie-Hellman over the RFC 3526 safe primes (generator 2), with
//! crypto-bigint's constant-time Montgomery exponentiation. Peer values are checked as
//! RFC 6989 §2.1 asks (1 < y < p-1); for a safe prime no further subgroup test is needed.

use std::sync::OnceLock;

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Limb, Uint, Word, U2048, U3072};
use zeroize::{Zeroize, Zeroizing};

use super::{KeError, KeMethod, SharedSecret};
use crate::crypto::Random;

/// Limbs of a 2048-bit integer on this platform.
pub(super) const LIMBS_2048: usize = U2048::LIMBS;
/// Limbs of a 3072-bit integer on this platform.
pub(super) const LIMBS_3072: usize = U3072::LIMBS;

/// Bits of a generated private exponent. NIST SP 800-56A wants at least twice the group's
/// security strength (112 bits for 2048, 128 for 3072); 512 bits leaves a wide margin and
/// keeps the exponentiation four to six times cheaper than a full-length exponent.
pub(super) const PRIVATE_EXPONENT_BITS: usize = 512;

/// RFC 3526 §3: the 2048-bit MODP group, p = 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476).
const PRIME_2048: U2048 = U2048::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §4: the 3072-bit MODP group, p = 2^3072 - 2^3008 - 1 + 2^64 * ([2^2942 pi] + 1690314).
const PRIME_3072: U3072 = U3072::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// A MODP group: its prime and the Montgomery parameters, computed on first use.
pub(super) struct Group<const LIMBS: usize> {
    method: KeMethod,
    prime: Uint<LIMBS>,
    params: OnceLock<DynResidueParams<LIMBS>>,
}

pub(super) static GROUP_2048: Group<LIMBS_2048> = Group {
    method: KeMethod::Modp2048,
    prime: PRIME_2048,
    params: OnceLock::new(),
};

pub(super) static GROUP_3072: Group<LIMBS_3072> = Group {
    method: KeMethod::Modp3072,
    prime: PRIME_3072,
    params: OnceLock::new(),
};

impl<const LIMBS: usize> Group<LIMBS> {
    fn params(&self) -> &DynResidueParams<LIMBS> {
        self.params
            .get_or_init(|| DynResidueParams::new(&self.prime))
    }

    /// `base^exponent mod p` in time independent of the exponent's value.
    // Limitation: crypto-bigint's intermediate Montgomery values are not zeroized.
    fn pow(&self, base: &Uint<LIMBS>, private: &PrivateKey<LIMBS>) -> Uint<LIMBS> {
        DynResidue::new(base, *self.params())
            .pow_bounded_exp(&private.exponent, private.bits)
            .retrieve()
    }
}

/// A private exponent and the bit bound the exponentiation runs to; zeroized on drop.
pub(super) struct PrivateKey<const LIMBS: usize> {
    exponent: Uint<LIMBS>,
    bits: usize,
}

impl<const LIMBS: usize> Drop for PrivateKey<LIMBS> {
    fn drop(&mut self) {
        self.exponent.zeroize();
    }
}

const fn byte_len<const LIMBS: usize>() -> usize {
    LIMBS * Limb::BYTES
}

pub(super) fn generate<const LIMBS: usize>(rng: &mut dyn Random) -> PrivateKey<LIMBS> {
    let mut bytes = Zeroizing::new(vec![0u8; byte_len::<LIMBS>()]);
    let start = byte_len::<LIMBS>().saturating_sub(PRIVATE_EXPONENT_BITS / 8);
    if let Some(random_part) = bytes.get_mut(start..) {
        rng.fill(random_part);
        // Fix the top bit so every exponent has the full length (and is never 0 or 1).
        if let Some(top) = random_part.first_mut() {
            *top |= 0x80;
        }
    }
    PrivateKey {
        exponent: Uint::from_be_slice(&bytes),
        bits: PRIVATE_EXPONENT_BITS,
    }
}

pub(super) fn from_bytes<const LIMBS: usize>(
    method: KeMethod,
    private: &[u8],
) -> Result<PrivateKey<LIMBS>, KeError> {
    let len = byte_len::<LIMBS>();
    if private.is_empty() || private.len() > len {
        return Err(KeError::PrivateKeyWrongLength {
            method,
            expected: len,
            actual: private.len(),
        });
    }
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    bytes[len - private.len()..].copy_from_slice(private);
    let exponent = Uint::from_be_slice(&bytes);
    if exponent == Uint::ZERO {
        return Err(KeError::PrivateKeyOutOfRange { method });
    }
    Ok(PrivateKey {
        exponent,
        bits: private.len() * 8,
    })
}

pub(super) fn public_value<const LIMBS: usize>(
    group: &Group<LIMBS>,
    private: &PrivateKey<LIMBS>,
) -> Vec<u8> {
    to_be_bytes(&group.pow(&Uint::from_u8(2), private))
}

/// RFC 7296 §3.4 (and SP 800-56A §5.6.2.3.1): the peer's y must satisfy 1 < y < p-1.
pub(super) fn agree<const LIMBS: usize>(
    group: &Group<LIMBS>,
    private: &PrivateKey<LIMBS>,
    peer: &[u8],
) -> Result<SharedSecret, KeError> {
    let method = group.method;
    if peer.len() != byte_len::<LIMBS>() {
        return Err(KeError::PeerValueWrongLength {
            method,
            expected: byte_len::<LIMBS>(),
            actual: peer.len(),
        });
    }
    let y = Uint::<LIMBS>::from_be_slice(peer);
    if y >= group.prime {
        return Err(KeError::PeerValueNotBelowPrime { method });
    }
    if y == Uint::ZERO {
        return Err(KeError::PeerValueZero { method });
    }
    if y == Uint::ONE {
        return Err(KeError::PeerValueOne { method });
    }
    if y == group.prime.wrapping_sub(&Uint::ONE) {
        return Err(KeError::PeerValuePMinusOne { method });
    }

    let mut z = group.pow(&y, private);
    if z == Uint::ZERO || z == Uint::ONE {
        z.zeroize();
        return Err(KeError::DegenerateSharedSecret { method });
    }
    let bytes = Zeroizing::new(to_be_bytes(&z));
    z.zeroize();
    Ok(SharedSecret::from_slice(&bytes))
}

/// Big-endian bytes, padded to the full width (the prime length for these groups).
fn to_be_bytes<const LIMBS: usize>(n: &Uint<LIMBS>) -> Vec<u8> {
    let mut out = Vec::with_capacity(byte_len::<LIMBS>());
    for word in n.as_words().iter().rev() {
        out.extend_from_slice(&Word::to_be_bytes(*word));
    }
    out
}
