//! Netlink framing for XFRM: splitting a datagram into messages, decoding acks and errors
//! (with the kernel's extended-ack text), and encoding requests.
//!
//! The message parsers of `netlink-packet-xfrm` 0.5 slice their fixed header
//! (`&buf[..size_of::<…>()]`) before checking the length, so a short payload would panic.
//! Every payload therefore passes a minimum-length check here before it reaches them; this is
//! the only entry point the crate (and the fuzz target) uses for bytes from the kernel.

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_xfrm::{constants::*, XfrmMessage};

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDR_LEN: usize = 16;
/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an ack (errno 0) or an error.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub const NLMSG_OVERRUN: u16 = 4;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`: part of a multi-part (dump) reply.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`: ask for an ack even on success.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_ACK_TLVS` on an error message: extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLM_F_CAPPED` on an error message: the echoed request was cut to its header.
pub const NLM_F_CAPPED: u16 = 0x100;

/// `NLMSGERR_ATTR_MSG`: the human-readable extended-ack string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Longest extended-ack text we keep.
const MAX_EXT_ACK_MSG: usize = 256;

/// Why bytes from the kernel could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes remain than a netlink header needs.
    #[error("truncated netlink header at offset {offset}: {remaining} bytes left")]
    TruncatedHeader {
        /// Offset of the message in the datagram.
        offset: usize,
        /// Bytes left from there.
        remaining: usize,
    },
    /// The header's length field is below the header size or beyond the datagram.
    #[error("netlink length {length} at offset {offset} invalid ({remaining} bytes left)")]
    BadLength {
        /// Offset of the message in the datagram.
        offset: usize,
        /// The length field.
        length: u32,
        /// Bytes left from there.
        remaining: usize,
    },
    /// A payload is shorter than the fixed structure its message type begins with.
    #[error("message type {message_type}: payload of {got} bytes, need at least {need}")]
    ShortPayload {
        /// The netlink message type.
        message_type: u16,
        /// Minimum length.
        need: usize,
        /// Length found.
        got: usize,
    },
    /// The payload's attributes or fields are malformed.
    #[error("message type {message_type}: {reason}")]
    Payload {
        /// The netlink message type.
        message_type: u16,
        /// What the parser reported.
        reason: String,
    },
}

