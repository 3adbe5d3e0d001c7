//! Where the SK and SKF payloads sit in a message, for the layer that seals and opens them
//! (RFC 5282 §5.1 and RFC 7383 §2.5 for the associated data).
//!
//! Receiving: [`locate_encrypted_payload`] gives the byte range that is the AAD (the IKE
//! header through the SK generic payload header, or through Total Fragments for SKF) and the
//! range of the sealed body (IV, ciphertext, ICV) that follows.
//!
//! Sending: [`encode_encrypted_prefix`] writes everything before the sealed body with every
//! length already final, so those bytes are the AAD and the caller appends the body.

use core::ops::Range;

use super::header::{Header, HEADER_LEN, IKE_MAJOR_VERSION};
use super::message::{message_length, LENGTH_FIELD_OFFSET};
use super::payload::{
    decode_fragment_fields, encode_chain, Chain, ChainWalk, Payload, FRAGMENT_FIELDS_LEN,
    GENERIC_HEADER_LEN,
};
use super::writer::Writer;
use super::{DecodeError, EncodeError};
use crate::registry::PayloadType;

/// Fragment Number and Total Fragments of an SKF payload (RFC 7383 §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Fragment Number, from 1.
    pub number: u16,
    /// Total Fragments.
    pub total: u16,
}

/// How the encrypted payload of a received message is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPayloadLocation {
    /// SK or SKF.
    pub payload_type: PayloadType,
    /// Its Next Payload: the first inner payload type (`NONE` in SKF fragments after the first).
    pub first_inner: PayloadType,
    /// For SKF: which fragment this is.
    pub fragment: Option<Fragment>,
    /// Offset of the SK/SKF generic payload header.
    pub offset: usize,
    /// The associated data: from the IKE header to the start of the IV.
    pub aad: Range<usize>,
    /// The sealed body: IV, ciphertext and ICV, to the end of the message.
    pub body: Range<usize>,
}

/// What goes in the SK or SKF payload header of a message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedPayloadHeader {
    /// Type of the first payload in the plaintext (`NONE` in SKF fragments after the first).
    pub first_inner: PayloadType,
    /// `None` for SK; the fragment's number and total for SKF.
    pub fragment: Option<Fragment>,
}

/// Finds the SK or SKF payload of a received message, walking only the generic payload
/// headers (the unencrypted payloads before it are decoded by [`Message::decode`](super::Message::decode)).
/// `Ok(None)` when the message has no encrypted payload (e.g. IKE_SA_INIT).
pub fn locate_encrypted_payload(
    message: &[u8],
) -> Result<Option<EncryptedPayloadLocation>, DecodeError> {
    let header = Header::decode(message)?;
    if header.major_version != IKE_MAJOR_VERSION {
        return Err(DecodeError::UnsupportedMajorVersion {
            major: header.major_version,
            minor: header.minor_version,
        });
    }
    let rest = message.get(HEADER_LEN..).unwrap_or_default();
    let mut walk = ChainWalk::new(header.next_payload, rest, HEADER_LEN, Chain::Message);
    while let Some(mut raw) = walk.next_payload()? {
        let this = raw.payload_type;
        if this != PayloadType::SK && this != PayloadType::SKF {
            continue;
        }
        let fragment = if this == PayloadType::SKF {
            let (number, total) = decode_fragment_fields(raw.offset, &mut raw.body)?;
            Some(Fragment { number, total })
        } else {
            None
        };
        let iv_start = raw.body.offset();
        return Ok(Some(EncryptedPayloadLocation {
            payload_type: this,
            first_inner: raw.next,
            fragment,
            offset: raw.offset,
            aad: 0..iv_start,
            body: iv_start..message.len(),
        }));
    }
    Ok(None)
}

/// Encodes `header`, the `unencrypted` payloads (usually none) and the SK or SKF payload
/// header for a sealed body of `body_len` bytes (IV, ciphertext, ICV), with the message
/// Length and Payload Length final. The result is the AAD; append exactly `body_len` bytes.
pub fn encode_encrypted_prefix(
    header: &Header,
    unencrypted: &[Payload],
    encrypted: EncryptedPayloadHeader,
    body_len: usize,
) -> Result<Vec<u8>, EncodeError> {
    let (encrypted_type, fields_len) = match encrypted.fragment {
        None => (PayloadType::SK, GENERIC_HEADER_LEN),
        Some(_) => (
            PayloadType::SKF,
            GENERIC_HEADER_LEN.saturating_add(FRAGMENT_FIELDS_LEN),
        ),
    };
    let first = unencrypted
        .first()
        .map_or(encrypted_type, Payload::payload_type);

    let mut w = Writer::new();
    header.encode_with(&mut w, first, 0);
    encode_chain(unencrypted, &mut w, Chain::Plaintext, encrypted_type)?;

    let payload_len = fields_len
        .checked_add(body_len)
        .filter(|&l| l <= usize::from(u16::MAX))
        .ok_or(EncodeError::TooLong {
            what: "encrypted payload",
            length: fields_len.saturating_add(body_len),
            max: u16::MAX.into(),
        })?;
    w.u8(encrypted.first_inner.0);
    w.u8(0);
    w.u16(u16::try_from(payload_len).unwrap_or(u16::MAX));
    if let Some(fragment) = encrypted.fragment {
        w.u16(fragment.number);
        w.u16(fragment.total);
    }

    let total = w.len().saturating_add(body_len);
    w.patch_u32(LENGTH_FIELD_OFFSET, message_length(total)?);
    Ok(w.into_bytes())
}
