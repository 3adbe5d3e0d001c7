//! The crypto provider: PRFs, AEAD ciphers for the SK payload, key exchange methods.
//!
//! Everything the protocol needs from cryptography comes through [`CryptoProvider`] (hashing,
//! MACs, AEAD) and [`Random`] (every random byte), so an engine can be driven from a seed and
//! replayed exactly. [`RingProvider`] implements the provider with ring; key exchange uses
//! RustCrypto crates because ring cannot take a caller-chosen private key (see [`ke`]).
//!
//! - [`random`]: the randomness trait, an OS source and a seeded deterministic one.
//! - [`prf`]: HMAC PRFs and prf+ (RFC 7296 §2.13).
//! - [`aead`]: the AEAD ciphers of the SK payload (RFC 5282, RFC 7634).
//! - [`sk`]: sealing and opening the body of an SK payload (RFC 7296 §3.14, RFC 5282 §5).
//! - [`ke`]: key exchange methods and peer-value validation.
//! - [`secret`]: byte strings that are zeroized on drop and redacted in `Debug`.

pub mod aead;
pub mod ke;
pub mod prf;
pub mod provider;
pub mod random;
pub mod secret;
pub mod sk;

pub use aead::{AeadCipher, AeadError};
pub use ke::{KeError, KeMethod, KeyExchange, SharedSecret};
pub use prf::{prf_plus, PrfAlgorithm, PrfOutput, PrfPlusError};
pub use provider::{CryptoProvider, RingProvider};
pub use random::{OsRandom, Random, SeededRandom};
pub use secret::SecretBytes;
pub use sk::SkError;

use crate::registry::{EncrId, KeGroup, PrfId};

/// A negotiated transform this crate has no implementation for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedAlgorithm {
    /// A PRF transform ID other than HMAC-SHA1 and HMAC-SHA2-256/384/512.
    #[error("unsupported PRF {0}")]
    Prf(PrfId),
    /// An encryption transform (with its Key Length attribute, in bits) that is not one of the
    /// supported AEAD ciphers.
    #[error("unsupported encryption algorithm {id} with key length {key_bits:?}")]
    Encr {
        /// The ENCR transform ID.
        id: EncrId,
        /// The Key Length attribute, when present.
        key_bits: Option<u16>,
    },
    /// A key exchange method other than Curve25519, ECP-256/384 and MODP-2048/3072.
    #[error("unsupported key exchange method {0}")]
    KeGroup(KeGroup),
}
