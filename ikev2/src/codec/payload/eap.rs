//! The EAP payload (RFC 7296 §3.16).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};

/// An EAP payload: one EAP message (RFC 3748), kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eap {
    /// The payload's content, as sent.
    pub data: Vec<u8>,
}

impl Eap {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Eap {
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.data);
        Ok(())
    }
}
