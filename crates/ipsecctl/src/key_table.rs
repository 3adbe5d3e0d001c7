//! Wireshark's `ikev2_decryption_table`: the keys of IKE SAs, for decrypting SK payloads.
//!
//! One line per IKE SA, the fields of Wireshark's "IKEv2 Decryption Table" preference:
//!
//! ```text
//! SPIi,SPIr,SK_ei,SK_er,"encryption algorithm",SK_ai,SK_ar,"integrity algorithm"
//! ```
//!
//! SPIs and keys are hex (SK_ai/SK_ar empty for AEAD ciphers); the algorithm names are
//! quoted and spelled exactly as Wireshark spells them, e.g.
//! `"AES-GCM-256 with 16 octet ICV [RFC5282]"` and `"NONE [RFC4306]"`. For AES-GCM, SK_ei
//! and SK_er carry the key followed by the 4-octet salt (RFC 5282 §7.1). Blank lines and
//! lines starting with `#` are ignored. Every Wireshark name is recognised; ciphers
//! ipsecctl cannot decrypt are kept and reported as unsupported when a message needs them.

use std::fmt;
use std::path::Path;

use ikev2::crypto::AeadCipher;
use zeroize::Zeroizing;

/// The largest key table we read.
pub const MAX_KEY_TABLE_BYTES: u64 = 4 * 1024 * 1024;

const FIELD_COUNT: usize = 8;
const SPI_LEN: usize = 8;

/// Wireshark's encryption algorithm names, and the ones we can decrypt with.
const ENCRYPTION_NAMES: &[(&str, Option<AeadCipher>)] = &[
    ("NULL [RFC2410]", None),
    ("3DES [RFC2451]", None),
    ("AES-CBC-128 [RFC3602]", None),
    ("AES-CBC-192 [RFC3602]", None),
    ("AES-CBC-256 [RFC3602]", None),
    ("AES-CTR-128 [RFC5930]", None),
    ("AES-CTR-192 [RFC5930]", None),
    ("AES-CTR-256 [RFC5930]", None),
    (
        "AES-GCM-128 with 16 octet ICV [RFC5282]",
        Some(AeadCipher::AesGcm16_128),
    ),
    // Limitation: AES-192 is not offered by ring, so AES-GCM-192 cannot be decrypted.
    ("AES-GCM-192 with 16 octet ICV [RFC5282]", None),
    (
        "AES-GCM-256 with 16 octet ICV [RFC5282]",
        Some(AeadCipher::AesGcm16_256),
    ),
    ("AES-GCM-128 with 8 octet ICV [RFC5282]", None),
    ("AES-GCM-192 with 8 octet ICV [RFC5282]", None),
    ("AES-GCM-256 with 8 octet ICV [RFC5282]", None),
    ("AES-GCM-128 with 12 octet ICV [RFC5282]", None),
    ("AES-GCM-192 with 12 octet ICV [RFC5282]", None),
    ("AES-GCM-256 with 12 octet ICV [RFC5282]", None),
    ("AES-CCM-128 with 16 octet ICV [RFC5282]", None),
    ("AES-CCM-192 with 16 octet ICV [RFC5282]", None),
    ("AES-CCM-256 with 16 octet ICV [RFC5282]", None),
    ("AES-CCM-128 with 8 octet ICV [RFC5282]", None),
    ("AES-CCM-192 with 8 octet ICV [RFC5282]", None),
    ("AES-CCM-256 with 8 octet ICV [RFC5282]", None),
    ("AES-CCM-128 with 12 octet ICV [RFC5282]", None),
    ("AES-CCM-192 with 12 octet ICV [RFC5282]", None),
    ("AES-CCM-256 with 12 octet ICV [RFC5282]", None),
    // Not in Wireshark's list (its table has no ChaCha20-Poly1305); accepted by ipsecctl
    // so that tables for RFC 7634 SAs can be written in the same format.
    (
        "ChaCha20-Poly1305 [RFC7634]",
        Some(AeadCipher::ChaCha20Poly1305),
    ),
];

/// Wireshark's integrity algorithm names.
const INTEGRITY_NAMES: &[&str] = &[
    "NONE [RFC4306]",
    "HMAC_MD5_96 [RFC2403]",
    "HMAC_SHA1_96 [RFC2404]",
    "HMAC_MD5_128 [RFC4595]",
    "HMAC_SHA1_160 [RFC4595]",
    "HMAC_SHA2_256_96 [draft-ietf-ipsec-ciph-sha-256-00]",
    "HMAC_SHA2_256_128 [RFC4868]",
    "HMAC_SHA2_384_192 [RFC4868]",
    "HMAC_SHA2_512_256 [RFC4868]",
    "ANY 64-bits of Authentication [No Checking]",
    "ANY 96-bits of Authentication [No Checking]",
    "ANY 128-bits of Authentication [No Checking]",
    "ANY 160-bits of Authentication [No Checking]",
    "ANY 192-bits of Authentication [No Checking]",
    "ANY 256-bits of Authentication [No Checking]",
];

