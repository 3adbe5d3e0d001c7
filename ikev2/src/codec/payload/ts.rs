//! The Traffic Selector payloads, TSi and TSr (RFC 7296 §3.13).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::reader::Reader;
use crate::codec::writer::{count_u8, Writer};
use crate::codec::{DecodeError, EncodeError, MAX_TRAFFIC_SELECTORS};
use crate::registry::TsType;

/// Selector Length of a TS_IPV4_ADDR_RANGE selector.
const IPV4_SELECTOR_LEN: u16 = 16;
/// Selector Length of a TS_IPV6_ADDR_RANGE selector.
const IPV6_SELECTOR_LEN: u16 = 40;
/// TS Type, IP Protocol ID and Selector Length, common to every selector type.
const SELECTOR_HEADER_LEN: usize = 4;

/// A TSi or TSr payload: the traffic the sender wants the CHILD_SA to cover.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrafficSelectors {
    /// The selectors; the covered traffic is their union.
    pub selectors: Vec<TrafficSelector>,
}

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    Ipv4(AddressRange<Ipv4Addr>),
    /// TS_IPV6_ADDR_RANGE.
    Ipv6(AddressRange<Ipv6Addr>),
    /// Another type (e.g. RFC 9478 security labels), kept so it re-encodes.
    Unknown {
        /// TS Type.
        ts_type: TsType,
        /// The octet after TS Type (IP Protocol ID for the address range types).
        ip_protocol: u8,
        /// Everything after Selector Length.
        data: Vec<u8>,
    },
}

/// An address range with an IP protocol and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange<A> {
    /// IP Protocol ID, 0 for any.
    pub ip_protocol: u8,
    /// Start Port (0 with end 65535 for any; for ICMP, type and code).
    pub start_port: u16,
    /// End Port.
    pub end_port: u16,
    /// First address of the range.
    pub start_address: A,
    /// Last address of the range.
    pub end_address: A,
}

impl TrafficSelector {
    /// The TS Type this selector is sent as.
    pub fn ts_type(&self) -> TsType {
        match self {
            TrafficSelector::Ipv4(_) => TsType::TS_IPV4_ADDR_RANGE,
            TrafficSelector::Ipv6(_) => TsType::TS_IPV6_ADDR_RANGE,
            TrafficSelector::Unknown { ts_type, .. } => *ts_type,
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let available = r.remaining();
        let ts_type = TsType(r.u8("TS Type")?);
        let ip_protocol = r.u8("IP Protocol ID")?;
        let length = r.u16("Selector Length")?;
        let rest_len = usize::from(length)
            .checked_sub(SELECTOR_HEADER_LEN)
            .filter(|_| usize::from(length) <= available)
            .ok_or(DecodeError::SubstructureLength {
                payload: r.payload(),
                what: "traffic selector",
                offset,
                length: length.into(),
            })?;

        let expected = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE => IPV4_SELECTOR_LEN,
            TsType::TS_IPV6_ADDR_RANGE => IPV6_SELECTOR_LEN,
            _ => {
                let data = r.bytes(rest_len, "selector data")?.to_vec();
                return Ok(TrafficSelector::Unknown {
                    ts_type,
                    ip_protocol,
                    data,
                });
            }
        };
        if length != expected {
            return Err(DecodeError::InvalidSelectorLength {
                payload: r.payload(),
                ts_type,
                offset,
                length,
                expected,
            });
        }

        let start_port = r.u16("Start Port")?;
        let end_port = r.u16("End Port")?;
        Ok(if ts_type == TsType::TS_IPV4_ADDR_RANGE {
            TrafficSelector::Ipv4(AddressRange {
                ip_protocol,
                start_port,
                end_port,
                start_address: Ipv4Addr::from(r.array::<4>("Starting Address")?),
                end_address: Ipv4Addr::from(r.array::<4>("Ending Address")?),
            })
        } else {
            TrafficSelector::Ipv6(AddressRange {
                ip_protocol,
                start_port,
                end_port,
                start_address: Ipv6Addr::from(r.array::<16>("Starting Address")?),
                end_address: Ipv6Addr::from(r.array::<16>("Ending Address")?),
            })
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let start = w.len();
        w.u8(self.ts_type().0);
        match self {
            TrafficSelector::Ipv4(range) => {
                w.u8(range.ip_protocol);
                w.u16(IPV4_SELECTOR_LEN);
                w.u16(range.start_port);
                w.u16(range.end_port);
                w.bytes(&range.start_address.octets());
                w.bytes(&range.end_address.octets());
            }
            TrafficSelector::Ipv6(range) => {
                w.u8(range.ip_protocol);
                w.u16(IPV6_SELECTOR_LEN);
                w.u16(range.start_port);
                w.u16(range.end_port);
                w.bytes(&range.start_address.octets());
                w.bytes(&range.end_address.octets());
            }
            TrafficSelector::Unknown {
                ip_protocol, data, ..
            } => {
                w.u8(*ip_protocol);
                let slot = w.reserve_u16_length(start);
                w.bytes(data);
                w.fill_u16_length(slot, "traffic selector")?;
            }
        }
        Ok(())
    }
}

impl TrafficSelectors {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let declared = r.u8("Number of TSs")?;
        r.skip(3, "RESERVED")?;
        if usize::from(declared) > MAX_TRAFFIC_SELECTORS {
            return Err(DecodeError::TooMany {
                payload: r.payload(),
                what: "traffic selectors",
                offset,
                max: MAX_TRAFFIC_SELECTORS,
            });
        }

        let mut selectors = Vec::with_capacity(declared.into());
        while !r.is_empty() && selectors.len() < usize::from(declared) {
            selectors.push(TrafficSelector::decode(r)?);
        }
        if selectors.len() != usize::from(declared) {
            return Err(DecodeError::CountMismatch {
                payload: r.payload(),
                what: "traffic selectors",
                offset,
                declared: declared.into(),
                found: selectors.len(),
            });
        }
        Ok(TrafficSelectors { selectors })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(count_u8(self.selectors.len(), "traffic selectors")?);
        w.zeros(3);
        for selector in &self.selectors {
            selector.encode(w)?;
        }
        Ok(())
    }
}
