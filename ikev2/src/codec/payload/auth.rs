//! The Authentication payload (RFC 7296 §3.8).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::AuthMethod;

/// An AUTH payload: the signature or MAC over the signed octets of RFC 7296 §2.15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// How `data` was computed; for DIGITAL_SIGNATURE (RFC 7427) it starts with the AlgorithmIdentifier.
    pub method: AuthMethod,
    /// The data after the fixed fields, as sent.
    pub data: Vec<u8>,
}

impl Auth {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod(r.u8("Auth Method")?);
        r.skip(3, "RESERVED")?;
        Ok(Auth {
            method,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.method.0);
        w.zeros(3);
        w.bytes(&self.data);
        Ok(())
    }
}
