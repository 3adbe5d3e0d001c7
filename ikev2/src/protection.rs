//! Protection of IKE messages: the glue between the [`codec`](crate::codec) and the SK
//! payload ciphers of [`crypto::sk`](crate::crypto::sk).
//!
//! Receiving: [`open`] checks and decrypts the SK payload of a message into its inner
//! payloads ([`OpenedMessage`]), or an SKF payload into one piece of them
//! ([`OpenedFragment`]), which a [`FragmentReassembler`] joins once every fragment is in
//! (RFC 7383 §2.6). Sending: [`protect`] builds header, unencrypted payloads and an SK
//! payload around the sealed inner payloads; [`protect_fragments`] splits them into SKF
//! fragments instead (RFC 7383 §2.5).
//!
//! Keys are passed in by the caller: the cipher and the SK_e of the sending side (SK_ei for
//! messages with the I flag, SK_er otherwise; see [`sender_sk_e`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::codec::{
    decode_payloads, encode_encrypted_prefix, encode_payloads, locate_encrypted_payload,
    DecodeError, EncodeError, EncryptedPayloadHeader, Fragment, Header, Payload,
};
use crate::crypto::aead::{ICV_LEN, IV_LEN};
use crate::crypto::sk::{self, SkError};
use crate::crypto::{AeadCipher, CryptoProvider};
use crate::registry::PayloadType;

/// The most SKF fragments one message may be split into. RFC 7383 sets no limit; a 64 KiB
/// message in 576-byte fragments needs about 120.
pub const MAX_FRAGMENTS_PER_MESSAGE: u16 = 128;

/// The largest reassembled plaintext of a fragmented message.
pub const MAX_REASSEMBLED_LEN: usize = 128 * 1024;

/// The most fragmented messages held at once by a [`FragmentReassembler`]; more evict the
/// oldest.
pub const MAX_MESSAGES_IN_REASSEMBLY: usize = 16;

/// How long the fragments of one message are held, from the first one's arrival, before the
/// incomplete message is dropped (RFC 7383 §2.6.2 leaves the time to us). Longer than a few
/// retransmissions, whose fragments combine with the ones held, shorter than the whole
/// retransmission schedule.
pub const MAX_REASSEMBLY_TIME: Duration = Duration::from_secs(30);

/// Why a message could not be opened or protected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// The outer message does not decode far enough to find its encrypted payload.
    #[error("message: {0}")]
    Message(DecodeError),
    /// The message has no SK or SKF payload.
    #[error("the message has no SK or SKF payload")]
    NotEncrypted,
    /// The SK/SKF body did not open (wrong key, modified message, bad padding) or seal.
    #[error("{payload}: {error}")]
    Cipher {
        /// SK or SKF.
        payload: PayloadType,
        /// What the cipher layer said.
        error: SkError,
    },
    /// The decrypted inner payloads do not decode.
    #[error("inner payloads: {0}")]
    Inner(DecodeError),
    /// The payloads to protect do not encode.
    #[error("encoding: {0}")]
    Encode(EncodeError),
    /// An SKF fragment does not fit the others of its message (RFC 7383 §2.6).
    #[error("SKF fragment: {0}")]
    Fragment(FragmentError),
    /// Splitting into fragments was asked with a fragment size that cannot carry data, or
    /// would need more than [`MAX_FRAGMENTS_PER_MESSAGE`] fragments.
    #[error("cannot split {len} bytes into fragments of {piece_len} bytes")]
    FragmentSize {
        /// Plaintext length.
        len: usize,
        /// Plaintext bytes per fragment.
        piece_len: usize,
    },
}

/// Why an SKF fragment was not accepted into reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Total Fragments above [`MAX_FRAGMENTS_PER_MESSAGE`].
    #[error("Total Fragments {total} exceeds the limit of {MAX_FRAGMENTS_PER_MESSAGE}")]
    TooManyFragments {
        /// Total Fragments.
        total: u16,
    },
    /// RFC 7383 §2.6.1: a fragment with a smaller Total Fragments than the ones held belongs
    /// to an older transmission and is discarded.
    #[error("fragment {number}/{total} is from an older transmission (now {current} fragments)")]
    StaleTransmission {
        /// Fragment Number.
        number: u16,
        /// Its Total Fragments.
        total: u16,
        /// Total Fragments of the fragments held.
        current: u16,
    },
    /// The same fragment arrived again with different content.
    #[error("fragment {number} arrived twice with different content")]
    ConflictingDuplicate {
        /// Fragment Number.
        number: u16,
    },
    /// Fragment 1 must name the first inner payload; the others must carry NONE.
    #[error("fragment {number} has Next Payload {next}, expected {expected}")]
    WrongNextPayload {
        /// Fragment Number.
        number: u16,
        /// What it carried.
        next: PayloadType,
        /// "a payload type" or "NONE".
        expected: &'static str,
    },
    /// The reassembled plaintext would exceed [`MAX_REASSEMBLED_LEN`].
    #[error("reassembled plaintext would exceed {MAX_REASSEMBLED_LEN} bytes")]
    TooLarge,
}

