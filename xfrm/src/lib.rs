//! Programming the Linux kernel's IPsec tables (XFRM states and policies) over netlink.
//!
//! [`Kernel`] is the entry point: it allocates SPIs, adds, updates, deletes and dumps states
//! and policies, applies many changes per round trip ([`Kernel::apply`]), and subscribes to
//! kernel events ([`Kernel::subscribe`]). Everything it creates carries a reqid from the
//! [`Ownership`] range, and dumps and cleanup see only those objects: it never flushes.
//!
//! A `Kernel` works in the network namespace of the thread that connected it.
//!
//! ```no_run
//! use xfrm::{Algorithm, Change, Direction, Kernel, Mode, Ownership, Policy, PolicyId};
//! use xfrm::{Selector, SpiRange, SpiRequest, State, StateId, Template};
//!
//! # async fn example() -> xfrm::Result<()> {
//! let kernel = Kernel::connect(Ownership::reqids(0x1000..=0x1fff)).await?;
//! let (local, peer) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
//!
//! // Inbound: the kernel picks our SPI, then the real state replaces the larval one.
//! let spi_in = kernel
//!     .alloc_spi(SpiRequest {
//!         src: peer, dst: local, reqid: 0x1001, mode: Mode::Transport, mark: None,
//!         range: SpiRange::full(),
//!     })
//!     .await?;
//! let key = [7u8; 36]; // AES-256 key ‖ 4-byte salt, from the IKE key schedule.
//! let gcm = Algorithm::aes_gcm_256(&key)?;
//! let inbound = State::new(StateId { src: peer, dst: local, spi: spi_in, mark: None },
//!     0x1001, Mode::Transport, gcm.clone());
//! let outbound = State::new(StateId { src: local, dst: peer, spi: 0x1234_5678, mark: None },
//!     0x1001, Mode::Transport, gcm);
//!
//! // Geneve to the peer must be ESP: one policy per direction, all in one round trip.
//! let out_sel = Selector::udp(local, peer, None, Some(6081));
//! let in_sel = Selector::udp(peer, local, None, Some(6081));
//! let results = kernel
//!     .apply(&[
//!         Change::UpdateState(inbound),
//!         Change::AddState(outbound),
//!         Change::AddPolicy(Policy::allow(PolicyId::new(out_sel, Direction::Out), 100,
//!             vec![Template::transport(0x1001)])),
//!         Change::AddPolicy(Policy::allow(PolicyId::new(in_sel, Direction::In), 100,
//!             vec![Template::transport(0x1001)])),
//!     ])
//!     .await?;
//! for r in results {
//!     r?;
//! }
//!
//! let mut events = kernel.subscribe().await?;
//! while let Ok(event) = events.next().await {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

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
