//! The Vendor ID payload (RFC 7296 §3.12).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};

/// A Vendor ID payload: an opaque constant a vendor chose to announce itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorId {
    /// The payload's content, as sent.
    pub data: Vec<u8>,
}

impl VendorId {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VendorId {
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.data);
        Ok(())
    }
}
