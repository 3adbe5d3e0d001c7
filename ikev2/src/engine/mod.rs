//! The IKEv2 protocol engine: the sans-IO [`Endpoint`] that owns every IKE SA of a node, and
//! the pieces of its state machines, one concern per file.
//!
//! - [`Endpoint`] (`endpoint.rs`): input, commands, output queues, dispatch by SPI.
//! - [`config`]: endpoint and peer configuration.
//! - [`event`]: what the endpoint reports (SA up/down, CHILD_SA install/delete, SPI requests).
//! - [`datagram`]: the non-ESP marker and NAT keepalives of the NAT-T port.
//! - `ike_sa.rs`: one IKE SA's SPIs, windows, timers and typed state.
//! - `ike_sa_init.rs`: the IKE_SA_INIT exchange.
//! - `ike_auth.rs`: the IKE_AUTH exchange with the first CHILD_SA.
//! - `informational.rs`: Delete and liveness checks on established IKE SAs.
//! - `create_child_sa.rs`: additional CHILD_SAs, with optional PFS; CHILD_SA rekeys and their
//!   collisions (RFC 7296 §2.8.1).
//! - `ike_rekey.rs`: IKE SA rekeying (§2.18) and its collisions.
//! - `reauth.rs`: reauthentication as make-before-break of a whole new IKE SA (§2.8.3), and
//!   new credentials for a peer (certificate rotation).
//! - [`cookie`]: stateless COOKIEs of a responder under load (RFC 7296 §2.6).
//! - [`unknown_spi`]: INVALID_IKE_SPI answers and hints outside any IKE SA (RFC 7296 §1.5).
//! - `unique.rs`: a newly authenticated IKE SA replaces older ones with the same peer.
//! - `missing_child.rs`: creating a configured CHILD_SA an established IKE SA lacks.
//! - `stats.rs`: [`EndpointStats`], counters outside any one IKE SA.
//! - [`nat`]: NAT detection hashes (RFC 7296 §2.23).
//! - [`timers`]: the timer table of an IKE SA, retransmission backoff, lifetimes with jitter.
//! - [`window`]: Message IDs, outstanding requests and cached responses (RFC 7296 §2.3).
//! - [`proposal`]: proposal selection (RFC 7296 §2.7) and configured proposals.
//! - [`traffic_selector`]: traffic selectors and their narrowing (RFC 7296 §2.9).
//! - [`sim`] (feature `sim`, and in this crate's tests): a simulated network with virtual time.

pub mod config;
pub mod cookie;
mod create_child_sa;
pub mod datagram;
mod endpoint;
pub mod event;
mod ike_auth;
mod ike_rekey;
mod ike_sa;
mod ike_sa_init;
mod informational;
mod missing_child;
pub mod nat;
pub mod proposal;
mod reauth;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod stats;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod traffic_selector;
mod unique;
pub mod unknown_spi;
pub mod window;

pub use config::{
    ChildConfig, ConfigError, Credentials, EndpointConfig, Mode, PeerConfig, IKE_PORT, NAT_T_PORT,
};
pub use create_child_sa::OUTBOUND_SWITCH_TIMEOUT;
pub use endpoint::{ChildSaTimes, CommandError, Endpoint, IkeSaInfo, Transmit};
pub use event::{
    AuthFailure, DownReason, EspAlgorithms, EspKeys, Event, IkeAlgorithms, IkeSaId, Outbound,
    PeerId, Selectors, SpiRequestId, UdpEncap,
};
pub use ike_rekey::REKEYED_IKE_SA_GRACE;
pub use ike_sa::Role;
pub use ike_sa_init::{MAX_COOKIE_RETRIES, MAX_INVALID_KE_RETRIES, NONCE_LEN};
pub use proposal::{Encryption, EspProposal, IkeProposal};
pub use reauth::{UpdatePeerError, REAUTH_RETRY};
pub use stats::EndpointStats;
pub use traffic_selector::TrafficSelector;
