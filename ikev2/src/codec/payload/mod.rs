//! Payloads (RFC 7296 §3.2–§3.16, RFC 7383 §2.5) and the chain of generic payload headers
//! that links them.
//!
//! Each payload body has its own file, named for the payload. Every body decoder reads only
//! from a [`Reader`] bounded to that payload's body and must consume it exactly.
//!
//! Limitation: RESERVED fields and the 7 reserved bits after the critical bit are ignored on
//! receipt (RFC 7296 §3.2) and sent as zero, so a peer that sets them is not re-encoded byte
//! for byte.

mod auth;
mod cert;
mod cp;
mod delete;
mod eap;
mod id;
mod ke;
mod nonce;
mod notify;
mod sa;
mod sk;
mod skf;
mod ts;
mod unknown;
mod vendor_id;

pub use auth::Auth;
pub use cert::{Cert, CertReq, CA_KEY_HASH_LEN};
pub use cp::{CfgAttribute, Config};
pub use delete::Delete;
pub use eap::Eap;
pub use id::Id;
pub use ke::Ke;
pub use nonce::Nonce;
pub(crate) use notify::{encode_hash_algorithm_list, hash_algorithm_list};
pub use notify::{Notify, NotifyData, NAT_DETECTION_HASH_LEN};
pub use sa::{AttributeValue, Proposal, Sa, Transform, TransformAttribute, TransformId};
pub use sk::Encrypted;
pub use skf::EncryptedFragment;
pub(crate) use skf::{decode_fragment_fields, FRAGMENT_FIELDS_LEN};
pub use ts::{AddressRange, TrafficSelector, TrafficSelectors};
pub use unknown::UnknownPayload;
pub use vendor_id::VendorId;

use super::reader::Reader;
use super::writer::Writer;
use super::{DecodeError, EncodeError, MAX_PAYLOADS};
use crate::registry::PayloadType;

/// Length of the generic payload header (RFC 7296 §3.2).
pub const GENERIC_HEADER_LEN: usize = 4;

/// The Critical bit of the generic payload header.
const CRITICAL: u8 = 0x80;

/// One payload: its critical bit and its typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// RFC 7296 §2.5: the sender wants the whole message rejected if we do not know the type.
    pub critical: bool,
    /// What the payload carries.
    pub body: PayloadBody,
}

impl Payload {
    /// A payload with the critical bit clear, as RFC 7296 wants for every type it defines.
    pub fn new(body: impl Into<PayloadBody>) -> Self {
        Payload {
            critical: false,
            body: body.into(),
        }
    }

    /// The payload's type, as it appears in the preceding Next Payload field.
    pub fn payload_type(&self) -> PayloadType {
        self.body.payload_type()
    }
}

/// The typed body of each payload RFC 7296 and RFC 7383 define, or an unknown one kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadBody {
    /// Security Association (§3.3).
    Sa(Sa),
    /// Key Exchange (§3.4).
    Ke(Ke),
    /// Identification of the initiator, IDi (§3.5).
    IdI(Id),
    /// Identification of the responder, IDr (§3.5).
    IdR(Id),
    /// Certificate (§3.6).
    Cert(Cert),
    /// Certificate Request (§3.7).
    CertReq(CertReq),
    /// Authentication (§3.8).
    Auth(Auth),
    /// Nonce, Ni or Nr (§3.9).
    Nonce(Nonce),
    /// Notify (§3.10).
    Notify(Notify),
    /// Delete (§3.11).
    Delete(Delete),
    /// Vendor ID (§3.12).
    VendorId(VendorId),
    /// Traffic Selector of the initiator, TSi (§3.13).
    TsI(TrafficSelectors),
    /// Traffic Selector of the responder, TSr (§3.13).
    TsR(TrafficSelectors),
    /// Encrypted and Authenticated, SK (§3.14).
    Sk(Encrypted),
    /// Encrypted and Authenticated Fragment, SKF (RFC 7383 §2.5).
    Skf(EncryptedFragment),
    /// Configuration, CP (§3.15).
    Cp(Config),
    /// Extensible Authentication, EAP (§3.16).
    Eap(Eap),
    /// A type we do not decode, kept so it re-encodes (critical bit clear only).
    Unknown(UnknownPayload),
}

