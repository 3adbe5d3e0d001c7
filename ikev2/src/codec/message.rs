//! A whole IKE message: the header and its chain of payloads (RFC 7296 §3).

use super::header::{Header, HEADER_LEN, IKE_MAJOR_VERSION};
use super::payload::{decode_chain, encode_chain, Chain, Payload};
use super::writer::Writer;
use super::{DecodeError, EncodeError};
use crate::registry::PayloadType;

/// Offset of the Length field in the IKE header.
pub(crate) const LENGTH_FIELD_OFFSET: usize = 24;

/// An IKE message as it travels: encrypted payloads stay sealed inside an SK or SKF payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The IKE header as received (on encoding, Next Payload and Length are recomputed).
    pub header: Header,
    /// The payloads in order; an SK or SKF payload, if any, is last.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes a received IKE message (without the non-ESP marker of port 4500).
    ///
    /// RFC 7296 §2.5: unknown payloads with the critical bit clear are kept as
    /// [`PayloadBody::Unknown`](super::PayloadBody::Unknown); with it set, decoding fails with
    /// [`DecodeError::UnsupportedCriticalPayload`].
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let header = Header::decode(bytes)?;
        if header.major_version != IKE_MAJOR_VERSION {
            return Err(DecodeError::UnsupportedMajorVersion {
                major: header.major_version,
                minor: header.minor_version,
            });
        }
        let rest = bytes.get(HEADER_LEN..).unwrap_or_default();
        let payloads = decode_chain(header.next_payload, rest, HEADER_LEN, Chain::Message)?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message, computing every length and the Next Payload chain.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type);
        self.header.encode_with(&mut w, first, 0);
        encode_chain(&self.payloads, &mut w, Chain::Message, PayloadType::NONE)?;
        let length = message_length(w.len())?;
        w.patch_u32(LENGTH_FIELD_OFFSET, length);
        Ok(w.into_bytes())
    }
}

/// The value of the header's Length field for a message of `len` bytes.
pub(crate) fn message_length(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong {
        what: "message",
        length: len,
        max: u32::MAX as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header::Flags;
    use crate::codec::payload::{Nonce, PayloadBody};
    use crate::registry::ExchangeType;

    fn informational() -> Message {
        Message {
            header: Header::new(
                [1; 8],
                [2; 8],
                ExchangeType::INFORMATIONAL,
                Flags::INITIATOR,
                7,
            ),
            payloads: vec![Payload::new(Nonce {
                data: vec![0xaa; 16],
            })],
        }
    }

    #[test]
    fn encoding_computes_next_payload_and_length() {
        let bytes = informational().encode().unwrap();
        assert_eq!(bytes.len(), 28 + 4 + 16);
        assert_eq!(bytes[16], PayloadType::NONCE.0);
        assert_eq!(&bytes[24..28], &48u32.to_be_bytes());
        let decoded = Message::decode(&bytes).unwrap();
        assert_eq!(decoded.payloads, informational().payloads);
    }

    #[test]
    fn decoding_major_version_3_reports_it() {
        let mut bytes = informational().encode().unwrap();
        bytes[17] = 0x30;
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::UnsupportedMajorVersion { major: 3, minor: 0 })
        );
        // The header alone still decodes, so INVALID_MAJOR_VERSION can be answered.
        assert_eq!(Header::decode(&bytes).unwrap().major_version, 3);
    }

    #[test]
    fn decoding_unknown_critical_payload_names_its_type() {
        let mut message = informational();
        message.payloads.insert(
            0,
            Payload {
                critical: true,
                body: PayloadBody::Unknown(crate::codec::payload::UnknownPayload {
                    payload_type: PayloadType(200),
                    data: vec![1, 2, 3],
                }),
            },
        );
        let bytes = message.encode().unwrap();
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::UnsupportedCriticalPayload {
                payload: PayloadType(200),
                offset: 28
            })
        );
        message.payloads[0].critical = false;
        let bytes = message.encode().unwrap();
        assert_eq!(Message::decode(&bytes).unwrap().encode().unwrap(), bytes);
    }
}
