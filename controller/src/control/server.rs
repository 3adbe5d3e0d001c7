//! The control socket: created with the right mode and group, served concurrently, one JSON
//! request line answered by one reply line, any number per connection.

use std::ffi::CString;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::protocol::{
    decode_request, encode_reply, request_too_large, ActionDone, CleanupReport, ErrorCode,
    ErrorReply, Outcome, PeerInfo, Request, Response, SaList, Status, DEFAULT_SOCKET_PATH,
    MAX_REQUEST_BYTES,
};

/// Clients served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection that sends no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Mode of the socket when no group is configured: root only.
pub const SOCKET_MODE_ROOT_ONLY: u32 = 0o600;

/// Mode of the socket when a group is configured: owner and group.
pub const SOCKET_MODE_GROUP: u32 = 0o660;

/// Mode given to the socket's directory when a group is configured and the directory is the
/// daemon's own (see [`open_directory_to_group`]): owner all, group enter and list.
pub const DIRECTORY_MODE_GROUP: u32 = 0o750;

/// Largest buffer tried for a group lookup (`getgrnam_r` asks for more with `ERANGE`).
const MAX_GROUP_BUFFER_BYTES: usize = 1024 * 1024;

/// What the daemon provides to the control API. Each method is called on a blocking thread
/// (tokio's `spawn_blocking`), so an implementation may wait for the daemon's tasks.
pub trait ControlHandler: Send + Sync + 'static {
    /// The node's overview.
    fn status(&self) -> Status;
    /// Every remote chassis and encap pair, desired or exempt.
    fn peers(&self) -> Vec<PeerInfo>;
    /// Every IKE SA with its CHILD_SAs and their kernel counters.
    fn sas(&self) -> SaList;
    /// Starts an IKE SA with the peer now.
    fn initiate(&self, peer: &str) -> Result<ActionDone, ActionError>;
    /// Deletes the IKE SA with the peer.
    fn terminate(&self, peer: &str) -> Result<ActionDone, ActionError>;
    /// Rekeys the IKE SA and CHILD_SAs with the peer.
    fn rekey(&self, peer: &str) -> Result<ActionDone, ActionError>;
    /// Re-reads configuration and certificates.
    fn reload(&self) -> Result<ActionDone, ActionError>;
    /// Removes every kernel state and policy the daemon owns. Only called once the operator
    /// confirmed.
    fn cleanup(&self) -> Result<CleanupReport, ActionError>;
    /// The Prometheus metrics page.
    fn metrics(&self) -> Result<String, ActionError> {
        Err(ActionError::Failed {
            message: "this daemon has no metrics".into(),
        })
    }
}

/// Why the daemon could not carry out an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The peer is not a chassis the daemon knows.
    #[error("no peer named {peer:?}")]
    UnknownPeer {
        /// The name asked for.
        peer: String,
    },
    /// The daemon tried and failed.
    #[error("{message}")]
    Failed {
        /// What failed.
        message: String,
    },
}

impl From<ActionError> for ErrorReply {
    fn from(e: ActionError) -> ErrorReply {
        let code = match e {
            ActionError::UnknownPeer { .. } => ErrorCode::UnknownPeer,
            ActionError::Failed { .. } => ErrorCode::Failed,
        };
        ErrorReply {
            code,
            message: e.to_string(),
        }
    }
}

/// Where the socket is and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// The socket path.
    pub path: PathBuf,
    /// A group (name or number) whose members may also connect; `None` keeps it root-only.
    pub group: Option<String>,
}

impl Default for SocketConfig {
    fn default() -> SocketConfig {
        SocketConfig {
            path: PathBuf::from(DEFAULT_SOCKET_PATH),
            group: None,
        }
    }
}