impl PayloadBody {
    /// The payload type this body is sent as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            PayloadBody::Sa(_) => PayloadType::SA,
            PayloadBody::Ke(_) => PayloadType::KE,
            PayloadBody::IdI(_) => PayloadType::IDI,
            PayloadBody::IdR(_) => PayloadType::IDR,
            PayloadBody::Cert(_) => PayloadType::CERT,
            PayloadBody::CertReq(_) => PayloadType::CERTREQ,
            PayloadBody::Auth(_) => PayloadType::AUTH,
            PayloadBody::Nonce(_) => PayloadType::NONCE,
            PayloadBody::Notify(_) => PayloadType::NOTIFY,
            PayloadBody::Delete(_) => PayloadType::DELETE,
            PayloadBody::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadBody::TsI(_) => PayloadType::TSI,
            PayloadBody::TsR(_) => PayloadType::TSR,
            PayloadBody::Sk(_) => PayloadType::SK,
            PayloadBody::Skf(_) => PayloadType::SKF,
            PayloadBody::Cp(_) => PayloadType::CP,
            PayloadBody::Eap(_) => PayloadType::EAP,
            PayloadBody::Unknown(u) => u.payload_type,
        }
    }

    /// Whether this is an SK or SKF payload (it must end its chain).
    pub fn is_encrypted(&self) -> bool {
        matches!(self, PayloadBody::Sk(_) | PayloadBody::Skf(_))
    }

    /// Decodes the body of a payload of type `payload_type` whose generic header said
    /// `next_payload` (only SK and SKF use it: it is their first inner payload).
    fn decode(
        payload_type: PayloadType,
        next_payload: PayloadType,
        critical: bool,
        offset: usize,
        r: &mut Reader<'_>,
    ) -> Result<PayloadBody, DecodeError> {
        let body = match payload_type {
            PayloadType::SA => PayloadBody::Sa(Sa::decode(r)?),
            PayloadType::KE => PayloadBody::Ke(Ke::decode(r)?),
            PayloadType::IDI => PayloadBody::IdI(Id::decode(r)?),
            PayloadType::IDR => PayloadBody::IdR(Id::decode(r)?),
            PayloadType::CERT => PayloadBody::Cert(Cert::decode(r)?),
            PayloadType::CERTREQ => PayloadBody::CertReq(CertReq::decode(r)?),
            PayloadType::AUTH => PayloadBody::Auth(Auth::decode(r)?),
            PayloadType::NONCE => PayloadBody::Nonce(Nonce::decode(r)?),
            PayloadType::NOTIFY => PayloadBody::Notify(Notify::decode(r)?),
            PayloadType::DELETE => PayloadBody::Delete(Delete::decode(r)?),
            PayloadType::VENDOR_ID => PayloadBody::VendorId(VendorId::decode(r)?),
            PayloadType::TSI => PayloadBody::TsI(TrafficSelectors::decode(r)?),
            PayloadType::TSR => PayloadBody::TsR(TrafficSelectors::decode(r)?),
            PayloadType::SK => PayloadBody::Sk(Encrypted::decode(next_payload, r)?),
            PayloadType::SKF => {
                PayloadBody::Skf(EncryptedFragment::decode(next_payload, offset, r)?)
            }
            PayloadType::CP => PayloadBody::Cp(Config::decode(r)?),
            PayloadType::EAP => PayloadBody::Eap(Eap::decode(r)?),
            other if critical => {
                return Err(DecodeError::UnsupportedCriticalPayload {
                    payload: other,
                    offset,
                })
            }
            other => PayloadBody::Unknown(UnknownPayload::decode(other, r)?),
        };
        r.finish()?;
        Ok(body)
    }

    /// Appends the body (everything after the generic payload header).
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        match self {
            PayloadBody::Sa(b) => b.encode(w),
            PayloadBody::Ke(b) => b.encode(w),
            PayloadBody::IdI(b) | PayloadBody::IdR(b) => b.encode(w),
            PayloadBody::Cert(b) => b.encode(w),
            PayloadBody::CertReq(b) => b.encode(w),
            PayloadBody::Auth(b) => b.encode(w),
            PayloadBody::Nonce(b) => b.encode(w),
            PayloadBody::Notify(b) => b.encode(w),
            PayloadBody::Delete(b) => b.encode(w),
            PayloadBody::VendorId(b) => b.encode(w),
            PayloadBody::TsI(b) | PayloadBody::TsR(b) => b.encode(w),
            PayloadBody::Sk(b) => b.encode(w),
            PayloadBody::Skf(b) => b.encode(w),
            PayloadBody::Cp(b) => b.encode(w),
            PayloadBody::Eap(b) => b.encode(w),
            PayloadBody::Unknown(b) => b.encode(w),
        }
    }
}

