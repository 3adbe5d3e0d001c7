//! The control protocol between `ovn-ipsecd` and `ipsecctl`: versioned, newline-delimited JSON
//! over a Unix socket.
//!
//! - [`protocol`]: the request and reply types, the version and the size limits.
//! - [`client`]: a small blocking client, for `ipsecctl` and tests.
//!
//! It lives in its own crate so that the CLI depends on serde alone, not on the daemon.

pub mod client;
pub mod protocol;
