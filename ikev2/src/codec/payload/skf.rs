//! The Encrypted and Authenticated Fragment payload, SKF (RFC 7383 §2.5).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::PayloadType;

/// Length of the Fragment Number and Total Fragments fields that precede the sealed body.
pub(crate) const FRAGMENT_FIELDS_LEN: usize = 4;

/// Reads the Fragment Number and Total Fragments fields of the SKF payload at `offset`
/// (RFC 7383 §2.5), checking that the number is between 1 and the total.
pub(crate) fn decode_fragment_fields(
    offset: usize,
    r: &mut Reader<'_>,
) -> Result<(u16, u16), DecodeError> {
    let number = r.u16("Fragment Number")?;
    let total = r.u16("Total Fragments")?;
    if number == 0 || number > total {
        return Err(DecodeError::InvalidFragmentNumber {
            offset,
            number,
            total,
        });
    }
    Ok((number, total))
}

/// One SKF fragment: which piece of the SK plaintext it carries and the sealed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// Type of the first inner payload in fragment 1; zero (`NONE`) in the others.
    pub first_inner: PayloadType,
    /// Fragment Number, from 1.
    pub fragment_number: u16,
    /// Total Fragments of the message.
    pub total_fragments: u16,
    /// Initialization Vector, ciphertext of this fragment's piece and padding, and ICV.
    pub body: Vec<u8>,
}

impl EncryptedFragment {
    pub(crate) fn decode(
        first_inner: PayloadType,
        offset: usize,
        r: &mut Reader<'_>,
    ) -> Result<Self, DecodeError> {
        let (fragment_number, total_fragments) = decode_fragment_fields(offset, r)?;
        Ok(EncryptedFragment {
            first_inner,
            fragment_number,
            total_fragments,
            body: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u16(self.fragment_number);
        w.u16(self.total_fragments);
        w.bytes(&self.body);
        Ok(())
    }
}
