//! The control protocol's client. The blocking client of the `control-api` crate is the one
//! `ipsecctl` uses; the daemon's tests and tools use it from here.

pub use control_api::client::*;
