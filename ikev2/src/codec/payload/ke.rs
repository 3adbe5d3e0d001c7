//! The Key Exchange payload (RFC 7296 §3.4).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::KeGroup;

/// A KE payload: the sender's public key exchange value for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ke {
    /// Diffie-Hellman Group Num, the key exchange method of `data`.
    pub group: KeGroup,
    /// Key Exchange Data: the public value (its length is checked by the crypto layer).
    pub data: Vec<u8>,
}

impl Ke {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = KeGroup(r.u16("Diffie-Hellman Group Num")?);
        r.skip(2, "RESERVED")?;
        Ok(Ke {
            group,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u16(self.group.0);
        w.zeros(2);
        w.bytes(&self.data);
        Ok(())
    }
}
