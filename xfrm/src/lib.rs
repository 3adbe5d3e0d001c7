//! Programming the Linux kernel's IPsec tables (XFRM states and policies) over netlink.
//!
//! [`Kernel`] is the entry point: it allocates SPIs, adds, updates, deletes and dumps states
//! and policies, applies many changes per round trip ([`Kernel::apply`]), and subscribes to
//! kernel events ([`Kernel::subscribe`]). Everything it creates carries a reqid from the
//! [`Ownership`] range, and dumps and cleanup see only those objects: it never flushes.
//!
//! A `Kernel` works in the network namespace of the thread that connected it.

pub mod algorithm;
pub mod error;
pub mod events;
pub mod kernel;
pub mod lifetime;
pub mod ownership;
pub mod policy;
pub mod selector;
mod socket;
pub mod spi;
pub mod state;
pub mod stats;
pub mod wire;

pub use algorithm::{Algorithm, Key};
pub use error::{Error, ObjectKind, Result};
pub use events::{Event, Events};
pub use kernel::{Change, CleanupReport, Kernel};
pub use lifetime::{Lifetimes, Limits, Usage};
pub use ownership::Ownership;
pub use policy::{Action, Direction, Policy, PolicyId, PolicyInfo, Template};
pub use selector::{Family, Prefix, Selector, IPPROTO_ESP, IPPROTO_TCP, IPPROTO_UDP};
pub use socket::{MAX_BATCH_BYTES, MAX_BATCH_MESSAGES};
pub use spi::{SpiRange, SpiRequest};
pub use state::{Encap, Mark, Mode, Offload, SequenceNumbers, State, StateId, StateInfo};
pub use stats::{StateCounters, XfrmStat};