/// Ways setting up the socket fails.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket path has no file name or parent.
    #[error("control socket path {0} has no parent directory or file name")]
    BadPath(PathBuf),
    /// The directory for the socket could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something else than a socket is at the path; we do not remove it.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// Another daemon answers on the socket.
    #[error("another ovn-ipsecd is already serving {0}")]
    AlreadyRunning(PathBuf),
    /// The configured group does not exist.
    #[error("control socket group {0:?} does not exist")]
    UnknownGroup(String),
    /// Any other I/O step failed.
    #[error("control socket {path}: cannot {step}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A bound control socket, ready to serve.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Creates the socket: the directory if missing, a stale socket removed, the mode (0600,
    /// or 0660 with the group) set before the socket appears at its path. Must be called
    /// within a tokio runtime.
    pub fn bind(config: &SocketConfig) -> Result<ControlServer, ServerError> {
        let path = config.path.clone();
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => (dir, name),
            _ => return Err(ServerError::BadPath(path)),
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|source| ServerError::CreateDirectory {
            path: dir.to_path_buf(),
            source,
        })?;
        let gid = config.group.as_deref().map(group_id).transpose()?;
        if let Some(gid) = gid {
            open_directory_to_group(dir, gid, created);
        }
        remove_stale_socket(&path)?;

        // Bind under a temporary name and rename into place, so that no client ever sees the
        // socket before its mode and group are right.
        let mut temp_name = name.to_os_string();
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        let _ = std::fs::remove_file(&temp);
        let io = |step: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| ServerError::Io {
                path: p,
                step,
                source,
            }
        };
        let std_listener =
            std::os::unix::net::UnixListener::bind(&temp).map_err(io("bind", &temp))?;
        let finish = || -> Result<(), ServerError> {
            let mode = if gid.is_some() {
                SOCKET_MODE_GROUP
            } else {
                SOCKET_MODE_ROOT_ONLY
            };
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
                .map_err(io("set the mode of", &temp))?;
            if let Some(gid) = gid {
                std::os::unix::fs::chown(&temp, None, Some(gid))
                    .map_err(io("change the group of", &temp))?;
            }
            std::fs::rename(&temp, &path).map_err(io("rename into place", &path))?;
            std_listener
                .set_nonblocking(true)
                .map_err(io("make non-blocking", &path))
        };
        if let Err(e) = finish() {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let listener = UnixListener::from_std(std_listener).map_err(io("register", &path))?;
        tracing::info!(path = %path.display(), gid, "control socket listening");
        Ok(ControlServer { listener, path })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients until `shutdown` completes, then removes the socket file.
    pub async fn serve(self, handler: Arc<dyn ControlHandler>, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        // Out of descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                serve_connection(stream, handler).await;
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Answers the requests of one client, one line at a time.
// Limitation: the client's uid (SO_PEERCRED) is not logged; the socket's mode and group are the
// only access control, and every connected client may run every request.
async fn serve_connection(stream: UnixStream, handler: Arc<dyn ControlHandler>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let limit = (MAX_REQUEST_BYTES as u64).saturating_add(1);
        let mut bounded = (&mut reader).take(limit);
        let read = bounded.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "control connection read failed");
                return;
            }
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        let (reply, keep_going) = if !complete && n as u64 >= limit {
            // The rest of an overlong line cannot be told from the next request: answer
            // and close.
            (Outcome::Error(request_too_large()), false)
        } else {
            (answer(&line, &handler).await, complete)
        };
        if write.write_all(&encode_reply(reply)).await.is_err() {
            return;
        }
        if !keep_going {
            return;
        }
    }
}

/// Decodes a request line and runs it on the handler.
async fn answer(line: &[u8], handler: &Arc<dyn ControlHandler>) -> Outcome {
    let request = match decode_request(line) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e),
    };
    tracing::debug!(request = ?request, "control request");
    let handler = handler.clone();
    match tokio::task::spawn_blocking(move || dispatch(handler.as_ref(), request)).await {
        Ok(Ok(response)) => Outcome::Ok(response),
        Ok(Err(e)) => Outcome::Error(e),
        Err(e) => {
            tracing::warn!(error = %e, "control handler failed");
            Outcome::Error(ErrorReply {
                code: ErrorCode::Failed,
                message: "internal error in ovn-ipsecd while answering".into(),
            })
        }
    }
}

