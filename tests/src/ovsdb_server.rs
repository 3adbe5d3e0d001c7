//! Real `ovsdb-server` processes with the OVN Southbound schema for tests: standalone (unix,
//! tcp and optionally ssl remotes) or a 3-member RAFT cluster, each in its own temp directory,
//! driven with `ovn-sbctl`. Every process is killed by its PID and its directory removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The Southbound schema that Debian's ovn-common installs.
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// How long a server may take to show its listening port in the log.
const START_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// Panics with the install hint when the OVN/OVS tools are missing.
pub fn require_tools() {
    for tool in ["ovsdb-server", "ovsdb-tool", "ovn-sbctl", "ovs-pki"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found && Path::new(SB_SCHEMA).exists(),
            "{tool} or {SB_SCHEMA} is missing: install ovn-central ovn-common openvswitch-common \
             (tests/setup/ovsdb.sh does)"
        );
    }
}

/// A fresh temporary directory, removed by [`TempDir`]'s drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `/tmp/ovn-ipsec-<what>-<pid>-<n>`.
    pub fn new(what: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ovn-ipsec-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP port that was free a moment ago (for remotes that need a fixed port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Certificates made with `ovs-pki` as an OVN deployment has them.
#[derive(Debug)]
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// `ovs-pki init`, then `-u req+sign` for the server (`sb`) and a chassis (`ch1`).
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        let d = dir.path();
        let pki = d.join("pki");
        let pki_arg = format!("--dir={}", pki.display());
        run(Command::new("ovs-pki")
            .args([&pki_arg, "init"])
            .current_dir(d));
        for (name, kind) in [("sb", "controller"), ("ch1", "switch")] {
            run(Command::new("ovs-pki")
                .args([&pki_arg, "-u", "req+sign", name, kind])
                .current_dir(d));
        }
        let mut bundle = std::fs::read(pki.join("switchca/cacert.pem")).unwrap();
        bundle.extend(std::fs::read(pki.join("controllerca/cacert.pem")).unwrap());
        std::fs::write(d.join("cacert-bundle.pem"), bundle).unwrap();
        Self { dir }
    }

    /// `<name>-privkey.pem`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-privkey.pem"))
    }

    /// `<name>-cert.pem` (text, then the PEM block, as ovs-pki writes it).
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-cert.pem"))
    }

    /// Both CA certificates in one file.
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.path().join("cacert-bundle.pem")
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// One running ovsdb-server.
#[derive(Debug)]
pub struct OvsdbServer {
    dir: TempDir,
    db: PathBuf,
    pid: Option<u32>,
    /// `unix:` socket path.
    pub unix: PathBuf,
    /// The port of `ptcp:0:127.0.0.1`.
    pub tcp_port: u16,
    /// The port of the `pssl:` remote, when started with TLS.
    pub ssl_port: Option<u16>,
    extra_args: Vec<String>,
    tls_args: Vec<String>,
}

impl OvsdbServer {
    /// A standalone Southbound server on a fresh database.
    pub fn standalone() -> Self {
        Self::create(None)
    }

    /// A standalone server that also listens on `pssl:` with `sb`'s certificate from `pki`.
    pub fn standalone_tls(pki: &Pki) -> Self {
        Self::create(Some(pki))
    }

    /// A standalone server that also listens on `ptcp:<port>:[::1]`; returns it and the port.
    pub fn standalone_ipv6() -> (Self, u16) {
        let port = TcpListener::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Self::create(None);
        s.kill();
        s.extra_args.push(format!("--remote=ptcp:{port}:[::1]"));
        s.start();
        (s, port)
    }

