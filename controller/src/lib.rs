//! The `ovn-ipsecd` daemon: Southbound watcher, reconciliation, IO driver.

pub mod config;
pub mod control;
pub mod desired;
pub mod identity_check;
pub mod kernel;
pub mod metrics;
pub mod policy_plan;
pub mod southbound;