/// The name of "no integrity algorithm", the only one an AEAD cipher may be paired with.
const INTEGRITY_NONE: &str = "NONE [RFC4306]";

/// The encryption algorithm of one IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// A cipher we decrypt with.
    Aead(AeadCipher),
    /// A cipher Wireshark knows and ipsecctl cannot decrypt; the Wireshark name.
    Unsupported(&'static str),
}

/// The keys of one IKE SA, from one line of the table.
pub struct IkeSaKeys {
    /// 1-based line number in the table.
    pub line: usize,
    /// The initiator's SPI.
    pub spi_i: [u8; SPI_LEN],
    /// The responder's SPI.
    pub spi_r: [u8; SPI_LEN],
    /// The cipher.
    pub encryption: Encryption,
    /// The encryption algorithm name as written in the table.
    pub encryption_name: &'static str,
    /// The integrity algorithm name as written in the table.
    pub integrity_name: &'static str,
    /// SK_ei: protects messages the initiator sends.
    pub sk_ei: Zeroizing<Vec<u8>>,
    /// SK_er: protects messages the responder sends.
    pub sk_er: Zeroizing<Vec<u8>>,
    /// SK_ai (empty for AEAD).
    pub sk_ai: Zeroizing<Vec<u8>>,
    /// SK_ar (empty for AEAD).
    pub sk_ar: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys themselves never appear in Debug output.
        f.debug_struct("IkeSaKeys")
            .field("line", &self.line)
            .field("spi_i", &hex::encode(self.spi_i))
            .field("spi_r", &hex::encode(self.spi_r))
            .field("encryption", &self.encryption)
            .field("integrity", &self.integrity_name)
            .finish_non_exhaustive()
    }
}

/// A parsed key table.
#[derive(Debug, Default)]
pub struct KeyTable {
    entries: Vec<IkeSaKeys>,
}

/// Why a key table could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyTableError {
    /// The file could not be read.
    #[error("cannot read key table {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_KEY_TABLE_BYTES`].
    #[error("key table {path} is larger than {MAX_KEY_TABLE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// The file is not UTF-8 text.
    #[error("key table is not UTF-8 text")]
    NotText,
    /// A line does not have the eight fields.
    #[error("line {line}: expected 8 comma-separated fields (SPIi,SPIr,SK_ei,SK_er,\"encryption\",SK_ai,SK_ar,\"integrity\"), found {found}")]
    WrongFieldCount {
        /// 1-based line number.
        line: usize,
        /// Fields found.
        found: usize,
    },
    /// A quoted field has no closing quote.
    #[error("line {line}: a quoted field is not closed")]
    UnterminatedQuote {
        /// 1-based line number.
        line: usize,
    },
    /// A backslash escape inside a quoted field is not one Wireshark writes.
    #[error("line {line}: bad escape sequence in a quoted field")]
    BadEscape {
        /// 1-based line number.
        line: usize,
    },
    /// Text follows a quoted field before the next comma.
    #[error("line {line}: unexpected text after the quoted {field} field")]
    TextAfterQuote {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
    },
    /// An algorithm field is not quoted, or a hex field is.
    #[error("line {line}: the {field} field must be {expected}")]
    WrongFieldKind {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// "a quoted algorithm name" or "bare hex".
        expected: &'static str,
    },
    /// A hex field does not decode.
    #[error("line {line}: {field} is not valid hex: {reason}")]
    BadHex {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An SPI is not 8 octets.
    #[error("line {line}: {field} must be 8 octets (16 hex digits), found {found} octets")]
    BadSpiLength {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// Octets found.
        found: usize,
    },
    /// An algorithm name Wireshark does not write.
    #[error("line {line}: unknown {kind} algorithm {name:?}; names are spelled as Wireshark spells them, e.g. {example:?}")]
    UnknownAlgorithm {
        /// 1-based line number.
        line: usize,
        /// "encryption" or "integrity".
        kind: &'static str,
        /// The name found.
        name: String,
        /// A correct name.
        example: &'static str,
    },
    /// A key has the wrong length for its algorithm.
    #[error("line {line}: {field} for {algorithm} must be {expected} octets (key and salt), found {found}")]
    BadKeyLength {
        /// 1-based line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// The algorithm's name.
        algorithm: &'static str,
        /// Octets needed.
        expected: usize,
        /// Octets found.
        found: usize,
    },
    /// An AEAD cipher paired with an integrity algorithm (RFC 5282 §8 forbids it).
    #[error("line {line}: {encryption} is an AEAD cipher and takes integrity \"NONE [RFC4306]\", not {integrity:?}")]
    IntegrityWithAead {
        /// 1-based line number.
        line: usize,
        /// The cipher.
        encryption: &'static str,
        /// The integrity algorithm given.
        integrity: &'static str,
    },
    /// The same SPI pair appears twice.
    #[error("line {line}: SPIs {spis} already appear on line {first_line}")]
    DuplicateSpis {
        /// 1-based line number.
        line: usize,
        /// The SPI pair.
        spis: String,
        /// Where they appeared first.
        first_line: usize,
    },
}

