//! Reading capture files: classic pcap and pcapng (as tshark and dumpcap write them).
//!
//! The whole file is read into memory (bounded by [`MAX_CAPTURE_BYTES`]) and parsed with the
//! `pcap-file` slice parsers, so a damaged record ends the capture with a
//! [`CaptureProblem`] instead of an error: the frames before it are still decoded.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{PcapError, TsResolution};

/// The largest capture file we read; larger files are rejected rather than loaded.
pub const MAX_CAPTURE_BYTES: u64 = 512 * 1024 * 1024;

/// The largest number of frames we keep from one capture.
pub const MAX_FRAMES: usize = 1_000_000;

/// pcapng's default timestamp resolution: microseconds (if_tsresol absent).
const PCAPNG_DEFAULT_TSRESOL: u8 = 6;

/// Why a capture file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file we tried to read.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CAPTURE_BYTES`] (for a stream: at least `size`).
    #[error("{path} is {size} bytes or more, beyond the {MAX_CAPTURE_BYTES} bytes ipsecctl reads")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The first bytes are neither a pcap nor a pcapng header.
    #[error("not a pcap or pcapng file (first bytes {magic})")]
    UnknownFormat {
        /// The first four bytes in hex.
        magic: String,
    },
    /// The file header itself is damaged.
    #[error("damaged {format} file header: {reason}")]
    BadHeader {
        /// "pcap" or "pcapng".
        format: &'static str,
        /// What the parser said.
        reason: String,
    },
}

/// Which container format a capture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap,
    /// pcap next generation.
    Pcapng,
}

/// One captured frame: its 1-based number (as Wireshark counts), time and link-layer bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame number, counting from 1 in file order.
    pub number: u64,
    /// Capture time since the Unix epoch, when the record carries one.
    pub timestamp: Option<Duration>,
    /// The LINKTYPE_* value of the interface the frame was captured on.
    pub link_type: u32,
    /// The captured bytes, starting with the link-layer header.
    pub data: Vec<u8>,
    /// The frame's length on the wire (larger than `data` when the snap length cut it).
    pub original_len: u32,
}

/// A damaged or unreadable record that ended the capture early.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaptureProblem {
    /// The number of the last frame read before the problem (0 when none).
    pub after_frame: u64,
    /// What was wrong.
    pub reason: String,
}

/// The frames of a capture, and why reading stopped early if it did.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The container format.
    pub format: CaptureFormat,
    /// The frames, in file order.
    pub frames: Vec<Frame>,
    /// Set when the file ends in a damaged or truncated record.
    pub problem: Option<CaptureProblem>,
}

/// Reads a whole capture from a stream (e.g. standard input, for `tcpdump -w - | …`),
/// refusing more than [`MAX_CAPTURE_BYTES`].
pub fn read_capture_stream(name: &str, stream: impl Read) -> Result<Capture, CaptureError> {
    let mut bytes = Vec::new();
    stream
        .take(MAX_CAPTURE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| CaptureError::Io {
            path: name.to_string(),
            source,
        })?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_CAPTURE_BYTES {
        return Err(CaptureError::TooLarge {
            path: name.to_string(),
            size,
        });
    }
    parse_capture(&bytes)
}

/// Reads a capture file from disk, refusing files larger than [`MAX_CAPTURE_BYTES`].
pub fn read_capture_file(path: &Path) -> Result<Capture, CaptureError> {
    let shown = path.display().to_string();
    let io = |source| CaptureError::Io {
        path: shown.clone(),
        source,
    };

    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_CAPTURE_BYTES {
        return Err(CaptureError::TooLarge { path: shown, size });
    }

    let mut bytes = Vec::new();
    file.take(MAX_CAPTURE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse_capture(&bytes)
}

/// Parses a capture held in memory; the format is recognised by its magic number.
pub fn parse_capture(bytes: &[u8]) -> Result<Capture, CaptureError> {
    match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => parse_pcapng(bytes),
        Some([0xa1, 0xb2, 0xc3, 0xd4])
        | Some([0xd4, 0xc3, 0xb2, 0xa1])
        | Some([0xa1, 0xb2, 0x3c, 0x4d])
        | Some([0x4d, 0x3c, 0xb2, 0xa1]) => parse_pcap(bytes),
        Some(other) => Err(CaptureError::UnknownFormat {
            magic: hex::encode(other),
        }),
        None => Err(CaptureError::UnknownFormat {
            magic: hex::encode(bytes),
        }),
    }
}

fn describe(err: &PcapError) -> String {
    match err {
        PcapError::IncompleteBuffer => "the file ends inside a record (truncated)".to_string(),
        other => other.to_string(),
    }
}

