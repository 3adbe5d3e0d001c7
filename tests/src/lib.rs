//! Harnesses for whole-system tests (real ovsdb-server, real IKE peers, a real kernel in qemu).

pub mod ovsdb_server;
pub mod peers;
pub mod vm;
