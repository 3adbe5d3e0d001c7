//! From captured frames to IKE datagrams: link layer, IP (with fragment reassembly), UDP and
//! the port-4500 non-ESP marker, in frame order.

use std::net::SocketAddr;
use std::time::Duration;

use crate::capture::Frame;
use crate::ip::{
    parse_ipv4, parse_ipv4_cut, parse_ipv6, parse_ipv6_cut, IpPacket, IPPROTO_ESP, IPPROTO_UDP,
};
use crate::link::{network_layer, Network};
use crate::reassembly::{DatagramKey, FragmentOutcome, Incomplete, IncompleteReason, Reassembler};
use crate::udp::{classify, parse_udp, parse_udp_cut, IkeTransport};

/// An IKE message found in the capture, with where and when it travelled.
#[derive(Debug, Clone)]
pub struct IkeDatagram {
    /// The frame that completed it (the last fragment, for IP-fragmented messages).
    pub frame: u64,
    /// Every frame it came in (more than one when IP-fragmented), in arrival order.
    pub frames: Vec<u64>,
    /// Capture time of `frame`.
    pub timestamp: Option<Duration>,
    /// Sender's address and port.
    pub src: SocketAddr,
    /// Receiver's address and port.
    pub dst: SocketAddr,
    /// True for port 4500 behind the non-ESP marker.
    pub nat_t: bool,
    /// The IKE message, from the IKE header on (only its captured part when cut).
    pub message: Vec<u8>,
    /// Set when the capture's snap length cut the message: its length on the wire.
    pub cut_from: Option<usize>,
}

/// Everything of interest the capture holds, in frame order.
#[derive(Debug, Clone)]
pub enum CaptureEvent {
    /// An IKE message.
    Ike(IkeDatagram),
    /// UDP-encapsulated ESP (port 4500 without the marker) or plain ESP: listed, not decoded.
    Esp {
        /// The frame.
        frame: u64,
        /// Its time.
        timestamp: Option<Duration>,
        /// Sender (port 0 for plain ESP).
        src: SocketAddr,
        /// Receiver (port 0 for plain ESP).
        dst: SocketAddr,
        /// SPI, when the packet is long enough to have one.
        spi: Option<u32>,
        /// Sequence number, when present.
        sequence: Option<u32>,
        /// Bytes of ESP.
        len: usize,
    },
    /// A NAT-keepalive on port 4500.
    NatKeepalive {
        /// The frame.
        frame: u64,
        /// Its time.
        timestamp: Option<Duration>,
        /// Sender.
        src: SocketAddr,
        /// Receiver.
        dst: SocketAddr,
    },
    /// A frame that could not be read down to UDP (or an IKE-port datagram that could not).
    Malformed {
        /// The frame.
        frame: u64,
        /// Its time.
        timestamp: Option<Duration>,
        /// Which layer failed and why.
        error: String,
    },
    /// An IP datagram dropped during reassembly (conflicting or excess fragments).
    FragmentsDropped {
        /// The frame that caused the drop.
        frame: u64,
        /// The frames of the dropped datagram.
        frames: Vec<u64>,
        /// Which datagram.
        key: DatagramKey,
        /// Why.
        error: String,
    },
    /// An IP datagram whose fragments never all arrived.
    FragmentsIncomplete {
        /// The frames of the fragments held.
        frames: Vec<u64>,
        /// Which datagram.
        key: DatagramKey,
        /// Bytes held.
        received: usize,
        /// The datagram's length, when known.
        total: Option<usize>,
        /// True when evicted to stay within the in-flight limit, false at end of capture.
        evicted: bool,
    },
}

impl CaptureEvent {
    /// The frame the event is reported at, for ordering.
    pub fn frame(&self) -> u64 {
        match self {
            CaptureEvent::Ike(d) => d.frame,
            CaptureEvent::Esp { frame, .. }
            | CaptureEvent::NatKeepalive { frame, .. }
            | CaptureEvent::Malformed { frame, .. }
            | CaptureEvent::FragmentsDropped { frame, .. } => *frame,
            CaptureEvent::FragmentsIncomplete { frames, .. } => {
                frames.iter().copied().max().unwrap_or(0)
            }
        }
    }
}

