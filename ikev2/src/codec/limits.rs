//! Upper bounds the decoder enforces, so a hostile length or count costs at most this much.

/// Largest IKE message accepted: the most a UDP datagram (or an RFC 9329 TCP frame) can carry.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Most payloads in one payload chain (a message or a decrypted SK plaintext). strongSwan's
/// IKE_AUTH with certificates and notifies carries about 15.
pub const MAX_PAYLOADS: usize = 128;

/// Most proposals in one SA payload (proposal numbers are one octet anyway).
pub const MAX_PROPOSALS: usize = 64;

/// Most transforms in one proposal; peers that offer every algorithm they know send ~40.
pub const MAX_TRANSFORMS: usize = 128;

/// Most attributes in one transform; RFC 7296 defines only Key Length.
pub const MAX_TRANSFORM_ATTRIBUTES: usize = 8;

/// Most traffic selectors in one TSi or TSr payload.
pub const MAX_TRAFFIC_SELECTORS: usize = 64;

/// Most attributes in one Configuration payload.
pub const MAX_CFG_ATTRIBUTES: usize = 64;

/// Most SPIs in one Delete payload.
pub const MAX_DELETE_SPIS: usize = 1024;
