//! Sans-IO IKEv2 (RFC 7296).
//!
//! This crate never opens a socket, reads a clock or spawns a task: callers hand it bytes,
//! the current time and randomness, and drain what it wants sent.
//!
//! - [`registry`]: typed values of the IANA IKEv2 registries.
//! - [`codec`]: decoding and encoding of messages and payloads (RFC 7296 §3, RFC 7383).
//! - [`crypto`]: the crypto provider: PRFs, AEAD for the SK payload, key exchange methods.
//! - [`keys`]: the key schedule (RFC 7296 §2.13–2.18).
//! - [`auth`]: the AUTH payload and X.509 certificate validation (RFC 7296 §2.15, RFC 7427).

pub mod auth;
pub mod codec;
pub mod crypto;
pub mod engine;
pub mod keys;
pub mod protection;
pub mod registry;