/// Counts of what the frames were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameCounts {
    /// Frames read.
    pub frames: u64,
    /// Frames that were not IP, not UDP/ESP, or UDP on other ports.
    pub unrelated: u64,
    /// IP fragments held for reassembly (counted once each).
    pub fragments: u64,
}

/// Walks the frames and returns the IKE-related events in frame order, plus counts.
pub fn extract(frames: &[Frame]) -> (Vec<CaptureEvent>, FrameCounts) {
    let mut events = Vec::new();
    let mut counts = FrameCounts::default();
    let mut reassembler = Reassembler::new();

    for frame in frames {
        counts.frames += 1;
        let malformed = |error: String| CaptureEvent::Malformed {
            frame: frame.number,
            timestamp: frame.timestamp,
            error: with_snap_note(error, frame),
        };

        let network = match network_layer(frame.link_type, &frame.data) {
            Ok(n) => n,
            Err(e) => {
                events.push(malformed(format!("link layer: {e}")));
                continue;
            }
        };
        // A frame the snap length cut is read as far as it goes, so that at least the IKE
        // header of a cut message shows.
        let cut = usize::try_from(frame.original_len).is_ok_and(|o| o > frame.data.len());
        let parsed = match network {
            Network::Ipv4(bytes) if cut => parse_ipv4_cut(bytes).map_err(|e| e.to_string()),
            Network::Ipv6(bytes) if cut => parse_ipv6_cut(bytes).map_err(|e| e.to_string()),
            Network::Ipv4(bytes) => parse_ipv4(bytes).map_err(|e| e.to_string()),
            Network::Ipv6(bytes) => parse_ipv6(bytes).map_err(|e| e.to_string()),
            Network::Other { .. } => {
                counts.unrelated += 1;
                continue;
            }
        };
        let packet = match parsed {
            Ok(p) => p,
            Err(e) => {
                events.push(malformed(e));
                continue;
            }
        };
        // Limitation: IKE over TCP (RFC 9329) is not decoded; such frames count as unrelated.
        if packet.protocol != IPPROTO_UDP && packet.protocol != IPPROTO_ESP {
            counts.unrelated += 1;
            continue;
        }

        // RFC 6946: an IPv6 "atomic fragment" (offset 0, no more) is a whole packet.
        let fragment = packet.fragment.filter(|f| f.offset != 0 || f.more);
        let Some(fragment) = fragment else {
            transport(
                &packet,
                packet.payload,
                frame,
                vec![frame.number],
                &mut events,
                &mut counts,
            );
            continue;
        };

        counts.fragments += 1;
        if packet.cut_from.is_some() {
            events.push(malformed(format!(
                "IP fragment (id {}, offset {}) cut by the snap length: not reassembled",
                fragment.id, fragment.offset
            )));
            continue;
        }
        let key = DatagramKey {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            id: fragment.id,
        };
        let outcome = reassembler.add(key, fragment, packet.payload, frame.number);
        for gone in reassembler.take_evicted() {
            events.push(incomplete_event(gone));
        }
        match outcome {
            FragmentOutcome::Incomplete | FragmentOutcome::Duplicate => {}
            FragmentOutcome::Complete(done) => {
                transport(
                    &packet,
                    &done.payload,
                    frame,
                    done.frames,
                    &mut events,
                    &mut counts,
                );
            }
            FragmentOutcome::Dropped { key, frames, error } => {
                events.push(CaptureEvent::FragmentsDropped {
                    frame: frame.number,
                    frames,
                    key,
                    error: error.to_string(),
                });
            }
        }
    }

    for left in reassembler.finish() {
        events.push(incomplete_event(left));
    }
    events.sort_by_key(CaptureEvent::frame);
    (events, counts)
}

/// Adds a note when the capture's snap length cut the frame, the usual reason for lengths
/// that run past the captured bytes.
fn with_snap_note(error: String, frame: &Frame) -> String {
    let captured = frame.data.len();
    match usize::try_from(frame.original_len) {
        Ok(original) if original > captured => {
            format!("{error} (the snap length kept {captured} of {original} bytes)")
        }
        _ => error,
    }
}

