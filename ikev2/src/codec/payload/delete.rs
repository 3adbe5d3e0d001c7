//! The Delete payload (RFC 7296 §3.11).

use crate::codec::reader::Reader;
use crate::codec::writer::{count_u16, Writer};
use crate::codec::{DecodeError, EncodeError, MAX_DELETE_SPIS};
use crate::registry::ProtocolId;

/// A Delete payload: the SAs of one protocol the sender is deleting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// IKE (the IKE SA of this message; no SPIs) or ESP/AH (the listed inbound SPIs).
    pub protocol: ProtocolId,
    /// SPI Size: 0 for IKE, 4 for ESP and AH. Every element of `spis` has this length.
    pub spi_size: u8,
    /// The SPIs.
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    /// Deletes the IKE SA the message belongs to.
    pub fn ike_sa() -> Self {
        Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// Deletes the CHILD_SAs with these ESP SPIs (the sender's inbound SPIs).
    pub fn esp(spis: &[u32]) -> Self {
        Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let protocol = ProtocolId(r.u8("Protocol ID")?);
        let spi_size = r.u8("SPI Size")?;
        let declared = usize::from(r.u16("Num of SPIs")?);
        if declared > MAX_DELETE_SPIS {
            return Err(DecodeError::TooMany {
                payload: r.payload(),
                what: "SPIs",
                offset,
                max: MAX_DELETE_SPIS,
            });
        }

        let mut spis = Vec::with_capacity(declared.min(r.remaining()));
        for _ in 0..declared {
            spis.push(r.bytes(spi_size.into(), "SPI")?.to_vec());
        }
        Ok(Delete {
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.protocol.0);
        w.u8(self.spi_size);
        w.u16(count_u16(self.spis.len(), "SPIs")?);
        for spi in &self.spis {
            if spi.len() != usize::from(self.spi_size) {
                return Err(EncodeError::DeleteSpiSize {
                    spi_size: self.spi_size,
                    length: spi.len(),
                });
            }
            w.bytes(spi);
        }
        Ok(())
    }
}
