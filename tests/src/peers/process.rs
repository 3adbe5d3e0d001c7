//! Running the peers' tools: one-shot commands with a time limit, long-running daemons stopped
//! by PID when their guard drops, and scratch folders removed with their guard.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::PeerError;

/// How long a one-shot command may run before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How often a child is polled while the harness waits for it.
const POLL: Duration = Duration::from_millis(20);
/// How much of a daemon log an error message quotes.
const LOG_TAIL_BYTES: usize = 6000;

/// The output of a command that ran to its end.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit status, as text.
    pub status: String,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl CommandOutput {
    /// stdout then stderr, as one text (for messages and for matching a tool's report).
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A command line as text, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to its end (at most `limit`), capturing stdout and stderr; a non-zero exit is
/// not an error here (see [`run_checked`]).
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<CommandOutput, PeerError> {
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PeerError::Spawn {
            command: command.clone(),
            source,
        })?;

    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let status = wait_until(&mut child, limit);
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();

    match status {
        Some(status) => Ok(CommandOutput {
            success: status.success(),
            status: status.to_string(),
            stdout,
            stderr,
        }),
        None => Err(PeerError::CommandTimedOut {
            command,
            after: limit,
        }),
    }
}

/// Runs `cmd` like [`run_with_timeout`] with [`COMMAND_TIMEOUT`] and fails unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<CommandOutput, PeerError> {
    let output = run_with_timeout(cmd, COMMAND_TIMEOUT)?;
    if output.success {
        Ok(output)
    } else {
        Err(PeerError::CommandFailed {
            command: describe(cmd),
            status: output.status.clone(),
            output: output.combined(),
        })
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` at most `limit`; on timeout kills it (by its PID, through `Child::kill`),
/// reaps it and returns `None`.
fn wait_until(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A long-running daemon started by the harness: stopped with SIGTERM (then SIGKILL) by its
/// PID when dropped, so a failing test never leaves it behind.
#[derive(Debug)]
pub struct Daemon {
    label: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr appended to `log`. `cmd` must end in an `exec` of
    /// the daemon itself (not a fork), so that the PID the harness holds is the daemon's.
    pub fn spawn(label: &str, cmd: &mut Command, log: &Path) -> Result<Daemon, PeerError> {
        let file = |what| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| PeerError::File {
                    what,
                    path: log.to_path_buf(),
                    source,
                })
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file("opening log")?)
            .stderr(file("opening log")?)
            .spawn()
            .map_err(|source| PeerError::Spawn {
                command: describe(cmd),
                source,
            })?;
        Ok(Daemon {
            label: label.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with [`PeerError::DaemonExited`] if the daemon is no longer running.
    pub fn check_running(&mut self) -> Result<(), PeerError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(PeerError::DaemonExited {
                daemon: self.label.clone(),
                status: status.to_string(),
                log: log_tail(&self.log),
            }),
            Err(e) => Err(PeerError::DaemonExited {
                daemon: self.label.clone(),
                status: e.to_string(),
                log: log_tail(&self.log),
            }),
        }
    }

    /// Stops the daemon: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with the PID of our own unreaped child: it cannot name another
            // process, because the PID is not recycled before we wait for it.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if wait_until(&mut self.child, STOP_GRACE).is_none() {
            tracing::warn!(daemon = %self.label, "killed after SIGTERM grace period");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last part of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL_BYTES);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text.get(start..).unwrap_or_default().to_string()
}

/// A folder of the harness (configuration, sockets, logs) removed when dropped, unless
/// `OVN_IPSEC_KEEP_PEERS` is set (then its path is printed, for a post-mortem).
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh folder `<tmp>/ovn-ipsec-peers-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> Result<ScratchDir, PeerError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ovn-ipsec-peers-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|source| PeerError::File {
            what: "creating folder",
            path: path.clone(),
            source,
        })?;
        Ok(ScratchDir { path })
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("OVN_IPSEC_KEEP_PEERS").is_some() {
            eprintln!("peers: kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `contents` to `path`, creating parent folders.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<(), PeerError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| PeerError::File {
            what: "creating folder",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    fs::write(path, contents).map_err(|source| PeerError::File {
        what: "writing",
        path: path.to_path_buf(),
        source,
    })
}

/// Copies `from` to `to`, creating parent folders.
pub fn copy_file(from: &Path, to: &Path) -> Result<(), PeerError> {
    let bytes = fs::read(from).map_err(|source| PeerError::File {
        what: "reading",
        path: from.to_path_buf(),
        source,
    })?;
    write_file(to, &bytes)
}
