//! The Notify payload (RFC 7296 §3.10) and the layouts of the notification data that real
//! peers send.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::reader::Reader;
use crate::codec::writer::{count_u8, Writer};
use crate::codec::{DecodeError, EncodeError};
use crate::registry::{HashAlgorithm, KeGroup, NotifyType, PayloadType, ProtocolId};

/// Length of a NAT_DETECTION_*_IP hash: SHA-1 (RFC 7296 §2.23).
pub const NAT_DETECTION_HASH_LEN: usize = 20;

/// RFC 7296 §2.6: a COOKIE is between 1 and 64 octets.
const MAX_COOKIE_LEN: usize = 64;

/// A Notify payload: an error or a status, optionally about one SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol of the SA concerned, `NONE` when none is.
    pub protocol: ProtocolId,
    /// SPI of the SA concerned (empty when none).
    pub spi: Vec<u8>,
    /// Notify Message Type.
    pub notify_type: NotifyType,
    /// Notification Data; see [`Notify::typed_data`] for the layouts we know.
    pub data: Vec<u8>,
}

/// Notification data read by the layout its Notify Message Type defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyData<'a> {
    /// NAT_DETECTION_SOURCE_IP / NAT_DETECTION_DESTINATION_IP: SHA-1(SPIi | SPIr | IP | Port).
    NatDetection(&'a [u8; NAT_DETECTION_HASH_LEN]),
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): the hashes the sender can verify with.
    SignatureHashAlgorithms(Vec<HashAlgorithm>),
    /// INVALID_KE_PAYLOAD (RFC 7296 §1.2): the group the responder wants.
    InvalidKePayload(KeGroup),
    /// UNSUPPORTED_CRITICAL_PAYLOAD: the payload type that was not understood.
    UnsupportedCriticalPayload(PayloadType),
    /// COOKIE (RFC 7296 §2.6): 1 to 64 opaque octets to echo.
    Cookie(&'a [u8]),
    /// SET_WINDOW_SIZE (RFC 7296 §2.3): how many requests the sender can handle at once.
    SetWindowSize(u32),
    /// ADDITIONAL_IP4_ADDRESS (RFC 4555 §3.4).
    AdditionalIp4Address(Ipv4Addr),
    /// ADDITIONAL_IP6_ADDRESS (RFC 4555 §3.4).
    AdditionalIp6Address(Ipv6Addr),
    /// Any other type (REKEY_SA, USE_TRANSPORT_MODE, … carry nothing or opaque data).
    Other(&'a [u8]),
}

impl Notify {
    /// A notify about no SA.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Notify {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// A notify without data, e.g. USE_TRANSPORT_MODE or IKEV2_FRAGMENTATION_SUPPORTED.
    pub fn status(notify_type: NotifyType) -> Self {
        Notify::new(notify_type, Vec::new())
    }

    /// NAT_DETECTION_SOURCE_IP with its hash.
    pub fn nat_detection_source_ip(hash: [u8; NAT_DETECTION_HASH_LEN]) -> Self {
        Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, hash.to_vec())
    }

    /// NAT_DETECTION_DESTINATION_IP with its hash.
    pub fn nat_detection_destination_ip(hash: [u8; NAT_DETECTION_HASH_LEN]) -> Self {
        Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, hash.to_vec())
    }

    /// SIGNATURE_HASH_ALGORITHMS listing `hashes`.
    pub fn signature_hash_algorithms(hashes: &[HashAlgorithm]) -> Self {
        Notify::new(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            encode_hash_algorithm_list(hashes),
        )
    }

    /// INVALID_KE_PAYLOAD naming the group the responder accepts.
    pub fn invalid_ke_payload(group: KeGroup) -> Self {
        Notify::new(
            NotifyType::INVALID_KE_PAYLOAD,
            group.0.to_be_bytes().to_vec(),
        )
    }

    /// UNSUPPORTED_CRITICAL_PAYLOAD naming the payload type that was not understood.
    pub fn unsupported_critical_payload(payload: PayloadType) -> Self {
        Notify::new(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![payload.0])
    }

    /// COOKIE with its opaque value.
    pub fn cookie(cookie: Vec<u8>) -> Self {
        Notify::new(NotifyType::COOKIE, cookie)
    }

    /// REKEY_SA (RFC 7296 §1.3.3) for the SA of `protocol` with inbound `spi`.
    pub fn rekey_sa(protocol: ProtocolId, spi: Vec<u8>) -> Self {
        Notify {
            protocol,
            spi,
            notify_type: NotifyType::REKEY_SA,
            data: Vec::new(),
        }
    }

    /// The notification data read by the layout of its type, or an error when it does not
    /// have that layout.
    pub fn typed_data(&self) -> Result<NotifyData<'_>, DecodeError> {
        let data = self.data.as_slice();
        let invalid = |expected| DecodeError::InvalidNotifyData {
            notify: self.notify_type,
            length: data.len(),
            expected,
        };
        Ok(match self.notify_type {
            NotifyType::NAT_DETECTION_SOURCE_IP | NotifyType::NAT_DETECTION_DESTINATION_IP => {
                NotifyData::NatDetection(
                    data.try_into()
                        .map_err(|_| invalid("20 bytes (SHA-1 hash)"))?,
                )
            }
            NotifyType::SIGNATURE_HASH_ALGORITHMS => NotifyData::SignatureHashAlgorithms(
                hash_algorithm_list(data)
                    .ok_or_else(|| invalid("a list of 2-byte hash algorithm identifiers"))?
                    .collect(),
            ),
            NotifyType::INVALID_KE_PAYLOAD => {
                let group: [u8; 2] = data
                    .try_into()
                    .map_err(|_| invalid("2 bytes (group number)"))?;
                NotifyData::InvalidKePayload(KeGroup(u16::from_be_bytes(group)))
            }
            NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD => {
                let [payload]: [u8; 1] = data
                    .try_into()
                    .map_err(|_| invalid("1 byte (payload type)"))?;
                NotifyData::UnsupportedCriticalPayload(PayloadType(payload))
            }
            NotifyType::COOKIE => {
                if data.is_empty() || data.len() > MAX_COOKIE_LEN {
                    return Err(invalid("1 to 64 bytes"));
                }
                NotifyData::Cookie(data)
            }
            NotifyType::SET_WINDOW_SIZE => {
                let size: [u8; 4] = data
                    .try_into()
                    .map_err(|_| invalid("4 bytes (window size)"))?;
                NotifyData::SetWindowSize(u32::from_be_bytes(size))
            }
            NotifyType::ADDITIONAL_IP4_ADDRESS => {
                let a: [u8; 4] = data
                    .try_into()
                    .map_err(|_| invalid("4 bytes (IPv4 address)"))?;
                NotifyData::AdditionalIp4Address(Ipv4Addr::from(a))
            }
            NotifyType::ADDITIONAL_IP6_ADDRESS => {
                let a: [u8; 16] = data
                    .try_into()
                    .map_err(|_| invalid("16 bytes (IPv6 address)"))?;
                NotifyData::AdditionalIp6Address(Ipv6Addr::from(a))
            }
            _ => NotifyData::Other(data),
        })
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId(r.u8("Protocol ID")?);
        let spi_size = r.u8("SPI Size")?;
        let notify_type = NotifyType(r.u16("Notify Message Type")?);
        let spi = r.bytes(spi_size.into(), "SPI")?.to_vec();
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.protocol.0);
        w.u8(count_u8(self.spi.len(), "SPI bytes")?);
        w.u16(self.notify_type.0);
        w.bytes(&self.spi);
        w.bytes(&self.data);
        Ok(())
    }
}

/// SIGNATURE_HASH_ALGORITHMS Notification Data (RFC 7427 §4): each hash as a 16-bit value.
pub(crate) fn encode_hash_algorithm_list(hashes: &[HashAlgorithm]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0.to_be_bytes()).collect()
}

/// The hashes of SIGNATURE_HASH_ALGORITHMS Notification Data, unknown values kept; `None`
/// when the data is not a whole number of 2-octet identifiers.
pub(crate) fn hash_algorithm_list(data: &[u8]) -> Option<impl Iterator<Item = HashAlgorithm> + '_> {
    let chunks = data.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .filter_map(|c| <[u8; 2]>::try_from(c).ok())
            .map(|c| HashAlgorithm(u16::from_be_bytes(c))),
    )
}