fn parse_pcap(bytes: &[u8]) -> Result<Capture, CaptureError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| CaptureError::BadHeader {
        format: "pcap",
        reason: describe(&e),
    })?;
    let link_type = u32::from(parser.header().datalink);
    let nanosecond = parser.header().ts_resolution == TsResolution::NanoSecond;

    let mut frames = Vec::new();
    let mut problem = None;
    while !rest.is_empty() {
        if frames.len() >= MAX_FRAMES {
            problem = Some(too_many_frames(&frames));
            break;
        }
        // The raw record, not next_packet(): pcap-file rejects records whose original length
        // exceeds the snap length, which is exactly what a capture taken with `-s` contains.
        match parser.next_raw_packet(rest) {
            Ok((next, raw)) => {
                rest = next;
                let number = next_number(&frames);
                frames.push(Frame {
                    number,
                    timestamp: pcap_time(raw.ts_sec, raw.ts_frac, nanosecond),
                    link_type,
                    data: raw.data.into_owned(),
                    original_len: raw.orig_len,
                });
            }
            Err(e) => {
                problem = Some(CaptureProblem {
                    after_frame: last_number(&frames),
                    reason: describe(&e),
                });
                break;
            }
        }
    }

    Ok(Capture {
        format: CaptureFormat::Pcap,
        frames,
        problem,
    })
}

/// A classic pcap record time: seconds and micro- or nanoseconds; `None` when the fraction
/// is out of range.
fn pcap_time(secs: u32, frac: u32, nanosecond: bool) -> Option<Duration> {
    let nanos = if nanosecond {
        frac
    } else {
        frac.checked_mul(1000)?
    };
    (nanos < 1_000_000_000).then(|| Duration::new(u64::from(secs), nanos))
}

/// What we remember of a pcapng Interface Description Block.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    tsresol: u8,
    tsoffset_secs: i64,
}

fn parse_pcapng(bytes: &[u8]) -> Result<Capture, CaptureError> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| CaptureError::BadHeader {
        format: "pcapng",
        reason: describe(&e),
    })?;

    let mut interfaces: Vec<Interface> = Vec::new();
    let mut frames = Vec::new();
    let mut problem = None;
    while !rest.is_empty() {
        if frames.len() >= MAX_FRAMES {
            problem = Some(too_many_frames(&frames));
            break;
        }
        let block = match parser.next_block(rest) {
            Ok((next, block)) => {
                rest = next;
                block
            }
            Err(e) => {
                problem = Some(CaptureProblem {
                    after_frame: last_number(&frames),
                    reason: describe(&e),
                });
                break;
            }
        };

        match block {
            // A new section starts a new interface numbering (pcapng §4.1).
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => interfaces.push(interface_of(&idb)),
            Block::EnhancedPacket(epb) => {
                let Some(iface) = usize::try_from(epb.interface_id)
                    .ok()
                    .and_then(|i| interfaces.get(i).copied())
                else {
                    problem = Some(CaptureProblem {
                        after_frame: last_number(&frames),
                        reason: format!(
                            "packet names interface {} that was never described",
                            epb.interface_id
                        ),
                    });
                    break;
                };
                // pcap-file hands the raw timestamp units over as nanoseconds; we rescale
                // them with the interface's if_tsresol.
                let units = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                let number = next_number(&frames);
                frames.push(Frame {
                    number,
                    timestamp: pcapng_time(units, iface.tsresol, iface.tsoffset_secs),
                    link_type: iface.link_type,
                    data: epb.data.into_owned(),
                    original_len: epb.original_len,
                });
            }
            Block::SimplePacket(spb) => {
                // A Simple Packet Block always belongs to the first interface.
                let Some(iface) = interfaces.first().copied() else {
                    problem = Some(CaptureProblem {
                        after_frame: last_number(&frames),
                        reason: "simple packet block before any interface description".into(),
                    });
                    break;
                };
                let number = next_number(&frames);
                frames.push(Frame {
                    number,
                    timestamp: None,
                    link_type: iface.link_type,
                    data: spb.data.into_owned(),
                    original_len: spb.original_len,
                });
            }
            Block::Packet(pb) => {
                let Some(iface) = interfaces.get(usize::from(pb.interface_id)).copied() else {
                    problem = Some(CaptureProblem {
                        after_frame: last_number(&frames),
                        reason: format!(
                            "packet names interface {} that was never described",
                            pb.interface_id
                        ),
                    });
                    break;
                };
                let number = next_number(&frames);
                frames.push(Frame {
                    number,
                    timestamp: pcapng_time(pb.timestamp, iface.tsresol, iface.tsoffset_secs),
                    link_type: iface.link_type,
                    data: pb.data.into_owned(),
                    original_len: pb.original_len,
                });
            }
            _ => {}
        }
    }

    Ok(Capture {
        format: CaptureFormat::Pcapng,
        frames,
        problem,
    })
}

