//! The `ovn-ipsecd` daemon: Southbound watcher, reconciliation, IO driver.

pub mod acquire;
pub mod cert_watch;
pub mod child_repair;
pub mod config;
pub mod control;
pub mod daemon;
pub mod desired;
pub mod events;
pub mod handler;
pub mod identity_check;
pub mod io;
pub mod kernel;
pub mod linger;
pub mod logging;
pub mod metrics;
pub mod peers;
pub mod rekey_on_loss;
pub mod retry;
mod rotation;
pub mod southbound;
pub mod systemd;
pub mod udp_source;
