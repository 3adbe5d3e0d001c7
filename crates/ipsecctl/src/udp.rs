//! UDP, and how IKE travels in it: port 500, and port 4500 behind the non-ESP marker
//! (RFC 3948 §2.2, RFC 7296 §2.23).

/// The IKE port.
pub const IKE_PORT: u16 = 500;
/// The NAT-traversal port, shared by IKE (after the non-ESP marker) and UDP-encapsulated ESP.
pub const NAT_T_PORT: u16 = 4500;
/// The non-ESP marker: four zero octets where an ESP packet has its (never zero) SPI.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

const UDP_HEADER_LEN: usize = 8;

/// A parsed UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload, trimmed to the UDP Length field.
    pub payload: &'a [u8],
    /// Set when the capture's snap length cut the datagram: the payload length the UDP
    /// Length field claims (`payload` then holds only what was captured).
    pub cut_from: Option<usize>,
}

/// Why a UDP header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    /// Fewer than 8 bytes.
    #[error("UDP header needs 8 bytes, the datagram has {have}")]
    Truncated {
        /// Bytes present.
        have: usize,
    },
    /// The Length field is below 8 or beyond the bytes present.
    #[error("UDP length field says {claimed} bytes, {have} are present")]
    BadLength {
        /// The Length field.
        claimed: usize,
        /// Bytes present.
        have: usize,
    },
}

/// Parses a UDP header (RFC 768). The checksum is not verified: captures taken on the
/// sending host often carry checksums the NIC fills in later.
pub fn parse_udp(bytes: &[u8]) -> Result<UdpDatagram<'_>, UdpError> {
    parse_udp_inner(bytes, false)
}

/// Like [`parse_udp`], for a datagram the capture's snap length cut: a Length beyond the
/// captured bytes gives the captured part, with [`UdpDatagram::cut_from`] set.
pub fn parse_udp_cut(bytes: &[u8]) -> Result<UdpDatagram<'_>, UdpError> {
    parse_udp_inner(bytes, true)
}

fn parse_udp_inner(bytes: &[u8], allow_cut: bool) -> Result<UdpDatagram<'_>, UdpError> {
    let Some(&[sp0, sp1, dp0, dp1, l0, l1, _, _]) = bytes.get(..UDP_HEADER_LEN) else {
        return Err(UdpError::Truncated { have: bytes.len() });
    };
    let claimed = usize::from(u16::from_be_bytes([l0, l1]));
    if claimed < UDP_HEADER_LEN {
        return Err(UdpError::BadLength {
            claimed,
            have: bytes.len(),
        });
    }
    let (payload, cut_from) = match bytes.get(UDP_HEADER_LEN..claimed) {
        Some(p) => (p, None),
        None if allow_cut => (
            bytes.get(UDP_HEADER_LEN..).unwrap_or_default(),
            Some(claimed - UDP_HEADER_LEN),
        ),
        None => {
            return Err(UdpError::BadLength {
                claimed,
                have: bytes.len(),
            })
        }
    };
    Ok(UdpDatagram {
        src_port: u16::from_be_bytes([sp0, sp1]),
        dst_port: u16::from_be_bytes([dp0, dp1]),
        payload,
        cut_from,
    })
}

/// What a UDP datagram carries, as far as IKE is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeTransport<'a> {
    /// An IKE message (the marker, if any, already removed).
    Ike {
        /// True when it came over port 4500 behind the non-ESP marker.
        nat_t: bool,
        /// The IKE message bytes, starting with the IKE header.
        message: &'a [u8],
    },
    /// UDP-encapsulated ESP on port 4500 (RFC 3948): listed, not decoded.
    Esp {
        /// The ESP SPI.
        spi: u32,
        /// The ESP sequence number, when present.
        sequence: Option<u32>,
        /// Bytes of ESP.
        len: usize,
    },
    /// A NAT-keepalive: one 0xFF octet (RFC 3948 §2.3).
    NatKeepalive,
    /// A port-4500 datagram too short to be either (fewer than 4 octets).
    Runt {
        /// Its length.
        len: usize,
    },
    /// Neither port is 500 or 4500.
    NotIke,
}

/// Sorts a UDP datagram into IKE, ESP-in-UDP, keepalive or unrelated traffic.
pub fn classify<'a>(datagram: &UdpDatagram<'a>) -> IkeTransport<'a> {
    let ports = [datagram.src_port, datagram.dst_port];
    let payload = datagram.payload;
    if ports.contains(&NAT_T_PORT) {
        if payload == [0xff] {
            return IkeTransport::NatKeepalive;
        }
        return match payload {
            [0, 0, 0, 0, message @ ..] => IkeTransport::Ike {
                nat_t: true,
                message,
            },
            [a, b, c, d, rest @ ..] => IkeTransport::Esp {
                spi: u32::from_be_bytes([*a, *b, *c, *d]),
                sequence: match rest {
                    [e, f, g, h, ..] => Some(u32::from_be_bytes([*e, *f, *g, *h])),
                    _ => None,
                },
                len: payload.len(),
            },
            _ => IkeTransport::Runt { len: payload.len() },
        };
    }
    if ports.contains(&IKE_PORT) {
        return IkeTransport::Ike {
            nat_t: false,
            message: payload,
        };
    }
    IkeTransport::NotIke
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&src.to_be_bytes());
        d.extend_from_slice(&dst.to_be_bytes());
        d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn port_500_carries_ike_directly() {
        let bytes = udp(500, 500, &[1, 2, 3]);
        let d = parse_udp(&bytes).unwrap();
        assert_eq!(
            classify(&d),
            IkeTransport::Ike {
                nat_t: false,
                message: &[1, 2, 3]
            }
        );
    }

    #[test]
    fn port_4500_with_marker_is_ike_and_without_is_esp() {
        let bytes = udp(4500, 4500, &[0, 0, 0, 0, 9, 9]);
        let d = parse_udp(&bytes).unwrap();
        assert_eq!(
            classify(&d),
            IkeTransport::Ike {
                nat_t: true,
                message: &[9, 9]
            }
        );

        let bytes = udp(4500, 4500, &[0xc1, 0, 0, 2, 0, 0, 0, 7, 0xaa]);
        let d = parse_udp(&bytes).unwrap();
        assert_eq!(
            classify(&d),
            IkeTransport::Esp {
                spi: 0xc100_0002,
                sequence: Some(7),
                len: 9
            }
        );

        let bytes = udp(4500, 4500, &[0xff]);
        assert_eq!(
            classify(&parse_udp(&bytes).unwrap()),
            IkeTransport::NatKeepalive
        );
    }

    #[test]
    fn other_ports_are_not_ike() {
        let bytes = udp(6081, 6081, &[0; 8]);
        assert_eq!(classify(&parse_udp(&bytes).unwrap()), IkeTransport::NotIke);
    }

    #[test]
    fn udp_length_beyond_the_bytes_is_an_error() {
        let mut bytes = udp(500, 500, &[1, 2, 3]);
        bytes.truncate(9);
        assert_eq!(
            parse_udp(&bytes),
            Err(UdpError::BadLength {
                claimed: 11,
                have: 9
            })
        );
        assert_eq!(parse_udp(&[0; 5]), Err(UdpError::Truncated { have: 5 }));
    }
}
