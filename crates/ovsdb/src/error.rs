//! Every way talking to an OVSDB server can fail, one variant per cause.

use std::path::PathBuf;
use std::time::Duration;

/// An error from the OVSDB client: transport, framing, protocol, schema or data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A remote string is not `tcp:HOST:PORT`, `ssl:HOST:PORT` or `unix:PATH`.
    #[error("remote {remote:?} is not tcp:HOST[:PORT], ssl:HOST[:PORT] or unix:PATH: {reason}")]
    BadRemote {
        /// The remote as given.
        remote: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty remote list was given.
    #[error("no remote to connect to")]
    NoRemotes,
    /// Connecting (TCP, unix socket or name resolution) failed.
    #[error("connecting to {remote}: {source}")]
    Connect {
        /// The remote we tried.
        remote: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Connecting or the TLS handshake took longer than allowed.
    #[error("connecting to {remote} timed out after {after:?}")]
    ConnectTimeout {
        /// The remote we tried.
        remote: String,
        /// How long we waited.
        after: Duration,
    },
    /// An `ssl:` remote was given without TLS files configured.
    #[error("remote {0} needs TLS but no private key, certificate and CA were configured")]
    TlsNotConfigured(String),
    /// A PEM file (key, certificate, CA bundle) could not be read or holds nothing usable.
    #[error("reading {what} from {path}: {reason}")]
    PemFile {
        /// Which file this is (private key, certificate, CA certificate).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Reading or writing the established connection failed.
    #[error("I/O on the OVSDB connection: {0}")]
    Io(#[from] std::io::Error),
    /// A single JSON-RPC message exceeded the configured bound.
    #[error("message larger than the limit of {limit} bytes")]
    MessageTooLarge {
        /// The bound in bytes.
        limit: usize,
    },
    /// The stream holds bytes that cannot start a JSON-RPC message.
    #[error("byte {byte:#04x} cannot start a JSON-RPC message (expected '{{')")]
    Garbage {
        /// The offending byte.
        byte: u8,
    },
    /// A complete JSON text was framed but does not parse.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The server closed the connection between messages.
    #[error("connection closed by the server")]
    Closed,
    /// The server closed the connection in the middle of a message.
    #[error("connection closed in the middle of a message ({pending} bytes pending)")]
    Truncated {
        /// Bytes of the incomplete message.
        pending: usize,
    },
    /// A JSON value is not a JSON-RPC 1.0 request, notification or reply.
    #[error("not a JSON-RPC message: {0}")]
    NotJsonRpc(&'static str),
    /// The server sent a request or notification we do not implement.
    #[error("server sent unknown method {0:?}")]
    UnknownMethod(String),
    /// The server answered a request with an error.
    #[error("server answered {method} with error: {error}")]
    Rpc {
        /// The method we called.
        method: String,
        /// The error as the server gave it (string, or object rendered as text).
        error: String,
    },
    /// The connection ended before the reply to a request arrived.
    #[error("connection lost before the reply to {0} arrived")]
    ConnectionLost(String),
    /// Nothing arrived from the server for two probe intervals.
    #[error("server sent nothing for {0:?} (echo unanswered)")]
    ProbeTimeout(Duration),
    /// A reply or notification had the wrong shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message this was.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The schema returned by `get_schema` cannot be understood.
    #[error("schema: {0}")]
    Schema(String),
    /// A value does not match its column's type.
    #[error("column {table}.{column}: {reason}")]
    Datum {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What was wrong.
        reason: String,
    },
    /// The server does not serve the database we want.
    #[error("server does not serve database {0}")]
    NoSuchDatabase(String),
    /// The server is a cluster member that has lost its cluster, so its data may be stale.
    #[error("cluster member is not connected to its cluster for database {0}")]
    NotConnectedToCluster(String),
    /// The cluster member is behind what we already saw (a lagging or stale member).
    #[error(
        "cluster member is at index {index}, behind index {seen} already seen, for database {db}"
    )]
    StaleMember {
        /// The database.
        db: String,
        /// The member's RAFT index.
        index: i64,
        /// The highest index seen before on this cluster.
        seen: i64,
    },
    /// Applying an update on the blocking pool failed (the task was cancelled or panicked).
    #[error("applying an update failed: {0}")]
    TaskFailed(String),
    /// An update names a table or column the monitor did not ask for.
    #[error("update for unmonitored {0}")]
    Unmonitored(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
