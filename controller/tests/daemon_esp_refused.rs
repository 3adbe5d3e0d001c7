//! Two `ovn-ipsecd` processes, chassis-1 and chassis-2, in network namespaces on a veth pair,
//! against one real ovsdb-server with the Southbound schema. The host kernel has XFRM but no
//! ESP (nor the AEAD rfc4106(gcm(aes))): the IKE SA comes up and the kernel refuses every ESP
//! state. The control API must then say the peer is not up, carry the kernel's refusal as the
//! peer's last error, list the CHILD_SAs as not installed, and the metrics must agree.
//!
//! Needs root, `ip` (iproute2), the veth module and ovsdb-server/ovn-sbctl (ovn-central,
//! ovn-common).

mod common;

use std::mem::ManuallyDrop;
use std::path::Path;

use common::{fixture, southbound, Daemon, Netns};
use controller::control::client::Client;
use controller::control::protocol::{IkeSaState, PeerInfo, Request, Response, SaList};
use ovn_ipsec_tests::netns::NetnsPair;
use ovn_ipsec_tests::ovsdb_server::{require_tools, TempDir};

/// Copies `chassis`'s fixture certificate and key and the CA into `dir` under the names
/// [`Daemon::start`] gives the daemon.
fn install_pki(dir: &Path, chassis: &str) {
    std::fs::copy(
        fixture(&format!("{chassis}-cert.pem")),
        dir.join("cert.pem"),
    )
    .unwrap();
    std::fs::copy(
        fixture(&format!("{chassis}-privkey.pem")),
        dir.join("key.pem"),
    )
    .unwrap();
    std::fs::copy(fixture("ca-bundle.pem"), dir.join("ca.pem")).unwrap();
}

fn call(daemon: &Daemon, request: Request) -> Option<Response> {
    let mut client = Client::connect(daemon.socket(), common::WAIT).ok()?;
    client.call(request).ok()
}

fn peer(daemon: &Daemon) -> Option<PeerInfo> {
    match call(daemon, Request::Peers)? {
        Response::Peers(list) => list.peers.into_iter().next(),
        _ => None,
    }
}

fn sas(daemon: &Daemon) -> Option<SaList> {
    match call(daemon, Request::Sas)? {
        Response::Sas(list) => Some(list),
        _ => None,
    }
}

fn metric(daemon: &Daemon, name: &str) -> Option<f64> {
    let Some(Response::Metrics(page)) = call(daemon, Request::Metrics) else {
        return None;
    };
    page.text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn esp_states_the_kernel_refuses_leave_the_peer_not_up_with_the_kernels_error() {
    require_tools();
    let pair = NetnsPair::create("esp-refused").unwrap();
    let (ip_1, ip_2) = (
        pair.a.addr(false).to_string(),
        pair.b.addr(false).to_string(),
    );
    let sb = southbound(&[("chassis-1", &ip_1), ("chassis-2", &ip_2)]);
    // The pair deletes the namespaces; these views of them must not.
    let ns_1 = ManuallyDrop::new(Netns(pair.a.name().to_owned()));
    let ns_2 = ManuallyDrop::new(Netns(pair.b.name().to_owned()));
    let (dir_1, dir_2) = (TempDir::new("esp-refused-1"), TempDir::new("esp-refused-2"));
    install_pki(dir_1.path(), "chassis-1");
    install_pki(dir_2.path(), "chassis-2");
    let d1 = Daemon::start(&ns_1, &sb, dir_1.path(), "chassis-1");
    let d2 = Daemon::start(&ns_2, &sb, dir_2.path(), "chassis-2");

    // Wait for the IKE SA and the kernel's refusal of its CHILD_SAs' states, whichever
    // daemon initiates and in whatever order they start.
    for d in [&d1, &d2] {
        d.wait_until(
            "an established IKE SA whose ESP states the kernel refused",
            |d| {
                peer(d).is_some_and(|p| {
                    p.ike_state == IkeSaState::Established
                        && p.esp_installed == Some(false)
                        && p.last_error
                            .is_some_and(|e| e.message.contains("ESP state"))
                })
            },
        );
    }
    for (d, ns) in [(&d1, &ns_1), (&d2, &ns_2)] {
        let log = d.log();
        let p = peer(d).unwrap();
        let error = p.last_error.unwrap();
        assert!(
            error.message.contains("kernel refused") && error.at_unix > 0,
            "{error:?}"
        );
        assert_eq!(p.esp_installed, Some(false));

        let status = d.status().unwrap();
        assert_eq!(
            (status.peers_up, status.peers_desired),
            (0, 1),
            "an IKE SA without ESP states is no peer up:\n{log}"
        );

        let list = sas(d).unwrap();
        let children: Vec<_> = list.ike_sas.iter().flat_map(|s| &s.child_sas).collect();
        for c in &children {
            assert!(!c.installed, "{c:?}");
            assert_eq!((c.lifetime.soft_secs, c.lifetime.hard_secs), (None, None));
        }
        // Only the larval states of the SPIs we allocated; none carries a key.
        let states = ns.ip(&["xfrm", "state"]);
        assert!(
            !states.contains("aead"),
            "the kernel holds an ESP state after all:\n{states}"
        );

        assert_eq!(
            metric(d, r#"ovn_ipsec_child_sas{state="installed"}"#),
            Some(0.0)
        );
        assert_eq!(metric(d, r#"ovn_ipsec_peers{state="up"}"#), Some(0.0));
    }
}
