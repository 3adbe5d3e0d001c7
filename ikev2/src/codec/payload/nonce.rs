//! The Nonce (Ni, Nr) payload (RFC 7296 §3.9).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};

/// A Nonce payload: 16 to 256 random octets (RFC 7296 §2.10; the length is checked by the exchange, not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// The payload's content, as sent.
    pub data: Vec<u8>,
}

impl Nonce {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Nonce {
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.data);
        Ok(())
    }
}
