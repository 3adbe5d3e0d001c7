//! IPv4 and IPv6 headers: addresses, upper-layer protocol, fragment information.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ESP (not sent inside UDP).
pub const IPPROTO_ESP: u8 = 50;

/// The most IPv6 extension headers we walk before giving up on a packet.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DESTINATION_OPTIONS: u8 = 60;
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;

/// Where a fragment's bytes belong in the original datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// The Identification field (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
    /// Offset of this fragment's payload in the original payload, in bytes.
    pub offset: usize,
    /// The More Fragments flag: false on the last fragment.
    pub more: bool,
}

/// A parsed IP packet: its addresses, protocol and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol (for fragments: of the whole datagram).
    pub protocol: u8,
    /// Set when the packet is a fragment of a larger datagram.
    pub fragment: Option<FragmentInfo>,
    /// The payload after all IP headers (a fragment's slice of it, for fragments).
    pub payload: &'a [u8],
    /// Set when the capture's snap length cut the packet: the payload length the header
    /// claims (`payload` then holds only what was captured).
    pub cut_from: Option<usize>,
}

/// Why an IP header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Fewer bytes than the fixed header.
    #[error("{version} header needs {needed} bytes, the packet has {have}")]
    Truncated {
        /// "IPv4" or "IPv6".
        version: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The version nibble does not match the link layer's claim.
    #[error("expected IP version {expected}, the header says {found}")]
    WrongVersion {
        /// The version the link layer announced.
        expected: u8,
        /// The version in the header.
        found: u8,
    },
    /// The IPv4 IHL is below 5 words or beyond the packet.
    #[error("IPv4 header length {ihl_bytes} is invalid for a packet of {have} bytes")]
    BadHeaderLength {
        /// IHL in bytes.
        ihl_bytes: usize,
        /// Bytes present.
        have: usize,
    },
    /// The length field claims more bytes than were captured (or fewer than the header).
    #[error("{version} length field says {claimed} bytes, {have} were captured")]
    BadTotalLength {
        /// "IPv4" or "IPv6".
        version: &'static str,
        /// What the length field says.
        claimed: usize,
        /// Bytes captured.
        have: usize,
    },
    /// An IPv6 jumbogram (payload length 0 with a Jumbo option), which we do not read.
    #[error("IPv6 jumbograms are not supported")]
    Jumbogram,
    /// An IPv6 extension header runs past the packet.
    #[error("IPv6 extension header {header} at offset {offset} runs past the packet")]
    TruncatedExtensionHeader {
        /// The extension header's type.
        header: u8,
        /// Where it starts.
        offset: usize,
    },
    /// More IPv6 extension headers than [`MAX_IPV6_EXTENSION_HEADERS`].
    #[error("more than {MAX_IPV6_EXTENSION_HEADERS} IPv6 extension headers")]
    TooManyExtensionHeaders,
}

/// Parses an IPv4 packet (RFC 791), trimming link-layer padding by the Total Length.
pub fn parse_ipv4(bytes: &[u8]) -> Result<IpPacket<'_>, IpError> {
    parse_ipv4_inner(bytes, false)
}

/// Like [`parse_ipv4`], for a frame the capture's snap length cut: a Total Length beyond the
/// captured bytes gives the captured part, with [`IpPacket::cut_from`] set.
pub fn parse_ipv4_cut(bytes: &[u8]) -> Result<IpPacket<'_>, IpError> {
    parse_ipv4_inner(bytes, true)
}