/// One netlink message inside a datagram, not yet decoded.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// `nlmsg_type`.
    pub message_type: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid`: for notifications, the port of the socket whose request caused them.
    pub pid: u32,
    /// Everything after the header, up to `nlmsg_len`.
    pub payload: &'a [u8],
}

/// Splits a datagram into netlink messages, checking every length.
pub fn frames(datagram: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, DecodeError>> {
    let mut offset = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= datagram.len() {
            return None;
        }
        let rest = datagram.get(offset..)?;
        let result = split_one(rest, offset);
        match &result {
            Ok((_, advance)) => offset = offset.saturating_add(*advance),
            Err(_) => failed = true,
        }
        Some(result.map(|(frame, _)| frame))
    })
}

fn split_one(rest: &[u8], offset: usize) -> Result<(Frame<'_>, usize), DecodeError> {
    let header = rest
        .get(..NLMSG_HDR_LEN)
        .ok_or(DecodeError::TruncatedHeader {
            offset,
            remaining: rest.len(),
        })?;
    let length = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
    let len = length as usize;
    if len < NLMSG_HDR_LEN || len > rest.len() {
        return Err(DecodeError::BadLength {
            offset,
            length,
            remaining: rest.len(),
        });
    }
    let frame = Frame {
        message_type: u16::from_ne_bytes([header[4], header[5]]),
        flags: u16::from_ne_bytes([header[6], header[7]]),
        seq: u32::from_ne_bytes([header[8], header[9], header[10], header[11]]),
        pid: u32::from_ne_bytes([header[12], header[13], header[14], header[15]]),
        payload: rest.get(NLMSG_HDR_LEN..len).unwrap_or_default(),
    };
    // NLMSG_ALIGN: messages start on 4-byte boundaries; the last one may lack the padding.
    let advance = len.checked_add(3).map_or(len, |l| l & !3).min(rest.len());
    Ok((frame, advance))
}

/// A decoded `NLMSG_ERROR`: errno 0 is an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Positive errno, or 0 for success.
    pub errno: i32,
    /// Sequence number of the request this answers (from the echoed header).
    pub request_seq: u32,
    /// The extended-ack text (`NLMSGERR_ATTR_MSG`), when the kernel gave one.
    pub message: Option<String>,
}

/// Decodes the payload of an `NLMSG_ERROR` frame.
pub fn decode_ack(frame: &Frame<'_>) -> Result<Ack, DecodeError> {
    let p = frame.payload;
    let short = || DecodeError::ShortPayload {
        message_type: NLMSG_ERROR,
        need: 4 + NLMSG_HDR_LEN,
        got: p.len(),
    };
    let code = p.get(..4).ok_or_else(short)?;
    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
    let echoed = p.get(4..4 + NLMSG_HDR_LEN).ok_or_else(short)?;
    let echoed_len = u32::from_ne_bytes([echoed[0], echoed[1], echoed[2], echoed[3]]) as usize;
    let request_seq = u32::from_ne_bytes([echoed[8], echoed[9], echoed[10], echoed[11]]);

    // The echoed request is either just its header (NETLINK_CAP_ACK, or any ack of success)
    // or the whole request; the extended-ack attributes follow it.
    let echoed_total = if frame.flags & NLM_F_CAPPED != 0 || code == 0 {
        NLMSG_HDR_LEN
    } else {
        echoed_len.max(NLMSG_HDR_LEN)
    };
    let mut message = None;
    if frame.flags & NLM_F_ACK_TLVS != 0 {
        let tlv_start = 4usize.saturating_add(echoed_total.saturating_add(3) & !3);
        if let Some(tlvs) = p.get(tlv_start..) {
            message = find_ext_ack_message(tlvs);
        }
    }
    Ok(Ack {
        errno: code.checked_neg().unwrap_or(i32::MAX).max(0),
        request_seq,
        message,
    })
}

fn find_ext_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = tlvs.get(4..len)?;
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            let text = text
                .get(..text.len().min(MAX_EXT_ACK_MSG))
                .unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        let advance = (len + 3) & !3;
        tlvs = tlvs.get(advance..).unwrap_or_default();
    }
    None
}

/// The fixed structure each XFRM message type begins with, in bytes.
fn min_payload_len(message_type: u16) -> usize {
    match message_type {
        XFRM_MSG_NEWSA | XFRM_MSG_UPDSA => 224,
        XFRM_MSG_DELSA | XFRM_MSG_GETSA => 24,
        XFRM_MSG_NEWPOLICY | XFRM_MSG_UPDPOLICY => 168,
        XFRM_MSG_DELPOLICY | XFRM_MSG_GETPOLICY | XFRM_MSG_MIGRATE => 64,
        XFRM_MSG_ALLOCSPI | XFRM_MSG_EXPIRE => 232,
        XFRM_MSG_ACQUIRE => 280,
        XFRM_MSG_POLEXPIRE => 176,
        XFRM_MSG_FLUSHSA => 1,
        XFRM_MSG_NEWAE | XFRM_MSG_GETAE => 48,
        XFRM_MSG_REPORT => 60,
        XFRM_MSG_MAPPING => 64,
        XFRM_MSG_NEWSADINFO | XFRM_MSG_GETSADINFO | XFRM_MSG_NEWSPDINFO | XFRM_MSG_GETSPDINFO => 4,
        XFRM_MSG_SETDEFAULT | XFRM_MSG_GETDEFAULT => 3,
        _ => 0,
    }
}

/// Decodes an XFRM message payload of the given type without panicking on any input.
pub fn decode_xfrm(message_type: u16, payload: &[u8]) -> Result<XfrmMessage, DecodeError> {
    let need = min_payload_len(message_type);
    if payload.len() < need {
        return Err(DecodeError::ShortPayload {
            message_type,
            need,
            got: payload.len(),
        });
    }
    XfrmMessage::parse_with_param(payload, message_type).map_err(|e| DecodeError::Payload {
        message_type,
        reason: e.to_string(),
    })
}

/// A fully decoded message from the kernel.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An ack or error for one of our requests.
    Ack(Ack),
    /// End of a dump.
    Done,
    /// An XFRM message (dump entry, reply or notification).
    Xfrm(Box<XfrmMessage>),
    /// `NLMSG_NOOP`, `NLMSG_OVERRUN` or an unknown control type.
    Control(u16),
}

/// Decodes one frame.
pub fn decode_frame(frame: &Frame<'_>) -> Result<Reply, DecodeError> {
    match frame.message_type {
        NLMSG_ERROR => decode_ack(frame).map(Reply::Ack),
        NLMSG_DONE => Ok(Reply::Done),
        t if t < XFRM_MSG_BASE => Ok(Reply::Control(t)),
        t => decode_xfrm(t, frame.payload).map(|m| Reply::Xfrm(Box::new(m))),
    }
}

/// Decodes every message of a datagram: what the fuzz target drives.
pub fn decode_datagram(datagram: &[u8]) -> Result<Vec<(Frame<'_>, Reply)>, DecodeError> {
    let mut out = Vec::new();
    for frame in frames(datagram) {
        let frame = frame?;
        let reply = decode_frame(&frame)?;
        out.push((frame, reply));
    }
    Ok(out)
}

/// Appends one request (header + payload) to `buf`, padded to 4 bytes. `port` goes into
/// `nlmsg_pid`: the kernel copies it into the notifications the request causes.
pub fn encode_request(buf: &mut Vec<u8>, message: &XfrmMessage, flags: u16, seq: u32, port: u32) {
    let payload_len = message.buffer_len();
    let total = NLMSG_HDR_LEN + payload_len;
    let start = buf.len();
    buf.extend_from_slice(&(total as u32).to_ne_bytes());
    buf.extend_from_slice(&message.message_type().to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&port.to_ne_bytes());
    buf.resize(start + total, 0);
    message.emit(&mut buf[start + NLMSG_HDR_LEN..start + total]);
    buf.resize((buf.len() + 3) & !3, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, ty: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v
    }

    #[test]
    fn truncated_state_payload_is_an_error_not_a_panic() {
        for len in 0..224 {
            let payload = vec![0u8; len];
            let err = decode_xfrm(XFRM_MSG_NEWSA, &payload).unwrap_err();
            assert!(matches!(err, DecodeError::ShortPayload { need: 224, .. }));
        }
    }

    #[test]
    fn every_message_type_survives_every_short_length() {
        for ty in 0u16..=0x30 {
            for len in 0..300 {
                let _ = decode_xfrm(ty, &vec![0xffu8; len]);
            }
        }
    }

    #[test]
    fn length_field_beyond_datagram_is_reported_with_offset() {
        let mut d = header(16, NLMSG_DONE, 0, 1);
        d.extend(header(400, XFRM_MSG_NEWSA, 0, 2));
        let out: Vec<_> = frames(&d).collect();
        assert!(out[0].is_ok());
        assert_eq!(
            out[1].clone().unwrap_err(),
            DecodeError::BadLength {
                offset: 16,
                length: 400,
                remaining: 16
            }
        );
    }

    #[test]
    fn error_with_ext_ack_text_is_decoded() {
        // errno, capped echoed header, then NLMSGERR_ATTR_MSG "bad".
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend(header(436, XFRM_MSG_NEWSA, 5, 99));
        payload.extend_from_slice(&8u16.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(b"bad\0");
        let mut d = header(
            (16 + payload.len()) as u32,
            NLMSG_ERROR,
            NLM_F_ACK_TLVS | NLM_F_CAPPED,
            99,
        );
        d.extend(payload);
        let (frame, reply) = decode_datagram(&d).unwrap().remove(0);
        assert_eq!(frame.seq, 99);
        match reply {
            Reply::Ack(ack) => {
                assert_eq!(
                    ack,
                    Ack {
                        errno: 22,
                        request_seq: 99,
                        message: Some("bad".into())
                    }
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::events::event_from_message;

    /// A small deterministic generator (xorshift64*), so the test is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Builds a payload: a fixed header of plausible size, then attributes with random types
    /// and (sometimes inconsistent) lengths.
    fn payload(rng: &mut Rng, ty: u16) -> Vec<u8> {
        let mut p: Vec<u8> = (0..min_payload_len(ty) as u64 + rng.below(3))
            .map(|_| rng.next() as u8)
            .collect();
        for _ in 0..rng.below(6) {
            let kind = rng.below(34) as u16;
            let len = rng.below(300) as usize;
            let claimed = if rng.below(4) == 0 {
                rng.below(400) as u16
            } else {
                (len + 4) as u16
            };
            p.extend_from_slice(&claimed.to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend((0..len).map(|_| rng.next() as u8));
            p.resize((p.len() + 3) & !3, 0);
        }
        p
    }

    #[test]
    fn random_xfrm_messages_never_panic_the_decoder_or_event_conversion() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..20_000 {
            let ty = XFRM_MSG_BASE + rng.below(0x1a) as u16;
            let body = payload(&mut rng, ty);
            let mut d = Vec::new();
            d.extend_from_slice(&((NLMSG_HDR_LEN + body.len()) as u32).to_ne_bytes());
            d.extend_from_slice(&ty.to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&0u64.to_ne_bytes());
            d.extend(body);
            if let Ok(msgs) = decode_datagram(&d) {
                for (_, reply) in msgs {
                    if let Reply::Xfrm(m) = reply {
                        let _ = event_from_message(&m, false);
                    }
                }
            }
        }
    }
}
