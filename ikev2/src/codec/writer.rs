//! Appending big-endian fields to an output buffer, with length fields filled in afterwards.

use super::EncodeError;

/// Grows an output buffer; length fields are written as placeholders and patched once the
/// structure they measure is complete.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

/// Where a 16-bit length field was reserved, and where the structure it measures begins.
#[derive(Debug, Clone, Copy)]
#[must_use = "a reserved length must be filled"]
pub struct LengthSlot {
    field: usize,
    start: usize,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer continuing after `prefix`.
    pub fn with_prefix(prefix: Vec<u8>) -> Self {
        Writer { buf: prefix }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a big-endian 16-bit value.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian 32-bit value.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends `n` zero bytes (reserved fields).
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len().saturating_add(n), 0);
    }

    /// Reserves a 16-bit length field measuring a structure that started at `start`
    /// (an earlier [`len`](Self::len)).
    pub fn reserve_u16_length(&mut self, start: usize) -> LengthSlot {
        let field = self.buf.len();
        self.u16(0);
        LengthSlot { field, start }
    }

    /// Writes the length of everything from the slot's start to the current end.
    pub fn fill_u16_length(
        &mut self,
        slot: LengthSlot,
        what: &'static str,
    ) -> Result<(), EncodeError> {
        let length = self.buf.len().saturating_sub(slot.start);
        let value = u16::try_from(length).map_err(|_| EncodeError::TooLong {
            what,
            length,
            max: u16::MAX.into(),
        })?;
        if let Some(dst) = self.buf.get_mut(slot.field..slot.field.saturating_add(2)) {
            dst.copy_from_slice(&value.to_be_bytes());
        }
        Ok(())
    }

    /// Overwrites 4 bytes at `at` (e.g. the IKE header's Length) with `v`.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at.saturating_add(4)) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Converts a count to an 8-bit count field, or reports it as too many.
pub(crate) fn count_u8(n: usize, what: &'static str) -> Result<u8, EncodeError> {
    u8::try_from(n).map_err(|_| EncodeError::TooMany {
        what,
        count: n,
        max: u8::MAX.into(),
    })
}

/// Converts a count to a 16-bit count field, or reports it as too many.
pub(crate) fn count_u16(n: usize, what: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(n).map_err(|_| EncodeError::TooMany {
        what,
        count: n,
        max: u16::MAX.into(),
    })
}