fn parse_ipv4_inner(bytes: &[u8], allow_cut: bool) -> Result<IpPacket<'_>, IpError> {
    let header: &[u8; IPV4_MIN_HEADER_LEN] = bytes
        .get(..IPV4_MIN_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(IpError::Truncated {
            version: "IPv4",
            needed: IPV4_MIN_HEADER_LEN,
            have: bytes.len(),
        })?;

    let version = header[0] >> 4;
    if version != 4 {
        return Err(IpError::WrongVersion {
            expected: 4,
            found: version,
        });
    }
    let ihl_bytes = usize::from(header[0] & 0x0f) * 4;
    if ihl_bytes < IPV4_MIN_HEADER_LEN || ihl_bytes > bytes.len() {
        return Err(IpError::BadHeaderLength {
            ihl_bytes,
            have: bytes.len(),
        });
    }
    let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let too_long = IpError::BadTotalLength {
        version: "IPv4",
        claimed: total,
        have: bytes.len(),
    };
    let (payload, cut_from) = match bytes.get(ihl_bytes..total) {
        Some(p) => (p, None),
        None if allow_cut && total > bytes.len() => (
            bytes.get(ihl_bytes..).unwrap_or_default(),
            Some(total - ihl_bytes),
        ),
        None => return Err(too_long),
    };

    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    let more = flags_offset & 0x2000 != 0;
    let offset = usize::from(flags_offset & 0x1fff) * 8;
    let fragment = (more || offset != 0).then_some(FragmentInfo {
        id: u32::from(u16::from_be_bytes([header[4], header[5]])),
        offset,
        more,
    });

    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(
            header[12], header[13], header[14], header[15],
        )),
        dst: IpAddr::V4(Ipv4Addr::new(
            header[16], header[17], header[18], header[19],
        )),
        protocol: header[9],
        fragment,
        payload,
        cut_from,
    })
}

/// Parses an IPv6 packet (RFC 8200), walking hop-by-hop, routing, destination-options and
/// fragment headers to the upper-layer protocol.
pub fn parse_ipv6(bytes: &[u8]) -> Result<IpPacket<'_>, IpError> {
    parse_ipv6_inner(bytes, false)
}

/// Like [`parse_ipv6`], for a frame the capture's snap length cut (see [`parse_ipv4_cut`]).
pub fn parse_ipv6_cut(bytes: &[u8]) -> Result<IpPacket<'_>, IpError> {
    parse_ipv6_inner(bytes, true)
}

