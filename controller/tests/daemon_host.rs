//! `ovn-ipsecd` as a process on the host, in a network namespace of its own, against a real
//! ovsdb-server with the Southbound schema: the pair's policies are programmed from the
//! Southbound view, the control socket answers from the daemon's state, SIGTERM leaves the
//! policies in the kernel, and `chassis-del` removes them. The host kernel has XFRM but no
//! ESP, so no CHILD_SA comes up here (tests/phases/daemon-guest.sh covers that in the guest).
//!
//! Needs root, `ip` (iproute2) and ovsdb-server/ovn-sbctl (ovn-central, ovn-common).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controller::control::client::Client;
use controller::control::protocol::{Request, Response};
use ovn_ipsec_tests::ovsdb_server::{require_tools, OvsdbServer, TempDir};

const LOCAL: &str = "10.99.0.1";
const REMOTE: &str = "10.99.0.2";
const WAIT: Duration = Duration::from_secs(20);

/// A network namespace holding our encap IP; deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        Netns::named("daemon-host")
    }

    /// A namespace named `prefix-PID`, so tests running at the same time do not share one.
    fn named(prefix: &str) -> Netns {
        let name = format!("{prefix}-{}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        // The host has no dummy or veth module: the encap IP sits on the loopback device.
        ns.ip(&["addr", "add", &format!("{LOCAL}/32"), "dev", "lo"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.0];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Policy lines (`src … dst …`) naming `addr`.
    fn policies_with(&self, addr: &str) -> usize {
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

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

/// A running ovn-ipsecd for chassis-1 in `ns`; killed on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Netns, sb: &OvsdbServer, dir: &Path) -> Daemon {
        Daemon::start_with_remote(ns, &sb.unix_remote(), dir)
    }

    fn start_with_remote(ns: &Netns, remote: &str, dir: &Path) -> Daemon {
        let log = dir.join("ovn-ipsecd.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_ovn-ipsecd")])
            .arg("--chassis-name=chassis-1")
            .arg(format!("--ovn-remote={remote}"))
            .arg(format!(
                "--certificate={}",
                fixture("chassis-1-cert.pem").display()
            ))
            .arg(format!(
                "--private-key={}",
                fixture("chassis-1-privkey.pem").display()
            ))
            .arg(format!("--ca-cert={}", fixture("ca-bundle.pem").display()))
            .arg(format!(
                "--control-socket={}",
                dir.join("ctl.sock").display()
            ))
            .arg(format!(
                "--config={}",
                dir.join("ovn-ipsecd.toml").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

fn wait_until(what: &str, daemon: &Daemon, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_programs_policies_from_the_southbound_keeps_them_on_sigterm_and_removes_them_on_chassis_del(
) {
    require_tools();
    let dir = TempDir::new("daemon-host");
    // An empty configuration file, so the host's /etc/ovn-ipsec is never read.
    std::fs::write(dir.path().join("ovn-ipsecd.toml"), "").unwrap();
    let sb = OvsdbServer::standalone();
    sb.sbctl(&["init"]);
    sb.sbctl(&["set", "SB_Global", ".", "ipsec=true"]);
    sb.sbctl(&["chassis-add", "chassis-1", "geneve", LOCAL]);
    sb.sbctl(&["chassis-add", "chassis-2", "geneve", REMOTE]);
    let ns = Netns::new();

    let mut daemon = Daemon::start(&ns, &sb, dir.path());
    // Two CHILD_SAs, each an out and an in policy, all naming the remote encap IP.
    wait_until("the pair's four policies", &daemon, || {
        ns.policies_with(REMOTE) == 4
    });

    let socket = dir.path().join("ctl.sock");
    wait_until("the control socket", &daemon, || socket.exists());
    let mut client = Client::connect(&socket, WAIT).unwrap();
    match client.call(Request::Status).unwrap() {
        Response::Status(s) => {
            assert_eq!(s.chassis, "chassis-1");
            assert_eq!(s.peers_desired, 1);
            assert_eq!(s.peers_up, 0, "no ESP on the host: nothing comes up");
        }
        other => panic!("unexpected answer {other:?}"),
    }
    match client.call(Request::Peers).unwrap() {
        Response::Peers(list) => {
            assert_eq!(list.peers.len(), 1);
            assert_eq!(list.peers[0].chassis, "chassis-2");
            assert_eq!(list.peers[0].remote_ip.to_string(), REMOTE);
        }
        other => panic!("unexpected answer {other:?}"),
    }
    drop(client);

    let status = daemon.terminate();
    assert!(status.success(), "exit {status:?}:\n{}", daemon.log());
    assert_eq!(
        ns.policies_with(REMOTE),
        4,
        "SIGTERM must leave the policies"
    );

    let daemon = Daemon::start(&ns, &sb, dir.path());
    wait_until("the restarted daemon's control socket", &daemon, || {
        Client::connect(&socket, WAIT)
            .and_then(|mut c| c.call(Request::Status))
            .is_ok_and(|r| matches!(r, Response::Status(s) if s.peers_desired == 1))
    });
    assert_eq!(ns.policies_with(REMOTE), 4);
    sb.sbctl(&["chassis-del", "chassis-2"]);
    wait_until("the policies of the deleted chassis to go", &daemon, || {
        ns.policies_with(REMOTE) == 0
    });
}

#[test]
fn daemon_restarted_after_kill_9_leaves_the_policies_until_it_has_a_southbound_view() {
    require_tools();
    let dir = TempDir::new("daemon-host-restart");
    std::fs::write(dir.path().join("ovn-ipsecd.toml"), "").unwrap();
    let sb = OvsdbServer::standalone();
    sb.sbctl(&["init"]);
    sb.sbctl(&["set", "SB_Global", ".", "ipsec=true"]);
    sb.sbctl(&["chassis-add", "chassis-1", "geneve", LOCAL]);
    sb.sbctl(&["chassis-add", "chassis-2", "geneve", REMOTE]);
    let ns = Netns::named("daemon-host-restart");

    let mut daemon = Daemon::start(&ns, &sb, dir.path());
    wait_until("the pair's four policies", &daemon, || {
        ns.policies_with(REMOTE) == 4
    });
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();

    // The new daemon cannot reach any Southbound: its loop runs (the control socket answers)
    // but it has no view, so it must not take the previous run's policies away.
    let socket = dir.path().join("ctl.sock");
    let _ = std::fs::remove_file(&socket);
    let unreachable = format!("unix:{}", dir.path().join("no-such-sb.sock").display());
    let daemon = Daemon::start_with_remote(&ns, &unreachable, dir.path());
    wait_until("the restarted daemon's control socket", &daemon, || {
        Client::connect(&socket, WAIT)
            .and_then(|mut c| c.call(Request::Status))
            .is_ok()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ns.policies_with(REMOTE),
        4,
        "policies removed before any Southbound view:\n{}",
        daemon.log()
    );
}
