//! Traffic selectors and their narrowing (RFC 7296 §2.9).
//!
//! A [`TrafficSelector`] is a validated range of addresses, an IP protocol and a port range,
//! the engine's view of one entry of a TSi or TSr payload and of the selectors a CHILD_SA is
//! configured with. The responder narrows what the initiator proposes to what its policy
//! allows; the initiator checks the result is within what it proposed.

use std::net::IpAddr;

use thiserror::Error;

use crate::codec::{self, AddressRange};
use crate::registry::TsType;

/// IP protocol number meaning "any protocol" in a traffic selector (RFC 7296 §3.13.1).
pub const ANY_PROTOCOL: u8 = 0;

/// UDP, the protocol of Geneve tunnels.
pub const IPPROTO_UDP: u8 = 17;

/// The most traffic selectors we accept in one TSi or TSr, and so the most a narrowing can
/// produce from one side; bounds the work a peer can make us do.
pub const MAX_TRAFFIC_SELECTORS: usize = 16;

/// Why a traffic selector is malformed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrafficSelectorError {
    /// The start and end address are of different families.
    #[error("address range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// Start address.
        start: IpAddr,
        /// End address.
        end: IpAddr,
    },
    /// The start address is above the end address.
    #[error("address range {start}-{end} is empty")]
    EmptyAddressRange {
        /// Start address.
        start: IpAddr,
        /// End address.
        end: IpAddr,
    },
    /// A selector type other than an IPv4 or IPv6 address range.
    #[error("traffic selector type {0} is not an address range")]
    UnsupportedType(TsType),
    /// The start port is above the end port.
    // Limitation: RFC 4301 OPAQUE ports (start 65535, end 0) are rejected as empty.
    #[error("port range {start}-{end} is empty")]
    EmptyPortRange {
        /// Start port.
        start: u16,
        /// End port.
        end: u16,
    },
}

/// Why narrowing found nothing both sides accept.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum NarrowingError {
    /// The intersection of the proposed and configured selectors is empty on one side; the
    /// responder answers TS_UNACCEPTABLE (RFC 7296 §2.9).
    #[error("no traffic selector of {side} is acceptable")]
    TsUnacceptable {
        /// The side that came out empty.
        side: Side,
    },
    /// The peer sent more selectors than [`MAX_TRAFFIC_SELECTORS`].
    #[error("{side} has {count} traffic selectors, more than we accept")]
    TooMany {
        /// The side that had too many.
        side: Side,
        /// How many it had.
        count: usize,
    },
}

/// Which of the two traffic selector payloads a result concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// TSi: the initiator's end of the traffic.
    Initiator,
    /// TSr: the responder's end of the traffic.
    Responder,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Initiator => "TSi",
            Side::Responder => "TSr",
        })
    }
}

/// One traffic selector: addresses `start_addr..=end_addr`, protocol `ip_protocol` (0 for any),
/// ports `start_port..=end_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    start_addr: IpAddr,
    end_addr: IpAddr,
    ip_protocol: u8,
    start_port: u16,
    end_port: u16,
}

impl TrafficSelector {
    /// A selector, checked for a non-empty range of one address family and ports.
    pub fn new(
        start_addr: IpAddr,
        end_addr: IpAddr,
        ip_protocol: u8,
        start_port: u16,
        end_port: u16,
    ) -> Result<Self, TrafficSelectorError> {
        if start_addr.is_ipv4() != end_addr.is_ipv4() {
            return Err(TrafficSelectorError::MixedFamilies {
                start: start_addr,
                end: end_addr,
            });
        }
        if start_addr > end_addr {
            return Err(TrafficSelectorError::EmptyAddressRange {
                start: start_addr,
                end: end_addr,
            });
        }
        if start_port > end_port {
            return Err(TrafficSelectorError::EmptyPortRange {
                start: start_port,
                end: end_port,
            });
        }
        Ok(TrafficSelector {
            start_addr,
            end_addr,
            ip_protocol,
            start_port,
            end_port,
        })
    }

    /// One host, any protocol, any port.
    pub fn host(addr: IpAddr) -> Self {
        TrafficSelector {
            start_addr: addr,
            end_addr: addr,
            ip_protocol: ANY_PROTOCOL,
            start_port: 0,
            end_port: u16::MAX,
        }
    }

    /// One host, protocol `ip_protocol`, any port (e.g. `udp/any`).
    pub fn host_protocol(addr: IpAddr, ip_protocol: u8) -> Self {
        TrafficSelector {
            ip_protocol,
            ..Self::host(addr)
        }
    }

