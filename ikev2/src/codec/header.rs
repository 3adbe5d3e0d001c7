//! The IKE header (RFC 7296 §3.1).

use super::reader::Reader;
use super::writer::Writer;
use super::{DecodeError, MAX_MESSAGE_SIZE};
use crate::registry::{ExchangeType, PayloadType};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The major version this crate speaks (RFC 7296 §3.1).
pub const IKE_MAJOR_VERSION: u8 = 2;

/// The Flags octet of the IKE header, kept whole so reserved bits re-encode as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I: set by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// V: the sender can speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// R: this message is a response.
    pub const RESPONSE: Flags = Flags(0x20);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with the bits of `other` set too.
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether the I (original initiator) bit is set.
    pub fn is_initiator(self) -> bool {
        self.contains(Flags::INITIATOR)
    }

    /// Whether the R (response) bit is set.
    pub fn is_response(self) -> bool {
        self.contains(Flags::RESPONSE)
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut names = Vec::new();
        if self.is_initiator() {
            names.push("I");
        }
        if self.contains(Flags::VERSION) {
            names.push("V");
        }
        if self.is_response() {
            names.push("R");
        }
        write!(f, "Flags({:#04x} {})", self.0, names.join("|"))
    }
}

/// The fixed 28-byte header of every IKE message.
///
/// `next_payload` and `length` are what was received; [`Message::encode`](super::Message::encode)
/// computes both from the payloads instead of trusting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub spi_i: [u8; 8],
    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: [u8; 8],
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major Version (upper four bits of the version octet).
    pub major_version: u8,
    /// Minor Version (lower four bits).
    pub minor_version: u8,
    /// Exchange Type.
    pub exchange_type: ExchangeType,
    /// Flags (I, V, R).
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// A version 2.0 header; `next_payload` and `length` are filled in by encoding.
    pub fn new(
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        exchange_type: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Self {
        Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            major_version: IKE_MAJOR_VERSION,
            minor_version: 0,
            exchange_type,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Decodes the header at the start of `bytes` without looking at the payloads, e.g. to
    /// find the IKE SA (or answer INVALID_MAJOR_VERSION) before decoding the rest. Any major
    /// version is accepted here; the Length field is checked against `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::MessageTooShort {
                length: bytes.len(),
            });
        }
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(DecodeError::MessageTooLarge {
                length: bytes.len(),
                max: MAX_MESSAGE_SIZE,
            });
        }
        let mut r = Reader::new(bytes, 0, PayloadType::NONE);
        let spi_i = r.array("IKE SA Initiator's SPI")?;
        let spi_r = r.array("IKE SA Responder's SPI")?;
        let next_payload = PayloadType(r.u8("Next Payload")?);
        let version = r.u8("Version")?;
        let exchange_type = ExchangeType(r.u8("Exchange Type")?);
        let flags = Flags(r.u8("Flags")?);
        let message_id = r.u32("Message ID")?;
        let length = r.u32("Length")?;

        let received = bytes.len();
        if usize::try_from(length).ok() != Some(received) {
            return Err(DecodeError::LengthMismatch {
                declared: length,
                received,
            });
        }
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            major_version: version >> 4,
            minor_version: version & 0x0f,
            exchange_type,
            flags,
            message_id,
            length,
        })
    }

    /// The initiator's SPI as an integer (network byte order).
    pub fn spi_i_u64(&self) -> u64 {
        u64::from_be_bytes(self.spi_i)
    }

    /// The responder's SPI as an integer (network byte order).
    pub fn spi_r_u64(&self) -> u64 {
        u64::from_be_bytes(self.spi_r)
    }

    /// Appends the header with the given Next Payload and Length.
    pub(crate) fn encode_with(&self, w: &mut Writer, next_payload: PayloadType, length: u32) {
        w.bytes(&self.spi_i);
        w.bytes(&self.spi_r);
        w.u8(next_payload.0);
        w.u8((self.major_version << 4) | (self.minor_version & 0x0f));
        w.u8(self.exchange_type.0);
        w.u8(self.flags.0);
        w.u32(self.message_id);
        w.u32(length);
    }
}