    fn create(pki: Option<&Pki>) -> Self {
        require_tools();
        let dir = TempDir::new("sb");
        let db = dir.path().join("sb.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SB_SCHEMA));
        let (ssl_port, tls_args) = match pki {
            Some(pki) => {
                let port = free_port();
                (
                    Some(port),
                    vec![
                        format!("--remote=pssl:{port}:127.0.0.1"),
                        format!("--private-key={}", pki.key("sb").display()),
                        format!("--certificate={}", pki.cert("sb").display()),
                        format!("--ca-cert={}", pki.ca_bundle().display()),
                    ],
                )
            }
            None => (None, vec![]),
        };
        let mut s = Self {
            unix: dir.path().join("sb.sock"),
            dir,
            db,
            pid: None,
            tcp_port: 0,
            ssl_port,
            extra_args: vec![],
            tls_args,
        };
        s.start();
        s
    }

    /// Starts (or restarts) the server on its database file; the tcp port may change.
    pub fn start(&mut self) {
        let d = self.dir.path().to_path_buf();
        let log = d.join("sb.log");
        let _ = std::fs::remove_file(&log);
        let tcp = match self.tcp_port {
            0 => "ptcp:0:127.0.0.1".to_string(),
            p => format!("ptcp:{p}:127.0.0.1"),
        };
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.unix.display()))
            .arg(format!("--remote={tcp}"))
            .args(&self.tls_args)
            .args(&self.extra_args)
            .arg(format!("--pidfile={}", d.join("sb.pid").display()))
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("--unixctl={}", d.join("sb.ctl").display()))
            .args(["--detach", "--no-chdir"]);
        run(&mut cmd);
        let pid = std::fs::read_to_string(d.join("sb.pid")).unwrap();
        self.pid = Some(pid.trim().parse().unwrap());
        if self.tcp_port == 0 {
            self.tcp_port = wait_for_port(&log);
        }
    }

    /// `unix:<socket>`.
    pub fn unix_remote(&self) -> String {
        format!("unix:{}", self.unix.display())
    }

    /// `tcp:127.0.0.1:<port>`.
    pub fn tcp_remote(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.tcp_port)
    }

    /// `ssl:127.0.0.1:<port>`.
    pub fn ssl_remote(&self) -> String {
        format!(
            "ssl:127.0.0.1:{}",
            self.ssl_port.expect("server started without TLS")
        )
    }

    /// Runs `ovn-sbctl --db=unix:<socket> ARGS` and returns its output.
    pub fn sbctl(&self, args: &[&str]) -> String {
        run(Command::new("ovn-sbctl")
            .arg(format!("--db={}", self.unix_remote()))
            .arg("--no-leader-only")
            .args(args))
    }

    /// Like [`OvsdbServer::sbctl`], but returns a failure instead of panicking.
    pub fn try_sbctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ovn-sbctl")
            .arg(format!("--db={}", self.unix_remote()))
            .arg("--no-leader-only")
            .arg("--timeout=5")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Whether the process is running (not killed by [`OvsdbServer::kill`]).
    pub fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.pid.expect("server not running")
    }

    /// Sends a signal to this server (by PID): "STOP", "CONT", "KILL" ...
    pub fn signal(&self, sig: &str) {
        run(Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string()));
    }

    /// Kills the server and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .output();
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(5);
            while proc_dir.exists() && Instant::now() < deadline {
                // A zombie of a detached daemon is reaped by init; its stat says 'Z'.
                let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
                if stat.split_whitespace().nth(2) == Some("Z") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_file(&self.unix);
        }
    }

    /// Kills the server, replaces its database with an empty one and starts it again on the
    /// same ports.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.db);
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&self.db)
            .arg(SB_SCHEMA));
        self.start();
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(log: &Path) -> u16 {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .filter_map(|l| l.split("listening on port ").nth(1))
            .find_map(|p| p.trim().parse().ok());
        if let Some(p) = port {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no listening port in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A 3-member RAFT cluster of the Southbound database on loopback.
#[derive(Debug)]
pub struct Cluster {
    /// The members, in creation order.
    pub members: Vec<OvsdbServer>,
}

impl Cluster {
    /// Creates a cluster of `n` members (fixed raft ports, dynamic client ports).
    pub fn new(n: usize) -> Self {
        require_tools();
        let raft_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let raft = |i: usize| format!("tcp:127.0.0.1:{}", raft_ports[i]);
        let mut members = Vec::new();
        for i in 0..n {
            let dir = TempDir::new("sbraft");
            let db = dir.path().join("sb.db");
            if i == 0 {
                run(Command::new("ovsdb-tool")
                    .arg("create-cluster")
                    .arg(&db)
                    .arg(SB_SCHEMA)
                    .arg(raft(0)));
            } else {
                run(Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(&db)
                    .arg("OVN_Southbound")
                    .arg(raft(i))
                    .arg(raft(0)));
            }
            let mut s = OvsdbServer {
                unix: dir.path().join("sb.sock"),
                dir,
                db,
                pid: None,
                tcp_port: 0,
                ssl_port: None,
                extra_args: vec![],
                tls_args: vec![],
            };
            s.start();
            members.push(s);
        }
        let c = Self { members };
        c.wait_until_joined();
        c
    }

    fn wait_until_joined(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for m in &self.members {
            loop {
                let ok = Command::new("ovsdb-client")
                    .args(["wait", &m.unix_remote(), "OVN_Southbound", "connected"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster member did not join");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The index of the current leader, from `cluster/status`.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.pid.is_some()
                && Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(m.dir.path().join("sb.ctl"))
                    .args(["cluster/status", "OVN_Southbound"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Role: leader"))
        })
    }

    /// `tcp:` remotes of all members, comma-separated.
    pub fn tcp_remotes(&self) -> String {
        self.members
            .iter()
            .map(OvsdbServer::tcp_remote)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `ovn-sbctl` on running members (it goes through the leader), retrying while the
    /// cluster elects a leader.
    pub fn sbctl(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut last = String::new();
            for m in self.members.iter().filter(|m| m.pid.is_some()) {
                match m.try_sbctl(args) {
                    Ok(out) => return out,
                    Err(e) => last = e,
                }
            }
            assert!(
                Instant::now() < deadline,
                "ovn-sbctl {args:?} kept failing: {last}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Indices of the members that are not the leader.
    pub fn followers(&self) -> Vec<usize> {
        let leader = self.leader();
        (0..self.members.len())
            .filter(|i| Some(*i) != leader)
            .collect()
    }

    /// The member whose tcp remote is `remote`.
    pub fn member_by_remote(&self, remote: &str) -> Option<usize> {
        self.members.iter().position(|m| m.tcp_remote() == remote)
    }
}
