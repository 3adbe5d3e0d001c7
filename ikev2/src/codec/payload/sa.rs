//! The Security Association payload: proposals, transforms and transform attributes
//! (RFC 7296 §3.3).

use crate::codec::reader::Reader;
use crate::codec::writer::{count_u8, Writer};
use crate::codec::{
    DecodeError, EncodeError, MAX_PROPOSALS, MAX_TRANSFORMS, MAX_TRANSFORM_ATTRIBUTES,
};
use crate::registry::{
    EncrId, EsnId, IntegId, KeGroup, PrfId, ProtocolId, TransformAttributeType, TransformType,
};

/// "Last Substruc" of a proposal that is followed by another (RFC 7296 §3.3.1).
const MORE_PROPOSALS: u8 = 2;
/// "Last Substruc" of a transform that is followed by another (RFC 7296 §3.3.2).
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: set for the TV form (RFC 7296 §3.3.5).
const ATTRIBUTE_FORMAT_TV: u16 = 0x8000;
/// Fixed part of a proposal substructure, up to the SPI.
const PROPOSAL_HEADER_LEN: usize = 8;
/// Fixed part of a transform substructure, up to the attributes.
const TRANSFORM_HEADER_LEN: usize = 8;

/// An SA payload: the proposals offered (request) or the one chosen (response).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sa {
    /// Proposals in order of preference.
    pub proposals: Vec<Proposal>,
}

/// One proposal: a protocol, its SPI and the transforms that make up the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal Num: 1 for the first, +1 for each next; a response echoes the chosen one.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The sender's SPI: empty in an initial IKE SA negotiation, 8 bytes for IKE, 4 for ESP.
    pub spi: Vec<u8>,
    /// The transforms, several of one type meaning "any of these".
    pub transforms: Vec<Transform>,
}

/// One transform: a type, an ID of that type's registry, and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform Type and Transform ID.
    pub id: TransformId,
    /// Attributes, e.g. the Key Length of AES.
    pub attributes: Vec<TransformAttribute>,
}

/// A Transform ID typed by its Transform Type's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformId {
    /// Transform Type 1, Encryption Algorithm.
    Encr(EncrId),
    /// Transform Type 2, Pseudorandom Function.
    Prf(PrfId),
    /// Transform Type 3, Integrity Algorithm.
    Integ(IntegId),
    /// Transform Type 4, Key Exchange Method.
    Ke(KeGroup),
    /// Transform Type 5, Extended Sequence Numbers.
    Esn(EsnId),
    /// A transform type without a registry here (e.g. RFC 9370's ADDKE types).
    Other {
        /// Its Transform Type.
        transform_type: TransformType,
        /// Its Transform ID.
        id: u16,
    },
}

impl TransformId {
    /// Types `id` by the registry of `transform_type`.
    pub fn new(transform_type: TransformType, id: u16) -> Self {
        match transform_type {
            TransformType::ENCR => TransformId::Encr(EncrId(id)),
            TransformType::PRF => TransformId::Prf(PrfId(id)),
            TransformType::INTEG => TransformId::Integ(IntegId(id)),
            TransformType::KE => TransformId::Ke(KeGroup(id)),
            TransformType::ESN => TransformId::Esn(EsnId(id)),
            transform_type => TransformId::Other { transform_type, id },
        }
    }

    /// The Transform Type field.
    pub fn transform_type(self) -> TransformType {
        match self {
            TransformId::Encr(_) => TransformType::ENCR,
            TransformId::Prf(_) => TransformType::PRF,
            TransformId::Integ(_) => TransformType::INTEG,
            TransformId::Ke(_) => TransformType::KE,
            TransformId::Esn(_) => TransformType::ESN,
            TransformId::Other { transform_type, .. } => transform_type,
        }
    }

    /// The Transform ID field.
    pub fn value(self) -> u16 {
        match self {
            TransformId::Encr(v) => v.0,
            TransformId::Prf(v) => v.0,
            TransformId::Integ(v) => v.0,
            TransformId::Ke(v) => v.0,
            TransformId::Esn(v) => v.0,
            TransformId::Other { id, .. } => id,
        }
    }
}

/// A transform attribute (RFC 7296 §3.3.5), kept in the form it was sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformAttribute {
    /// Attribute Type (15 bits).
    pub attribute_type: TransformAttributeType,
    /// Its value, TV or TLV.
    pub value: AttributeValue,
}

/// The two attribute forms: a 2-byte value in place, or a length and a variable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Type/Value: Attribute Format bit set, the value in the length's place.
    Tv(u16),
    /// Type/Length/Value.
    Tlv(Vec<u8>),
}

impl Transform {
    /// A transform without attributes.
    pub fn new(id: TransformId) -> Self {
        Transform {
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute in bits (TV form, as RFC 7296 §3.3.5 requires).
    pub fn with_key_length(id: TransformId, bits: u16) -> Self {
        Transform {
            id,
            attributes: vec![TransformAttribute {
                attribute_type: TransformAttributeType::KEY_LENGTH,
                value: AttributeValue::Tv(bits),
            }],
        }
    }

    /// The Key Length attribute in bits, if present in TV form.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttributeValue::Tv(bits) if a.attribute_type == TransformAttributeType::KEY_LENGTH => {
                Some(bits)
            }
            _ => None,
        })
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let transform_type = TransformType(r.u8("Transform Type")?);
        r.skip(1, "RESERVED")?;
        let id = TransformId::new(transform_type, r.u16("Transform ID")?);

        let mut attributes = Vec::new();
        while !r.is_empty() {
            if attributes.len() >= MAX_TRANSFORM_ATTRIBUTES {
                return Err(DecodeError::TooMany {
                    payload: r.payload(),
                    what: "transform attributes",
                    offset: r.offset(),
                    max: MAX_TRANSFORM_ATTRIBUTES,
                });
            }
            attributes.push(TransformAttribute::decode(r)?);
        }
        Ok(Transform { id, attributes })
    }

    fn encode(&self, w: &mut Writer, last: bool) -> Result<(), EncodeError> {
        let start = w.len();
        w.u8(if last { 0 } else { MORE_TRANSFORMS });
        w.zeros(1);
        let slot = w.reserve_u16_length(start);
        w.u8(self.id.transform_type().0);
        w.zeros(1);
        w.u16(self.id.value());
        for attribute in &self.attributes {
            attribute.encode(w)?;
        }
        w.fill_u16_length(slot, "transform")
    }
}