/// The decrypted SK payload of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMessage {
    /// The first inner payload's type (the SK payload's Next Payload).
    pub first_inner: PayloadType,
    /// The inner payload chain as decrypted, padding removed.
    pub plaintext: Vec<u8>,
    /// Octets of padding the sender added (before the Pad Length octet).
    pub pad_len: u8,
    /// The IV the sender used.
    pub iv: [u8; IV_LEN],
    /// The inner payloads.
    pub payloads: Vec<Payload>,
}

/// One decrypted SKF fragment: a piece of the inner payload chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFragment {
    /// Fragment Number and Total Fragments.
    pub fragment: Fragment,
    /// The first inner payload's type (fragment 1), `NONE` in the others.
    pub first_inner: PayloadType,
    /// This fragment's piece of the inner payload chain, padding removed.
    pub plaintext: Vec<u8>,
    /// Octets of padding the sender added.
    pub pad_len: u8,
    /// The IV the sender used.
    pub iv: [u8; IV_LEN],
}

/// What [`open`] found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// An SK payload, opened and decoded.
    Message(OpenedMessage),
    /// An SKF fragment, opened; feed it to a [`FragmentReassembler`].
    Fragment(OpenedFragment),
}

/// The SK_e that protects `header`'s message: SK_ei when the I flag is set (the original
/// initiator sent it), SK_er otherwise (RFC 7296 §2.14).
pub fn sender_sk_e<'k>(header: &Header, sk_ei: &'k [u8], sk_er: &'k [u8]) -> &'k [u8] {
    if header.flags.is_initiator() {
        sk_ei
    } else {
        sk_er
    }
}

/// Checks and decrypts the SK or SKF payload of the received message `message` (without the
/// non-ESP marker) with `cipher` and the sender's `sk_e` (key then salt).
pub fn open(
    provider: &dyn CryptoProvider,
    message: &[u8],
    cipher: AeadCipher,
    sk_e: &[u8],
) -> Result<Opened, ProtectionError> {
    let location = locate_encrypted_payload(message)
        .map_err(ProtectionError::Message)?
        .ok_or(ProtectionError::NotEncrypted)?;
    let payload = location.payload_type;
    let cipher_error = |error| ProtectionError::Cipher { payload, error };

    let aad = message.get(location.aad.clone()).unwrap_or_default();
    let body = message.get(location.body.clone()).unwrap_or_default();
    let plaintext = sk::open(provider, cipher, sk_e, aad, body).map_err(cipher_error)?;

    // The body is IV | ciphertext | ICV and the ciphertext is inner | padding | Pad Length,
    // so what open() stripped beyond the Pad Length octet is the padding.
    let sealed_plaintext_len = body.len().saturating_sub(IV_LEN + ICV_LEN);
    let pad_len = sealed_plaintext_len
        .saturating_sub(plaintext.len())
        .saturating_sub(1);
    let pad_len = u8::try_from(pad_len).unwrap_or(u8::MAX);
    let mut iv = [0u8; IV_LEN];
    if let Some(received) = body.get(..IV_LEN) {
        iv.copy_from_slice(received);
    }

    match location.fragment {
        None => {
            let payloads = decode_payloads(location.first_inner, &plaintext)
                .map_err(ProtectionError::Inner)?;
            Ok(Opened::Message(OpenedMessage {
                first_inner: location.first_inner,
                plaintext,
                pad_len,
                iv,
                payloads,
            }))
        }
        Some(fragment) => Ok(Opened::Fragment(OpenedFragment {
            fragment,
            first_inner: location.first_inner,
            plaintext,
            pad_len,
            iv,
        })),
    }
}

