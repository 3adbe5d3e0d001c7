//! The `ovn-ipsecd` daemon: Southbound watcher, reconciliation, IO driver.
pub mod desired;
pub mod southbound;