macro_rules! into_body {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for PayloadBody {
            fn from(b: $ty) -> Self {
                PayloadBody::$variant(b)
            }
        })*
    };
}

into_body! {
    Sa => Sa, Ke => Ke, Cert => Cert, CertReq => CertReq, Auth => Auth, Nonce => Nonce,
    Notify => Notify, Delete => Delete, VendorId => VendorId, Encrypted => Sk,
    EncryptedFragment => Skf, Config => Cp, Eap => Eap, UnknownPayload => Unknown,
}

/// Which chain is being decoded or encoded: a message's (may end in SK/SKF) or a decrypted
/// plaintext's (may not contain them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    Message,
    Plaintext,
}

/// One payload as the chain walk finds it: its generic payload header and a reader over its
/// body.
pub(crate) struct RawPayload<'a> {
    /// Its type (named by the previous Next Payload field).
    pub(crate) payload_type: PayloadType,
    /// Its Next Payload field: for SK/SKF, the first inner payload's type.
    pub(crate) next: PayloadType,
    /// Its Critical flag.
    pub(crate) critical: bool,
    /// Absolute offset of its generic payload header.
    pub(crate) offset: usize,
    /// Its body (everything after the generic payload header).
    pub(crate) body: Reader<'a>,
}

/// Walks a chain of payloads by their generic payload headers (RFC 7296 §3.2), checking
/// lengths, the payload limit and that SK/SKF comes last (and never in a plaintext), without
/// decoding any body: the one walk both [`decode_chain`] and the SK/SKF locator use.
pub(crate) struct ChainWalk<'a> {
    r: Reader<'a>,
    this: PayloadType,
    count: usize,
    chain: Chain,
}

impl<'a> ChainWalk<'a> {
    /// A walk over `bytes`, the first payload of type `first`; `base` is the absolute offset
    /// of `bytes` for error reports.
    pub(crate) fn new(first: PayloadType, bytes: &'a [u8], base: usize, chain: Chain) -> Self {
        ChainWalk {
            r: Reader::new(bytes, base, PayloadType::NONE),
            this: first,
            count: 0,
            chain,
        }
    }

