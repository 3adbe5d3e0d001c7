//! `ipsecctl decode`: from a capture (and optionally a key table) to a [`Report`] of every
//! IKE message, payload by payload, with SK and SKF payloads decrypted where keys are given.
//!
//! The report is what `--json` prints (documented in `docs/decode-json.md`) and what
//! [`crate::render`] prints as text. A message that does not decode is a record with its
//! error, never a failure of the whole run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ikev2::auth::TrustStore;
use ikev2::codec::{Header, Message, PayloadBody};
use ikev2::crypto::{AeadCipher, RingProvider};
use ikev2::protection::{
    open, sender_sk_e, FragmentProgress, FragmentReassembler, FragmentedMessageKey, Opened,
};
use ikev2::registry::PayloadType;
use serde::Serialize;

use crate::capture::{Capture, CaptureFormat, CaptureProblem};
use crate::datagrams::{extract, CaptureEvent, FrameCounts, IkeDatagram};
use crate::key_table::{Encryption, KeyTable};
use crate::time_format::{relative_seconds, rfc3339};
use crate::view::{payloads, MessageContext, PayloadView};

/// Version of the JSON layout; raised when a field changes meaning or disappears.
pub const REPORT_FORMAT_VERSION: u32 = 1;

/// Everything `ipsecctl decode` found in a capture.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`REPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The capture file as given on the command line.
    pub file: String,
    /// pcap or pcapng.
    pub capture_format: CaptureFormat,
    /// Time of the first frame; relative times count from it.
    pub first_frame_time: Option<String>,
    /// The key table, when one was given.
    pub key_table: Option<KeyTableView>,
    /// The CAs of `--ca`, when given.
    pub trusted_cas: Option<TrustView>,
    /// IKE messages and other noteworthy packets, in frame order.
    pub records: Vec<Record>,
    /// Set when the capture ends in a damaged record.
    pub capture_problem: Option<CaptureProblem>,
    /// Counts.
    pub summary: Summary,
}

/// The CAs certificates are validated against.
#[derive(Debug, Clone, Serialize)]
pub struct TrustView {
    /// The PEM file.
    pub file: String,
    /// Subject of each CA in it.
    pub subjects: Vec<String>,
}

/// The IKE SAs of the key table.
#[derive(Debug, Clone, Serialize)]
pub struct KeyTableView {
    /// The file.
    pub file: String,
    /// One entry per line.
    pub entries: Vec<KeyEntryView>,
}

/// One key table entry, without its keys.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEntryView {
    /// Line number.
    pub line: usize,
    /// SPIi, hex.
    pub spi_i: String,
    /// SPIr, hex.
    pub spi_r: String,
    /// Encryption algorithm as Wireshark names it.
    pub encryption: String,
    /// Whether ipsecctl can decrypt with it.
    pub supported: bool,
}

/// One entry of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An IKE message (decoded, or with the error that stopped decoding).
    IkeMessage(Box<MessageRecord>),
    /// An ESP packet (UDP-encapsulated on port 4500, or IP protocol 50), not decoded.
    Esp(EspRecord),
    /// A NAT-keepalive.
    NatKeepalive(PacketRecord),
    /// A frame that could not be read down to the IKE layer.
    MalformedFrame(MalformedRecord),
    /// An IP datagram dropped during fragment reassembly.
    IpFragmentsDropped(FragmentsRecord),
    /// An IP datagram whose fragments never all arrived.
    IpFragmentsIncomplete(FragmentsRecord),
    /// A fragmented IKE message (RFC 7383) whose SKF fragments never all arrived.
    SkfIncomplete(SkfIncompleteRecord),
}

/// Where and when a packet travelled.
#[derive(Debug, Clone, Serialize)]
pub struct PacketRecord {
    /// Frame number (from 1).
    pub frame: u64,
    /// Capture time, RFC 3339 UTC.
    pub time: Option<String>,
    /// Seconds since the first frame.
    pub relative_time: Option<f64>,
    /// Source address and port.
    pub src: String,
    /// Destination address and port.
    pub dst: String,
}