    /// One host, protocol `ip_protocol`, one port (e.g. `udp/6081`, Geneve).
    pub fn host_port(addr: IpAddr, ip_protocol: u8, port: u16) -> Self {
        TrafficSelector {
            ip_protocol,
            start_port: port,
            end_port: port,
            ..Self::host(addr)
        }
    }

    /// First address of the range.
    pub fn start_addr(&self) -> IpAddr {
        self.start_addr
    }

    /// Last address of the range.
    pub fn end_addr(&self) -> IpAddr {
        self.end_addr
    }

    /// IP protocol, [`ANY_PROTOCOL`] for any.
    pub fn ip_protocol(&self) -> u8 {
        self.ip_protocol
    }

    /// First port of the range.
    pub fn start_port(&self) -> u16 {
        self.start_port
    }

    /// Last port of the range.
    pub fn end_port(&self) -> u16 {
        self.end_port
    }

    /// The traffic both selectors match, or `None` if there is none.
    ///
    // Limitation: for ICMP the "ports" carry type and code (RFC 4301 §4.4.1.1); they are
    // intersected as plain ranges, which is right for ranges but not for every encoding.
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        if self.start_addr.is_ipv4() != other.start_addr.is_ipv4() {
            return None;
        }
        let ip_protocol = match (self.ip_protocol, other.ip_protocol) {
            (ANY_PROTOCOL, p) | (p, ANY_PROTOCOL) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_addr = self.start_addr.max(other.start_addr);
        let end_addr = self.end_addr.min(other.end_addr);
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        if start_addr > end_addr || start_port > end_port {
            return None;
        }
        Some(TrafficSelector {
            start_addr,
            end_addr,
            ip_protocol,
            start_port,
            end_port,
        })
    }

    /// Whether every packet `other` matches is matched by `self`.
    pub fn contains(&self, other: &TrafficSelector) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }
}

impl TryFrom<&codec::TrafficSelector> for TrafficSelector {
    type Error = TrafficSelectorError;

    fn try_from(ts: &codec::TrafficSelector) -> Result<Self, Self::Error> {
        match ts {
            codec::TrafficSelector::Ipv4(r) => TrafficSelector::new(
                r.start_address.into(),
                r.end_address.into(),
                r.ip_protocol,
                r.start_port,
                r.end_port,
            ),
            codec::TrafficSelector::Ipv6(r) => TrafficSelector::new(
                r.start_address.into(),
                r.end_address.into(),
                r.ip_protocol,
                r.start_port,
                r.end_port,
            ),
            codec::TrafficSelector::Unknown { ts_type, .. } => {
                Err(TrafficSelectorError::UnsupportedType(*ts_type))
            }
        }
    }
}

impl From<&TrafficSelector> for codec::TrafficSelector {
    fn from(ts: &TrafficSelector) -> Self {
        match (ts.start_addr, ts.end_addr) {
            (IpAddr::V4(start_address), IpAddr::V4(end_address)) => {
                codec::TrafficSelector::Ipv4(AddressRange {
                    ip_protocol: ts.ip_protocol,
                    start_port: ts.start_port,
                    end_port: ts.end_port,
                    start_address,
                    end_address,
                })
            }
            (start, end) => codec::TrafficSelector::Ipv6(AddressRange {
                ip_protocol: ts.ip_protocol,
                start_port: ts.start_port,
                end_port: ts.end_port,
                start_address: to_v6(start),
                end_address: to_v6(end),
            }),
        }
    }
}