impl TransformAttribute {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let format_and_type = r.u16("Attribute Type")?;
        let attribute_type = TransformAttributeType(format_and_type & !ATTRIBUTE_FORMAT_TV);
        let value = if format_and_type & ATTRIBUTE_FORMAT_TV != 0 {
            AttributeValue::Tv(r.u16("Attribute Value")?)
        } else {
            let length = r.u16("Attribute Length")?;
            AttributeValue::Tlv(r.bytes(length.into(), "Attribute Value")?.to_vec())
        };
        Ok(TransformAttribute {
            attribute_type,
            value,
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let attribute_type = self.attribute_type.0;
        if attribute_type & ATTRIBUTE_FORMAT_TV != 0 {
            return Err(EncodeError::AttributeTypeTooLarge { attribute_type });
        }
        match &self.value {
            AttributeValue::Tv(v) => {
                w.u16(attribute_type | ATTRIBUTE_FORMAT_TV);
                w.u16(*v);
            }
            AttributeValue::Tlv(v) => {
                w.u16(attribute_type);
                let length = u16::try_from(v.len()).map_err(|_| EncodeError::TooLong {
                    what: "transform attribute",
                    length: v.len(),
                    max: u16::MAX.into(),
                })?;
                w.u16(length);
                w.bytes(v);
            }
        }
        Ok(())
    }
}

impl Proposal {
    /// Decodes the proposal that starts at `offset`, `r` covering it after its Length field.
    fn decode(offset: usize, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let number = r.u8("Proposal Num")?;
        let protocol = ProtocolId(r.u8("Protocol ID")?);
        let spi_size = r.u8("SPI Size")?;
        let declared = r.u8("Num Transforms")?;
        let spi = r.bytes(spi_size.into(), "SPI")?.to_vec();

        let mut transforms = Vec::new();
        while !r.is_empty() {
            if transforms.len() >= MAX_TRANSFORMS {
                return Err(DecodeError::TooMany {
                    payload: r.payload(),
                    what: "transforms",
                    offset,
                    max: MAX_TRANSFORMS,
                });
            }
            let (_, mut t) = substructure(r, "transform", MORE_TRANSFORMS, TRANSFORM_HEADER_LEN)?;
            transforms.push(Transform::decode(&mut t)?);
        }
        if transforms.len() != usize::from(declared) {
            return Err(DecodeError::CountMismatch {
                payload: r.payload(),
                what: "transforms",
                offset,
                declared: declared.into(),
                found: transforms.len(),
            });
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn encode(&self, w: &mut Writer, last: bool) -> Result<(), EncodeError> {
        let start = w.len();
        w.u8(if last { 0 } else { MORE_PROPOSALS });
        w.zeros(1);
        let slot = w.reserve_u16_length(start);
        w.u8(self.number);
        w.u8(self.protocol.0);
        w.u8(count_u8(self.spi.len(), "SPI bytes")?);
        w.u8(count_u8(self.transforms.len(), "transforms")?);
        w.bytes(&self.spi);
        let n = self.transforms.len();
        for (i, transform) in self.transforms.iter().enumerate() {
            transform.encode(w, i.saturating_add(1) == n)?;
        }
        w.fill_u16_length(slot, "proposal")
    }
}

impl Sa {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let mut proposals = Vec::new();
        while !r.is_empty() {
            if proposals.len() >= MAX_PROPOSALS {
                return Err(DecodeError::TooMany {
                    payload: r.payload(),
                    what: "proposals",
                    offset,
                    max: MAX_PROPOSALS,
                });
            }
            let (start, mut p) = substructure(r, "proposal", MORE_PROPOSALS, PROPOSAL_HEADER_LEN)?;
            proposals.push(Proposal::decode(start, &mut p)?);
        }
        Ok(Sa { proposals })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let n = self.proposals.len();
        for (i, proposal) in self.proposals.iter().enumerate() {
            proposal.encode(w, i.saturating_add(1) == n)?;
        }
        Ok(())
    }
}

/// Reads the 4-byte "Last Substruc, RESERVED, Length" prefix of a proposal or transform and
/// returns its offset and a reader over the rest of it. "Last Substruc" must say whether another follows:
/// a mismatch would not re-encode as received, and RFC 7296 §3.3.1 defines no other value.
fn substructure<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    more: u8,
    min_len: usize,
) -> Result<(usize, Reader<'a>), DecodeError> {
    let offset = r.offset();
    let available = r.remaining();
    let last = r.u8("Last Substruc")?;
    r.skip(1, "RESERVED")?;
    let length = usize::from(r.u16("substructure Length")?);
    if length < min_len || length > available {
        return Err(DecodeError::SubstructureLength {
            payload: r.payload(),
            what,
            offset,
            length,
        });
    }
    let inner = r.sub(length.saturating_sub(4), what)?;

    let expected = if r.is_empty() { 0 } else { more };
    if last != expected {
        return Err(DecodeError::InvalidLastSubstructure {
            payload: r.payload(),
            what,
            offset,
            value: last,
        });
    }
    Ok((offset, inner))
}