fn incomplete_event(i: Incomplete) -> CaptureEvent {
    CaptureEvent::FragmentsIncomplete {
        frames: i.frames,
        key: i.key,
        received: i.received,
        total: i.total,
        evicted: i.reason == IncompleteReason::Evicted,
    }
}

/// Handles a whole (possibly reassembled) UDP or ESP payload.
fn transport(
    packet: &IpPacket<'_>,
    payload: &[u8],
    frame: &Frame,
    frames: Vec<u64>,
    events: &mut Vec<CaptureEvent>,
    counts: &mut FrameCounts,
) {
    if packet.protocol == IPPROTO_ESP {
        let spi = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        let sequence = payload
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        events.push(CaptureEvent::Esp {
            frame: frame.number,
            timestamp: frame.timestamp,
            src: SocketAddr::new(packet.src, 0),
            dst: SocketAddr::new(packet.dst, 0),
            spi,
            sequence,
            len: payload.len(),
        });
        return;
    }

    let parsed = if packet.cut_from.is_some() {
        parse_udp_cut(payload)
    } else {
        parse_udp(payload)
    };
    let udp = match parsed {
        Ok(u) => u,
        Err(e) => {
            events.push(CaptureEvent::Malformed {
                frame: frame.number,
                timestamp: frame.timestamp,
                error: with_snap_note(format!("UDP: {e}"), frame),
            });
            return;
        }
    };
    let src = SocketAddr::new(packet.src, udp.src_port);
    let dst = SocketAddr::new(packet.dst, udp.dst_port);
    match classify(&udp) {
        IkeTransport::Ike { nat_t, message } => events.push(CaptureEvent::Ike(IkeDatagram {
            frame: frame.number,
            frames,
            timestamp: frame.timestamp,
            src,
            dst,
            nat_t,
            message: message.to_vec(),
            // The non-ESP marker is not part of the IKE message.
            cut_from: udp
                .cut_from
                .map(|c| if nat_t { c.saturating_sub(4) } else { c }),
        })),
        IkeTransport::Esp { spi, sequence, len } => events.push(CaptureEvent::Esp {
            frame: frame.number,
            timestamp: frame.timestamp,
            src,
            dst,
            spi: Some(spi),
            sequence,
            len,
        }),
        IkeTransport::NatKeepalive => events.push(CaptureEvent::NatKeepalive {
            frame: frame.number,
            timestamp: frame.timestamp,
            src,
            dst,
        }),
        IkeTransport::Runt { len } => events.push(CaptureEvent::Malformed {
            frame: frame.number,
            timestamp: frame.timestamp,
            error: format!("UDP port 4500 datagram of {len} bytes is neither IKE nor ESP"),
        }),
        IkeTransport::NotIke => counts.unrelated += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::parse_capture;

    const FIXTURE: &[u8] = include_bytes!(
        "../../../ikev2/tests/fixtures/strongswan-5.9.8/transport-two-children.pcap"
    );

    #[test]
    fn fixture_yields_six_ike_messages_with_the_fragmented_one_reassembled() {
        let capture = parse_capture(FIXTURE).unwrap();
        assert!(capture.problem.is_none());
        let (events, counts) = extract(&capture.frames);
        assert_eq!(counts.frames, capture.frames.len() as u64);
        let ike: Vec<&IkeDatagram> = events
            .iter()
            .filter_map(|e| match e {
                CaptureEvent::Ike(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(ike.len(), 6, "{events:#?}");
        assert!(!ike[0].nat_t && !ike[1].nat_t);
        assert!(ike[2..].iter().all(|d| d.nat_t));
        assert_eq!(
            ike[2].frames.len(),
            2,
            "IKE_AUTH request came in two IP fragments"
        );
        assert_eq!(ike[0].src.to_string(), "10.99.0.1:500");
        assert_eq!(ike[2].dst.port(), 4500);
    }
}
