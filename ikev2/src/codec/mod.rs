//! Decoding and encoding of IKEv2 messages and payloads (RFC 7296 §3, RFC 7383).
//!
//! - [`Message::decode`] / [`Message::encode`]: a whole message; SK and SKF payloads stay
//!   sealed ([`Encrypted`], [`EncryptedFragment`]).
//! - [`decode_payloads`] / [`encode_payloads`]: the payload chain inside an SK plaintext.
//! - [`locate_encrypted_payload`] / [`encode_encrypted_prefix`]: the AAD and body ranges for
//!   the layer that seals and opens SK payloads.
//! - [`Header::decode`]: only the IKE header, to find the IKE SA before anything else.
//!
//! Decoding never panics and never trusts a length: every read goes through a bounded
//! [`reader`], counts are capped by the limits in [`limits`], and every malformed input gives a
//! [`DecodeError`] naming the payload, the field and the offset. Decoding a message and
//! encoding it again gives the same bytes (reserved fields aside: see [`payload`]).

mod error;
mod header;
pub mod limits;
mod message;
pub mod payload;
mod protection;
pub mod reader;
pub mod writer;

pub use error::{DecodeError, EncodeError};
pub use header::{Flags, Header, HEADER_LEN, IKE_MAJOR_VERSION};
pub use limits::*;
pub use message::Message;
pub use payload::{
    decode_payloads, encode_payloads, AddressRange, AttributeValue, Auth, Cert, CertReq,
    CfgAttribute, Config, Delete, Eap, Encrypted, EncryptedFragment, Id, Ke, Nonce, Notify,
    NotifyData, Payload, PayloadBody, Proposal, Sa, TrafficSelector, TrafficSelectors, Transform,
    TransformAttribute, TransformId, UnknownPayload, VendorId,
};
pub use protection::{
    encode_encrypted_prefix, locate_encrypted_payload, EncryptedPayloadHeader,
    EncryptedPayloadLocation, Fragment,
};
