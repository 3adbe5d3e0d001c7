//! An OVSDB (RFC 7047) client for the OVN Southbound database.
//!
//! [`Monitor`] keeps a [`TableCache`] of chosen tables and columns in sync with a server (or
//! one member of a RAFT cluster, chosen at random from a remote list), reporting a
//! [`ChangeSet`] per server transaction. [`Connection`] is the raw JSON-RPC connection for
//! one-off requests (`transact`, `get_schema`, ...).

pub mod cache;
pub mod client;
pub mod codec;
pub mod datum;
pub mod error;
pub mod jsonrpc;
pub mod monitor;
pub mod schema;
pub mod tls;
pub mod transport;

pub use cache::{ChangeKind, ChangeSet, Row, RowChange, TableCache};
pub use client::{ConnectOptions, Connection};
pub use datum::{Atom, Datum, Uuid};
pub use error::{Error, Result};
pub use monitor::{Event, MemberRole, Monitor, MonitorConfig};
pub use schema::DatabaseSchema;
pub use tls::TlsFiles;
pub use transport::{parse_remotes, Remote};
