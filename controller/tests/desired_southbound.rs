//! Desired peers computed from the Southbound view of a real ovsdb-server, populated with
//! `ovn-sbctl` the way ovn-controller registers chassis: each chassis' view agrees with the
//! others', the opt-out keys are honoured, and switching IPsec off empties the set.

use std::sync::Arc;
use std::time::Duration;

use controller::desired::{desired_peers, DesiredState, Exclusion, PeerKey, Role};
use controller::southbound::{Snapshot, Southbound, SouthboundConfig, SouthboundEvent};
use ovn_ipsec_tests::ovsdb_server::OvsdbServer;
use ovsdb::parse_remotes;

const WAIT: Duration = Duration::from_secs(10);

async fn view_until(sb: &mut Southbound, done: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let work = async {
        loop {
            if let Some(SouthboundEvent::Changed { snapshot, .. }) = sb.next().await {
                if done(&snapshot) {
                    return snapshot;
                }
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("the view never reached the expected state")
}

fn key(l: &str, r: &str) -> PeerKey {
    PeerKey {
        local_ip: l.parse().unwrap(),
        remote_ip: r.parse().unwrap(),
    }
}

#[tokio::test]
async fn desired_peers_follow_a_real_southbound() {
    let server = OvsdbServer::standalone();
    server.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    server.sbctl(&["chassis-add", "ch2", "geneve,vxlan", "192.0.2.2"]);
    server.sbctl(&["chassis-add", "ch3", "vxlan", "192.0.2.3"]);
    server.sbctl(&["chassis-add", "ch4", "geneve", "192.0.2.4"]);
    let encap = server.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Encap",
        "ip=192.0.2.2",
        "type=geneve",
    ]);
    server.sbctl(&["set", "Encap", encap.trim(), "options:dst_port=6082"]);
    // ch1 and ch4 share a trusted rack: exempt from each other.
    for ch in ["ch1", "ch4"] {
        server.sbctl(&[
            "set",
            "Chassis",
            ch,
            "other_config:ovn-cms-options=\"enable-chassis-as-gw,ipsec-exempt-group=rack7\"",
        ]);
    }
    server.sbctl(&[
        "set",
        "SB_Global",
        ".",
        "ipsec=true",
        "options:ipsec_encapsulation=yes",
    ]);

    let mut cfg = SouthboundConfig::new(parse_remotes(&server.unix_remote()).unwrap());
    cfg.seed = Some(1);
    let mut sb = Southbound::spawn(&cfg);
    let snap = view_until(&mut sb, |s| {
        s.ipsec
            && s.chassis.len() == 4
            && s.chassis["ch4"]
                .other_config
                .contains_key("ovn-cms-options")
    })
    .await;

    let d1 = desired_peers(&snap, "ch1");
    assert_eq!(d1.state, DesiredState::Protecting);
    let keys: Vec<PeerKey> = d1.peers.keys().copied().collect();
    // ch3 speaks only vxlan, which ch1 lacks; ch4 is in ch1's exempt group.
    assert_eq!(keys, vec![key("192.0.2.1", "192.0.2.2")]);
    let p = &d1.peers[&keys[0]];
    assert_eq!(p.remote_chassis, "ch2");
    assert_eq!((p.local_port, p.remote_port), (6081, 6082));
    assert!(p.force_udp_encap);
    assert_eq!(p.role, Role::Initiator);
    assert!(d1.excluded.contains(&Exclusion::NoCommonEncapType {
        chassis: "ch3".into()
    }));
    assert!(d1.excluded.contains(&Exclusion::Exempt {
        chassis: "ch4".into(),
        group: "rack7".into()
    }));

    // ch2 has geneve with ch1 and ch4, vxlan with ch3; the ends agree.
    let d2 = desired_peers(&snap, "ch2");
    let peers2: Vec<(&str, PeerKey)> = d2
        .peers
        .values()
        .map(|p| (p.remote_chassis.as_str(), p.key))
        .collect();
    assert_eq!(
        peers2,
        vec![
            ("ch1", key("192.0.2.2", "192.0.2.1")),
            ("ch3", key("192.0.2.2", "192.0.2.3")),
            ("ch4", key("192.0.2.2", "192.0.2.4")),
        ]
    );
    let back = &d2.peers[&key("192.0.2.2", "192.0.2.1")];
    assert_eq!((back.local_port, back.remote_port), (6082, 6081));
    assert!(matches!(back.role, Role::Responder { .. }));
    let vx = &d2.peers[&key("192.0.2.2", "192.0.2.3")];
    assert_eq!(vx.remote_port, 4789);
    let pair = back.protected_pair(0);
    assert_eq!((pair.local_port, pair.remote_port), (6082, 6081));

    // ovn-sbctl chassis-del: the chassis and its peers go.
    server.sbctl(&["chassis-del", "ch2"]);
    let snap = view_until(&mut sb, |s| !s.chassis.contains_key("ch2")).await;
    assert!(desired_peers(&snap, "ch1").peers.is_empty());
    assert_eq!(
        desired_peers(&snap, "ch2").state,
        DesiredState::LocalChassisMissing
    );

    server.sbctl(&["set", "SB_Global", ".", "ipsec=false"]);
    let snap = view_until(&mut sb, |s| !s.ipsec).await;
    let d3 = desired_peers(&snap, "ch3");
    assert_eq!(d3.state, DesiredState::IpsecDisabled);
    assert!(d3.peers.is_empty());
}