/// An IKE message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRecord {
    /// Where and when (the frame that completed it).
    #[serde(flatten)]
    pub packet: PacketRecord,
    /// All frames it came in (several when IP-fragmented).
    pub frames: Vec<u64>,
    /// True when sent on port 4500 behind the non-ESP marker.
    pub nat_t: bool,
    /// Octets of IKE message.
    pub length: usize,
    /// The IKE header, when at least that decodes.
    pub header: Option<HeaderView>,
    /// The payloads as sent (an SK or SKF payload stays sealed here).
    pub payloads: Vec<PayloadView>,
    /// Why the message did not decode, if it did not.
    pub error: Option<String>,
    /// The SK or SKF payload opened, when a key table was given and the message has one.
    pub decryption: Option<DecryptionView>,
}

/// The IKE header.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderView {
    /// SPIi, hex.
    pub spi_i: String,
    /// SPIr, hex.
    pub spi_r: String,
    /// First payload type by name.
    pub next_payload: String,
    /// Major version.
    pub major_version: u8,
    /// Minor version.
    pub minor_version: u8,
    /// Exchange type by name.
    pub exchange: String,
    /// Exchange type number.
    pub exchange_id: u8,
    /// The flags octet.
    pub flags: FlagsView,
    /// Message ID.
    pub message_id: u32,
    /// The Length field.
    pub length: u32,
}

/// The flags of the IKE header.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FlagsView {
    /// The whole octet.
    pub value: u8,
    /// I: sent by the original initiator.
    pub initiator: bool,
    /// R: a response.
    pub response: bool,
    /// V: higher version supported.
    pub version: bool,
}

/// What became of the encrypted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecryptionStatus {
    /// Opened; `payloads` holds the inner payloads.
    Decrypted,
    /// An SKF fragment opened and held until the others arrive.
    FragmentHeld,
    /// The key table has no entry for this IKE SA.
    NoKeys,
    /// The key table names a cipher ipsecctl cannot decrypt.
    UnsupportedCipher,
    /// Opening failed (integrity check, padding, inner payloads, fragment rules).
    Failed,
}

/// The SK or SKF payload opened.
#[derive(Debug, Clone, Serialize)]
pub struct DecryptionView {
    /// "SK" or "SKF".
    pub payload: String,
    /// The outcome.
    pub status: DecryptionStatus,
    /// Why, for the statuses other than decrypted.
    pub detail: Option<String>,
    /// The key table line used.
    pub key_table_line: Option<usize>,
    /// For SKF: this fragment's number and the total.
    pub fragment: Option<FragmentView>,
    /// For the SKF fragment that completed a message: the frames of all its fragments.
    pub reassembled_from_frames: Option<Vec<u64>>,
    /// The IV, hex.
    pub iv: Option<String>,
    /// Octets of padding the sender used.
    pub pad_len: Option<u8>,
    /// Octets of inner payloads (of the whole message, once reassembled).
    pub plaintext_len: Option<usize>,
    /// The inner payloads.
    pub payloads: Vec<PayloadView>,
}

/// Fragment Number and Total Fragments.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FragmentView {
    /// Fragment Number.
    pub number: u16,
    /// Total Fragments.
    pub total: u16,
}

/// An ESP packet.
#[derive(Debug, Clone, Serialize)]
pub struct EspRecord {
    /// Where and when.
    #[serde(flatten)]
    pub packet: PacketRecord,
    /// True when UDP-encapsulated (RFC 3948).
    pub udp_encapsulated: bool,
    /// SPI, hex.
    pub spi: Option<String>,
    /// Sequence number.
    pub sequence: Option<u32>,
    /// Octets of ESP.
    pub length: usize,
}

/// A frame that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct MalformedRecord {
    /// Frame number.
    pub frame: u64,
    /// Capture time.
    pub time: Option<String>,
    /// Which layer failed and why.
    pub error: String,
}

/// An IP datagram that was not reassembled.
#[derive(Debug, Clone, Serialize)]
pub struct FragmentsRecord {
    /// The frame the record is reported at.
    pub frame: u64,
    /// Frames of its fragments.
    pub frames: Vec<u64>,
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// IP Identification.
    pub ip_id: u32,
    /// Why it was not reassembled.
    pub error: String,
}

/// An IKE message whose SKF fragments did not all arrive.
#[derive(Debug, Clone, Serialize)]
pub struct SkfIncompleteRecord {
    /// SPIi, hex.
    pub spi_i: String,
    /// SPIr, hex.
    pub spi_r: String,
    /// Message ID.
    pub message_id: u32,
    /// Whether it is a response.
    pub response: bool,
    /// Frames of the fragments held.
    pub frames: Vec<u64>,
    /// Fragments held.
    pub have: u16,
    /// Total Fragments.
    pub total: u16,
}

