//! SPI allocation (XFRM_MSG_ALLOCSPI): the kernel picks a free SPI in a range and holds it in a
//! larval state until the real state replaces it with `Kernel::update_state`.

use std::net::IpAddr;

use netlink_packet_xfrm::{Address, Id, UserSaInfo, UserSpiInfo, XfrmAttrs};

use crate::error::{Error, Result};
use crate::selector::{Family, IPPROTO_ESP};
use crate::state::{Mark, Mode};

/// Lowest SPI we ever ask for: 1..=255 are reserved by IANA (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;

/// An inclusive SPI range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRange {
    /// Lowest SPI.
    pub min: u32,
    /// Highest SPI.
    pub max: u32,
}

impl SpiRange {
    /// A checked range: non-empty and above the reserved values.
    pub fn new(min: u32, max: u32) -> Result<SpiRange> {
        if min < MIN_SPI || max < min {
            return Err(Error::InvalidSpiRange { min, max });
        }
        Ok(SpiRange { min, max })
    }

    /// Every SPI that is not reserved.
    pub fn full() -> SpiRange {
        SpiRange {
            min: MIN_SPI,
            max: u32::MAX,
        }
    }
}

/// What an inbound SPI is allocated for: the SA's addresses (src = peer, dst = us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRequest {
    /// The peer (outer source of inbound packets).
    pub src: IpAddr,
    /// This host (outer destination).
    pub dst: IpAddr,
    /// The reqid the state will have (our ownership tag on the larval state too).
    pub reqid: u32,
    /// Mode of the state to come.
    pub mode: Mode,
    /// Mark of the state to come.
    pub mark: Option<Mark>,
    /// Where to pick from.
    pub range: SpiRange,
}

impl SpiRequest {
    pub(crate) fn to_kernel(self) -> Result<(UserSpiInfo, Vec<XfrmAttrs>)> {
        let family = Family::of(&self.src);
        if Family::of(&self.dst) != family {
            return Err(Error::MixedFamilies(crate::error::ObjectKind::Spi));
        }
        let info = UserSaInfo {
            id: Id {
                daddr: Address::from_ip(&self.dst),
                spi: 0,
                proto: IPPROTO_ESP,
            },
            saddr: Address::from_ip(&self.src),
            reqid: self.reqid,
            family: family.af(),
            mode: self.mode.to_kernel(),
            ..UserSaInfo::default()
        };
        let spi = UserSpiInfo {
            info,
            min: self.range.min,
            max: self.range.max,
        };
        Ok((spi, self.mark.map(Mark::attr).into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_empty_ranges_are_rejected() {
        assert!(SpiRange::new(1, 1000).is_err());
        assert!(SpiRange::new(5000, 4000).is_err());
        assert_eq!(
            SpiRange::new(256, 256).unwrap(),
            SpiRange { min: 256, max: 256 }
        );
    }
}