fn interface_of(
    idb: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock<'_>,
) -> Interface {
    let mut iface = Interface {
        link_type: u32::from(idb.linktype),
        tsresol: PCAPNG_DEFAULT_TSRESOL,
        tsoffset_secs: 0,
    };
    for option in &idb.options {
        match option {
            InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
            InterfaceDescriptionOption::IfTsOffset(o) => iface.tsoffset_secs = *o as i64,
            _ => {}
        }
    }
    iface
}

/// Converts pcapng timestamp units to a time since the epoch (pcapng §4.2, if_tsresol: the
/// high bit selects a power of two, otherwise a power of ten). `None` for resolutions we
/// cannot represent.
fn pcapng_time(units: u64, tsresol: u8, tsoffset_secs: i64) -> Option<Duration> {
    let exponent = u32::from(tsresol & 0x7f);
    let units = u128::from(units);
    let (secs, nanos) = if tsresol & 0x80 != 0 {
        if exponent > 64 {
            return None;
        }
        let per_sec = 1u128 << exponent;
        (units / per_sec, (units % per_sec) * 1_000_000_000 / per_sec)
    } else {
        let per_sec = 10u128.checked_pow(exponent)?;
        (units / per_sec, (units % per_sec) * 1_000_000_000 / per_sec)
    };

    let secs = i128::try_from(secs)
        .ok()?
        .checked_add(i128::from(tsoffset_secs))?;
    let secs = u64::try_from(secs).ok()?;
    let nanos = u32::try_from(nanos).ok()?;
    Some(Duration::new(secs, nanos))
}

fn last_number(frames: &[Frame]) -> u64 {
    frames.last().map_or(0, |f| f.number)
}

fn next_number(frames: &[Frame]) -> u64 {
    last_number(frames).saturating_add(1)
}

fn too_many_frames(frames: &[Frame]) -> CaptureProblem {
    CaptureProblem {
        after_frame: last_number(frames),
        reason: format!("more than {MAX_FRAMES} frames; the rest of the file is not read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_time_uses_microseconds_by_default() {
        let t = pcapng_time(1_700_000_000_123_456, PCAPNG_DEFAULT_TSRESOL, 0).unwrap();
        assert_eq!(t, Duration::new(1_700_000_000, 123_456_000));
    }

    #[test]
    fn pcapng_time_handles_nanoseconds_and_powers_of_two() {
        assert_eq!(
            pcapng_time(1_500_000_000, 9, 0),
            Some(Duration::new(1, 500_000_000))
        );
        assert_eq!(
            pcapng_time(3 << 9, 0x80 | 10, 0),
            Some(Duration::new(1, 500_000_000))
        );
        assert_eq!(pcapng_time(5, 6, 10), Some(Duration::new(10, 5_000)));
    }

    #[test]
    fn pcapng_time_rejects_unrepresentable_resolutions() {
        assert_eq!(pcapng_time(1, 0x7f, 0), None);
    }

    #[test]
    fn unknown_magic_is_reported_in_hex() {
        let err = parse_capture(b"GIF89a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a pcap or pcapng file (first bytes 47494638)"
        );
    }

    #[test]
    fn classic_pcap_with_a_truncated_record_keeps_the_earlier_frames() {
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&4u16.to_le_bytes());
        file.extend_from_slice(&0i32.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&101u32.to_le_bytes());
        for (secs, data) in [(10u32, &[0x45u8, 0, 0, 20][..]), (11, &[1, 2, 3, 4, 5, 6])] {
            file.extend_from_slice(&secs.to_le_bytes());
            file.extend_from_slice(&7u32.to_le_bytes());
            file.extend_from_slice(&(data.len() as u32).to_le_bytes());
            file.extend_from_slice(&(data.len() as u32).to_le_bytes());
            file.extend_from_slice(data);
        }
        file.truncate(file.len() - 3);

        let capture = parse_capture(&file).unwrap();
        assert_eq!(capture.format, CaptureFormat::Pcap);
        assert_eq!(capture.frames.len(), 1);
        assert_eq!(capture.frames[0].number, 1);
        assert_eq!(capture.frames[0].link_type, 101);
        assert_eq!(capture.frames[0].timestamp, Some(Duration::new(10, 7_000)));
        let problem = capture.problem.unwrap();
        assert_eq!(problem.after_frame, 1);
        assert!(problem.reason.contains("truncated"), "{}", problem.reason);
    }
}
