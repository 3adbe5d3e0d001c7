//! The control API that `ipsecctl` talks to: a versioned, newline-delimited JSON protocol on a
//! Unix socket.
//!
//! - [`protocol`]: the message types (shared with `ipsecctl` through the `control-api` crate)
//!   and the server's side of decoding a request line.
//! - [`server`]: the socket (mode, group), the accept loop, the [`ControlHandler`] trait the
//!   daemon implements.
//! - [`client`]: the client, for tests and tools.

pub mod client;
pub mod protocol;
pub mod server;

pub use server::{ActionError, ControlHandler, ControlServer, ServerError, SocketConfig};
