//! Key exchange methods (RFC 7296 §2.14 and §3.4) and validation of the peer's public value.
//!
//! Supported: Curve25519 (31, RFC 8031), ECP-256 (19) and ECP-384 (20) (RFC 5903), MODP-2048
//! (14) and MODP-3072 (15) (RFC 3526).
//!
//! These are implemented with RustCrypto (x25519-dalek, p256, p384, crypto-bigint) rather than
//! ring: ring's `agreement` API generates private keys only from its own sealed
//! `SecureRandom`, so it can neither reproduce the RFC test vectors (fixed private keys) nor
//! be driven from the engine's seeded [`Random`], which deterministic simulation requires.
//! ring has no finite-field Diffie-Hellman at all.

mod ecp;
mod modp;
mod x25519;

use core::fmt;

use super::{Random, SecretBytes, UnsupportedAlgorithm};
use crate::registry::KeGroup;

/// How often generation retries when random bytes do not form a valid private key (for the
/// NIST curves the chance of one retry is below 2^-32).
pub const MAX_PRIVATE_KEY_ATTEMPTS: usize = 16;

/// A key exchange method we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeMethod {
    /// Curve25519 (X25519), group 31.
    Curve25519,
    /// 256-bit random ECP group (NIST P-256), group 19.
    Ecp256,
    /// 384-bit random ECP group (NIST P-384), group 20.
    Ecp384,
    /// 2048-bit MODP group, group 14.
    Modp2048,
    /// 3072-bit MODP group, group 15.
    Modp3072,
}

impl KeMethod {
    /// Every method, in our order of preference.
    pub const ALL: [KeMethod; 5] = [
        KeMethod::Curve25519,
        KeMethod::Ecp256,
        KeMethod::Ecp384,
        KeMethod::Modp3072,
        KeMethod::Modp2048,
    ];

    /// The method for a negotiated Key Exchange Method transform ID.
    pub fn from_group(group: KeGroup) -> Result<Self, UnsupportedAlgorithm> {
        match group {
            KeGroup::CURVE25519 => Ok(KeMethod::Curve25519),
            KeGroup::ECP_256 => Ok(KeMethod::Ecp256),
            KeGroup::ECP_384 => Ok(KeMethod::Ecp384),
            KeGroup::MODP_2048 => Ok(KeMethod::Modp2048),
            KeGroup::MODP_3072 => Ok(KeMethod::Modp3072),
            other => Err(UnsupportedAlgorithm::KeGroup(other)),
        }
    }

    /// The IANA transform ID (the KE payload's Diffie-Hellman Group Num).
    pub fn group(self) -> KeGroup {
        match self {
            KeMethod::Curve25519 => KeGroup::CURVE25519,
            KeMethod::Ecp256 => KeGroup::ECP_256,
            KeMethod::Ecp384 => KeGroup::ECP_384,
            KeMethod::Modp2048 => KeGroup::MODP_2048,
            KeMethod::Modp3072 => KeGroup::MODP_3072,
        }
    }

    /// Length of the Key Exchange Data in the KE payload: the u-coordinate (RFC 8031 §2),
    /// `x | y` without the SEC1 prefix (RFC 5903 §7), or g^x padded to the prime length
    /// (RFC 7296 §3.4).
    pub fn public_len(self) -> usize {
        match self {
            KeMethod::Curve25519 => 32,
            KeMethod::Ecp256 => 64,
            KeMethod::Ecp384 => 96,
            KeMethod::Modp2048 => 256,
            KeMethod::Modp3072 => 384,
        }
    }

    /// Length of the shared secret g^ir: the X25519 output, the x coordinate (RFC 5903 §7),
    /// or g^xy padded to the prime length (RFC 7296 §2.14).
    pub fn shared_len(self) -> usize {
        match self {
            KeMethod::Curve25519 | KeMethod::Ecp256 => 32,
            KeMethod::Ecp384 => 48,
            KeMethod::Modp2048 => 256,
            KeMethod::Modp3072 => 384,
        }
    }
}

/// Why a key exchange failed. Each way the peer's value can be wrong has its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeError {
    /// The peer's Key Exchange Data has the wrong length for the method.
    #[error("{method:?} public value must be {expected} bytes, got {actual}")]
    PeerValueWrongLength {
        /// The method.
        method: KeMethod,
        /// [`KeMethod::public_len`].
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// The peer's `x | y` is not a point on the curve (RFC 5903 §7 requires the check).
    #[error("{method:?} public value is not a point on the curve")]
    PointNotOnCurve {
        /// The method.
        method: KeMethod,
    },
    /// X25519 gave the all-zero output: the peer sent a low-order point (RFC 7748 §6.1).
    #[error("Curve25519 shared secret is all zero (low-order peer public value)")]
    AllZeroSharedSecret,
    /// MODP public value 0.
    #[error("{method:?} public value is 0")]
    PeerValueZero {
        /// The method.
        method: KeMethod,
    },
    /// MODP public value 1, which forces the shared secret to 1.
    #[error("{method:?} public value is 1")]
    PeerValueOne {
        /// The method.
        method: KeMethod,
    },
    /// MODP public value p-1, of order 2: the shared secret would be 1 or p-1.
    #[error("{method:?} public value is p-1")]
    PeerValuePMinusOne {
        /// The method.
        method: KeMethod,
    },
    /// MODP public value not reduced modulo p.
    #[error("{method:?} public value is not below the prime")]
    PeerValueNotBelowPrime {
        /// The method.
        method: KeMethod,
    },
    /// MODP shared secret came out as 0 or 1.
    #[error("{method:?} shared secret is degenerate (0 or 1)")]
    DegenerateSharedSecret {
        /// The method.
        method: KeMethod,
    },
    /// A private key given to [`KeyExchange::from_private_key`] has the wrong length.
    #[error("{method:?} private key must be {expected} bytes, got {actual}")]
    PrivateKeyWrongLength {
        /// The method.
        method: KeMethod,
        /// Expected length (for MODP, the most accepted).
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A private key is zero or not below the group order.
    #[error("{method:?} private key is out of range")]
    PrivateKeyOutOfRange {
        /// The method.
        method: KeMethod,
    },
    /// The random source gave no valid private key in [`MAX_PRIVATE_KEY_ATTEMPTS`] tries.
    #[error("{method:?}: no valid private key after {attempts} random draws")]
    NoValidPrivateKey {
        /// The method.
        method: KeMethod,
        /// Draws made.
        attempts: usize,
    },
}

/// The Diffie-Hellman shared secret g^ir, zeroized on drop and redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(SecretBytes);

impl SharedSecret {
    /// Wraps bytes obtained elsewhere (another provider, a test vector).
    pub fn from_slice(bytes: &[u8]) -> Self {
        SharedSecret(SecretBytes::from_slice(bytes))
    }

    /// The secret, as it enters SKEYSEED or KEYMAT.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret(<redacted {} bytes>)", self.0.len())
    }
}

