//! What can be wrong with the desired set (reported per object, the rest is still programmed)
//! and what can stop a reconcile as a whole.

use std::net::IpAddr;

/// A problem with one part of the desired set; that part is skipped, everything else is
/// still reconciled.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The pair index needs a reqid beyond the configured range.
    #[error("pair index {index} is beyond the reqid range (room for pairs 0..={max})")]
    PairIndexOutOfRange {
        /// The index given.
        index: u32,
        /// The largest index the range has room for.
        max: u32,
    },

    /// Two pairs were given the same index.
    #[error("pair index {index} is used by both {first} and {second}")]
    DuplicatePairIndex {
        /// The index.
        index: u32,
        /// The remote encap IP of the first pair with it.
        first: IpAddr,
        /// The remote encap IP of the second.
        second: IpAddr,
    },

    /// A pair's local and remote encap IPs are of different families.
    #[error("pair {index}: local {local} and remote {remote} are of different address families")]
    MixedFamilies {
        /// The pair's index.
        index: u32,
        /// Local encap IP.
        local: IpAddr,
        /// Remote encap IP.
        remote: IpAddr,
    },

    /// A CHILD_SA names a pair index that is not desired.
    #[error("CHILD_SA with SPI {spi:#010x} belongs to pair {pair}, which is not desired")]
    UnknownPair {
        /// The pair index named.
        pair: u32,
        /// The SA's SPI.
        spi: u32,
    },

    /// A CHILD_SA cannot become a kernel state (wrong key length, …).
    #[error("CHILD_SA with SPI {spi:#010x} of pair {pair}: {source}")]
    InvalidChildSa {
        /// The pair index.
        pair: u32,
        /// The SA's SPI.
        spi: u32,
        /// What the xfrm crate refused.
        source: xfrm::Error,
    },

    /// Two desired CHILD_SAs would be the same kernel state (same destination and SPI).
    #[error("two CHILD_SAs of pairs {first} and {second} share destination and SPI {spi:#010x}")]
    DuplicateState {
        /// The pair of the first.
        first: u32,
        /// The pair of the second.
        second: u32,
        /// The SPI.
        spi: u32,
    },
}

/// Why a reconcile could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Opening the XFRM netlink socket failed.
    #[error("connecting to XFRM netlink: {0}")]
    Connect(#[source] xfrm::Error),

    /// Dumping our states or policies failed.
    #[error("dumping our {what}: {source}")]
    Dump {
        /// "states" or "policies".
        what: &'static str,
        /// The xfrm error.
        source: xfrm::Error,
    },

    /// The batch could not be sent or its answers read (the socket failed, not a change).
    #[error("applying the batch: {0}")]
    Apply(#[source] xfrm::Error),
}
