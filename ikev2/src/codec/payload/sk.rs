//! The Encrypted and Authenticated payload, SK (RFC 7296 §3.14).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::PayloadType;

/// An SK payload as it travels: the sealed body, opaque to the codec. Decrypting it (see
/// [`locate_encrypted_payload`](crate::codec::locate_encrypted_payload) for the AAD) gives
/// the plaintext for [`decode_payloads`](crate::codec::decode_payloads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// Type of the first payload inside (the SK payload's Next Payload field).
    pub first_inner: PayloadType,
    /// Initialization Vector, ciphertext (payloads, padding, Pad Length) and ICV.
    pub body: Vec<u8>,
}

impl Encrypted {
    pub(crate) fn decode(
        first_inner: PayloadType,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        Ok(Encrypted {
            first_inner,
            body: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.body);
        Ok(())
    }
}
