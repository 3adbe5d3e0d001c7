//! Pseudorandom functions and prf+ (RFC 7296 §2.13).

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CryptoProvider, SecretBytes, UnsupportedAlgorithm};
use crate::registry::PrfId;

/// The largest PRF output we produce (HMAC-SHA2-512).
pub const MAX_PRF_OUTPUT_LEN: usize = 64;

/// RFC 7296 §2.13: the prf+ counter is one octet, so it yields at most 255 blocks.
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// A negotiated PRF transform we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlgorithm {
    /// PRF_HMAC_SHA1 (RFC 2104); kept for old peers and the RFC 2202 vectors.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (RFC 4868).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (RFC 4868).
    HmacSha512,
}

impl PrfAlgorithm {
    /// The PRF for a negotiated transform ID.
    pub fn from_id(id: PrfId) -> Result<Self, UnsupportedAlgorithm> {
        match id {
            PrfId::PRF_HMAC_SHA1 => Ok(PrfAlgorithm::HmacSha1),
            PrfId::PRF_HMAC_SHA2_256 => Ok(PrfAlgorithm::HmacSha256),
            PrfId::PRF_HMAC_SHA2_384 => Ok(PrfAlgorithm::HmacSha384),
            PrfId::PRF_HMAC_SHA2_512 => Ok(PrfAlgorithm::HmacSha512),
            other => Err(UnsupportedAlgorithm::Prf(other)),
        }
    }

    /// The IANA transform ID.
    pub fn id(self) -> PrfId {
        match self {
            PrfAlgorithm::HmacSha1 => PrfId::PRF_HMAC_SHA1,
            PrfAlgorithm::HmacSha256 => PrfId::PRF_HMAC_SHA2_256,
            PrfAlgorithm::HmacSha384 => PrfId::PRF_HMAC_SHA2_384,
            PrfAlgorithm::HmacSha512 => PrfId::PRF_HMAC_SHA2_512,
        }
    }

    /// Output length in bytes (the size of one prf+ block).
    pub fn output_len(self) -> usize {
        match self {
            PrfAlgorithm::HmacSha1 => 20,
            PrfAlgorithm::HmacSha256 => 32,
            PrfAlgorithm::HmacSha384 => 48,
            PrfAlgorithm::HmacSha512 => 64,
        }
    }

    /// The preferred key length: the length of SK_d, SK_pi and SK_pr. RFC 7296 §2.14 and
    /// RFC 4868 §2.1.2: for the HMAC PRFs it equals the output length.
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// The most bytes prf+ can produce with this PRF.
    pub fn prf_plus_max_len(self) -> usize {
        PRF_PLUS_MAX_BLOCKS * self.output_len()
    }
}

/// One PRF output, zeroized on drop and redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrfOutput {
    bytes: [u8; MAX_PRF_OUTPUT_LEN],
    len: usize,
}

impl PrfOutput {
    /// Copies an output of at most [`MAX_PRF_OUTPUT_LEN`] bytes; a longer one is cut (a
    /// provider's PRF never returns more).
    pub fn from_slice(out: &[u8]) -> Self {
        let len = out.len().min(MAX_PRF_OUTPUT_LEN);
        let mut bytes = [0u8; MAX_PRF_OUTPUT_LEN];
        bytes[..len].copy_from_slice(&out[..len]);
        PrfOutput { bytes, len }
    }

    /// The output bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Moves the output into a [`SecretBytes`].
    pub fn to_secret(&self) -> SecretBytes {
        SecretBytes::from_slice(self.as_bytes())
    }
}

impl fmt::Debug for PrfOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrfOutput(<redacted {} bytes>)", self.len)
    }
}

/// prf+ was asked for more than 255 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrfPlusError {
    /// RFC 7296 §2.13 limits prf+ to 255 iterations of the PRF.
    #[error("prf+ with {prf:?} produces at most {max} bytes, {requested} were requested")]
    TooLong {
        /// The PRF in use.
        prf: PrfAlgorithm,
        /// Bytes asked for.
        requested: usize,
        /// 255 times the PRF output length.
        max: usize,
    },
}

/// prf+ (RFC 7296 §2.13): `T1 | T2 | …` cut to `len` bytes, where
/// `Tn = prf(key, T(n-1) | seed | n)` with `n` one octet starting at 1. `seed` is given in
/// pieces (e.g. `[Ni, Nr, SPIi, SPIr]`) so callers need not concatenate secrets.
pub fn prf_plus(
    provider: &dyn CryptoProvider,
    prf: PrfAlgorithm,
    key: &[u8],
    seed: &[&[u8]],
    len: usize,
) -> Result<SecretBytes, PrfPlusError> {
    let max = prf.prf_plus_max_len();
    if len > max {
        return Err(PrfPlusError::TooLong {
            prf,
            requested: len,
            max,
        });
    }

    let mut out = Vec::with_capacity(len);
    let mut previous: Option<PrfOutput> = None;
    for counter in 1..=PRF_PLUS_MAX_BLOCKS {
        if out.len() >= len {
            break;
        }
        // The loop bound keeps the counter within one octet.
        let counter = [u8::try_from(counter).unwrap_or(u8::MAX)];

        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        if let Some(prev) = &previous {
            parts.push(prev.as_bytes());
        }
        parts.extend_from_slice(seed);
        parts.push(&counter);
        let block = provider.prf(prf, key, &parts);

        let take = block.as_bytes().len().min(len - out.len());
        out.extend_from_slice(&block.as_bytes()[..take]);
        previous = Some(block);
    }
    Ok(SecretBytes::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::RingProvider;

    #[test]
    fn prf_plus_of_exactly_255_blocks_succeeds_and_one_more_byte_fails() {
        let prf = PrfAlgorithm::HmacSha256;
        let max = 255 * 32;
        let ok = prf_plus(&RingProvider, prf, b"key", &[b"seed"], max).unwrap();
        assert_eq!(ok.len(), max);

        let err = prf_plus(&RingProvider, prf, b"key", &[b"seed"], max + 1).unwrap_err();
        assert_eq!(
            err,
            PrfPlusError::TooLong {
                prf,
                requested: max + 1,
                max
            }
        );
    }

    #[test]
    fn prf_plus_output_is_a_prefix_of_a_longer_output() {
        let prf = PrfAlgorithm::HmacSha1;
        let short = prf_plus(&RingProvider, prf, b"k", &[b"a", b"b"], 33).unwrap();
        let long = prf_plus(&RingProvider, prf, b"k", &[b"ab"], 100).unwrap();
        assert_eq!(short.as_bytes(), &long.as_bytes()[..33]);
    }

    #[test]
    fn unknown_prf_ids_are_reported_as_unsupported() {
        assert_eq!(
            PrfAlgorithm::from_id(PrfId::PRF_AES128_XCBC),
            Err(UnsupportedAlgorithm::Prf(PrfId::PRF_AES128_XCBC))
        );
        assert_eq!(
            PrfAlgorithm::from_id(PrfId(7)).map(PrfAlgorithm::id),
            Ok(PrfId::PRF_HMAC_SHA2_512)
        );
    }
}
