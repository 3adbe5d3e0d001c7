//! `ovn-ipsecd` speaking the systemd notification protocol to a socket of the test's own, as
//! a `Type=notify` unit would see it, without systemd: the daemon runs in a network namespace
//! of its own against a real ovsdb-server with the Southbound schema, with `NOTIFY_SOCKET` and
//! `WATCHDOG_USEC` set. `READY=1` comes only once the pair's policies are in the kernel,
//! `STATUS=` follows the peer count, `WATCHDOG=1` keeps coming, SIGHUP is announced with
//! `RELOADING=1` then `READY=1`, and SIGTERM with `STOPPING=1`.
//!
//! Needs root, `ip` (iproute2) and ovsdb-server/ovn-sbctl (ovn-central, ovn-common).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{install_chassis_1_pki, southbound, Daemon, Netns, WAIT};
use ovn_ipsec_tests::ovsdb_server::{require_tools, TempDir};

const LOCAL: &str = "10.98.0.1";
const REMOTE: &str = "10.98.0.2";
const THIRD: &str = "10.98.0.3";
/// The watchdog interval systemd would give: the daemon pings every half of it. Long enough
/// that a loaded machine does not delay a ping past it.
const WATCHDOG_USEC: u64 = 1_000_000;

/// The test's end of `NOTIFY_SOCKET`: every line received, in order, with its arrival time.
struct NotifySocket {
    socket: UnixDatagram,
    lines: Vec<(Instant, String)>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            socket,
            lines: Vec::new(),
        }
    }

    /// Receives until a line satisfying `want` arrives after index `from`; returns its index.
    fn wait_for(
        &mut self,
        from: usize,
        daemon: &Daemon,
        want: impl Fn(&str) -> bool,
        what: &str,
    ) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.lines.iter().skip(from).position(|(_, l)| want(l)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {:?}; daemon log:\n{}",
                self.texts(),
                daemon.log()
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.socket.recv(&mut buf) {
                let now = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.lines.extend(text.lines().map(|l| (now, l.to_owned())));
            }
        }
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|(_, l)| l.as_str()).collect()
    }
}

#[test]
fn daemon_notifies_ready_after_programming_then_status_watchdog_reload_and_stopping() {
    require_tools();
    let dir = TempDir::new("daemon-systemd");
    install_chassis_1_pki(dir.path());
    let sb = southbound(&[("chassis-1", LOCAL), ("chassis-2", REMOTE)]);
    let ns = Netns::new("daemon-systemd");
    ns.add_local(&format!("{LOCAL}/32"));
    let notify_path = dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&notify_path);

    let mut daemon = Daemon::start_with(&ns, &sb.unix_remote(), dir.path(), "chassis-1", |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
            .env_remove("WATCHDOG_PID");
    });

    // READY=1 only once the Southbound view is applied and the pair's four policies are in
    // the kernel: they must be there the moment READY arrives.
    let ready = notify.wait_for(0, &daemon, |l| l == "READY=1", "READY=1");
    assert_eq!(
        ns.policies_with(REMOTE),
        4,
        "READY=1 before the policies were programmed; received {:?}",
        notify.texts()
    );
    let first_watchdog = notify.wait_for(0, &daemon, |l| l == "WATCHDOG=1", "a first WATCHDOG=1");
    assert!(
        first_watchdog < ready,
        "the watchdog is pinged from the start, before READY: {:?}",
        notify.texts()
    );
    let status = notify.wait_for(
        ready,
        &daemon,
        |l| l == "STATUS=0/1 peers up",
        "STATUS=0/1 peers up",
    );
    assert!(
        notify.texts()[..ready]
            .iter()
            .any(|l| l.starts_with("STATUS=waiting")),
        "a waiting status before READY: {:?}",
        notify.texts()
    );

    // WATCHDOG=1 keeps coming from the loop, about every WATCHDOG_USEC / 2.
    let mut at = status;
    let mut pings = Vec::new();
    for _ in 0..4 {
        at = notify.wait_for(at + 1, &daemon, |l| l == "WATCHDOG=1", "WATCHDOG=1");
        pings.push(notify.lines[at].0);
    }
    for gap in pings.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            // The next ping is scheduled half an interval after the last one was sent; the
            // margin is for the test's own receive timing.
            gap >= Duration::from_micros(WATCHDOG_USEC / 4),
            "pings {gap:?} apart: the loop spins"
        );
        assert!(
            gap < Duration::from_micros(WATCHDOG_USEC),
            "pings {gap:?} apart: systemd would have killed the daemon"
        );
    }

    // A new chassis changes the count.
    sb.sbctl(&["chassis-add", "chassis-3", "geneve", THIRD]);
    let status = notify.wait_for(
        at,
        &daemon,
        |l| l == "STATUS=0/2 peers up",
        "STATUS=0/2 peers up",
    );

    // SIGHUP: RELOADING=1 (with the monotonic time), then READY=1 again.
    daemon.signal(libc::SIGHUP);
    let reloading = notify.wait_for(status, &daemon, |l| l == "RELOADING=1", "RELOADING=1");
    assert!(
        notify.texts()[reloading + 1].starts_with("MONOTONIC_USEC="),
        "{:?}",
        notify.texts()
    );
    notify.wait_for(
        reloading,
        &daemon,
        |l| l == "READY=1",
        "READY=1 after the reload",
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    daemon.signal(libc::SIGTERM);
    notify.wait_for(reloading, &daemon, |l| l == "STOPPING=1", "STOPPING=1");
    let exit = daemon.wait_exit();
    assert!(exit.success(), "exit {exit:?}:\n{}", daemon.log());
}
