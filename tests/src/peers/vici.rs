//! A small client for charon's vici control socket: the structured source of strongSwan's
//! state (`list-sas`) and its commands (`initiate`, `terminate`), with no log scraping.
//!
//! Wire format (strongSwan's vici plugin README): each segment is a 32-bit big-endian length
//! and a packet; a packet is a type byte, for named types a length-prefixed name, then a
//! message of elements: section start/end, key-value (value with a 16-bit length), list
//! start/item/end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PeerError;

/// Largest segment vici sends or accepts (its own limit, 512 KiB).
const MAX_SEGMENT: usize = 512 * 1024;
/// Deepest nesting of sections the decoder follows.
const MAX_DEPTH: usize = 32;
/// How long one read or write on the socket may block (an initiate waits for the exchange).
const IO_TIMEOUT: Duration = Duration::from_secs(20);

// Packet types.
const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

// Message element types.
const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

/// One value of a vici message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViciValue {
    /// A key-value's value (charon's values are text; binary is shown lossily).
    Str(String),
    /// A list of values.
    List(Vec<String>),
    /// A nested section.
    Section(ViciSection),
}

/// A vici message or section: ordered named values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViciSection {
    /// The entries in the order charon sent them.
    pub entries: Vec<(String, ViciValue)>,
}

impl ViciSection {
    /// Adds a key-value (builder style, for requests).
    pub fn with(mut self, key: &str, value: &str) -> ViciSection {
        self.entries
            .push((key.to_string(), ViciValue::Str(value.to_string())));
        self
    }

    /// The value named `key`.
    pub fn get(&self, key: &str) -> Option<&ViciValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The key-value named `key`, if it is one.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(ViciValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The list named `key` (empty if absent or not a list).
    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key) {
            Some(ViciValue::List(l)) => l,
            _ => &[],
        }
    }

    /// The section named `key`.
    pub fn section(&self, key: &str) -> Option<&ViciSection> {
        match self.get(key) {
            Some(ViciValue::Section(s)) => Some(s),
            _ => None,
        }
    }

    /// Every nested section with its name, in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &ViciSection)> {
        self.entries.iter().filter_map(|(k, v)| match v {
            ViciValue::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }

    /// Encodes the section's contents as a vici message.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        for (key, value) in &self.entries {
            let name = u8::try_from(key.len()).map_err(|_| format!("name too long: {key}"))?;
            match value {
                ViciValue::Str(s) => {
                    out.push(KEY_VALUE);
                    out.push(name);
                    out.extend_from_slice(key.as_bytes());
                    push_value(out, s)?;
                }
                ViciValue::List(items) => {
                    out.push(LIST_START);
                    out.push(name);
                    out.extend_from_slice(key.as_bytes());
                    for item in items {
                        out.push(LIST_ITEM);
                        push_value(out, item)?;
                    }
                    out.push(LIST_END);
                }
                ViciValue::Section(s) => {
                    out.push(SECTION_START);
                    out.push(name);
                    out.extend_from_slice(key.as_bytes());
                    s.encode(out)?;
                    out.push(SECTION_END);
                }
            }
        }
        Ok(())
    }

    /// Decodes a vici message (the bytes after a packet's type and name).
    pub fn decode(bytes: &[u8]) -> Result<ViciSection, String> {
        let mut reader = Reader { bytes, pos: 0 };
        let section = decode_section(&mut reader, 0)?;
        if reader.pos == bytes.len() {
            Ok(section)
        } else {
            Err(format!("unbalanced section end at offset {}", reader.pos))
        }
    }
}

fn push_value(out: &mut Vec<u8>, value: &str) -> Result<(), String> {
    let len =
        u16::try_from(value.len()).map_err(|_| "value longer than 65535 bytes".to_string())?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    Ok(())
}

