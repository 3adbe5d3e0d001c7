//! Runs a script inside the real-kernel rig's qemu guest (`tests/vm/run.sh`) from a cargo
//! test: a fresh share folder, files and host binaries put into it, one boot, and the result as
//! a value (exit status, console, TAP-style `ok -` / `not ok -` lines).
//!
//! A test binary can run itself in the guest: [`GuestRun::add_current_exe`] copies it into the
//! share, and the script calls it with an environment variable that selects the in-guest part.
//! See `tests/vm/README.md` for the rig itself.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Exit status of `run.sh` when the script or the guest timed out.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status of `run.sh` when the rig failed (no kernel, qemu failed, no boot, panic).
pub const EXIT_RIG_FAILED: i32 = 125;

/// Why a guest run could not be set up or started.
#[derive(Debug)]
pub enum VmError {
    /// `tests/vm/run.sh` is not where this crate expects it.
    RunScriptMissing(PathBuf),
    /// A file operation on the share folder failed.
    Share {
        /// What was being done, naming the path.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A name given for a file in the share is not a plain relative path.
    BadShareName(String),
    /// `bash tests/vm/run.sh` could not be started.
    Spawn(io::Error),
    /// `run.sh` was killed by a signal and reported no status.
    Killed,
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::RunScriptMissing(p) => write!(f, "the rig's run script {} is missing", p.display()),
            VmError::Share { what, source } => write!(f, "{what}: {source}"),
            VmError::BadShareName(n) => {
                write!(f, "share file name must be relative, without '..' or white space: {n:?}")
            }
            VmError::Spawn(e) => write!(
                f,
                "cannot run bash tests/vm/run.sh: {e} (install the rig with 'bash tests/setup/vm.sh')"
            ),
            VmError::Killed => write!(f, "tests/vm/run.sh was killed by a signal"),
        }
    }
}

impl std::error::Error for VmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VmError::Share { source, .. } => Some(source),
            VmError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// How a guest run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEnd {
    /// The script ran to its end with this exit status.
    Exited(i32),
    /// The script or the guest exceeded the timeout.
    TimedOut,
    /// The rig failed before or while running the script (see `stderr`).
    RigFailed,
}

/// The outcome of one boot: how it ended and everything it printed.
#[derive(Debug, Clone)]
pub struct GuestOutcome {
    /// How the run ended.
    pub end: GuestEnd,
    /// The guest's serial console (the script's stdout and stderr among kernel lines).
    pub console: String,
    /// The rig's own messages (`vm: …`), including the reason for a failure.
    pub stderr: String,
}

/// `ok - NAME` / `not ok - NAME` lines a script printed, as the smoke phase and most in-guest
/// scripts report their checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckLines {
    /// Names of the checks that passed.
    pub passed: Vec<String>,
    /// Names of the checks that failed.
    pub failed: Vec<String>,
}

impl GuestOutcome {
    /// Whether the script exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.end == GuestEnd::Exited(0)
    }

    /// The `ok - …` and `not ok - …` lines of the console.
    pub fn checks(&self) -> CheckLines {
        parse_check_lines(&self.console)
    }
}

/// Collects `ok - NAME` and `not ok - NAME` lines (carriage returns from the serial console
/// ignored); other lines are left out.
pub fn parse_check_lines(console: &str) -> CheckLines {
    let mut lines = CheckLines::default();
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("not ok - ") {
            lines.failed.push(name.to_owned());
        } else if let Some(name) = line.strip_prefix("ok - ") {
            lines.passed.push(name.to_owned());
        }
    }
    lines
}

/// Maps `run.sh`'s exit status to how the run ended.
pub fn guest_end_from_status(status: i32) -> GuestEnd {
    match status {
        EXIT_TIMEOUT => GuestEnd::TimedOut,
        EXIT_RIG_FAILED => GuestEnd::RigFailed,
        s => GuestEnd::Exited(s),
    }
}

/// Path of `tests/vm/run.sh` in this checkout.
pub fn run_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vm")
        .join("run.sh")
}