/// One field of a table line.
enum Field {
    Quoted(String),
    Bare(String),
}

impl KeyTable {
    /// Reads and parses a key table file.
    pub fn read_file(path: &Path) -> Result<KeyTable, KeyTableError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let io = |source| KeyTableError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_KEY_TABLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_KEY_TABLE_BYTES {
            return Err(KeyTableError::TooLarge { path: shown });
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyTableError::NotText)?;
        KeyTable::parse(text)
    }

    /// Parses the text of a key table.
    pub fn parse(text: &str) -> Result<KeyTable, KeyTableError> {
        let mut table = KeyTable::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let entry = parse_line(line, trimmed)?;
            if let Some(first) = table.find(&entry.spi_i, &entry.spi_r) {
                return Err(KeyTableError::DuplicateSpis {
                    line,
                    spis: format!("{}/{}", hex::encode(entry.spi_i), hex::encode(entry.spi_r)),
                    first_line: first.line,
                });
            }
            table.entries.push(entry);
        }
        Ok(table)
    }

    /// The keys of the IKE SA with these SPIs, if the table has them.
    pub fn find(&self, spi_i: &[u8; 8], spi_r: &[u8; 8]) -> Option<&IkeSaKeys> {
        self.entries
            .iter()
            .find(|e| &e.spi_i == spi_i && &e.spi_r == spi_r)
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[IkeSaKeys] {
        &self.entries
    }
}

fn parse_line(line: usize, text: &str) -> Result<IkeSaKeys, KeyTableError> {
    let fields = split_fields(line, text)?;
    let [spi_i, spi_r, sk_ei, sk_er, encr, sk_ai, sk_ar, integ]: [Field; FIELD_COUNT] = fields
        .try_into()
        .map_err(|f: Vec<Field>| KeyTableError::WrongFieldCount {
            line,
            found: f.len(),
        })?;

    let spi_i = spi(line, "SPIi", &spi_i)?;
    let spi_r = spi(line, "SPIr", &spi_r)?;
    let sk_ei = hex_field(line, "SK_ei", &sk_ei)?;
    let sk_er = hex_field(line, "SK_er", &sk_er)?;
    let sk_ai = hex_field(line, "SK_ai", &sk_ai)?;
    let sk_ar = hex_field(line, "SK_ar", &sk_ar)?;

    let encr_name = quoted(line, "encryption algorithm", &encr)?;
    let (encryption_name, aead) = ENCRYPTION_NAMES
        .iter()
        .find(|(name, _)| *name == encr_name)
        .copied()
        .ok_or_else(|| KeyTableError::UnknownAlgorithm {
            line,
            kind: "encryption",
            name: encr_name.to_string(),
            example: "AES-GCM-256 with 16 octet ICV [RFC5282]",
        })?;
    let integ_name = quoted(line, "integrity algorithm", &integ)?;
    let integrity_name = INTEGRITY_NAMES
        .iter()
        .find(|n| **n == integ_name)
        .copied()
        .ok_or_else(|| KeyTableError::UnknownAlgorithm {
            line,
            kind: "integrity",
            name: integ_name.to_string(),
            example: INTEGRITY_NONE,
        })?;

    let encryption = match aead {
        Some(aead) => {
            if integrity_name != INTEGRITY_NONE {
                return Err(KeyTableError::IntegrityWithAead {
                    line,
                    encryption: encryption_name,
                    integrity: integrity_name,
                });
            }
            for (field, key) in [("SK_ei", &sk_ei), ("SK_er", &sk_er)] {
                if key.len() != aead.keymat_len() {
                    return Err(KeyTableError::BadKeyLength {
                        line,
                        field,
                        algorithm: encryption_name,
                        expected: aead.keymat_len(),
                        found: key.len(),
                    });
                }
            }
            Encryption::Aead(aead)
        }
        None => Encryption::Unsupported(encryption_name),
    };

    Ok(IkeSaKeys {
        line,
        spi_i,
        spi_r,
        encryption,
        encryption_name,
        integrity_name,
        sk_ei,
        sk_er,
        sk_ai,
        sk_ar,
    })
}

