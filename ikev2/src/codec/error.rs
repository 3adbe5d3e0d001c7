//! What can be wrong with bytes we decode, and with values we are asked to encode.
//!
//! Offsets are byte offsets from the start of the buffer handed to the decoder: the whole
//! message for [`Message::decode`](super::Message::decode), the decrypted plaintext for
//! [`decode_payloads`](super::decode_payloads).

use crate::registry::{NotifyType, PayloadType, TsType};

/// A malformed IKEv2 message or payload chain, naming what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the 28-byte IKE header (RFC 7296 §3.1).
    #[error("message of {length} bytes is shorter than the 28-byte IKE header")]
    MessageTooShort {
        /// Bytes received.
        length: usize,
    },
    /// More bytes than [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE).
    #[error("message of {length} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Bytes received or declared.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// RFC 7296 §2.5: a major version other than 2; the answer is INVALID_MAJOR_VERSION.
    #[error("unsupported IKE major version {major}.{minor}")]
    UnsupportedMajorVersion {
        /// Major version of the header.
        major: u8,
        /// Minor version of the header.
        minor: u8,
    },
    /// The header's Length field disagrees with the number of bytes received.
    #[error("IKE header declares {declared} bytes but {received} were received")]
    LengthMismatch {
        /// The header's Length field.
        declared: u32,
        /// Bytes received.
        received: usize,
    },
    /// A field runs past the end of the structure that contains it.
    #[error(
        "{payload} payload: {field} at offset {offset} needs {needed} bytes, {available} left"
    )]
    Truncated {
        /// The payload being decoded (`NONE` for the generic payload header chain itself).
        payload: PayloadType,
        /// Which field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the enclosing structure.
        available: usize,
    },
    /// A Payload Length below the 4 bytes of the generic payload header.
    #[error("{payload} payload at offset {offset}: Payload Length {length} is below 4")]
    PayloadLengthTooShort {
        /// The payload's type.
        payload: PayloadType,
        /// Where the payload starts.
        offset: usize,
        /// Its Payload Length field.
        length: u16,
    },
    /// A Payload Length past the end of the message (or of the decrypted plaintext).
    #[error("{payload} payload at offset {offset}: Payload Length {length} exceeds the {available} bytes left")]
    PayloadOverrun {
        /// The payload's type.
        payload: PayloadType,
        /// Where the payload starts.
        offset: usize,
        /// Its Payload Length field.
        length: u16,
        /// Bytes left from its start.
        available: usize,
    },
    /// More payloads than [`MAX_PAYLOADS`](super::MAX_PAYLOADS).
    #[error("more than {max} payloads (the one at offset {offset} is over the limit)")]
    TooManyPayloads {
        /// The limit.
        max: usize,
        /// Where the first payload over the limit starts.
        offset: usize,
    },
    /// RFC 7296 §2.5: a payload type we do not know with the critical bit set. The engine
    /// answers UNSUPPORTED_CRITICAL_PAYLOAD carrying `payload`.
    #[error("unsupported critical payload {payload} at offset {offset}")]
    UnsupportedCriticalPayload {
        /// The unknown payload type.
        payload: PayloadType,
        /// Where the payload starts.
        offset: usize,
    },
    /// RFC 7296 §3.14: the SK (or SKF) payload must be the last one of a message.
    #[error(
        "{payload} payload at offset {offset} is followed by {count} more bytes; it must be last"
    )]
    EncryptedPayloadNotLast {
        /// SK or SKF.
        payload: PayloadType,
        /// Where the SK or SKF payload starts.
        offset: usize,
        /// Bytes after it.
        count: usize,
    },
    /// An SK or SKF payload inside decrypted plaintext: encrypted payloads do not nest.
    #[error("{payload} payload at offset {offset} inside encrypted plaintext")]
    NestedEncryptedPayload {
        /// SK or SKF.
        payload: PayloadType,
        /// Where it starts in the plaintext.
        offset: usize,
    },
    /// Bytes after the last payload of the chain or the last element of a payload.
    #[error("{count} unexpected bytes at offset {offset} after the end of {payload}")]
    TrailingBytes {
        /// The payload whose content ends early (`NONE`: after the last payload of the chain).
        payload: PayloadType,
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// The length field of a proposal, transform, attribute, selector or configuration
    /// attribute is too small for its fixed fields or runs past its container.
    #[error("{payload} payload: {what} at offset {offset} has invalid length {length}")]
    SubstructureLength {
        /// The payload being decoded.
        payload: PayloadType,
        /// "proposal", "transform", …
        what: &'static str,
        /// Where the substructure starts.
        offset: usize,
        /// Its length field.
        length: usize,
    },
    /// RFC 7296 §3.3.1/§3.3.2: "Last Substruc" must be 0, or 2 (proposal) / 3 (transform).
    #[error("{payload} payload: {what} at offset {offset} has Last Substruc {value}")]
    InvalidLastSubstructure {
        /// The payload being decoded.
        payload: PayloadType,
        /// "proposal" or "transform".
        what: &'static str,
        /// Where the substructure starts.
        offset: usize,
        /// The value found.
        value: u8,
    },
    /// A count field disagrees with the elements that are actually present.
    #[error("{payload} payload at offset {offset}: {what} count says {declared}, found {found}")]
    CountMismatch {
        /// The payload being decoded.
        payload: PayloadType,
        /// "transforms", "SPIs", …
        what: &'static str,
        /// Where the structure holding the count starts.
        offset: usize,
        /// The count field.
        declared: usize,
        /// Elements found.
        found: usize,
    },
    /// More elements than the named limit allows.
    #[error("{payload} payload at offset {offset}: more than {max} {what}")]
    TooMany {
        /// The payload being decoded.
        payload: PayloadType,
        /// "proposals", "transforms", …
        what: &'static str,
        /// Where the structure holding the elements starts.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// A traffic selector of a known type with the wrong Selector Length (RFC 7296 §3.13.1).
    #[error("{payload} payload: {ts_type} selector at offset {offset} has length {length}, expected {expected}")]
    InvalidSelectorLength {
        /// TSi or TSr.
        payload: PayloadType,
        /// The selector's type.
        ts_type: TsType,
        /// Where the selector starts.
        offset: usize,
        /// Its Selector Length field.
        length: u16,
        /// The length its type requires.
        expected: u16,
    },
    /// RFC 7383 §2.5: Fragment Number must be between 1 and Total Fragments.
    #[error("SKF payload at offset {offset}: fragment {number} of {total}")]
    InvalidFragmentNumber {
        /// Where the SKF payload starts.
        offset: usize,
        /// Fragment Number.
        number: u16,
        /// Total Fragments.
        total: u16,
    },
    /// The notification data does not have the layout its Notify Message Type defines.
    #[error("{notify} notification data of {length} bytes: expected {expected}")]
    InvalidNotifyData {
        /// The notify type.
        notify: NotifyType,
        /// Bytes of notification data.
        length: usize,
        /// What was expected, e.g. "20 bytes (SHA-1 hash)".
        expected: &'static str,
    },
}

/// A value that cannot be put on the wire, e.g. a field longer than its length field can say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A length does not fit in its 16-bit (or 32-bit) length field.
    #[error("{what} of {length} bytes does not fit its length field (max {max})")]
    TooLong {
        /// "SA payload", "transform attribute", "message", …
        what: &'static str,
        /// The length that would be written.
        length: usize,
        /// The largest the field can hold.
        max: usize,
    },
    /// A count does not fit in its count field.
    #[error("{count} {what} do not fit their count field (max {max})")]
    TooMany {
        /// "transforms", "traffic selectors", …
        what: &'static str,
        /// Elements given.
        count: usize,
        /// The largest the field can hold.
        max: usize,
    },
    /// A Delete payload SPI whose length differs from the payload's SPI Size.
    #[error("Delete payload SPI of {length} bytes with SPI Size {spi_size}")]
    DeleteSpiSize {
        /// The SPI Size field.
        spi_size: u8,
        /// The offending SPI's length.
        length: usize,
    },
    /// A TV-form transform attribute type needs the 15-bit type space (RFC 7296 §3.3.5).
    #[error("attribute type {attribute_type} does not fit in 15 bits")]
    AttributeTypeTooLarge {
        /// The type given.
        attribute_type: u16,
    },
    /// An SK or SKF payload that is not the last of the chain (RFC 7296 §3.14), or one in a
    /// chain meant for encryption.
    #[error("{payload} payload at index {index} must be the last payload of a message")]
    EncryptedPayloadPosition {
        /// SK or SKF.
        payload: PayloadType,
        /// Its index in the payload list.
        index: usize,
    },
}