/// Runs one request on the handler.
pub fn dispatch(handler: &dyn ControlHandler, request: Request) -> Result<Response, ErrorReply> {
    match request {
        Request::Status => Ok(Response::Status(handler.status())),
        Request::Peers => Ok(Response::Peers(super::protocol::PeerList {
            peers: handler.peers(),
        })),
        Request::Sas => Ok(Response::Sas(handler.sas())),
        Request::Initiate { peer } => Ok(Response::Done(handler.initiate(&peer)?)),
        Request::Terminate { peer } => Ok(Response::Done(handler.terminate(&peer)?)),
        Request::Rekey { peer } => Ok(Response::Done(handler.rekey(&peer)?)),
        Request::Reload => Ok(Response::Done(handler.reload()?)),
        Request::Metrics => Ok(Response::Metrics(super::protocol::MetricsPage {
            text: handler.metrics()?,
        })),
        Request::Cleanup { confirm: false } => Err(ErrorReply {
            code: ErrorCode::NotConfirmed,
            message: "cleanup removes every IPsec state and policy of ovn-ipsecd, leaving \
                      tunnel traffic unprotected; confirm to proceed"
                .into(),
        }),
        Request::Cleanup { confirm: true } => Ok(Response::Cleanup(handler.cleanup()?)),
    }
}

/// Removes a socket left by a daemon that died; refuses when one still answers on it.
fn remove_stale_socket(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Io {
                path: path.to_path_buf(),
                step: "inspect",
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.to_path_buf()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ServerError::AlreadyRunning(path.to_path_buf()));
    }
    std::fs::remove_file(path).map_err(|source| ServerError::Io {
        path: path.to_path_buf(),
        step: "remove the stale socket",
        source,
    })
}

/// Lets group `gid` reach a socket in `dir`: the group's members must be able to enter the
/// directory. Only a directory this daemon owns is changed — one it just created, or the
/// default runtime directory (systemd's `RuntimeDirectory=`, made root-only) — never a
/// directory someone else chose; for those a warning says what is missing.
fn open_directory_to_group(dir: &Path, gid: u32, created: bool) {
    use std::os::unix::fs::MetadataExt;
    let ours =
        created || Path::new(control_api::protocol::DEFAULT_SOCKET_PATH).parent() == Some(dir);
    if ours {
        let changed = std::os::unix::fs::chown(dir, None, Some(gid)).and_then(|()| {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIRECTORY_MODE_GROUP))
        });
        if let Err(error) = changed {
            tracing::warn!(dir = %dir.display(), gid, %error, "cannot open the control socket's directory to its group");
        }
        return;
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.mode() & 0o001 != 0 || (m.gid() == gid && m.mode() & 0o010 != 0) => {}
        Ok(m) => tracing::warn!(
            dir = %dir.display(),
            gid,
            mode = format!("{:o}", m.mode() & 0o7777),
            "members of the control group cannot enter the control socket's directory"
        ),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot inspect the control socket's directory")
        }
    }
}

/// Resolves a group name (through NSS, like `chgrp`) or number to its gid.
fn group_id(group: &str) -> Result<u32, ServerError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || ServerError::UnknownGroup(group.to_owned());
    let name = CString::new(group).map_err(|_| unknown())?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: `grp` and `result` are valid out-pointers, `buf` is a writable buffer of the
        // length passed; `name` is NUL-terminated. getgrnam_r writes only within them.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_GROUP_BUFFER_BYTES {
            let bigger = buf.len().saturating_mul(2);
            buf.resize(bigger, 0);
            continue;
        }
        if rc != 0 {
            return Err(ServerError::Io {
                path: PathBuf::from("/etc/group"),
                step: "look up the group",
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(unknown());
        }
        return Ok(grp.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_group_is_taken_as_gid() {
        assert_eq!(group_id("4242").unwrap(), 4242);
    }

    #[test]
    fn root_group_resolves_by_name() {
        assert_eq!(group_id("root").unwrap(), 0);
    }

    #[test]
    fn missing_group_is_named_in_the_error() {
        let err = group_id("no-such-group-ovn-ipsec").unwrap_err();
        assert!(matches!(err, ServerError::UnknownGroup(g) if g == "no-such-group-ovn-ipsec"));
    }
}