/// Splits a line into fields: bare text up to a comma, or a quoted string with Wireshark's
/// UAT escapes (`\"`, `\\`, `\xNN`).
fn split_fields(line: usize, text: &str) -> Result<Vec<Field>, KeyTableError> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(KeyTableError::UnterminatedQuote { line }),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('x') => {
                            let hi = chars.next().and_then(|c| c.to_digit(16));
                            let lo = chars.next().and_then(|c| c.to_digit(16));
                            match (hi, lo) {
                                (Some(hi), Some(lo)) => {
                                    value.push(char::from(((hi << 4) | lo) as u8));
                                }
                                _ => return Err(KeyTableError::BadEscape { line }),
                            }
                        }
                        _ => return Err(KeyTableError::BadEscape { line }),
                    },
                    Some(c) => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(Field::Quoted(value));
                    return Ok(fields);
                }
                Some(',') => fields.push(Field::Quoted(value)),
                Some(_) => {
                    return Err(KeyTableError::TextAfterQuote {
                        line,
                        field: field_name(fields.len()),
                    })
                }
            }
        } else {
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => {
                        fields.push(Field::Bare(value.trim().to_string()));
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => value.push(c),
                }
            }
            fields.push(Field::Bare(value.trim().to_string()));
        }
    }
}

fn field_name(index: usize) -> &'static str {
    match index {
        0 => "SPIi",
        1 => "SPIr",
        2 => "SK_ei",
        3 => "SK_er",
        4 => "encryption algorithm",
        5 => "SK_ai",
        6 => "SK_ar",
        7 => "integrity algorithm",
        _ => "extra",
    }
}

fn quoted<'f>(line: usize, field: &'static str, f: &'f Field) -> Result<&'f str, KeyTableError> {
    match f {
        Field::Quoted(s) => Ok(s),
        Field::Bare(_) => Err(KeyTableError::WrongFieldKind {
            line,
            field,
            expected: "a quoted algorithm name",
        }),
    }
}

fn hex_field(
    line: usize,
    field: &'static str,
    f: &Field,
) -> Result<Zeroizing<Vec<u8>>, KeyTableError> {
    match f {
        Field::Bare(s) => hex::decode(s)
            .map(Zeroizing::new)
            .map_err(|e| KeyTableError::BadHex {
                line,
                field,
                reason: e.to_string(),
            }),
        Field::Quoted(_) => Err(KeyTableError::WrongFieldKind {
            line,
            field,
            expected: "bare hex",
        }),
    }
}