fn parse_ipv6_inner(bytes: &[u8], allow_cut: bool) -> Result<IpPacket<'_>, IpError> {
    let header: &[u8; IPV6_HEADER_LEN] = bytes
        .get(..IPV6_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(IpError::Truncated {
            version: "IPv6",
            needed: IPV6_HEADER_LEN,
            have: bytes.len(),
        })?;

    let version = header[0] >> 4;
    if version != 6 {
        return Err(IpError::WrongVersion {
            expected: 6,
            found: version,
        });
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if payload_len == 0 {
        return Err(IpError::Jumbogram);
    }
    let claimed = IPV6_HEADER_LEN + payload_len;
    let (packet, cut_from) = match bytes.get(..claimed) {
        Some(p) => (p, None),
        None if allow_cut => (bytes, Some(claimed)),
        None => {
            return Err(IpError::BadTotalLength {
                version: "IPv6",
                claimed,
                have: bytes.len(),
            })
        }
    };

    let mut src = [0u8; 16];
    src.copy_from_slice(&header[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&header[24..40]);

    let mut next = header[6];
    let mut offset = IPV6_HEADER_LEN;
    let mut fragment = None;
    let mut walked = 0;
    loop {
        let ext_len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DESTINATION_OPTIONS => {
                let len_byte = packet
                    .get(offset + 1)
                    .ok_or(IpError::TruncatedExtensionHeader {
                        header: next,
                        offset,
                    })?;
                (usize::from(*len_byte) + 1) * 8
            }
            IPV6_FRAGMENT => IPV6_FRAGMENT_HEADER_LEN,
            _ => break,
        };
        walked += 1;
        if walked > MAX_IPV6_EXTENSION_HEADERS {
            return Err(IpError::TooManyExtensionHeaders);
        }
        let ext =
            packet
                .get(offset..offset + ext_len)
                .ok_or(IpError::TruncatedExtensionHeader {
                    header: next,
                    offset,
                })?;
        if next == IPV6_FRAGMENT {
            if let [nh, _, hi, lo, a, b, c, d] = *ext {
                let field = u16::from_be_bytes([hi, lo]);
                fragment = Some(FragmentInfo {
                    id: u32::from_be_bytes([a, b, c, d]),
                    offset: usize::from(field >> 3) * 8,
                    more: field & 1 != 0,
                });
                next = nh;
            }
            offset += ext_len;
            // Limitation: extension headers after the Fragment header are only walked in
            // unfragmented packets; a reassembled datagram's protocol is the Fragment
            // header's Next Header.
            break;
        }
        next = ext.first().copied().unwrap_or_default();
        offset += ext_len;
    }

    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: next,
        fragment,
        payload: packet.get(offset..).unwrap_or_default(),
        // The claimed length of what follows the headers walked.
        cut_from: cut_from.map(|c| c.saturating_sub(offset)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(flags_offset: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv4_packet_cut_by_the_snap_length_keeps_the_captured_part() {
        let mut p = ipv4(0, &[1, 2, 3, 4]);
        p.truncate(22);
        assert!(parse_ipv4(&p).is_err());
        let packet = parse_ipv4_cut(&p).unwrap();
        assert_eq!(packet.payload, &[1, 2]);
        assert_eq!(packet.cut_from, Some(4));
    }

    #[test]
    fn ipv4_packet_is_trimmed_to_its_total_length() {
        let mut p = ipv4(0x4000, &[1, 2, 3]);
        p.extend_from_slice(&[0, 0, 0]); // Ethernet padding
        let packet = parse_ipv4(&p).unwrap();
        assert_eq!(packet.payload, &[1, 2, 3]);
        assert_eq!(packet.protocol, IPPROTO_UDP);
        assert_eq!(packet.fragment, None);
        assert_eq!(packet.src.to_string(), "10.0.0.1");
    }

    #[test]
    fn ipv4_fragment_reports_id_offset_and_more_flag() {
        let bytes = ipv4(0x2000 | 185, &[0; 8]);
        let packet = parse_ipv4(&bytes).unwrap();
        assert_eq!(
            packet.fragment,
            Some(FragmentInfo {
                id: 0x1234,
                offset: 1480,
                more: true
            })
        );
        let bytes = ipv4(185, &[0; 8]);
        let last = parse_ipv4(&bytes).unwrap();
        assert_eq!(
            last.fragment,
            Some(FragmentInfo {
                id: 0x1234,
                offset: 1480,
                more: false
            })
        );
    }

    #[test]
    fn ipv4_total_length_beyond_the_capture_is_an_error() {
        let mut p = ipv4(0, &[1, 2, 3]);
        p.truncate(21);
        assert_eq!(
            parse_ipv4(&p),
            Err(IpError::BadTotalLength {
                version: "IPv4",
                claimed: 23,
                have: 21
            })
        );
        assert!(matches!(
            parse_ipv4(&[0x45; 10]),
            Err(IpError::Truncated { .. })
        ));
        let mut bad_ihl = ipv4(0, &[]);
        bad_ihl[0] = 0x44;
        assert!(matches!(
            parse_ipv4(&bad_ihl),
            Err(IpError::BadHeaderLength { .. })
        ));
    }

    fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        p.push(next);
        p.push(64);
        p.extend_from_slice(&[0xfd; 16]);
        p.extend_from_slice(&[0xfe; 16]);
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn ipv6_walks_extension_headers_to_udp() {
        let mut rest = vec![IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]; // destination options, 8 bytes
        rest.extend_from_slice(&[9, 9]);
        let bytes = ipv6(IPV6_DESTINATION_OPTIONS, &rest);
        let packet = parse_ipv6(&bytes).unwrap();
        assert_eq!(packet.protocol, IPPROTO_UDP);
        assert_eq!(packet.payload, &[9, 9]);
        assert_eq!(packet.fragment, None);
    }

    #[test]
    fn ipv6_fragment_header_gives_fragment_info() {
        let mut rest = vec![IPPROTO_UDP, 0, 0x00, 0xb9, 0xde, 0xad, 0xbe, 0xef];
        rest.extend_from_slice(&[7; 8]);
        let bytes = ipv6(IPV6_FRAGMENT, &rest);
        let packet = parse_ipv6(&bytes).unwrap();
        assert_eq!(packet.protocol, IPPROTO_UDP);
        assert_eq!(
            packet.fragment,
            Some(FragmentInfo {
                id: 0xdeadbeef,
                offset: 184,
                more: true
            })
        );
        assert_eq!(packet.payload, &[7; 8]);
    }

    #[test]
    fn ipv6_truncated_extension_header_is_an_error() {
        let rest = vec![IPPROTO_UDP, 1, 0, 0];
        assert_eq!(
            parse_ipv6(&ipv6(IPV6_HOP_BY_HOP, &rest)),
            Err(IpError::TruncatedExtensionHeader {
                header: IPV6_HOP_BY_HOP,
                offset: 40
            })
        );
    }
}
