//! Link-layer headers: finding the IP packet inside a captured frame.
//!
//! Supported link types (LINKTYPE_* values of pcap and pcapng): Ethernet (with up to
//! [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags), Linux cooked capture v1 and v2 (`tcpdump -i any`),
//! and raw IP.

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_RAW: the frame is an IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: u32 = 101;
/// DLT_RAW as some BSDs write it into files (12 on most, 14 on OpenBSD).
pub const LINKTYPE_RAW_BSD: [u32; 2] = [12, 14];
/// LINKTYPE_LINUX_SLL: Linux cooked capture, 16-byte header.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4: the frame is an IPv4 packet.
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6: the frame is an IPv6 packet.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2, 20-byte header.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// The most VLAN tags we skip in one Ethernet frame (QinQ uses two).
pub const MAX_VLAN_TAGS: usize = 4;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERNET_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;

/// What a frame carries at the network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// An IPv4 packet (the bytes start with the IPv4 header).
    Ipv4(&'a [u8]),
    /// An IPv6 packet (the bytes start with the IPv6 header).
    Ipv6(&'a [u8]),
    /// Something else (ARP, LLDP …), by EtherType; not IKE.
    Other {
        /// The EtherType (or, for raw IP, the IP version nibble).
        ethertype: u16,
    },
}

/// Why a frame's link-layer header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The capture uses a link type we do not decode.
    #[error("link type {0} is not supported (Ethernet, Linux cooked v1/v2 and raw IP are)")]
    UnsupportedLinkType(u32),
    /// The frame is shorter than its link-layer header.
    #[error("{link} header needs {needed} bytes, the frame has {have}")]
    Truncated {
        /// Which header.
        link: &'static str,
        /// Bytes the header needs.
        needed: usize,
        /// Bytes the frame has.
        have: usize,
    },
    /// More VLAN tags than [`MAX_VLAN_TAGS`].
    #[error("more than {MAX_VLAN_TAGS} VLAN tags")]
    TooManyVlanTags,
}

/// Finds the network-layer packet in `frame`, captured on a link of type `link_type`.
pub fn network_layer(link_type: u32, frame: &[u8]) -> Result<Network<'_>, LinkError> {
    match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_LINUX_SLL => {
            let ethertype = be16(frame, 14, "Linux cooked (SLL)", SLL_HEADER_LEN)?;
            Ok(by_ethertype(ethertype, rest(frame, SLL_HEADER_LEN)))
        }
        LINKTYPE_LINUX_SLL2 => {
            let ethertype = be16(frame, 0, "Linux cooked v2 (SLL2)", SLL2_HEADER_LEN)?;
            Ok(by_ethertype(ethertype, rest(frame, SLL2_HEADER_LEN)))
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Ok(raw_ip(frame)),
        t if LINKTYPE_RAW_BSD.contains(&t) => Ok(raw_ip(frame)),
        other => Err(LinkError::UnsupportedLinkType(other)),
    }
}

fn ethernet(frame: &[u8]) -> Result<Network<'_>, LinkError> {
    let mut offset = ETHERNET_HEADER_LEN;
    let mut ethertype = be16(frame, 12, "Ethernet", ETHERNET_HEADER_LEN)?;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(LinkError::TooManyVlanTags);
        }
        let end = offset + VLAN_TAG_LEN;
        ethertype = be16(frame, offset + 2, "802.1Q VLAN tag", end)?;
        offset = end;
    }
    Ok(by_ethertype(ethertype, rest(frame, offset)))
}

fn raw_ip(frame: &[u8]) -> Network<'_> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => Network::Ipv4(frame),
        Some(6) => Network::Ipv6(frame),
        other => Network::Other {
            ethertype: u16::from(other.unwrap_or(0)),
        },
    }
}

fn by_ethertype(ethertype: u16, payload: &[u8]) -> Network<'_> {
    match ethertype {
        ETHERTYPE_IPV4 => Network::Ipv4(payload),
        ETHERTYPE_IPV6 => Network::Ipv6(payload),
        other => Network::Other { ethertype: other },
    }
}

/// Reads a big-endian u16 at `at`, requiring the frame to hold `header_len` bytes.
fn be16(frame: &[u8], at: usize, link: &'static str, header_len: usize) -> Result<u16, LinkError> {
    if frame.len() < header_len {
        return Err(LinkError::Truncated {
            link,
            needed: header_len,
            have: frame.len(),
        });
    }
    match frame.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(LinkError::Truncated {
            link,
            needed: at + 2,
            have: frame.len(),
        }),
    }
}

fn rest(frame: &[u8], offset: usize) -> &[u8] {
    frame.get(offset..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_frame_with_vlan_tag_yields_the_ipv4_packet() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 0x45, 0x00]);
        assert_eq!(
            network_layer(LINKTYPE_ETHERNET, &frame),
            Ok(Network::Ipv4(&[0x45, 0x00]))
        );
    }

    #[test]
    fn linux_cooked_captures_yield_the_ip_packet() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(
            network_layer(LINKTYPE_LINUX_SLL, &sll),
            Ok(Network::Ipv6(&[0x60]))
        );

        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.push(0x45);
        assert_eq!(
            network_layer(LINKTYPE_LINUX_SLL2, &sll2),
            Ok(Network::Ipv4(&[0x45]))
        );
    }

    #[test]
    fn raw_ip_is_recognised_by_its_version_nibble() {
        assert_eq!(
            network_layer(LINKTYPE_RAW, &[0x60, 1]),
            Ok(Network::Ipv6(&[0x60, 1]))
        );
        assert_eq!(
            network_layer(LINKTYPE_IPV4, &[0x45]),
            Ok(Network::Ipv4(&[0x45]))
        );
        assert_eq!(
            network_layer(LINKTYPE_RAW, &[0x10]),
            Ok(Network::Other { ethertype: 1 })
        );
    }

    #[test]
    fn short_ethernet_frame_reports_the_missing_bytes() {
        assert_eq!(
            network_layer(LINKTYPE_ETHERNET, &[0; 13]),
            Err(LinkError::Truncated {
                link: "Ethernet",
                needed: 14,
                have: 13
            })
        );
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert!(matches!(
            network_layer(LINKTYPE_ETHERNET, &frame),
            Err(LinkError::Truncated {
                link: "802.1Q VLAN tag",
                ..
            })
        ));
    }

    #[test]
    fn unsupported_link_type_is_named() {
        assert_eq!(
            network_layer(105, &[]),
            Err(LinkError::UnsupportedLinkType(105))
        );
    }
}