/// An IPv6 address as is; IPv4 (never paired with IPv6 by [`TrafficSelector::new`]) mapped.
fn to_v6(addr: IpAddr) -> std::net::Ipv6Addr {
    match addr {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// The selectors of a received TSi or TSr payload we can work with; other types are left out
/// (RFC 7296 §3.13.1: a responder may narrow away what it does not understand).
///
/// One more than [`MAX_TRAFFIC_SELECTORS`] is kept at most, so [`narrow`] can still refuse a
/// payload with too many.
pub fn from_payload(payload: &codec::TrafficSelectors) -> Vec<TrafficSelector> {
    payload
        .selectors
        .iter()
        .filter(|ts| !matches!(ts, codec::TrafficSelector::Unknown { .. }))
        .map(TrafficSelector::try_from)
        .filter_map(Result::ok)
        .take(MAX_TRAFFIC_SELECTORS + 1)
        .collect()
}

/// The payload carrying `selectors`.
pub fn to_payload(selectors: &[TrafficSelector]) -> codec::TrafficSelectors {
    codec::TrafficSelectors {
        selectors: selectors.iter().map(Into::into).collect(),
    }
}

/// The result of narrowing: the selectors to send back in TSi and TSr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    /// TSi of the response.
    pub initiator: Vec<TrafficSelector>,
    /// TSr of the response.
    pub responder: Vec<TrafficSelector>,
}

/// Responder side of RFC 7296 §2.9: narrows the proposed `tsi`/`tsr` to what our policy allows.
///
/// `remote_policy` is what we allow for the peer's end (it meets TSi, since the peer
/// initiated), `local_policy` for ours (it meets TSr). Each side of the result is every
/// non-empty intersection of a proposed selector with a configured one, in proposal order,
/// without duplicates.
pub fn narrow(
    tsi: &[TrafficSelector],
    tsr: &[TrafficSelector],
    remote_policy: &[TrafficSelector],
    local_policy: &[TrafficSelector],
) -> Result<Narrowed, NarrowingError> {
    let initiator = narrow_side(Side::Initiator, tsi, remote_policy)?;
    let responder = narrow_side(Side::Responder, tsr, local_policy)?;
    Ok(Narrowed {
        initiator,
        responder,
    })
}

fn narrow_side(
    side: Side,
    proposed: &[TrafficSelector],
    policy: &[TrafficSelector],
) -> Result<Vec<TrafficSelector>, NarrowingError> {
    if proposed.len() > MAX_TRAFFIC_SELECTORS {
        return Err(NarrowingError::TooMany {
            side,
            count: proposed.len(),
        });
    }

    let mut result: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for allowed in policy {
            let Some(ts) = p.intersect(allowed) else {
                continue;
            };
            if result.len() < MAX_TRAFFIC_SELECTORS && !result.contains(&ts) {
                result.push(ts);
            }
        }
    }

    if result.is_empty() {
        return Err(NarrowingError::TsUnacceptable { side });
    }
    Ok(result)
}