/// Distinguishes share folders of one process.
static SHARE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One guest boot being prepared: a private share folder (removed on drop), host binaries for
/// the initramfs, and settings passed to `run.sh` as environment variables.
#[derive(Debug)]
pub struct GuestRun {
    share: PathBuf,
    extra: Vec<OsString>,
    modules: Vec<String>,
    timeout: Option<Duration>,
}

fn share_error(what: String) -> impl FnOnce(io::Error) -> VmError {
    move |source| VmError::Share { what, source }
}

/// Checks that `name` is a plain relative path, as `run.sh` requires of SCRIPT.
fn check_share_name(name: &str) -> Result<(), VmError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|c| c == "..")
        || name.chars().any(char::is_whitespace);
    if bad {
        return Err(VmError::BadShareName(name.to_owned()));
    }
    Ok(())
}

impl GuestRun {
    /// A fresh, empty share folder under the system's temporary folder.
    pub fn new() -> Result<Self, VmError> {
        let n = SHARE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let share =
            std::env::temp_dir().join(format!("ovn-ipsec-vm-share-{}-{n}", std::process::id()));
        if share.exists() {
            fs::remove_dir_all(&share)
                .map_err(share_error(format!("removing {}", share.display())))?;
        }
        fs::create_dir_all(&share).map_err(share_error(format!("creating {}", share.display())))?;
        Ok(GuestRun {
            share,
            extra: Vec::new(),
            modules: Vec::new(),
            timeout: None,
        })
    }

    /// The share folder on the host; the guest sees it at `/mnt`.
    pub fn share_dir(&self) -> &Path {
        &self.share
    }

    /// Writes `contents` to `name` in the share (folders created as needed).
    pub fn add_text(&mut self, name: &str, contents: &str) -> Result<&mut Self, VmError> {
        check_share_name(name)?;
        let dest = self.share.join(name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(share_error(format!("creating {}", dir.display())))?;
        }
        fs::write(&dest, contents).map_err(share_error(format!("writing {}", dest.display())))?;
        Ok(self)
    }

    /// Copies the host file `src` to `name` in the share, keeping its permissions.
    pub fn add_file(&mut self, src: &Path, name: &str) -> Result<&mut Self, VmError> {
        check_share_name(name)?;
        let dest = self.share.join(name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(share_error(format!("creating {}", dir.display())))?;
        }
        fs::copy(src, &dest).map_err(share_error(format!(
            "copying {} to {}",
            src.display(),
            dest.display()
        )))?;
        Ok(self)
    }

    /// Copies the running executable (e.g. this test binary) to `name` in the share.
    pub fn add_current_exe(&mut self, name: &str) -> Result<&mut Self, VmError> {
        let exe = std::env::current_exe()
            .map_err(share_error("finding the current executable".into()))?;
        self.add_file(&exe, name)
    }

    /// Puts a host file or folder into the initramfs at the same path, with the libraries
    /// `ldd` lists (`OVN_IPSEC_VM_EXTRA`); `SRC=DEST` places it elsewhere.
    pub fn add_host_path(&mut self, entry: impl Into<OsString>) -> &mut Self {
        self.extra.push(entry.into());
        self
    }

    /// Puts the files of a ready-made list `tests/vm/extras/NAME.list` into the initramfs
    /// (e.g. `"ovn-sb"` for ovsdb-server and ovn-sbctl).
    pub fn add_extras_list(&mut self, name: &str) -> &mut Self {
        let list = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("vm")
            .join("extras")
            .join(format!("{name}.list"));
        let mut entry = OsString::from("@");
        entry.push(list);
        self.add_host_path(entry)
    }

    /// Loads one more kernel module (with its dependencies) at boot (`OVN_IPSEC_VM_MODULES`).
    pub fn add_module(&mut self, name: &str) -> &mut Self {
        self.modules.push(name.to_owned());
        self
    }