/// Our side of one key exchange: the private key (zeroized on drop) and the public value to
/// send in the KE payload.
pub struct KeyExchange {
    method: KeMethod,
    private: PrivateKey,
    public: Vec<u8>,
}

enum PrivateKey {
    X25519(x25519::PrivateKey),
    Ecp256(p256::SecretKey),
    Ecp384(p384::SecretKey),
    Modp2048(modp::PrivateKey<{ modp::LIMBS_2048 }>),
    Modp3072(modp::PrivateKey<{ modp::LIMBS_3072 }>),
}

impl KeyExchange {
    /// A fresh private key drawn from `rng`, and its public value.
    pub fn generate(method: KeMethod, rng: &mut dyn Random) -> Result<Self, KeError> {
        let private = match method {
            KeMethod::Curve25519 => PrivateKey::X25519(x25519::generate(rng)),
            KeMethod::Ecp256 => PrivateKey::Ecp256(ecp::generate(method, rng)?),
            KeMethod::Ecp384 => PrivateKey::Ecp384(ecp::generate(method, rng)?),
            KeMethod::Modp2048 => PrivateKey::Modp2048(modp::generate(rng)),
            KeMethod::Modp3072 => PrivateKey::Modp3072(modp::generate(rng)),
        };
        Ok(Self::with_private(method, private))
    }

    /// The key exchange for a known private key: a scalar (X25519 as in RFC 7748, ECP
    /// big-endian of the field size) or a MODP exponent (big-endian, at most the prime
    /// length). For test vectors and reproducing a peer; real use calls [`Self::generate`].
    pub fn from_private_key(method: KeMethod, private: &[u8]) -> Result<Self, KeError> {
        let private = match method {
            KeMethod::Curve25519 => PrivateKey::X25519(x25519::from_bytes(private)?),
            KeMethod::Ecp256 => PrivateKey::Ecp256(ecp::from_bytes(method, private)?),
            KeMethod::Ecp384 => PrivateKey::Ecp384(ecp::from_bytes(method, private)?),
            KeMethod::Modp2048 => PrivateKey::Modp2048(modp::from_bytes(method, private)?),
            KeMethod::Modp3072 => PrivateKey::Modp3072(modp::from_bytes(method, private)?),
        };
        Ok(Self::with_private(method, private))
    }

    fn with_private(method: KeMethod, private: PrivateKey) -> Self {
        let public = match &private {
            PrivateKey::X25519(k) => x25519::public_value(k),
            PrivateKey::Ecp256(k) => ecp::public_value(k),
            PrivateKey::Ecp384(k) => ecp::public_value(k),
            PrivateKey::Modp2048(k) => modp::public_value(&modp::GROUP_2048, k),
            PrivateKey::Modp3072(k) => modp::public_value(&modp::GROUP_3072, k),
        };
        KeyExchange {
            method,
            private,
            public,
        }
    }

    /// The method.
    pub fn method(&self) -> KeMethod {
        self.method
    }

    /// Our public value: the KE payload's Key Exchange Data.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// Validates the peer's Key Exchange Data and computes the shared secret g^ir.
    pub fn agree(&self, peer_public: &[u8]) -> Result<SharedSecret, KeError> {
        let expected = self.method.public_len();
        if peer_public.len() != expected {
            return Err(KeError::PeerValueWrongLength {
                method: self.method,
                expected,
                actual: peer_public.len(),
            });
        }
        match &self.private {
            PrivateKey::X25519(k) => x25519::agree(k, peer_public),
            PrivateKey::Ecp256(k) => ecp::agree(self.method, k, peer_public),
            PrivateKey::Ecp384(k) => ecp::agree(self.method, k, peer_public),
            PrivateKey::Modp2048(k) => modp::agree(&modp::GROUP_2048, k, peer_public),
            PrivateKey::Modp3072(k) => modp::agree(&modp::GROUP_3072, k, peer_public),
        }
    }
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExchange")
            .field("method", &self.method)
            .field("private", &"<redacted>")
            .field("public_len", &self.public.len())
            .finish()
    }
}