/// A bounded reader over a message; every read checks the remaining length.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {n} bytes wanted at offset {} of {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let s = self.bytes.get(self.pos..end).ok_or("truncated")?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        self.take(1).map(|b| b.first().copied().unwrap_or(0))
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self.u8()?;
        Ok(String::from_utf8_lossy(self.take(usize::from(len))?).into_owned())
    }

    fn value(&mut self) -> Result<String, String> {
        let b = self.take(2)?;
        let len = u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]);
        Ok(String::from_utf8_lossy(self.take(usize::from(len))?).into_owned())
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// Reads elements until the end of input (depth 0) or a SECTION_END (depth > 0).
fn decode_section(r: &mut Reader<'_>, depth: usize) -> Result<ViciSection, String> {
    if depth > MAX_DEPTH {
        return Err(format!("sections nested deeper than {MAX_DEPTH}"));
    }
    let mut section = ViciSection::default();
    loop {
        if r.at_end() {
            return if depth == 0 {
                Ok(section)
            } else {
                Err("section not closed".to_string())
            };
        }
        let offset = r.pos;
        match r.u8()? {
            SECTION_START => {
                let name = r.name()?;
                let inner = decode_section(r, depth + 1)?;
                section.entries.push((name, ViciValue::Section(inner)));
            }
            SECTION_END if depth > 0 => return Ok(section),
            KEY_VALUE => {
                let name = r.name()?;
                let value = r.value()?;
                section.entries.push((name, ViciValue::Str(value)));
            }
            LIST_START => {
                let name = r.name()?;
                let mut items = Vec::new();
                loop {
                    match r.u8()? {
                        LIST_ITEM => items.push(r.value()?),
                        LIST_END => break,
                        other => return Err(format!("element type {other} inside list {name}")),
                    }
                }
                section.entries.push((name, ViciValue::List(items)));
            }
            other => {
                return Err(format!(
                    "unexpected element type {other} at offset {offset}"
                ))
            }
        }
    }
}

/// A connection to one charon's vici socket.
#[derive(Debug)]
pub struct ViciClient {
    stream: UnixStream,
    socket: PathBuf,
}

