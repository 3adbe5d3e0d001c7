//! Shared test support for the engine's integration tests: the simulated network.
#![allow(dead_code)]

pub mod sim;