fn spi(line: usize, field: &'static str, f: &Field) -> Result<[u8; SPI_LEN], KeyTableError> {
    let bytes = hex_field(line, field, f)?;
    <[u8; SPI_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyTableError::BadSpiLength {
        line,
        field,
        found: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!(
        "../../../ikev2/tests/fixtures/strongswan-5.9.8/transport-two-children.ikev2_decryption_table"
    );

    fn line(encr: &str, sk_e_len: usize, integ: &str) -> String {
        let key = "ab".repeat(sk_e_len);
        format!("0102030405060708,1112131415161718,{key},{key},\"{encr}\",,,\"{integ}\"")
    }

    #[test]
    fn fixture_table_parses_to_one_aes_gcm_256_sa() {
        let table = KeyTable::parse(FIXTURE).unwrap();
        let [entry] = table.entries() else {
            panic!("expected one entry")
        };
        assert_eq!(hex::encode(entry.spi_i), "bb629a76df40020e");
        assert_eq!(hex::encode(entry.spi_r), "eb309918dab0ed83");
        assert_eq!(entry.encryption, Encryption::Aead(AeadCipher::AesGcm16_256));
        assert_eq!(entry.sk_ei.len(), 36);
        assert_eq!(entry.sk_er.len(), 36);
        assert!(entry.sk_ai.is_empty());
        assert!(table.find(&entry.spi_i, &entry.spi_r).is_some());
        assert!(table.find(&entry.spi_r, &entry.spi_i).is_none());
    }

    #[test]
    fn debug_output_does_not_show_keys() {
        let table = KeyTable::parse(FIXTURE).unwrap();
        let shown = format!("{table:?}");
        assert!(shown.contains("bb629a76df40020e"));
        assert!(!shown.contains("e35c42e4"), "{shown}");
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = format!(
            "# keys\n\n{}\n",
            line(
                "AES-GCM-128 with 16 octet ICV [RFC5282]",
                20,
                "NONE [RFC4306]"
            )
        );
        let table = KeyTable::parse(&text).unwrap();
        assert_eq!(table.entries()[0].line, 3);
        assert_eq!(
            table.entries()[0].encryption,
            Encryption::Aead(AeadCipher::AesGcm16_128)
        );
    }

    #[test]
    fn wireshark_cipher_we_cannot_decrypt_is_kept_as_unsupported() {
        let text = line("AES-CBC-256 [RFC3602]", 32, "HMAC_SHA2_256_128 [RFC4868]");
        let table = KeyTable::parse(&text).unwrap();
        assert_eq!(
            table.entries()[0].encryption,
            Encryption::Unsupported("AES-CBC-256 [RFC3602]")
        );
    }

    #[test]
    fn unknown_algorithm_name_is_an_error_naming_the_line_and_the_name() {
        let err = KeyTable::parse(&line("aes256gcm16", 36, "NONE [RFC4306]")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: unknown encryption algorithm \"aes256gcm16\"; names are spelled as Wireshark \
             spells them, e.g. \"AES-GCM-256 with 16 octet ICV [RFC5282]\""
        );
        let err = KeyTable::parse(&line("AES-GCM-256 with 16 octet ICV [RFC5282]", 36, "none"))
            .unwrap_err();
        assert!(matches!(
            err,
            KeyTableError::UnknownAlgorithm {
                kind: "integrity",
                ..
            }
        ));
    }

    #[test]
    fn key_without_salt_is_an_error() {
        let err = KeyTable::parse(&line(
            "AES-GCM-256 with 16 octet ICV [RFC5282]",
            32,
            "NONE [RFC4306]",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: SK_ei for AES-GCM-256 with 16 octet ICV [RFC5282] must be 36 octets (key and \
             salt), found 32"
        );
    }

    #[test]
    fn malformed_lines_give_precise_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "0102030405060708,1112131415161718",
                "expected 8 comma-separated fields",
            ),
            (
                "01020304,1112131415161718,,,\"NULL [RFC2410]\",,,\"NONE [RFC4306]\"",
                "SPIi must be 8 octets",
            ),
            (
                "zz02030405060708,1112131415161718,,,\"NULL [RFC2410]\",,,\"NONE [RFC4306]\"",
                "SPIi is not valid hex",
            ),
            (
                "0102030405060708,1112131415161718,,,NULL,,,\"NONE [RFC4306]\"",
                "must be a quoted algorithm name",
            ),
            (
                "0102030405060708,1112131415161718,,,\"NULL [RFC2410],,,",
                "quoted field is not closed",
            ),
            (
                "0102030405060708,1112131415161718,,,\"NULL [RFC2410]\"x,,,\"NONE [RFC4306]\"",
                "unexpected text after",
            ),
            (
                "0102030405060708,1112131415161718,,,\"NULL \\q\",,,\"NONE [RFC4306]\"",
                "bad escape",
            ),
        ];
        for (text, expected) in cases {
            let err = KeyTable::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with("line 1: "), "{err}");
        }
    }

    #[test]
    fn aead_with_integrity_and_duplicate_spis_are_errors() {
        let err = KeyTable::parse(&line(
            "AES-GCM-256 with 16 octet ICV [RFC5282]",
            36,
            "HMAC_SHA2_256_128 [RFC4868]",
        ))
        .unwrap_err();
        assert!(matches!(err, KeyTableError::IntegrityWithAead { .. }));

        let one = line(
            "AES-GCM-128 with 16 octet ICV [RFC5282]",
            20,
            "NONE [RFC4306]",
        );
        let err = KeyTable::parse(&format!("{one}\n{one}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: SPIs 0102030405060708/1112131415161718 already appear on line 1"
        );
    }

    #[test]
    fn escapes_in_quoted_fields_are_decoded() {
        let text =
            "0102030405060708,1112131415161718,,,\"NULL\\x20[RFC2410]\",,,\"NONE [RFC4306]\"";
        let table = KeyTable::parse(text).unwrap();
        assert_eq!(
            table.entries()[0].encryption,
            Encryption::Unsupported("NULL [RFC2410]")
        );
    }
}
