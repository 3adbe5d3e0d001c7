//! The `ovn-ipsecd` daemon: Southbound watcher, reconciliation, IO driver.

pub mod control;
pub mod metrics;
