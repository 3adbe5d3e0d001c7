//! What can go wrong while setting up or driving a real IKE peer.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the peer harness, naming the step and the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The harness needs root (network namespaces, mounts) and runs as another user.
    #[error(
        "the real-peer tests need root (network namespaces and bind mounts); run them with sudo"
    )]
    NotRoot,
    /// A tool the harness runs is not installed.
    #[error("{tool} is not installed ({hint})")]
    ToolMissing {
        /// The program or file that was looked for.
        tool: String,
        /// What to install to get it.
        hint: &'static str,
    },
    /// A command could not be started at all.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line, for the message.
        command: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("{command} failed ({status}):\n{output}")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status, as text (`exit status: 1`, `signal: 9`).
        status: String,
        /// What it printed on stdout and stderr.
        output: String,
    },
    /// A command did not finish within its time limit and was killed.
    #[error("{command} did not finish within {after:?}")]
    CommandTimedOut {
        /// The command line, for the message.
        command: String,
        /// The time limit.
        after: Duration,
    },
    /// A file or folder of the harness could not be written or read.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done (`writing`, `creating folder` …).
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A daemon exited while the harness still needed it.
    #[error("{daemon} exited early ({status}); its log:\n{log}")]
    DaemonExited {
        /// Which daemon (`charon in ns-a`).
        daemon: String,
        /// Its exit status, as text.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// A condition awaited with [`wait_for`](super::wait_for) did not become true in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        after: Duration,
    },
    /// A configuration names a remote peer the daemon was not configured with.
    #[error("chassis {chassis} has no remote peer named {peer}")]
    UnknownPeer {
        /// The local chassis.
        chassis: String,
        /// The peer name asked for.
        peer: String,
    },
    /// The vici socket of a charon could not be used.
    #[error("vici {socket}: {source}")]
    ViciIo {
        /// The socket path.
        socket: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// charon sent a vici packet the harness cannot decode.
    #[error("vici {socket}: malformed packet: {reason}")]
    ViciMalformed {
        /// The socket path.
        socket: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// charon refused a vici command or reported it failed.
    #[error("vici command {command} failed: {reason}")]
    ViciCommandFailed {
        /// The command name.
        command: String,
        /// charon's `errmsg`, or why the reply was not a success.
        reason: String,
    },
}