impl ViciClient {
    /// Connects to the vici socket at `socket`.
    pub fn connect(socket: &Path) -> Result<ViciClient, PeerError> {
        let io = |source| PeerError::ViciIo {
            socket: socket.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(io)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        Ok(ViciClient {
            stream,
            socket: socket.to_path_buf(),
        })
    }

    /// Sends command `cmd` with `msg` and returns charon's response message.
    pub fn request(&mut self, cmd: &str, msg: &ViciSection) -> Result<ViciSection, PeerError> {
        self.send(CMD_REQUEST, Some(cmd), msg)?;
        loop {
            match self.recv()? {
                (CMD_RESPONSE, _, body) => return Ok(body),
                (CMD_UNKNOWN, _, _) => {
                    return Err(PeerError::ViciCommandFailed {
                        command: cmd.to_string(),
                        reason: "unknown command".to_string(),
                    })
                }
                // Events of an earlier registration may still trail in.
                (EVENT, _, _) => continue,
                (other, _, _) => {
                    return Err(self.malformed(format!("packet type {other} for a command")))
                }
            }
        }
    }

    /// Registers for `event`, sends `cmd`, and collects the events that arrive until the
    /// response (as `list-sas` streams `list-sa` events and `initiate` streams `control-log`).
    pub fn request_streaming(
        &mut self,
        cmd: &str,
        msg: &ViciSection,
        event: &str,
    ) -> Result<(ViciSection, Vec<ViciSection>), PeerError> {
        self.register(EVENT_REGISTER, event)?;
        let mut events = Vec::new();
        self.send(CMD_REQUEST, Some(cmd), msg)?;
        let response = loop {
            match self.recv()? {
                (EVENT, name, body) if name == event => events.push(body),
                (EVENT, _, _) => {}
                (CMD_RESPONSE, _, body) => break body,
                (CMD_UNKNOWN, _, _) => {
                    return Err(PeerError::ViciCommandFailed {
                        command: cmd.to_string(),
                        reason: "unknown command".to_string(),
                    })
                }
                (other, _, _) => {
                    return Err(self.malformed(format!("packet type {other} for a command")))
                }
            }
        };
        self.register(EVENT_UNREGISTER, event)?;
        Ok((response, events))
    }

    fn register(&mut self, kind: u8, event: &str) -> Result<(), PeerError> {
        self.send(kind, Some(event), &ViciSection::default())?;
        loop {
            match self.recv()? {
                (EVENT_CONFIRM, _, _) => return Ok(()),
                (EVENT_UNKNOWN, _, _) => {
                    return Err(PeerError::ViciCommandFailed {
                        command: format!("(un)register {event}"),
                        reason: "unknown event".to_string(),
                    })
                }
                (EVENT, _, _) => continue,
                (other, _, _) => {
                    return Err(self.malformed(format!("packet type {other} for a registration")))
                }
            }
        }
    }

    fn send(&mut self, kind: u8, name: Option<&str>, msg: &ViciSection) -> Result<(), PeerError> {
        let mut packet = vec![kind];
        if let Some(name) = name {
            let len = u8::try_from(name.len())
                .map_err(|_| self.malformed(format!("name too long: {name}")))?;
            packet.push(len);
            packet.extend_from_slice(name.as_bytes());
        }
        msg.encode(&mut packet).map_err(|e| self.malformed(e))?;
        let len =
            u32::try_from(packet.len()).map_err(|_| self.malformed("request too large".into()))?;
        let mut segment = len.to_be_bytes().to_vec();
        segment.extend_from_slice(&packet);
        self.stream
            .write_all(&segment)
            .map_err(|source| PeerError::ViciIo {
                socket: self.socket.clone(),
                source,
            })
    }

    fn recv(&mut self) -> Result<(u8, String, ViciSection), PeerError> {
        let io = |source| PeerError::ViciIo {
            socket: self.socket.clone(),
            source,
        };
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len == 0 || len > MAX_SEGMENT {
            return Err(self.malformed(format!("segment length {len}")));
        }
        let mut packet = vec![0u8; len];
        self.stream
            .read_exact(&mut packet)
            .map_err(|source| PeerError::ViciIo {
                socket: self.socket.clone(),
                source,
            })?;

        let mut r = Reader {
            bytes: &packet,
            pos: 0,
        };
        let kind = r.u8().map_err(|e| self.malformed(e))?;
        let name = if matches!(
            kind,
            CMD_REQUEST | EVENT_REGISTER | EVENT_UNREGISTER | EVENT
        ) {
            r.name().map_err(|e| self.malformed(e))?
        } else {
            String::new()
        };
        let body = packet.get(r.pos..).unwrap_or_default();
        let body = ViciSection::decode(body).map_err(|e| self.malformed(e))?;
        Ok((kind, name, body))
    }

    fn malformed(&self, reason: String) -> PeerError {
        PeerError::ViciMalformed {
            socket: self.socket.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ViciSection {
        ViciSection {
            entries: vec![
                ("ike".into(), ViciValue::Str("ovn-ch2-0".into())),
                (
                    "ts".into(),
                    ViciValue::List(vec!["10.77.0.1/32[udp]".into(), "x".into()]),
                ),
                (
                    "child-sas".into(),
                    ViciValue::Section(ViciSection::default().with("state", "INSTALLED")),
                ),
            ],
        }
    }

    #[test]
    fn message_round_trips_through_encode_and_decode() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes).unwrap();
        assert_eq!(ViciSection::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn decoding_every_truncation_reports_an_error_and_never_panics() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes).unwrap();
        for cut in 1..bytes.len() {
            // A cut right after a complete top-level element is a valid shorter message.
            let _ = ViciSection::decode(&bytes[..cut]);
        }
        assert!(ViciSection::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn decoding_a_stray_section_end_is_an_error() {
        assert!(ViciSection::decode(&[SECTION_END]).is_err());
        assert!(ViciSection::decode(&[9]).is_err());
    }

    #[test]
    fn decoding_sections_nested_too_deep_is_an_error() {
        let mut bytes = Vec::new();
        for _ in 0..=MAX_DEPTH + 1 {
            bytes.extend_from_slice(&[SECTION_START, 1, b's']);
        }
        assert!(ViciSection::decode(&bytes).unwrap_err().contains("deeper"));
    }
}