    /// Time the script may run (`OVN_IPSEC_VM_TIMEOUT`, whole seconds, at least 1).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Boots the guest and runs `/bin/sh /mnt/SCRIPT`; prints the console and the rig's
    /// messages (captured by the test harness, shown when a test fails).
    pub fn run(&self, script: &str) -> Result<GuestOutcome, VmError> {
        check_share_name(script)?;
        let run_sh = run_script();
        if !run_sh.is_file() {
            return Err(VmError::RunScriptMissing(run_sh));
        }
        let mut cmd = Command::new("bash");
        cmd.arg(&run_sh).arg(&self.share).arg(script);
        if !self.extra.is_empty() {
            let mut joined = std::env::var_os("OVN_IPSEC_VM_EXTRA").unwrap_or_default();
            for e in &self.extra {
                if !joined.is_empty() {
                    joined.push(" ");
                }
                joined.push(e);
            }
            cmd.env("OVN_IPSEC_VM_EXTRA", joined);
        }
        if !self.modules.is_empty() {
            let mut joined = std::env::var("OVN_IPSEC_VM_MODULES").unwrap_or_default();
            for m in &self.modules {
                joined.push(' ');
                joined.push_str(m);
            }
            cmd.env("OVN_IPSEC_VM_MODULES", joined.trim());
        }
        if let Some(t) = self.timeout {
            cmd.env("OVN_IPSEC_VM_TIMEOUT", t.as_secs().max(1).to_string());
        }
        let out = cmd.output().map_err(VmError::Spawn)?;
        let console = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        print!("{console}");
        eprint!("{stderr}");
        let status = out.status.code().ok_or(VmError::Killed)?;
        Ok(GuestOutcome {
            end: guest_end_from_status(status),
            console,
            stderr,
        })
    }
}

impl Drop for GuestRun {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_lines_are_split_into_passed_and_failed_ignoring_other_output() {
        let console =
            "[ 1.0] kernel line\r\nok - first\r\nnot ok - second\nokay\nok - third\n1 passed";
        let lines = parse_check_lines(console);
        assert_eq!(lines.passed, vec!["first", "third"]);
        assert_eq!(lines.failed, vec!["second"]);
    }

    #[test]
    fn run_sh_statuses_for_timeout_and_rig_failure_are_not_script_statuses() {
        assert_eq!(guest_end_from_status(0), GuestEnd::Exited(0));
        assert_eq!(guest_end_from_status(3), GuestEnd::Exited(3));
        assert_eq!(guest_end_from_status(124), GuestEnd::TimedOut);
        assert_eq!(guest_end_from_status(125), GuestEnd::RigFailed);
    }

    #[test]
    fn share_names_must_be_plain_relative_paths() {
        assert!(check_share_name("smoke.sh").is_ok());
        assert!(check_share_name("bin/udp-probe").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a b"] {
            assert!(check_share_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// The in-guest half of the test below: run only inside the guest (`OVN_IPSEC_VM=1` is set
    /// by the guest's init), where the kernel is the rig's, not the host's.
    #[test]
    #[ignore = "runs inside the qemu guest, started by guest_run_runs_this_test_binary_in_the_guest"]
    fn guest_side_sees_the_rig_kernel_and_the_share() {
        assert_eq!(std::env::var("OVN_IPSEC_VM").as_deref(), Ok("1"));
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert!(release.trim().ends_with("-amd64"), "guest kernel {release}");
        assert!(Path::new("/mnt/self").is_file());
    }

    #[test]
    fn guest_run_runs_this_test_binary_in_the_guest_and_reports_status_and_checks() {
        let mut run = GuestRun::new().unwrap();
        run.add_current_exe("self").unwrap();
        run.add_text(
            "guest.sh",
            "if /mnt/self --ignored --exact vm::tests::guest_side_sees_the_rig_kernel_and_the_share; \
             then echo 'ok - test binary ran in the guest'; \
             else echo 'not ok - test binary ran in the guest'; fi\n\
             echo 'not ok - deliberately failing check'\n\
             exit 3\n",
        )
        .unwrap();
        run.timeout(Duration::from_secs(120));
        let outcome = run.run("guest.sh").unwrap();
        assert_eq!(
            outcome.end,
            GuestEnd::Exited(3),
            "rig said: {}",
            outcome.stderr
        );
        let checks = outcome.checks();
        assert_eq!(checks.passed, vec!["test binary ran in the guest"]);
        assert_eq!(checks.failed, vec!["deliberately failing check"]);
    }
}