/// Builds a message to send: `header`, the `unencrypted` payloads (usually none), then an SK
/// payload holding `inner` sealed with `cipher` and `sk_e` under `iv`, with `pad_len` zero
/// octets of padding. `iv` must never repeat under one SK_e.
#[allow(clippy::too_many_arguments)]
pub fn protect(
    provider: &dyn CryptoProvider,
    header: &Header,
    unencrypted: &[Payload],
    inner: &[Payload],
    cipher: AeadCipher,
    sk_e: &[u8],
    iv: &[u8; IV_LEN],
    pad_len: u8,
) -> Result<Vec<u8>, ProtectionError> {
    let (first_inner, plaintext) = encode_payloads(inner).map_err(ProtectionError::Encode)?;
    seal_piece(
        provider,
        header,
        unencrypted,
        EncryptedPayloadHeader {
            first_inner,
            fragment: None,
        },
        &plaintext,
        cipher,
        sk_e,
        iv,
        pad_len,
    )
}

/// Builds the SKF fragments of a message to send (RFC 7383 §2.5): the encoded `inner`
/// payloads are cut into pieces of at most `piece_len` octets, each sealed in its own
/// message with the IV `next_iv` returns. Only the first fragment names the first inner
/// payload; `unencrypted` payloads go in the first fragment only (RFC 7383 §2.5.3).
#[allow(clippy::too_many_arguments)]
pub fn protect_fragments(
    provider: &dyn CryptoProvider,
    header: &Header,
    unencrypted: &[Payload],
    inner: &[Payload],
    cipher: AeadCipher,
    sk_e: &[u8],
    piece_len: usize,
    next_iv: &mut dyn FnMut() -> [u8; IV_LEN],
) -> Result<Vec<Vec<u8>>, ProtectionError> {
    let (first_inner, plaintext) = encode_payloads(inner).map_err(ProtectionError::Encode)?;
    let size_error = ProtectionError::FragmentSize {
        len: plaintext.len(),
        piece_len,
    };
    if piece_len == 0 {
        return Err(size_error);
    }
    let pieces: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(piece_len).collect()
    };
    let total = u16::try_from(pieces.len())
        .ok()
        .filter(|&t| t <= MAX_FRAGMENTS_PER_MESSAGE)
        .ok_or(size_error)?;

    let mut messages = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        let number = u16::try_from(index + 1).unwrap_or(u16::MAX);
        let first = number == 1;
        let encrypted = EncryptedPayloadHeader {
            first_inner: if first {
                first_inner
            } else {
                PayloadType::NONE
            },
            fragment: Some(Fragment { number, total }),
        };
        let before: &[Payload] = if first { unencrypted } else { &[] };
        let iv = next_iv();
        messages.push(seal_piece(
            provider, header, before, encrypted, piece, cipher, sk_e, &iv, 0,
        )?);
    }
    Ok(messages)
}

#[allow(clippy::too_many_arguments)]
fn seal_piece(
    provider: &dyn CryptoProvider,
    header: &Header,
    unencrypted: &[Payload],
    encrypted: EncryptedPayloadHeader,
    plaintext: &[u8],
    cipher: AeadCipher,
    sk_e: &[u8],
    iv: &[u8; IV_LEN],
    pad_len: u8,
) -> Result<Vec<u8>, ProtectionError> {
    let payload = if encrypted.fragment.is_some() {
        PayloadType::SKF
    } else {
        PayloadType::SK
    };
    let body_len = sk::sealed_body_len(plaintext.len(), pad_len);
    let mut message = encode_encrypted_prefix(header, unencrypted, encrypted, body_len)
        .map_err(ProtectionError::Encode)?;
    let body = sk::seal_padded(provider, cipher, sk_e, iv, &message, plaintext, pad_len)
        .map_err(|error| ProtectionError::Cipher { payload, error })?;
    message.extend_from_slice(&body);
    Ok(message)
}

/// Identifies the message a fragment belongs to: the IKE SA, the Message ID and the
/// direction (requests and responses share Message IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentedMessageKey {
    /// SPIi.
    pub spi_i: [u8; 8],
    /// SPIr.
    pub spi_r: [u8; 8],
    /// Message ID.
    pub message_id: u32,
    /// The R flag.
    pub response: bool,
}

impl FragmentedMessageKey {
    /// The key of the message `header` belongs to.
    pub fn of(header: &Header) -> Self {
        FragmentedMessageKey {
            spi_i: header.spi_i,
            spi_r: header.spi_r,
            message_id: header.message_id,
            response: header.flags.is_response(),
        }
    }
}

