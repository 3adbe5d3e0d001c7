//! The Identification (IDi, IDr) payload (RFC 7296 §3.5).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::IdType;

/// An Identification payload, used as IDi or IDr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    /// How `data` is to be read (FQDN, DER_ASN1_DN, …).
    pub id_type: IdType,
    /// The data after the fixed fields, as sent.
    pub data: Vec<u8>,
}

impl Id {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = IdType(r.u8("ID Type")?);
        r.skip(3, "RESERVED")?;
        Ok(Id {
            id_type,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.id_type.0);
        w.zeros(3);
        w.bytes(&self.data);
        Ok(())
    }
}
