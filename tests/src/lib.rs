//! Harnesses for whole-system tests (real ovsdb-server, real IKE peers, a real kernel in qemu).

pub mod guest_checks;
pub mod netns;
pub mod ovsdb_server;
pub mod peers;
pub mod vm;