/// A message whose SKF fragments have all arrived and whose inner payloads decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassembledMessage {
    /// Which message.
    pub key: FragmentedMessageKey,
    /// The first inner payload's type (from fragment 1).
    pub first_inner: PayloadType,
    /// Total Fragments.
    pub total: u16,
    /// The joined inner payload chain.
    pub plaintext: Vec<u8>,
    /// The inner payloads.
    pub payloads: Vec<Payload>,
}

/// What a fragment did to its message's reassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentProgress {
    /// Held; `have` of `total` fragments are in.
    Held {
        /// Fragments held.
        have: u16,
        /// Total Fragments.
        total: u16,
    },
    /// A repeat of a fragment already held; ignored.
    Duplicate,
    /// The message is complete.
    Complete(ReassembledMessage),
}

#[derive(Debug)]
struct PendingMessage {
    /// The time the reassembler knew when the first fragment arrived.
    started: Option<Instant>,
    total: u16,
    first_inner: PayloadType,
    pieces: Vec<Option<Vec<u8>>>,
    len: usize,
}

/// Joins the decrypted SKF fragments of messages (RFC 7383 §2.6), bounded by
/// [`MAX_FRAGMENTS_PER_MESSAGE`], [`MAX_REASSEMBLED_LEN`] and [`MAX_MESSAGES_IN_REASSEMBLY`],
/// and in time by [`MAX_REASSEMBLY_TIME`] once the caller tells it the time with
/// [`FragmentReassembler::observe`].
#[derive(Debug, Default)]
pub struct FragmentReassembler {
    pending: HashMap<FragmentedMessageKey, PendingMessage>,
    arrival: VecDeque<FragmentedMessageKey>,
    now: Option<Instant>,
}

