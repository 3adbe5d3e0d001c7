//! The IKEv2 protocol engine: the sans-IO [`Endpoint`] that owns every IKE SA of a node, and
//! the pieces of its state machines, one concern per file.
//!
//! - [`timers`]: the timer table of an IKE SA, retransmission backoff, lifetimes with jitter.
//! - [`window`]: Message IDs, outstanding requests and cached responses (RFC 7296 §2.3).
//! - [`proposal`]: proposal selection (RFC 7296 §2.7) and configured proposals.
//! - [`traffic_selector`]: traffic selectors and their narrowing (RFC 7296 §2.9).

pub mod proposal;
pub mod timers;
pub mod traffic_selector;
pub mod window;
