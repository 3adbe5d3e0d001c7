use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::desired::{desired_peers, DesiredPeer};
use crate::southbound::{Chassis, Encap, EncapType, Snapshot};

fn chassis(name: &str, encaps: &[(EncapType, &str, Option<&str>)]) -> Chassis {
    Chassis {
        name: name.to_owned(),
        hostname: name.to_owned(),
        encaps: encaps
            .iter()
            .map(|(t, ip, port)| Encap {
                encap_type: t.clone(),
                ip: ip.to_string(),
                options: port
                    .map(|p| ("dst_port".to_string(), p.to_string()))
                    .into_iter()
                    .collect(),
                chassis_name: name.to_owned(),
            })
            .collect(),
        other_config: BTreeMap::new(),
        external_ids: BTreeMap::new(),
        transport_zones: BTreeSet::new(),
    }
}

fn snapshot(chassis: Vec<Chassis>, forced: bool) -> Snapshot {
    let mut options = BTreeMap::new();
    if forced {
        options.insert("ipsec_forceencaps".to_string(), "yes".to_string());
    }
    Snapshot {
        ipsec: true,
        options,
        chassis: chassis
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect(),
    }
}

fn only_peer(s: &Snapshot, local: &str) -> DesiredPeer {
    let d = desired_peers(s, local);
    assert_eq!(d.peers.len(), 1, "{d:?}");
    d.peers.into_values().next().unwrap()
}

fn sel(src: &str, sport: Option<u16>, dst: &str, dport: Option<u16>, proto: u8) -> Selector {
    Selector {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        src_port: sport,
        dst_port: dport,
    }
}

fn geneve_pair(forced: bool) -> Snapshot {
    snapshot(
        vec![
            chassis("ch1", &[(EncapType::Geneve, "10.0.0.1", Some("7081"))]),
            chassis("ch2", &[(EncapType::Geneve, "10.0.0.2", None)]),
        ],
        forced,
    )
}

#[test]
fn geneve_peer_gets_two_children_and_four_blocking_policies() {
    let plan = plan_peer(&only_peer(&geneve_pair(false), "ch1"));
    let got: Vec<(ChildKind, Direction, Selector)> = plan
        .policies()
        .map(|p| (p.child, p.direction, p.selector))
        .collect();
    use ChildKind::*;
    use Direction::*;
    assert_eq!(
        got,
        vec![
            // Our Geneve packets to ch2's port 6081, and that child's reverse direction.
            (
                Outbound,
                Out,
                sel("10.0.0.1", None, "10.0.0.2", Some(6081), 17)
            ),
            (
                Outbound,
                In,
                sel("10.0.0.2", Some(6081), "10.0.0.1", None, 17)
            ),
            // ch2's packets to our port 7081, and that child's reverse direction.
            (
                Inbound,
                Out,
                sel("10.0.0.1", Some(7081), "10.0.0.2", None, 17)
            ),
            (
                Inbound,
                In,
                sel("10.0.0.2", None, "10.0.0.1", Some(7081), 17)
            ),
        ]
    );
    for p in plan.policies() {
        assert_eq!(p.selector.prefix_len(), 32);
        let PolicyAction::BlockUntilSa {
            sa_src,
            sa_dst,
            udp_encap,
        } = p.action;
        assert_eq!((sa_src, sa_dst), (p.selector.src, p.selector.dst));
        assert!(!udp_encap);
    }
    let out = &plan.children[0];
    assert_eq!(out.local_ts.port, None);
    assert_eq!(out.remote_ts.port, Some(6081));
}

#[test]
fn forced_encapsulation_reaches_every_policy() {
    let plan = plan_peer(&only_peer(&geneve_pair(true), "ch1"));
    assert!(plan.policies().all(|p| matches!(
        p.action,
        PolicyAction::BlockUntilSa {
            udp_encap: true,
            ..
        }
    )));
}

#[test]
fn stt_policies_select_tcp_and_ipv6_uses_full_prefixes() {
    let s = snapshot(
        vec![
            chassis("ch1", &[(EncapType::Stt, "fd00::1", None)]),
            chassis("ch2", &[(EncapType::Stt, "fd00::2", None)]),
        ],
        false,
    );
    let plan = plan_peer(&only_peer(&s, "ch1"));
    assert!(plan
        .policies()
        .all(|p| p.selector.proto == 6 && p.selector.prefix_len() == 128));
    assert_eq!(
        plan.children[0].policies[0].selector,
        sel("fd00::1", None, "fd00::2", Some(7471), 6)
    );
    assert_eq!(
        plan.children[0].policies[0].selector.to_string(),
        "proto 6 fd00::1/128 port any -> fd00::2/128 port 7471"
    );
}

#[test]
fn both_ends_plan_the_same_children_and_mirror_policies() {
    let s = snapshot(
        vec![
            chassis(
                "ch1",
                &[
                    (EncapType::Geneve, "10.0.0.1", Some("7081")),
                    (EncapType::Geneve, "fd00::1", None),
                ],
            ),
            chassis(
                "ch2",
                &[
                    (EncapType::Geneve, "10.0.0.2", Some("8081")),
                    (EncapType::Geneve, "fd00::2", None),
                ],
            ),
        ],
        false,
    );
    let a = plan_all(&desired_peers(&s, "ch1"));
    let b = plan_all(&desired_peers(&s, "ch2"));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for pa in &a {
        let pb = b
            .iter()
            .find(|p| p.peer.local_ip == pa.peer.remote_ip)
            .unwrap();
        for ca in &pa.children {
            let cb = pb
                .children
                .iter()
                .find(|c| c.kind == ca.kind.mirrored())
                .unwrap();
            // The same CHILD_SA: our local TS is their remote TS.
            assert_eq!(ca.local_ts, cb.remote_ts);
            assert_eq!(ca.remote_ts, cb.local_ts);
            // What one sends under a selector, the other requires inbound under the same one.
            for p in &ca.policies {
                let q = cb
                    .policies
                    .iter()
                    .find(|q| q.direction != p.direction)
                    .unwrap();
                assert_eq!(p.selector, q.selector);
                assert_eq!(p.action, q.action);
            }
        }
    }
}