impl FragmentReassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the reassembler the caller's time: messages begun more than
    /// [`MAX_REASSEMBLY_TIME`] before `now` are dropped, and messages begun from now on are
    /// stamped with `now`. Call it before [`Self::add`] with each received message's time.
    pub fn observe(&mut self, now: Instant) {
        self.now = Some(now);
        let expired: Vec<FragmentedMessageKey> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.started
                    .is_some_and(|t| now.saturating_duration_since(t) > MAX_REASSEMBLY_TIME)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }

    /// Adds a decrypted fragment of the message `key`. Fragments are only added after their
    /// ICV checked out, so a forged fragment cannot disturb reassembly (RFC 7383 §2.6).
    pub fn add(
        &mut self,
        key: FragmentedMessageKey,
        fragment: OpenedFragment,
    ) -> Result<FragmentProgress, ProtectionError> {
        let reject = |e| Err(ProtectionError::Fragment(e));
        let Fragment { number, total } = fragment.fragment;
        if total > MAX_FRAGMENTS_PER_MESSAGE {
            return reject(FragmentError::TooManyFragments { total });
        }
        let first_expected = number == 1;
        if first_expected == (fragment.first_inner == PayloadType::NONE) {
            return reject(FragmentError::WrongNextPayload {
                number,
                next: fragment.first_inner,
                expected: if first_expected {
                    "a payload type"
                } else {
                    "NONE"
                },
            });
        }

        // RFC 7383 §2.6.1: a larger Total Fragments means a retransmission with smaller
        // fragments; what was held is dropped. A smaller one is an old transmission.
        if let Some(held) = self.pending.get(&key) {
            if total < held.total {
                return reject(FragmentError::StaleTransmission {
                    number,
                    total,
                    current: held.total,
                });
            }
            if total > held.total {
                self.remove(&key);
            }
        }
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= MAX_MESSAGES_IN_REASSEMBLY {
                let Some(oldest) = self.arrival.pop_front() else {
                    break;
                };
                self.pending.remove(&oldest);
            }
            self.arrival.push_back(key);
            self.pending.insert(
                key,
                PendingMessage {
                    started: self.now,
                    total,
                    first_inner: PayloadType::NONE,
                    pieces: vec![None; usize::from(total)],
                    len: 0,
                },
            );
        }
        let Some(held) = self.pending.get_mut(&key) else {
            return Ok(FragmentProgress::Held { have: 0, total });
        };

        let index = usize::from(number).saturating_sub(1);
        let Some(slot) = held.pieces.get_mut(index) else {
            return Ok(FragmentProgress::Held { have: 0, total });
        };
        if let Some(existing) = slot {
            if *existing == fragment.plaintext {
                return Ok(FragmentProgress::Duplicate);
            }
            return reject(FragmentError::ConflictingDuplicate { number });
        }
        let len = held.len.saturating_add(fragment.plaintext.len());
        if len > MAX_REASSEMBLED_LEN {
            self.remove(&key);
            return reject(FragmentError::TooLarge);
        }
        held.len = len;
        *slot = Some(fragment.plaintext);
        if number == 1 {
            held.first_inner = fragment.first_inner;
        }

        let have = held.pieces.iter().filter(|p| p.is_some()).count();
        let have = u16::try_from(have).unwrap_or(u16::MAX);
        if have < total {
            return Ok(FragmentProgress::Held { have, total });
        }

        let Some(done) = self.remove(&key) else {
            return Ok(FragmentProgress::Held { have, total });
        };
        let mut plaintext = Vec::with_capacity(done.len);
        for piece in done.pieces.into_iter().flatten() {
            plaintext.extend_from_slice(&piece);
        }
        let payloads =
            decode_payloads(done.first_inner, &plaintext).map_err(ProtectionError::Inner)?;
        Ok(FragmentProgress::Complete(ReassembledMessage {
            key,
            first_inner: done.first_inner,
            total,
            plaintext,
            payloads,
        }))
    }

    /// The messages still waiting for fragments, with how many they have and need.
    pub fn incomplete(&self) -> Vec<(FragmentedMessageKey, u16, u16)> {
        self.arrival
            .iter()
            .filter_map(|k| {
                let p = self.pending.get(k)?;
                let have = p.pieces.iter().filter(|x| x.is_some()).count();
                Some((*k, u16::try_from(have).unwrap_or(u16::MAX), p.total))
            })
            .collect()
    }

    fn remove(&mut self, key: &FragmentedMessageKey) -> Option<PendingMessage> {
        self.arrival.retain(|k| k != key);
        self.pending.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Flags, Message, Nonce, Notify, PayloadBody};
    use crate::crypto::RingProvider;
    use crate::registry::{ExchangeType, NotifyType};

    const SK_E: [u8; 36] = [7; 36];

    fn header() -> Header {
        Header::new(
            [1; 8],
            [2; 8],
            ExchangeType::INFORMATIONAL,
            Flags::INITIATOR,
            5,
        )
    }

    fn inner() -> Vec<Payload> {
        vec![
            Payload::new(Notify::status(NotifyType::INITIAL_CONTACT)),
            Payload::new(Nonce {
                data: (0..=255).collect(),
            }),
            Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)),
        ]
    }

    #[test]
    fn protected_message_opens_to_the_same_payloads() {
        let p = RingProvider;
        let iv = [9u8; IV_LEN];
        let bytes = protect(
            &p,
            &header(),
            &[],
            &inner(),
            AeadCipher::AesGcm16_256,
            &SK_E,
            &iv,
            3,
        )
        .unwrap();
        let decoded = Message::decode(&bytes).unwrap();
        assert!(matches!(
            decoded.payloads.as_slice(),
            [Payload {
                body: PayloadBody::Sk(_),
                ..
            }]
        ));

        let Opened::Message(opened) = open(&p, &bytes, AeadCipher::AesGcm16_256, &SK_E).unwrap()
        else {
            panic!("expected an SK payload");
        };
        assert_eq!(opened.payloads, inner());
        assert_eq!(opened.pad_len, 3);
        assert_eq!(opened.iv, iv);
        assert_eq!(opened.first_inner, PayloadType::NOTIFY);
    }

    #[test]
    fn opening_with_the_wrong_key_or_a_modified_message_fails_the_icv() {
        let p = RingProvider;
        let bytes = protect(
            &p,
            &header(),
            &[],
            &inner(),
            AeadCipher::ChaCha20Poly1305,
            &SK_E,
            &[1; 8],
            0,
        )
        .unwrap();
        let wrong = [8u8; 36];
        assert!(matches!(
            open(&p, &bytes, AeadCipher::ChaCha20Poly1305, &wrong),
            Err(ProtectionError::Cipher {
                payload: PayloadType::SK,
                error: SkError::IntegrityCheckFailed { .. }
            })
        ));
        let mut modified = bytes.clone();
        modified[20] ^= 1; // the Message ID is part of the AAD
        assert!(matches!(
            open(&p, &modified, AeadCipher::ChaCha20Poly1305, &SK_E),
            Err(ProtectionError::Cipher { .. })
        ));
    }

    #[test]
    fn message_without_sk_payload_is_reported() {
        let plain = Message {
            header: header(),
            payloads: inner(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            open(&RingProvider, &plain, AeadCipher::AesGcm16_128, &[0; 20]),
            Err(ProtectionError::NotEncrypted)
        );
    }

    fn fragments(piece_len: usize) -> Vec<Vec<u8>> {
        let mut counter = 0u8;
        let mut next_iv = || {
            counter += 1;
            [counter; IV_LEN]
        };
        protect_fragments(
            &RingProvider,
            &header(),
            &[],
            &inner(),
            AeadCipher::AesGcm16_128,
            &SK_E[..20],
            piece_len,
            &mut next_iv,
        )
        .unwrap()
    }

    fn open_fragment(bytes: &[u8]) -> (FragmentedMessageKey, OpenedFragment) {
        let key = FragmentedMessageKey::of(&Message::decode(bytes).unwrap().header);
        match open(&RingProvider, bytes, AeadCipher::AesGcm16_128, &SK_E[..20]).unwrap() {
            Opened::Fragment(f) => (key, f),
            Opened::Message(_) => panic!("expected a fragment"),
        }
    }

    #[test]
    fn fragments_in_any_order_reassemble_to_the_inner_payloads() {
        let messages = fragments(100);
        assert_eq!(messages.len(), 3);
        let mut r = FragmentReassembler::new();
        let mut order = [2usize, 0, 1].iter().peekable();
        while let Some(&i) = order.next() {
            let (key, f) = open_fragment(&messages[i]);
            let progress = r.add(key, f).unwrap();
            if order.peek().is_some() {
                assert!(matches!(progress, FragmentProgress::Held { total: 3, .. }));
            } else {
                let FragmentProgress::Complete(done) = progress else {
                    panic!("expected completion")
                };
                assert_eq!(done.payloads, inner());
                assert_eq!(done.total, 3);
            }
        }
        assert!(r.incomplete().is_empty());
    }

    #[test]
    fn duplicate_fragment_is_ignored_and_a_retransmission_in_more_fragments_restarts() {
        let coarse = fragments(200);
        let fine = fragments(60);
        let mut r = FragmentReassembler::new();

        let (key, f) = open_fragment(&coarse[0]);
        assert_eq!(
            r.add(key, f.clone()).unwrap(),
            FragmentProgress::Held { have: 1, total: 2 }
        );
        assert_eq!(r.add(key, f).unwrap(), FragmentProgress::Duplicate);

        let (key, f) = open_fragment(&fine[0]);
        assert_eq!(
            r.add(key, f).unwrap(),
            FragmentProgress::Held { have: 1, total: 5 }
        );

        let (key, f) = open_fragment(&coarse[1]);
        assert_eq!(
            r.add(key, f),
            Err(ProtectionError::Fragment(
                FragmentError::StaleTransmission {
                    number: 2,
                    total: 2,
                    current: 5
                }
            ))
        );
        assert_eq!(r.incomplete(), vec![(key, 1, 5)]);
    }

    #[test]
    fn fragment_with_the_wrong_next_payload_is_rejected() {
        let messages = fragments(100);
        let (key, mut f) = open_fragment(&messages[1]);
        f.first_inner = PayloadType::NOTIFY;
        assert!(matches!(
            FragmentReassembler::new().add(key, f),
            Err(ProtectionError::Fragment(FragmentError::WrongNextPayload {
                number: 2,
                ..
            }))
        ));
    }

    #[test]
    fn incomplete_message_is_dropped_after_the_reassembly_time() {
        let messages = fragments(100);
        let start = Instant::now();
        let mut r = FragmentReassembler::new();
        r.observe(start);
        let (key, f) = open_fragment(&messages[0]);
        r.add(key, f).unwrap();

        r.observe(start + MAX_REASSEMBLY_TIME);
        assert_eq!(r.incomplete().len(), 1, "still within the time");
        r.observe(start + MAX_REASSEMBLY_TIME + Duration::from_millis(1));
        assert!(r.incomplete().is_empty());

        // The rest alone no longer completes the message.
        let (key, f) = open_fragment(&messages[1]);
        assert!(matches!(
            r.add(key, f).unwrap(),
            FragmentProgress::Held { have: 1, total: 3 }
        ));
    }

    #[test]
    fn fragment_count_is_bounded() {
        let (key, mut f) = open_fragment(&fragments(100)[0]);
        f.fragment.total = MAX_FRAGMENTS_PER_MESSAGE + 1;
        assert!(matches!(
            FragmentReassembler::new().add(key, f),
            Err(ProtectionError::Fragment(
                FragmentError::TooManyFragments { .. }
            ))
        ));
    }
}
