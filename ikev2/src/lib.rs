//! Sans-IO IKEv2 (RFC 7296).
//!
//! This crate never opens a socket, reads a clock or spawns a task: callers hand it bytes,
//! the current time and randomness, and drain what it wants sent.
