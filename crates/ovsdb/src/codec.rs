//! Framing of JSON-RPC messages: JSON objects back to back with no delimiter between them.
//!
//! An OVSDB server writes one JSON object after another; a read may end anywhere inside one or
//! hold several. The decoder scans bytes once (remembering where it stopped), tracking string
//! and nesting state, and hands a complete object to serde_json.

use bytes::{Buf, BufMut, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::Error;

/// Default bound on one message: a 10,000-chassis Southbound dump is a few MiB.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Decodes and encodes back-to-back JSON objects, each at most `max_size` bytes.
#[derive(Debug, Clone)]
pub struct JsonCodec {
    max_size: usize,
    /// Bytes of the current message already scanned.
    scanned: usize,
    /// Nesting depth of objects and arrays in the current message; 0 before it starts.
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Default for JsonCodec {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_SIZE)
    }
}

impl JsonCodec {
    /// A codec that rejects a message longer than `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            max_size,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }

    /// Skips whitespace between messages; fails on a byte that cannot start one.
    fn skip_to_start(&mut self, buf: &mut BytesMut) -> Result<bool, Error> {
        let blanks = buf
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        buf.advance(blanks);
        match buf.first() {
            None => Ok(false),
            Some(b'{') => {
                self.depth = 1;
                self.scanned = 1;
                Ok(true)
            }
            Some(&byte) => Err(Error::Garbage { byte }),
        }
    }

    /// Scans from where the last call stopped; returns the length of a complete message.
    fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        let rest = buf.get(self.scanned..)?;
        for (i, &b) in rest.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(self.scanned + i + 1);
                    }
                }
                _ => {}
            }
        }
        self.scanned = buf.len();
        None
    }
}

impl Decoder for JsonCodec {
    type Item = Value;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, Error> {
        if self.depth == 0 && !self.skip_to_start(buf)? {
            return Ok(None);
        }
        match self.scan(buf) {
            Some(len) => {
                if len > self.max_size {
                    return Err(Error::MessageTooLarge {
                        limit: self.max_size,
                    });
                }
                let frame = buf.split_to(len);
                self.reset();
                Ok(Some(serde_json::from_slice(&frame)?))
            }
            None if buf.len() > self.max_size => Err(Error::MessageTooLarge {
                limit: self.max_size,
            }),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, Error> {
        match self.decode(buf)? {
            Some(v) => Ok(Some(v)),
            None if buf.iter().all(|b| b.is_ascii_whitespace()) => Ok(None),
            None => Err(Error::Truncated { pending: buf.len() }),
        }
    }
}

impl Encoder<&Value> for JsonCodec {
    type Error = Error;

    fn encode(&mut self, item: &Value, dst: &mut BytesMut) -> Result<(), Error> {
        serde_json::to_writer(dst.writer(), item)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_all(codec: &mut JsonCodec, buf: &mut BytesMut) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = codec.decode(buf).unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn back_to_back_objects_split_at_every_byte_decode_identically() {
        let text = br#"{"id":1,"result":["a}b\"{",{"x":[1,2]}]}  {"id":"echo","method":"echo","params":[]}"#;
        for split in 0..text.len() {
            let mut codec = JsonCodec::default();
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&text[..split]);
            let mut got = decode_all(&mut codec, &mut buf);
            buf.extend_from_slice(&text[split..]);
            got.extend(decode_all(&mut codec, &mut buf));
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(got[0]["result"][0], json!("a}b\"{"));
            assert_eq!(got[1]["id"], json!("echo"));
        }
    }

    #[test]
    fn garbage_between_messages_is_an_error_naming_the_byte() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(&b"{\"a\":1}xyz"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_some());
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::Garbage { byte: b'x' })
        ));
    }

    #[test]
    fn message_over_the_limit_is_rejected_before_it_completes() {
        let mut codec = JsonCodec::new(16);
        let mut buf = BytesMut::from(&b"{\"a\":\"0123456789abcdef"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::MessageTooLarge { limit: 16 })
        ));
    }

    #[test]
    fn eof_inside_a_message_reports_truncation() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(&b"{\"a\":[1,"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(Error::Truncated { pending: 8 })
        ));
    }

    #[test]
    fn balanced_but_invalid_json_is_a_json_error() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::from(&b"{\"a\" 1}"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(Error::Json(_))));
    }

    #[test]
    fn encoded_value_decodes_back() {
        let mut codec = JsonCodec::default();
        let mut buf = BytesMut::new();
        let v = json!({"method":"echo","params":["\u{1F600}"],"id":7});
        codec.encode(&v, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(v));
    }
}
