//! Calling the daemon from a command: connect, one request, and the exit code for each way it
//! can fail.

use std::path::Path;
use std::process::ExitCode;

use control_api::client::{Client, ClientError, DEFAULT_TIMEOUT};
use control_api::protocol::{Request, Response};

/// What `ipsecctl`'s exit status means; `--help` lists the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did its work.
    Ok = 0,
    /// The daemon (or the input) said no: unknown peer, failed action, unreadable file.
    Failed = 1,
    /// Bad command line, or a missing confirmation flag.
    Usage = 2,
    /// The daemon is not running: no socket, or nothing listening on it.
    NotRunning = 3,
    /// The socket does not let this user connect.
    PermissionDenied = 4,
    /// `ipsecctl` and the daemon speak different protocol versions.
    VersionMismatch = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The exit codes, for the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed (the daemon's error is printed), or an input file is invalid
  2  usage error (including cleanup without --yes-remove-all)
  3  ovn-ipsecd is not running (no control socket, or nothing listening on it)
  4  permission denied on the control socket (run as root or as a member of its group)
  5  protocol version mismatch between ipsecctl and ovn-ipsecd";

/// The exit code for a failed call.
pub fn exit_for(error: &ClientError) -> Exit {
    match error {
        ClientError::SocketMissing { .. } | ClientError::NotListening { .. } => Exit::NotRunning,
        ClientError::PermissionDenied { .. } => Exit::PermissionDenied,
        ClientError::VersionMismatch { .. } => Exit::VersionMismatch,
        ClientError::Server(_)
        | ClientError::ReplyTooLarge
        | ClientError::Closed
        | ClientError::BadReply(_)
        | ClientError::Io { .. } => Exit::Failed,
    }
}

/// Sends `request` to the daemon at `socket`; on failure prints why (prefixed with the
/// command name) and returns the exit code to end with.
pub fn call(command: &str, socket: &Path, request: Request) -> Result<Response, Exit> {
    let result = Client::connect(socket, DEFAULT_TIMEOUT).and_then(|mut c| c.call(request));
    result.map_err(|e| {
        eprintln!("ipsecctl {command}: {e}");
        exit_for(&e)
    })
}

/// Reports a reply of the wrong kind (a daemon bug, or a mismatched build).
pub fn unexpected(command: &str, response: &Response) -> Exit {
    eprintln!("ipsecctl {command}: unexpected reply from ovn-ipsecd: {response:?}");
    Exit::Failed
}
