//! A minimal, bounded DER reader and writer for the few ASN.1 structures the AUTH payload and
//! private keys need (AlgorithmIdentifier, RSASSA-PSS-params, SEC1 ECPrivateKey).
//!
//! Certificates are parsed by `x509-parser`; this reader exists because those structures are
//! not certificates and are small enough to walk by hand. It only knows single-octet tags and
//! definite lengths of at most four octets, which is all DER produces for these structures.

use super::error::AuthError;

/// DER tag of INTEGER.
pub(crate) const TAG_INTEGER: u8 = 0x02;
/// DER tag of BIT STRING.
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
/// DER tag of OCTET STRING.
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
/// DER tag of NULL.
pub(crate) const TAG_NULL: u8 = 0x05;
/// DER tag of OBJECT IDENTIFIER.
pub(crate) const TAG_OID: u8 = 0x06;
/// DER tag of a constructed SEQUENCE.
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

/// DER tag of the constructed context-specific tag `[n]` (EXPLICIT tagging).
pub(crate) const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// Reads DER elements from a byte slice without ever reading past its end.
pub(crate) struct DerReader<'a> {
    input: &'a [u8],
    /// What is being parsed, for error messages.
    what: &'static str,
}

impl<'a> DerReader<'a> {
    /// A reader over `input`; `what` names the structure in errors.
    pub(crate) fn new(input: &'a [u8], what: &'static str) -> Self {
        DerReader { input, what }
    }

    fn malformed(&self, reason: &'static str) -> AuthError {
        AuthError::MalformedDer {
            what: self.what,
            reason,
        }
    }

    /// True when every octet has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// The tag of the next element, if any, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    /// Reads one element and returns its tag and contents.
    pub(crate) fn read_any(&mut self) -> Result<(u8, &'a [u8]), AuthError> {
        let (&tag, rest) = self
            .input
            .split_first()
            .ok_or_else(|| self.malformed("element expected, input ended"))?;
        if tag & 0x1f == 0x1f {
            return Err(self.malformed("multi-octet tags are not used here"));
        }
        let (&first, mut rest) = rest
            .split_first()
            .ok_or_else(|| self.malformed("length octet missing"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(self.malformed("indefinite or oversized length"));
            }
            let (octets, after) = rest
                .split_at_checked(count)
                .ok_or_else(|| self.malformed("length octets truncated"))?;
            rest = after;
            let mut len = 0usize;
            for &b in octets {
                len = len
                    .checked_mul(256)
                    .and_then(|l| l.checked_add(usize::from(b)))
                    .ok_or_else(|| self.malformed("length overflows"))?;
            }
            if len < 0x80 || octets.first() == Some(&0) {
                return Err(self.malformed("length not in minimal (DER) form"));
            }
            len
        };
        let (contents, after) = rest
            .split_at_checked(len)
            .ok_or_else(|| self.malformed("contents shorter than their length"))?;
        self.input = after;
        Ok((tag, contents))
    }

    /// Reads one element that must carry `tag` and returns its contents.
    pub(crate) fn read(&mut self, tag: u8) -> Result<&'a [u8], AuthError> {
        let (got, contents) = self.read_any()?;
        if got != tag {
            return Err(self.malformed("unexpected tag"));
        }
        Ok(contents)
    }

    /// Reads the element if it carries `tag`, or returns `None` and consumes nothing.
    pub(crate) fn read_optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, AuthError> {
        if self.peek_tag() == Some(tag) {
            self.read(tag).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a non-negative INTEGER small enough for a `u32`.
    pub(crate) fn read_small_uint(&mut self) -> Result<u32, AuthError> {
        let contents = self.read(TAG_INTEGER)?;
        let (&first, _) = contents
            .split_first()
            .ok_or_else(|| self.malformed("empty INTEGER"))?;
        if first & 0x80 != 0 {
            return Err(self.malformed("negative INTEGER"));
        }
        let digits = if first == 0 && contents.len() > 1 {
            contents.get(1..).unwrap_or_default()
        } else {
            contents
        };
        if digits.len() > 4 {
            return Err(self.malformed("INTEGER too large"));
        }
        Ok(digits
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// Fails unless every octet has been consumed.
    pub(crate) fn finish(&self) -> Result<(), AuthError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing octets after the structure"))
        }
    }
}

/// Appends one DER element (tag, minimal length, contents) to `out`.
pub(crate) fn write_element(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        // Fits the short form by the check above.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_length_past_end() {
        let mut r = DerReader::new(&[0x30, 0x05, 0x01], "test");
        assert!(matches!(
            r.read(TAG_SEQUENCE),
            Err(AuthError::MalformedDer { .. })
        ));
    }

    #[test]
    fn reader_rejects_non_minimal_long_length() {
        let mut r = DerReader::new(&[0x04, 0x81, 0x01, 0xaa], "test");
        assert!(r.read(TAG_OCTET_STRING).is_err());
    }

    #[test]
    fn writer_and_reader_agree_on_long_lengths() {
        let contents = vec![7u8; 300];
        let mut out = Vec::new();
        write_element(&mut out, TAG_OCTET_STRING, &contents);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let mut r = DerReader::new(&out, "test");
        assert_eq!(r.read(TAG_OCTET_STRING).unwrap(), &contents[..]);
        r.finish().unwrap();
    }

    #[test]
    fn small_uint_reads_leading_zero_form() {
        let mut r = DerReader::new(&[0x02, 0x02, 0x00, 0x80], "test");
        assert_eq!(r.read_small_uint().unwrap(), 128);
    }
}
