//! What arrives on the IKE ports before it is an IKE message: the non-ESP marker of port 4500,
//! NAT keepalives, and ESP that is not ours (RFC 3948 §2, RFC 7296 §2.23).

/// The four zero octets that precede an IKE message on the NAT-T port (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// A NAT keepalive: one octet 0xFF (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a datagram received on one of our ports is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// An IKE message (the non-ESP marker already removed).
    Ike {
        /// The message.
        message: &'a [u8],
        /// Whether it came over the NAT-T port, with the marker.
        nat_t: bool,
    },
    /// A NAT keepalive; nothing to do.
    NatKeepalive,
    /// ESP in UDP (a non-zero SPI where the marker would be): the kernel's business.
    Esp,
    /// Too short to be anything on the NAT-T port.
    Runt,
}

/// Classifies `bytes` received on `local_port`; `nat_t_port` is the port with the marker.
pub fn classify(local_port: u16, nat_t_port: u16, bytes: &[u8]) -> Inbound<'_> {
    if local_port != nat_t_port {
        return Inbound::Ike {
            message: bytes,
            nat_t: false,
        };
    }
    if bytes == NAT_KEEPALIVE {
        return Inbound::NatKeepalive;
    }
    match bytes.split_first_chunk::<4>() {
        Some((marker, message)) if *marker == NON_ESP_MARKER => Inbound::Ike {
            message,
            nat_t: true,
        },
        Some(_) => Inbound::Esp,
        None => Inbound::Runt,
    }
}

/// The datagram carrying an encoded IKE `message`, with the marker when sent over NAT-T.
pub fn frame(message: Vec<u8>, nat_t: bool) -> Vec<u8> {
    if !nat_t {
        return message;
    }
    let mut out = Vec::with_capacity(NON_ESP_MARKER.len() + message.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(&message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_port_datagrams_are_ike_as_they_are() {
        assert_eq!(
            classify(500, 4500, &[0, 0, 0, 0, 1]),
            Inbound::Ike {
                message: &[0, 0, 0, 0, 1],
                nat_t: false
            }
        );
    }

    #[test]
    fn nat_t_port_strips_the_non_esp_marker() {
        let framed = frame(vec![9, 8, 7], true);
        assert_eq!(framed, vec![0, 0, 0, 0, 9, 8, 7]);
        assert_eq!(
            classify(4500, 4500, &framed),
            Inbound::Ike {
                message: &[9, 8, 7],
                nat_t: true
            }
        );
    }

    #[test]
    fn nat_keepalive_is_recognised() {
        assert_eq!(classify(4500, 4500, &[0xff]), Inbound::NatKeepalive);
    }

    #[test]
    fn esp_on_the_nat_t_port_is_not_ike() {
        assert_eq!(
            classify(4500, 4500, &[0xc0, 1, 2, 3, 0, 0, 0, 1]),
            Inbound::Esp
        );
    }

    #[test]
    fn short_datagram_on_the_nat_t_port_is_a_runt() {
        assert_eq!(classify(4500, 4500, &[0, 0]), Inbound::Runt);
        assert_eq!(classify(4500, 4500, &[]), Inbound::Runt);
    }

    #[test]
    fn framing_without_nat_t_adds_nothing() {
        assert_eq!(frame(vec![1, 2], false), vec![1, 2]);
    }
}