/// Counts over the whole capture.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Frames read.
    pub frames: u64,
    /// IKE messages found.
    pub ike_messages: u64,
    /// IKE messages that did not decode.
    pub malformed_messages: u64,
    /// SK/SKF payloads opened (fragments counted one by one).
    pub decrypted: u64,
    /// SK/SKF payloads not opened (no keys, unsupported, failed).
    pub not_decrypted: u64,
    /// ESP packets.
    pub esp_packets: u64,
    /// Frames that could not be read to the IKE layer, and dropped or incomplete datagrams.
    pub malformed_frames: u64,
    /// Frames unrelated to IKE.
    pub unrelated_frames: u64,
}

/// Decodes every IKE message of `capture`, opening SK/SKF payloads with `keys` if given.
/// With `trust` (`--ca`), the sender's CERT of each message is validated against those CAs
/// at the message's capture time.
pub fn decode_capture(
    file: &str,
    capture: &Capture,
    keys: Option<(&str, &KeyTable)>,
    trust: Option<(&str, &TrustStore)>,
) -> Report {
    let (events, counts) = extract(&capture.frames);
    let start = capture.frames.iter().find_map(|f| f.timestamp);
    let mut decoder = Decoder {
        keys: keys.map(|(_, t)| t),
        trust: trust.map(|(_, t)| t),
        start,
        fragments: FragmentReassembler::new(),
        fragment_frames: HashMap::new(),
        summary: summary_from(counts),
    };

    let mut records = Vec::with_capacity(events.len());
    for event in events {
        records.push(decoder.event(event));
    }
    for (key, have, total) in decoder.fragments.incomplete() {
        decoder.summary.malformed_frames += 1;
        records.push(Record::SkfIncomplete(SkfIncompleteRecord {
            spi_i: hex::encode(key.spi_i),
            spi_r: hex::encode(key.spi_r),
            message_id: key.message_id,
            response: key.response,
            frames: decoder.fragment_frames.remove(&key).unwrap_or_default(),
            have,
            total,
        }));
    }

    Report {
        format_version: REPORT_FORMAT_VERSION,
        file: file.to_string(),
        capture_format: capture.format,
        first_frame_time: start.map(rfc3339),
        key_table: keys.map(|(file, table)| key_table_view(file, table)),
        trusted_cas: trust.map(|(file, store)| TrustView {
            file: file.to_string(),
            subjects: store
                .cas()
                .iter()
                .map(|ca| ca.subject().to_string())
                .collect(),
        }),
        records,
        capture_problem: capture.problem.clone(),
        summary: decoder.summary,
    }
}

fn summary_from(counts: FrameCounts) -> Summary {
    Summary {
        frames: counts.frames,
        unrelated_frames: counts.unrelated,
        ..Summary::default()
    }
}

fn key_table_view(file: &str, table: &KeyTable) -> KeyTableView {
    KeyTableView {
        file: file.to_string(),
        entries: table
            .entries()
            .iter()
            .map(|e| KeyEntryView {
                line: e.line,
                spi_i: hex::encode(e.spi_i),
                spi_r: hex::encode(e.spi_r),
                encryption: e.encryption_name.to_string(),
                supported: matches!(e.encryption, Encryption::Aead(_)),
            })
            .collect(),
    }
}

struct Decoder<'k> {
    keys: Option<&'k KeyTable>,
    trust: Option<&'k TrustStore>,
    start: Option<Duration>,
    fragments: FragmentReassembler,
    /// Frames of the SKF fragments of each message being reassembled.
    fragment_frames: HashMap<FragmentedMessageKey, Vec<u64>>,
    summary: Summary,
}

