//! `ovn-ipsecd` with IPv6 encaps, in a network namespace of its own against a real
//! ovsdb-server: the pair's four policies are programmed with IPv6 selectors, the daemon has
//! IPv6 IKE sockets, and Geneve traffic towards the peer (which the policies hold back, raising
//! an XFRM acquire in the kernel) makes it initiate at once, although as the responder of the
//! pair it would otherwise wait out its grace period. The host has no ESP and the peer does
//! not exist, so no IKE SA comes up: the test reads the daemon's log.
//!
//! Needs root, `ip` (iproute2) and ovsdb-server/ovn-sbctl (ovn-central, ovn-common).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{install_chassis_1_pki, southbound, Daemon, Netns};
use controller::desired::{GENEVE_PORT, RESPONDER_GRACE};
use ovn_ipsec_tests::netns::EnteredNetns;
use ovn_ipsec_tests::ovsdb_server::{require_tools, TempDir};

const LOCAL: &str = "fd98::1";
const REMOTE: &str = "fd98::2";

#[test]
fn ipv6_pair_gets_its_policies_and_an_acquire_makes_the_responder_initiate_at_once() {
    require_tools();
    let dir = TempDir::new("daemon-ipv6");
    let d = dir.path();
    install_chassis_1_pki(d);

    // chassis-0 sorts before chassis-1, so chassis-1 is the responder of the pair.
    let sb = southbound(&[("chassis-1", LOCAL), ("chassis-0", REMOTE)]);
    let ns = Netns::new("daemon-ipv6");
    ns.add_local(&format!("{LOCAL}/128"));
    // The peer is reachable (through lo, where nothing answers) but not local, so that our
    // own packets to it do not come back to us.
    ns.ip(&["-6", "route", "add", &format!("{REMOTE}/128"), "dev", "lo"]);

    let daemon = Daemon::start(&ns, &sb, d, "chassis-1");
    daemon.wait_until("the IPv6 pair's four policies", |_| {
        ns.policies_with(REMOTE) == 4
    });
    daemon.wait_until("the peer in the engine", |d| {
        d.log_lines_with(&["peer added to the IKE endpoint"]) == 1
    });
    let policies = ns.ip(&["xfrm", "policy"]);
    assert!(
        policies.contains(&format!("src {LOCAL}/128 dst {REMOTE}/128")),
        "{policies}"
    );
    assert_eq!(daemon.log_lines_with(&["no IPv6 IKE sockets"]), 0);
    assert_eq!(daemon.log_lines_with(&["initiating IKE SA"]), 0);

    // A Geneve packet to the peer: the kernel drops it for want of an SA and asks for one.
    let sent = Instant::now();
    {
        let _inside = EnteredNetns::enter(&ns.0).unwrap();
        let socket = UdpSocket::bind(SocketAddr::new(LOCAL.parse().unwrap(), 0)).unwrap();
        let to = SocketAddr::new(REMOTE.parse().unwrap(), GENEVE_PORT);
        // The drop may surface as an error of the send; the acquire is raised either way.
        let _ = socket.send_to(b"geneve", to);
    }
    daemon.wait_until("initiation on the acquire", |d| {
        d.log_lines_with(&["initiating IKE SA", &format!("remote=[{REMOTE}]:500")]) >= 1
    });
    let took = sent.elapsed();
    assert!(
        took < RESPONDER_GRACE - Duration::from_secs(2),
        "initiated after {took:?}, not on the acquire"
    );
    assert_eq!(
        daemon.log_lines_with(&["tunnel traffic waiting for an SA: initiating now"]),
        1,
        "{}",
        daemon.log()
    );
}
