//! What the tests that run `ovn-ipsecd` as a process share: a network namespace of their own,
//! the daemon started in it against a Southbound ovsdb-server, its status and its log.

#![allow(dead_code)] // Each test binary uses part of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use controller::control::client::Client;
use controller::control::protocol::{Request, Response, Status};
use ovn_ipsec_tests::ovsdb_server::OvsdbServer;

/// How long a test waits for the daemon to do something.
pub const WAIT: Duration = Duration::from_secs(30);

/// Runs `cmd` and returns its standard output; panics, with its standard error, on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (install it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file of the PKI fixtures ikev2's tests keep (chassis-1/chassis-2 certificates and keys,
/// their CA bundle).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

/// Copies chassis-1's fixture certificate, key and CA into `dir` under the names
/// [`Daemon::start`] gives the daemon.
pub fn install_chassis_1_pki(dir: &Path) {
    std::fs::copy(fixture("chassis-1-cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(fixture("chassis-1-privkey.pem"), dir.join("key.pem")).unwrap();
    std::fs::copy(fixture("ca-bundle.pem"), dir.join("ca.pem")).unwrap();
}

/// A standalone Southbound with IPsec on and one Geneve chassis for each `(name, encap IP)`.
pub fn southbound(chassis: &[(&str, &str)]) -> OvsdbServer {
    let sb = OvsdbServer::standalone();
    sb.sbctl(&["init"]);
    sb.sbctl(&["set", "SB_Global", ".", "ipsec=true"]);
    for (name, ip) in chassis {
        sb.sbctl(&["chassis-add", name, "geneve", ip]);
    }
    sb
}

/// A network namespace with its loopback device up; deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A namespace named for `label` and this process.
    pub fn new(label: &str) -> Netns {
        let name = format!("{label}-{}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NS ARGS…`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Puts `addr` (a host prefix) on the loopback device: the host has no dummy or veth
    /// module.
    pub fn add_local(&self, addr: &str) {
        self.ip(&["addr", "add", addr, "dev", "lo", "nodad"]);
    }

    /// Policy lines (`src … dst …`) naming `addr`.
    pub fn policies_with(&self, addr: &str) -> usize {
        self.ip(&["xfrm", "policy"])
            .lines()
            .filter(|l| l.starts_with("src") && l.contains(addr))
            .count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A running ovn-ipsecd; killed on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon of `chassis` in `ns`, with the certificate, key and CA at
    /// `dir/{cert,key,ca}.pem`, its control socket, log and (empty) configuration file in
    /// `dir`.
    pub fn start(ns: &Netns, sb: &OvsdbServer, dir: &Path, chassis: &str) -> Daemon {
        Daemon::start_with(ns, &sb.unix_remote(), dir, chassis, |_| {})
    }

    /// As [`Daemon::start`], against the OVSDB `remote` (which need not answer), with
    /// `configure` adding to the command before it is spawned (the environment, say).
    pub fn start_with(
        ns: &Netns,
        remote: &str,
        dir: &Path,
        chassis: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let log = dir.join("ovn-ipsecd.log");
        let socket = dir.join("ctl.sock");
        let config = dir.join("ovn-ipsecd.toml");
        // An empty configuration file, so the host's /etc/ovn-ipsec is never read.
        std::fs::write(&config, "").unwrap();
        let arg = |k: &str, v: &Path| format!("--{k}={}", v.display());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_ovn-ipsecd")])
            .arg(format!("--chassis-name={chassis}"))
            .arg(format!("--ovn-remote={remote}"))
            .arg(arg("certificate", &dir.join("cert.pem")))
            .arg(arg("private-key", &dir.join("key.pem")))
            .arg(arg("ca-cert", &dir.join("ca.pem")))
            .arg(arg("control-socket", &socket))
            .arg(arg("config", &config))
            .env("OVN_IPSECD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        configure(&mut cmd);
        let child = cmd.spawn().unwrap();
        Daemon { child, log, socket }
    }

    /// The daemon's control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Kills the daemon with SIGKILL and reaps it, as a crash would leave things.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the daemon to exit and returns how, panicking with the log after [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit; daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// The daemon's log, without the terminal colour codes of its fields.
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: ESC [ parameters final-byte.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Waits until `f` holds, panicking with the log after [`WAIT`].
    pub fn wait_until(&self, what: &str, mut f: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The daemon's status, from the control socket.
    pub fn status(&self) -> Option<Status> {
        let mut client = Client::connect(&self.socket, WAIT).ok()?;
        match client.call(Request::Status).ok()? {
            Response::Status(s) => Some(s),
            _ => None,
        }
    }

    /// Sends `signal` to the daemon (`ip netns exec` execs it, so the child is the daemon).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    }

    /// Lines of the log that contain every one of `words`.
    pub fn log_lines_with(&self, words: &[&str]) -> usize {
        self.log()
            .lines()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