impl Decoder<'_> {
    fn packet(
        &self,
        frame: u64,
        timestamp: Option<Duration>,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> PacketRecord {
        PacketRecord {
            frame,
            time: timestamp.map(rfc3339),
            relative_time: timestamp
                .zip(self.start)
                .map(|(t, s)| relative_seconds(s, t)),
            src: src.to_string(),
            dst: dst.to_string(),
        }
    }

    fn event(&mut self, event: CaptureEvent) -> Record {
        match event {
            CaptureEvent::Ike(datagram) => Record::IkeMessage(Box::new(self.message(&datagram))),
            CaptureEvent::Esp {
                frame,
                timestamp,
                src,
                dst,
                spi,
                sequence,
                len,
            } => {
                self.summary.esp_packets += 1;
                Record::Esp(EspRecord {
                    packet: self.packet(frame, timestamp, src, dst),
                    udp_encapsulated: src.port() != 0,
                    spi: spi.map(|s| format!("{s:08x}")),
                    sequence,
                    length: len,
                })
            }
            CaptureEvent::NatKeepalive {
                frame,
                timestamp,
                src,
                dst,
            } => Record::NatKeepalive(self.packet(frame, timestamp, src, dst)),
            CaptureEvent::Malformed {
                frame,
                timestamp,
                error,
            } => {
                self.summary.malformed_frames += 1;
                Record::MalformedFrame(MalformedRecord {
                    frame,
                    time: timestamp.map(rfc3339),
                    error,
                })
            }
            CaptureEvent::FragmentsDropped {
                frame,
                frames,
                key,
                error,
            } => {
                self.summary.malformed_frames += 1;
                Record::IpFragmentsDropped(FragmentsRecord {
                    frame,
                    frames,
                    src: key.src.to_string(),
                    dst: key.dst.to_string(),
                    ip_id: key.id,
                    error,
                })
            }
            CaptureEvent::FragmentsIncomplete {
                frames,
                key,
                received,
                total,
                evicted,
            } => {
                self.summary.malformed_frames += 1;
                let frame = frames.iter().copied().max().unwrap_or(0);
                let have = match total {
                    Some(t) => format!("{received} of {t} bytes"),
                    None => format!("{received} bytes, last fragment missing"),
                };
                let error = if evicted {
                    format!("evicted before completion to bound memory ({have})")
                } else {
                    format!("capture ended before all fragments arrived ({have})")
                };
                Record::IpFragmentsIncomplete(FragmentsRecord {
                    frame,
                    frames,
                    src: key.src.to_string(),
                    dst: key.dst.to_string(),
                    ip_id: key.id,
                    error,
                })
            }
        }
    }

    fn message(&mut self, d: &IkeDatagram) -> MessageRecord {
        self.summary.ike_messages += 1;
        let mut record = MessageRecord {
            packet: self.packet(d.frame, d.timestamp, d.src, d.dst),
            frames: d.frames.clone(),
            nat_t: d.nat_t,
            length: d.message.len(),
            header: None,
            payloads: Vec::new(),
            error: None,
            decryption: None,
        };

        if let Some(on_wire) = d.cut_from {
            self.summary.malformed_messages += 1;
            record.error = Some(format!(
                "the capture's snap length cut the message: {} of {on_wire} octets captured",
                d.message.len()
            ));
            record.header = cut_header(&d.message).as_ref().map(header_view);
            return record;
        }

        let header = match Header::decode(&d.message) {
            Ok(h) => h,
            Err(e) => {
                self.summary.malformed_messages += 1;
                record.error = Some(e.to_string());
                return record;
            }
        };
        record.header = Some(header_view(&header));
        let ctx = MessageContext {
            spi_i: header.spi_i,
            spi_r: header.spi_r,
            src: d.src,
            dst: d.dst,
            from_original_initiator: header.flags.is_initiator(),
            trust: self.trust,
            captured_at: d.timestamp.map(|t| SystemTime::UNIX_EPOCH + t),
        };

        // Limitation: a message that fails to decode shows its header and the error only, not
        // the payloads before the bad one; IKEv1 (major version 1) is reported, not decoded.
        let message = match Message::decode(&d.message) {
            Ok(m) => m,
            Err(e) => {
                self.summary.malformed_messages += 1;
                record.error = Some(e.to_string());
                return record;
            }
        };
        record.payloads = payloads(&message.payloads, &ctx);

        let encrypted = message.payloads.last().and_then(|p| match &p.body {
            PayloadBody::Sk(_) => Some((PayloadType::SK, None)),
            PayloadBody::Skf(f) => Some((
                PayloadType::SKF,
                Some(FragmentView {
                    number: f.fragment_number,
                    total: f.total_fragments,
                }),
            )),
            _ => None,
        });
        if let (Some((payload, fragment)), Some(keys)) = (encrypted, self.keys) {
            let view = self.decrypt(d, &header, &ctx, keys, payload, fragment);
            match view.status {
                DecryptionStatus::Decrypted | DecryptionStatus::FragmentHeld => {
                    self.summary.decrypted += 1
                }
                _ => self.summary.not_decrypted += 1,
            }
            record.decryption = Some(view);
        }
        record
    }

    fn decrypt(
        &mut self,
        d: &IkeDatagram,
        header: &Header,
        ctx: &MessageContext,
        keys: &KeyTable,
        payload: PayloadType,
        fragment: Option<FragmentView>,
    ) -> DecryptionView {
        let mut view = DecryptionView {
            payload: payload.to_string(),
            status: DecryptionStatus::Failed,
            detail: None,
            key_table_line: None,
            fragment,
            reassembled_from_frames: None,
            iv: None,
            pad_len: None,
            plaintext_len: None,
            payloads: Vec::new(),
        };

        let Some(entry) = keys.find(&header.spi_i, &header.spi_r) else {
            view.status = DecryptionStatus::NoKeys;
            view.detail = Some(format!(
                "the key table has no line for SPIi {} SPIr {}",
                hex::encode(header.spi_i),
                hex::encode(header.spi_r)
            ));
            return view;
        };
        view.key_table_line = Some(entry.line);
        let cipher: AeadCipher = match entry.encryption {
            Encryption::Aead(c) => c,
            Encryption::Unsupported(name) => {
                view.status = DecryptionStatus::UnsupportedCipher;
                view.detail = Some(format!(
                    "encryption algorithm \"{name}\" (key table line {}) is not supported; ipsecctl \
                     decrypts AES-GCM-128/256 with 16 octet ICV and ChaCha20-Poly1305",
                    entry.line
                ));
                return view;
            }
        };

        let sk_e = sender_sk_e(header, &entry.sk_ei, &entry.sk_er);
        let opened = match open(&RingProvider, &d.message, cipher, sk_e) {
            Ok(o) => o,
            Err(e) => {
                view.detail = Some(e.to_string());
                return view;
            }
        };
        match opened {
            Opened::Message(m) => {
                view.status = DecryptionStatus::Decrypted;
                view.iv = Some(hex::encode(m.iv));
                view.pad_len = Some(m.pad_len);
                view.plaintext_len = Some(m.plaintext.len());
                view.payloads = payloads(&m.payloads, ctx);
            }
            Opened::Fragment(f) => {
                view.iv = Some(hex::encode(f.iv));
                view.pad_len = Some(f.pad_len);
                let key = FragmentedMessageKey::of(header);
                let frames = self.fragment_frames.entry(key).or_default();
                frames.extend_from_slice(&d.frames);
                match self.fragments.add(key, f) {
                    Ok(FragmentProgress::Held { have, total }) => {
                        view.status = DecryptionStatus::FragmentHeld;
                        view.detail = Some(format!("{have} of {total} fragments decrypted so far"));
                    }
                    Ok(FragmentProgress::Duplicate) => {
                        view.status = DecryptionStatus::FragmentHeld;
                        view.detail = Some("a retransmission of a fragment already held".into());
                    }
                    Ok(FragmentProgress::Complete(done)) => {
                        view.status = DecryptionStatus::Decrypted;
                        view.reassembled_from_frames = self.fragment_frames.remove(&key);
                        view.plaintext_len = Some(done.plaintext.len());
                        view.payloads = payloads(&done.payloads, ctx);
                    }
                    Err(e) => {
                        self.fragment_frames.remove(&key);
                        view.detail = Some(e.to_string());
                    }
                }
            }
        }
        view
    }
}

/// The IKE header of a message the snap length cut: decoded from a copy whose Length field
/// is set to what was captured, then given back the declared Length.
fn cut_header(captured: &[u8]) -> Option<Header> {
    let declared = captured.get(24..28)?;
    let declared = u32::from_be_bytes(declared.try_into().ok()?);
    let mut copy = captured.to_vec();
    let len = u32::try_from(copy.len()).ok()?;
    copy.get_mut(24..28)?.copy_from_slice(&len.to_be_bytes());
    let mut header = Header::decode(&copy).ok()?;
    header.length = declared;
    Some(header)
}

fn header_view(h: &Header) -> HeaderView {
    HeaderView {
        spi_i: hex::encode(h.spi_i),
        spi_r: hex::encode(h.spi_r),
        next_payload: h.next_payload.to_string(),
        major_version: h.major_version,
        minor_version: h.minor_version,
        exchange: h.exchange_type.to_string(),
        exchange_id: h.exchange_type.0,
        flags: FlagsView {
            value: h.flags.0,
            initiator: h.flags.is_initiator(),
            response: h.flags.is_response(),
            version: h.flags.0 & 0x10 != 0,
        },
        message_id: h.message_id,
        length: h.length,
    }
}
