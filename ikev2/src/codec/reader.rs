//! A bounded reader over received bytes: every read is checked against what is left and
//! reports the field and absolute offset when it is not there.

use super::DecodeError;
use crate::registry::PayloadType;

/// Reads big-endian fields from a slice without ever reading past its end.
///
/// `base` is the absolute offset of the slice's first byte, so errors name offsets in the
/// buffer the caller handed to the decoder, not in a sub-slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    payload: PayloadType,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, whose first byte is at absolute offset `base`, decoding `payload`
    /// (named in errors).
    pub fn new(buf: &'a [u8], base: usize, payload: PayloadType) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            payload,
        }
    }

    /// Absolute offset of the next byte to be read.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The payload type named in errors.
    pub fn payload(&self) -> PayloadType {
        self.payload
    }

    /// Names `payload` in the errors of later reads.
    pub fn set_payload(&mut self, payload: PayloadType) {
        self.payload = payload;
    }

    /// Reads `n` bytes, or reports `field` as truncated.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let slice = start
            .checked_add(n)
            .and_then(|end| self.buf.get(start..end))
            .ok_or(DecodeError::Truncated {
                payload: self.payload,
                field,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            })?;
        self.pos = start.saturating_add(n);
        Ok(slice)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian 16-bit field.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian 32-bit field.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Skips `n` reserved bytes (RFC 7296: sent as zero, ignored on receipt).
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        self.bytes(n, field).map(|_| ())
    }

    /// A reader over the next `n` bytes (a substructure), advancing this one past them.
    pub fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        let buf = self.bytes(n, field)?;
        Ok(Reader {
            buf,
            pos: 0,
            base,
            payload: self.payload,
        })
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        rest
    }

    /// Reports [`DecodeError::TrailingBytes`] unless every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                payload: self.payload,
                offset: self.offset(),
                count: self.remaining(),
            })
        }
    }
}
