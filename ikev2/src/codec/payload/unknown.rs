//! Payloads of a type we do not decode (RFC 7296 §2.5).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::PayloadType;

/// A payload of a type we do not know, received with the critical bit clear: skipped by the
/// exchange but kept so the message re-encodes as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPayload {
    /// Its payload type.
    pub payload_type: PayloadType,
    /// Its body, after the generic payload header.
    pub data: Vec<u8>,
}

impl UnknownPayload {
    pub(crate) fn decode(
        payload_type: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        Ok(UnknownPayload {
            payload_type,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.data);
        Ok(())
    }
}
