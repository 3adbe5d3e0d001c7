//! The Configuration payload, CP (RFC 7296 §3.15).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError, MAX_CFG_ATTRIBUTES};
use crate::registry::{CfgAttributeType, CfgType};

/// The reserved top bit of a configuration Attribute Type (RFC 7296 §3.15.1).
const RESERVED_BIT: u16 = 0x8000;

/// A CP payload: a request, reply, set or acknowledgement of configuration attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// CFG Type.
    pub cfg_type: CfgType,
    /// The attributes, in order.
    pub attributes: Vec<CfgAttribute>,
}

/// One configuration attribute: its type and value (empty in a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttribute {
    /// Attribute Type (15 bits).
    pub attribute_type: CfgAttributeType,
    /// Value, as sent.
    pub value: Vec<u8>,
}

impl Config {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let cfg_type = CfgType(r.u8("CFG Type")?);
        r.skip(3, "RESERVED")?;

        let mut attributes = Vec::new();
        while !r.is_empty() {
            if attributes.len() >= MAX_CFG_ATTRIBUTES {
                return Err(DecodeError::TooMany {
                    payload: r.payload(),
                    what: "configuration attributes",
                    offset,
                    max: MAX_CFG_ATTRIBUTES,
                });
            }
            let attribute_type = CfgAttributeType(r.u16("Attribute Type")? & !RESERVED_BIT);
            let length = r.u16("Attribute Length")?;
            let value = r.bytes(length.into(), "Attribute Value")?.to_vec();
            attributes.push(CfgAttribute {
                attribute_type,
                value,
            });
        }
        Ok(Config {
            cfg_type,
            attributes,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.cfg_type.0);
        w.zeros(3);
        for attribute in &self.attributes {
            let attribute_type = attribute.attribute_type.0;
            if attribute_type & RESERVED_BIT != 0 {
                return Err(EncodeError::AttributeTypeTooLarge { attribute_type });
            }
            w.u16(attribute_type);
            let length =
                u16::try_from(attribute.value.len()).map_err(|_| EncodeError::TooLong {
                    what: "configuration attribute",
                    length: attribute.value.len(),
                    max: u16::MAX.into(),
                })?;
            w.u16(length);
            w.bytes(&attribute.value);
        }
        Ok(())
    }
}