    /// The next payload, or `None` after the last one (Next Payload `NONE`, or SK/SKF).
    pub(crate) fn next_payload(&mut self) -> Result<Option<RawPayload<'a>>, DecodeError> {
        let this = self.this;
        if this == PayloadType::NONE {
            return Ok(None);
        }
        let r = &mut self.r;
        let offset = r.offset();
        if self.count >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads {
                max: MAX_PAYLOADS,
                offset,
            });
        }
        self.count = self.count.saturating_add(1);

        // The generic payload header (RFC 7296 §3.2).
        r.set_payload(this);
        let available = r.remaining();
        let next = PayloadType(r.u8("Next Payload")?);
        let critical = r.u8("Critical flag")? & CRITICAL != 0;
        let length = r.u16("Payload Length")?;
        let body_len = usize::from(length).checked_sub(GENERIC_HEADER_LEN).ok_or(
            DecodeError::PayloadLengthTooShort {
                payload: this,
                offset,
                length,
            },
        )?;
        if body_len > r.remaining() {
            return Err(DecodeError::PayloadOverrun {
                payload: this,
                offset,
                length,
                available,
            });
        }
        let body = r.sub(body_len, "payload body")?;

        // RFC 7296 §3.14: SK ends the chain; its Next Payload names the first inner payload.
        let encrypted = this == PayloadType::SK || this == PayloadType::SKF;
        if encrypted {
            if self.chain == Chain::Plaintext {
                return Err(DecodeError::NestedEncryptedPayload {
                    payload: this,
                    offset,
                });
            }
            if !r.is_empty() {
                return Err(DecodeError::EncryptedPayloadNotLast {
                    payload: this,
                    offset,
                    count: r.remaining(),
                });
            }
        }
        self.this = if encrypted { PayloadType::NONE } else { next };
        Ok(Some(RawPayload {
            payload_type: this,
            next,
            critical,
            offset,
            body,
        }))
    }

    /// Checks that nothing follows the last payload.
    pub(crate) fn finish(mut self) -> Result<(), DecodeError> {
        self.r.set_payload(PayloadType::NONE);
        self.r.finish()
    }
}

/// Decodes the chain of payloads in `bytes`, the first of type `first`; `base` is the
/// absolute offset of `bytes` for error reports.
pub(crate) fn decode_chain(
    first: PayloadType,
    bytes: &[u8],
    base: usize,
    chain: Chain,
) -> Result<Vec<Payload>, DecodeError> {
    let mut walk = ChainWalk::new(first, bytes, base, chain);
    let mut payloads = Vec::new();
    while let Some(mut raw) = walk.next_payload()? {
        let body = PayloadBody::decode(
            raw.payload_type,
            raw.next,
            raw.critical,
            raw.offset,
            &mut raw.body,
        )?;
        payloads.push(Payload {
            critical: raw.critical,
            body,
        });
    }
    walk.finish()?;
    Ok(payloads)
}

/// Appends the chain of payloads and returns the type of the first (`NONE` when empty), for
/// the Next Payload field that precedes the chain. The last payload's Next Payload is `last_next`
/// (`NONE`, or SK/SKF when an encrypted payload header follows).
pub(crate) fn encode_chain(
    payloads: &[Payload],
    w: &mut Writer,
    chain: Chain,
    last_next: PayloadType,
) -> Result<PayloadType, EncodeError> {
    for (index, payload) in payloads.iter().enumerate() {
        let following = payloads.get(index.saturating_add(1));
        let next = match &payload.body {
            PayloadBody::Sk(_) | PayloadBody::Skf(_)
                if following.is_some() || chain == Chain::Plaintext =>
            {
                return Err(EncodeError::EncryptedPayloadPosition {
                    payload: payload.payload_type(),
                    index,
                });
            }
            PayloadBody::Sk(sk) => sk.first_inner,
            PayloadBody::Skf(skf) => skf.first_inner,
            _ => following.map_or(last_next, Payload::payload_type),
        };

        let start = w.len();
        w.u8(next.0);
        w.u8(if payload.critical { CRITICAL } else { 0 });
        let slot = w.reserve_u16_length(start);
        payload.body.encode(w)?;
        w.fill_u16_length(
            slot,
            payload
                .payload_type()
                .known_name()
                .unwrap_or("unknown payload"),
        )?;
    }
    Ok(payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type))
}

/// Decodes the payloads of a decrypted SK plaintext (padding and Pad Length already removed),
/// the first of type `first` (the SK payload's Next Payload). Offsets in errors are relative
/// to `bytes`. SK and SKF payloads are rejected here: they do not nest.
pub fn decode_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    decode_chain(first, bytes, 0, Chain::Plaintext)
}

/// Encodes payloads as the plaintext of an SK payload: returns the type of the first one (the
/// SK payload's Next Payload) and the bytes, before padding.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let mut w = Writer::new();
    let first = encode_chain(payloads, &mut w, Chain::Plaintext, PayloadType::NONE)?;
    Ok((first, w.into_bytes()))
}