/// Initiator side of RFC 7296 §2.9: the responder may only narrow, so every selector it
/// returned must lie within one we proposed.
pub fn is_narrowing_of(returned: &[TrafficSelector], proposed: &[TrafficSelector]) -> bool {
    !returned.is_empty()
        && returned
            .iter()
            .all(|r| proposed.iter().any(|p| p.contains(r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const GENEVE_PORT: u16 = 6081;

    fn a() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    }

    fn b() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))
    }

    fn any_v4() -> TrafficSelector {
        TrafficSelector::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            ANY_PROTOCOL,
            0,
            u16::MAX,
        )
        .unwrap()
    }

    #[test]
    fn geneve_selectors_matching_policy_are_accepted_unchanged() {
        // Initiator a: TSi udp/any on a, TSr udp/6081 on b; responder b has the same policy.
        let tsi = [TrafficSelector::host_protocol(a(), IPPROTO_UDP)];
        let tsr = [TrafficSelector::host_port(b(), IPPROTO_UDP, GENEVE_PORT)];
        let got = narrow(&tsi, &tsr, &tsi, &tsr).unwrap();
        assert_eq!(got.initiator, tsi);
        assert_eq!(got.responder, tsr);
    }

    #[test]
    fn wide_proposal_is_narrowed_to_the_geneve_port() {
        let tsi = [any_v4()];
        let tsr = [any_v4()];
        let remote = [TrafficSelector::host_protocol(a(), IPPROTO_UDP)];
        let local = [TrafficSelector::host_port(b(), IPPROTO_UDP, GENEVE_PORT)];
        let got = narrow(&tsi, &tsr, &remote, &local).unwrap();
        assert_eq!(got.initiator, remote);
        assert_eq!(got.responder, local);
        assert!(is_narrowing_of(&got.initiator, &tsi));
        assert!(is_narrowing_of(&got.responder, &tsr));
    }

    #[test]
    fn different_protocols_leave_nothing_and_report_ts_unacceptable() {
        let tcp = 6;
        let tsi = [TrafficSelector::host_protocol(a(), tcp)];
        let tsr = [TrafficSelector::host_port(b(), tcp, GENEVE_PORT)];
        let remote = [TrafficSelector::host_protocol(a(), IPPROTO_UDP)];
        let local = [TrafficSelector::host_port(b(), IPPROTO_UDP, GENEVE_PORT)];
        assert_eq!(
            narrow(&tsi, &tsr, &remote, &local),
            Err(NarrowingError::TsUnacceptable {
                side: Side::Initiator
            })
        );
    }

    #[test]
    fn wrong_port_on_responder_side_reports_ts_unacceptable_for_tsr() {
        let tsi = [TrafficSelector::host_protocol(a(), IPPROTO_UDP)];
        let tsr = [TrafficSelector::host_port(b(), IPPROTO_UDP, 4789)];
        let local = [TrafficSelector::host_port(b(), IPPROTO_UDP, GENEVE_PORT)];
        assert_eq!(
            narrow(&tsi, &tsr, &tsi, &local),
            Err(NarrowingError::TsUnacceptable {
                side: Side::Responder
            })
        );
    }

    #[test]
    fn other_host_is_not_acceptable() {
        let c = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let tsi = [TrafficSelector::host(c)];
        let tsr = [TrafficSelector::host(b())];
        let got = narrow(&tsi, &tsr, &[TrafficSelector::host(a())], &tsr);
        assert!(got.is_err());
    }

    #[test]
    fn ipv4_and_ipv6_selectors_never_intersect() {
        let v6 = TrafficSelector::host(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(any_v4().intersect(&v6), None);
    }

    #[test]
    fn port_ranges_intersect_to_their_overlap() {
        let x = TrafficSelector::new(a(), a(), IPPROTO_UDP, 1000, 7000).unwrap();
        let y = TrafficSelector::new(a(), b(), ANY_PROTOCOL, 6000, 9000).unwrap();
        let z = x.intersect(&y).unwrap();
        assert_eq!((z.start_port(), z.end_port()), (6000, 7000));
        assert_eq!(z.ip_protocol(), IPPROTO_UDP);
        assert_eq!((z.start_addr(), z.end_addr()), (a(), a()));
    }

    #[test]
    fn responder_widening_the_selectors_is_detected_by_the_initiator() {
        let proposed = [TrafficSelector::host_port(b(), IPPROTO_UDP, GENEVE_PORT)];
        let returned = [TrafficSelector::host_protocol(b(), IPPROTO_UDP)];
        assert!(!is_narrowing_of(&returned, &proposed));
        assert!(!is_narrowing_of(&[], &proposed));
    }

    #[test]
    fn too_many_proposed_selectors_are_refused() {
        let tsi = vec![TrafficSelector::host(a()); MAX_TRAFFIC_SELECTORS + 1];
        let tsr = [TrafficSelector::host(b())];
        assert!(matches!(
            narrow(&tsi, &tsr, &[any_v4()], &[any_v4()]),
            Err(NarrowingError::TooMany {
                side: Side::Initiator,
                ..
            })
        ));
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_reason() {
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(matches!(
            TrafficSelector::new(a(), v6, 0, 0, 1),
            Err(TrafficSelectorError::MixedFamilies { .. })
        ));
        assert!(matches!(
            TrafficSelector::new(b(), a(), 0, 0, 1),
            Err(TrafficSelectorError::EmptyAddressRange { .. })
        ));
        assert!(matches!(
            TrafficSelector::new(a(), a(), 0, 2, 1),
            Err(TrafficSelectorError::EmptyPortRange { .. })
        ));
    }

    #[test]
    fn selectors_convert_to_and_from_the_payload_types() {
        let v4 = TrafficSelector::host_port(a(), IPPROTO_UDP, GENEVE_PORT);
        let v6 = TrafficSelector::host_protocol(IpAddr::V6(Ipv6Addr::LOCALHOST), IPPROTO_UDP);
        let payload = to_payload(&[v4, v6]);
        assert_eq!(from_payload(&payload), vec![v4, v6]);
    }

    #[test]
    fn unknown_and_malformed_payload_selectors_are_left_out() {
        let mut payload = to_payload(&[TrafficSelector::host(a())]);
        payload.selectors.push(codec::TrafficSelector::Unknown {
            ts_type: TsType(10),
            ip_protocol: 0,
            data: vec![],
        });
        payload
            .selectors
            .push(codec::TrafficSelector::Ipv4(AddressRange {
                ip_protocol: 0,
                start_port: 10,
                end_port: 1,
                start_address: Ipv4Addr::new(192, 0, 2, 1),
                end_address: Ipv4Addr::new(192, 0, 2, 1),
            }));
        assert_eq!(from_payload(&payload), vec![TrafficSelector::host(a())]);
    }

    #[test]
    fn duplicate_intersections_are_sent_once() {
        let tsi = [TrafficSelector::host(a()), TrafficSelector::host(a())];
        let tsr = [TrafficSelector::host(b())];
        let got = narrow(&tsi, &tsr, &[any_v4()], &[any_v4()]).unwrap();
        assert_eq!(got.initiator.len(), 1);
    }
}
