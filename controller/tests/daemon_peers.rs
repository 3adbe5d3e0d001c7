//! The daemon's peer configuration: what a desired Southbound peer becomes in the IKE engine,
//! and the stable pair indices of the peer table.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use controller::desired::{DesiredPeer, PeerKey, Role, GENEVE_PORT};
use controller::identity_check::{check_local_identity, IdentityFiles};
use controller::peers::{
    ike_proposals, peer_config, LocalCredentials, Peer, PeerTable, CHILD_IN, CHILD_OUT,
};
use ikev2::auth::Identity;
use ikev2::engine::{IkeProposal, Mode};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

fn chassis_1() -> LocalCredentials {
    let files = IdentityFiles {
        certificate: fixture("chassis-1-cert.pem"),
        private_key: fixture("chassis-1-privkey.pem"),
        ca_cert: fixture("ca-bundle.pem"),
    };
    let id = check_local_identity(&files, "chassis-1", std::time::SystemTime::now()).unwrap();
    LocalCredentials::new(
        "chassis-1".into(),
        id.certificate,
        id.intermediates,
        id.private_key,
        id.trust,
    )
}

fn desired(remote: &str, force_udp_encap: bool) -> DesiredPeer {
    DesiredPeer {
        force_udp_encap,
        ..DesiredPeer::geneve(
            PeerKey {
                local_ip: "192.0.2.1".parse().unwrap(),
                remote_ip: remote.parse().unwrap(),
            },
            format!("chassis-{remote}"),
            Role::Responder {
                initiate_after: Duration::from_secs(10),
            },
        )
    }
}

#[test]
fn geneve_peer_config_validates_and_binds_the_remote_chassis_name() {
    let creds = chassis_1();
    let want = desired("192.0.2.2", true);
    let config = peer_config(&want, &creds);
    config.validate().unwrap();
    assert_eq!(config.local_id, Identity::Fqdn("chassis-1".into()));
    assert_eq!(config.remote_id, Identity::Fqdn("chassis-192.0.2.2".into()));
    assert!(config.force_udp_encap);
    assert_eq!(config.local.port(), 500);
    assert_eq!(
        config.ike_proposals[0].encryption,
        IkeProposal::aes256gcm16_sha256_modp2048().encryption
    );
    assert_eq!(
        config.ike_proposals[0].ke[0],
        IkeProposal::aes256gcm16_sha256_modp2048().ke[0]
    );

    let names: Vec<&str> = config.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [CHILD_OUT, CHILD_IN]);
    let out = &config.children[0];
    let inn = &config.children[1];
    assert!(config.children.iter().all(|c| c.mode == Mode::Transport));
    // "out": local udp any → remote udp 6081; "in": local udp 6081 → remote udp any.
    assert_eq!(
        (out.local_ts[0].start_port(), out.local_ts[0].end_port()),
        (0, u16::MAX)
    );
    assert_eq!(
        (out.remote_ts[0].start_port(), out.remote_ts[0].end_port()),
        (GENEVE_PORT, GENEVE_PORT)
    );
    assert_eq!(
        (inn.local_ts[0].start_port(), inn.local_ts[0].end_port()),
        (GENEVE_PORT, GENEVE_PORT)
    );
    assert_eq!(
        (inn.remote_ts[0].start_port(), inn.remote_ts[0].end_port()),
        (0, u16::MAX)
    );
    assert_eq!(
        out.remote_ts[0].start_addr(),
        "192.0.2.2".parse::<IpAddr>().unwrap()
    );
    assert!(config
        .children
        .iter()
        .all(|c| c.local_ts[0].ip_protocol() == 17));
}

#[test]
fn ike_proposals_offer_ovs_monitor_ipsec_suite_first_and_modern_groups_too() {
    let p = ike_proposals();
    assert_eq!(
        p[0].transforms()[..3],
        IkeProposal::aes256gcm16_sha256_modp2048().transforms()[..3]
    );
    let groups: Vec<_> = p.iter().flat_map(|p| p.ke.iter().copied()).collect();
    assert!(groups.contains(&ikev2::registry::KeGroup::CURVE25519));
    assert!(groups.contains(&ikev2::registry::KeGroup::ECP_256));
}

#[test]
fn pair_indices_reuse_the_lowest_free_one() {
    let mut table = PeerTable::default();
    let add = |table: &mut PeerTable, remote: &str| {
        let index = table.free_index();
        let d = desired(remote, false);
        table.peers.insert(
            d.key,
            Peer {
                initiate_at: Some(Peer::first_initiation(Role::Initiator, Instant::now())),
                ..Peer::new(d, index, tracing::Span::none())
            },
        );
        index
    };
    assert_eq!(add(&mut table, "192.0.2.2"), 0);
    assert_eq!(add(&mut table, "192.0.2.3"), 1);
    assert_eq!(add(&mut table, "192.0.2.4"), 2);
    table
        .peers
        .retain(|k, _| k.remote_ip.to_string() != "192.0.2.3");
    assert_eq!(add(&mut table, "192.0.2.5"), 1, "the freed index is reused");
    assert_eq!(add(&mut table, "192.0.2.6"), 3);
    assert_eq!(
        table.local_ip_for("192.0.2.4".parse().unwrap()),
        Some("192.0.2.1".parse().unwrap())
    );
    assert_eq!(table.local_ip_for("198.51.100.1".parse().unwrap()), None);
}

#[test]
fn a_failing_responder_waits_its_grace_then_backs_off_and_is_reset_by_success() {
    let mut peer = Peer::new(desired("192.0.2.2", false), 0, tracing::Span::none());
    let now = Instant::now();
    let delays: Vec<u64> = (0..5).map(|_| peer.retry_later(now, 0).as_secs()).collect();
    assert_eq!(delays, vec![10, 10, 20, 40, 80]);
    assert_eq!(peer.initiate_at, Some(now + Duration::from_secs(80)));
    peer.retry.succeeded();
    assert_eq!(peer.retry_later(now, 0), Duration::from_secs(10));
}

#[test]
fn in_child_selects_our_encap_port_and_out_child_the_peers_like_the_kernel_policies() {
    let creds = chassis_1();
    let want = DesiredPeer {
        local_port: 7081,
        remote_port: 8081,
        ..desired("192.0.2.2", false)
    };
    let config = peer_config(&want, &creds);
    let port = |ts: &ikev2::engine::TrafficSelector| (ts.start_port(), ts.end_port());
    let (out, inn) = (&config.children[0], &config.children[1]);
    assert_eq!(port(&out.remote_ts[0]), (8081, 8081));
    assert_eq!(port(&inn.local_ts[0]), (7081, 7081));

    // The kernel layer's policies of the same pair select the same ports.
    let pair = want.protected_pair(0);
    use controller::kernel::{ChildKind, SaDirection};
    assert_eq!(
        pair.selector(ChildKind::Out, SaDirection::Outbound).dport,
        Some(8081)
    );
    assert_eq!(
        pair.selector(ChildKind::In, SaDirection::Inbound).dport,
        Some(7081)
    );
}
