//! `ovn-ipsecd` as a process on the host, in a network namespace of its own, against a real
//! ovsdb-server with the Southbound schema: the pair's policies are programmed from the
//! Southbound view, the control socket answers from the daemon's state, SIGTERM leaves the
//! policies in the kernel, and `chassis-del` removes them. The host kernel has XFRM but no
//! ESP, so no CHILD_SA comes up here (tests/phases/daemon-guest.sh covers that in the guest).
//!
//! Needs root, `ip` (iproute2) and ovsdb-server/ovn-sbctl (ovn-central, ovn-common).

mod common;

use std::time::Duration;

use common::{install_chassis_1_pki, southbound, Daemon, Netns};
use controller::control::client::Client;
use controller::control::protocol::{Request, Response};
use ovn_ipsec_tests::ovsdb_server::{require_tools, OvsdbServer, TempDir};

const LOCAL: &str = "10.99.0.1";
const REMOTE: &str = "10.99.0.2";

/// chassis-1's daemon, named for `label`, in a namespace of its own holding our encap IP (on
/// the loopback device), against a Southbound with chassis-2 as its one peer, once the pair's
/// policies are programmed: two CHILD_SAs, each an out and an in policy, all naming the
/// remote encap IP.
fn daemon_with_the_pairs_policies(label: &str) -> (TempDir, OvsdbServer, Netns, Daemon) {
    let dir = TempDir::new(label);
    install_chassis_1_pki(dir.path());
    let sb = southbound(&[("chassis-1", LOCAL), ("chassis-2", REMOTE)]);
    let ns = Netns::new(label);
    ns.add_local(&format!("{LOCAL}/32"));
    let daemon = Daemon::start(&ns, &sb, dir.path(), "chassis-1");
    daemon.wait_until("the pair's four policies", |_| {
        ns.policies_with(REMOTE) == 4
    });
    (dir, sb, ns, daemon)
}

#[test]
fn daemon_programs_policies_from_the_southbound_keeps_them_on_sigterm_and_removes_them_on_chassis_del(
) {
    require_tools();
    let (dir, sb, ns, mut daemon) = daemon_with_the_pairs_policies("daemon-host");

    let socket = daemon.socket().to_owned();
    daemon.wait_until("the control socket", |_| socket.exists());
    let mut client = Client::connect(&socket, common::WAIT).unwrap();
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

    let daemon = Daemon::start(&ns, &sb, dir.path(), "chassis-1");
    daemon.wait_until("the restarted daemon's control socket", |d| {
        d.status().is_some_and(|s| s.peers_desired == 1)
    });
    assert_eq!(ns.policies_with(REMOTE), 4);
    sb.sbctl(&["chassis-del", "chassis-2"]);
    daemon.wait_until("the policies of the deleted chassis to go", |_| {
        ns.policies_with(REMOTE) == 0
    });
}

#[test]
fn daemon_restarted_after_kill_9_leaves_the_policies_until_it_has_a_southbound_view() {
    require_tools();
    let (dir, _sb, ns, mut daemon) = daemon_with_the_pairs_policies("daemon-host-restart");
    daemon.kill_9();

    // The new daemon cannot reach any Southbound: its loop runs (the control socket answers)
    // but it has no view, so it must not take the previous run's policies away.
    let _ = std::fs::remove_file(daemon.socket());
    let unreachable = format!("unix:{}", dir.path().join("no-such-sb.sock").display());
    let daemon = Daemon::start_with(&ns, &unreachable, dir.path(), "chassis-1", |_| {});
    daemon.wait_until("the restarted daemon's control socket", |d| {
        d.status().is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ns.policies_with(REMOTE),
        4,
        "policies removed before any Southbound view:\n{}",
        daemon.log()
    );
}
