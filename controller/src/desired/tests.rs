use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::kernel::{ChildKind, KernelConfig, SaDirection};
use crate::southbound::{Chassis, Encap, EncapType, Snapshot};

fn encap(t: EncapType, ip: &str, options: &[(&str, &str)]) -> Encap {
    Encap {
        encap_type: t,
        ip: ip.to_owned(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        chassis_name: String::new(),
    }
}

fn geneve(ip: &str) -> Encap {
    encap(EncapType::Geneve, ip, &[])
}

fn chassis(name: &str, encaps: Vec<Encap>) -> Chassis {
    let mut encaps = encaps;
    for e in &mut encaps {
        e.chassis_name = name.to_owned();
    }
    encaps.sort_by(|a, b| (&a.encap_type, &a.ip).cmp(&(&b.encap_type, &b.ip)));
    Chassis {
        name: name.to_owned(),
        hostname: format!("{name}.example"),
        encaps,
        other_config: BTreeMap::new(),
        external_ids: BTreeMap::new(),
        transport_zones: BTreeSet::new(),
    }
}

fn with_other_config(mut c: Chassis, k: &str, v: &str) -> Chassis {
    c.other_config.insert(k.to_owned(), v.to_owned());
    c
}

fn with_zones(mut c: Chassis, zones: &[&str]) -> Chassis {
    c.transport_zones = zones.iter().map(|z| z.to_string()).collect();
    c
}

fn snapshot(chassis: Vec<Chassis>) -> Snapshot {
    Snapshot {
        ipsec: true,
        options: BTreeMap::new(),
        chassis: chassis
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(l: &str, r: &str) -> PeerKey {
    PeerKey {
        local_ip: ip(l),
        remote_ip: ip(r),
    }
}

fn two_geneve() -> Snapshot {
    snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1")]),
        chassis("ch2", vec![geneve("10.0.0.2")]),
    ])
}

#[test]
fn two_geneve_chassis_protect_each_other_with_default_port() {
    let d = desired_peers(&two_geneve(), "ch1");
    assert_eq!(d.state, DesiredState::Protecting);
    assert_eq!(d.excluded, vec![]);
    let p = &d.peers[&key("10.0.0.1", "10.0.0.2")];
    assert_eq!(p.remote_chassis, "ch2");
    assert_eq!(p.encap_type, EncapType::Geneve);
    assert_eq!(p.protocol, TunnelProtocol::Udp);
    assert_eq!((p.local_port, p.remote_port), (6081, 6081));
    assert!(!p.force_udp_encap);
    assert_eq!(p.role, Role::Initiator);
    assert_eq!(d.peers.len(), 1);

    let d2 = desired_peers(&two_geneve(), "ch2");
    assert_eq!(
        d2.peers[&key("10.0.0.2", "10.0.0.1")].role,
        Role::Responder {
            initiate_after: RESPONDER_GRACE
        }
    );
}

#[test]
fn ipsec_false_desires_nothing() {
    let mut s = two_geneve();
    s.ipsec = false;
    let d = desired_peers(&s, "ch1");
    assert_eq!(d.state, DesiredState::IpsecDisabled);
    assert!(d.peers.is_empty());
}

#[test]
fn missing_local_chassis_desires_nothing() {
    let d = desired_peers(&two_geneve(), "ch9");
    assert_eq!(d.state, DesiredState::LocalChassisMissing);
    assert!(d.peers.is_empty());
}

#[test]
fn empty_snapshot_is_ipsec_disabled() {
    let d = desired_peers(&Snapshot::default(), "ch1");
    assert_eq!(d.state, DesiredState::IpsecDisabled);
}

#[test]
fn chassis_without_encaps_yields_no_peer_and_is_reported() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1")]),
        chassis("ch2", vec![]),
    ]);
    let d = desired_peers(&s, "ch1");
    assert!(d.peers.is_empty());
    assert_eq!(
        d.excluded,
        vec![Exclusion::NoCommonEncapType {
            chassis: "ch2".into()
        }]
    );
    // And the chassis without encaps, seen from itself.
    let d2 = desired_peers(&s, "ch2");
    assert!(d2.peers.is_empty());
}

#[test]
fn best_common_type_prefers_geneve_then_stt_then_vxlan() {
    let all = |name: &str, n: u8| {
        chassis(
            name,
            vec![
                encap(EncapType::Vxlan, &format!("10.0.1.{n}"), &[]),
                encap(EncapType::Stt, &format!("10.0.2.{n}"), &[]),
                encap(EncapType::Geneve, &format!("10.0.3.{n}"), &[]),
            ],
        )
    };
    let s = snapshot(vec![
        all("ch1", 1),
        all("ch2", 2),
        chassis(
            "ch3",
            vec![
                encap(EncapType::Vxlan, "10.0.1.3", &[]),
                encap(EncapType::Stt, "10.0.2.3", &[]),
            ],
        ),
        chassis("ch4", vec![encap(EncapType::Vxlan, "10.0.1.4", &[])]),
        chassis(
            "ch5",
            vec![encap(EncapType::Other("gre".into()), "10.0.4.5", &[])],
        ),
    ]);
    let d = desired_peers(&s, "ch1");
    let by_chassis: BTreeMap<&str, &DesiredPeer> = d
        .peers
        .values()
        .map(|p| (p.remote_chassis.as_str(), p))
        .collect();
    assert_eq!(d.peers.len(), 3);
    let g = by_chassis["ch2"];
    assert_eq!(
        (g.key, &g.encap_type, g.remote_port),
        (key("10.0.3.1", "10.0.3.2"), &EncapType::Geneve, 6081)
    );
    let t = by_chassis["ch3"];
    assert_eq!(
        (t.key, &t.encap_type, t.protocol, t.remote_port),
        (
            key("10.0.2.1", "10.0.2.3"),
            &EncapType::Stt,
            TunnelProtocol::Tcp,
            7471
        )
    );
    let v = by_chassis["ch4"];
    assert_eq!(
        (v.key, &v.encap_type, v.protocol, v.remote_port),
        (
            key("10.0.1.1", "10.0.1.4"),
            &EncapType::Vxlan,
            TunnelProtocol::Udp,
            4789
        )
    );
    assert!(d.excluded.contains(&Exclusion::NoCommonEncapType {
        chassis: "ch5".into()
    }));
}

#[test]
fn type_only_the_remote_has_is_not_chosen() {
    // ch2 prefers geneve but ch1 only speaks vxlan: vxlan it is.
    let s = snapshot(vec![
        chassis("ch1", vec![encap(EncapType::Vxlan, "10.0.0.1", &[])]),
        chassis(
            "ch2",
            vec![geneve("10.0.1.2"), encap(EncapType::Vxlan, "10.0.0.2", &[])],
        ),
    ]);
    let d = desired_peers(&s, "ch1");
    assert_eq!(
        d.peers.keys().copied().collect::<Vec<_>>(),
        vec![key("10.0.0.1", "10.0.0.2")]
    );
}

#[test]
fn transport_zones_must_overlap_when_either_side_sets_them() {
    let s = snapshot(vec![
        with_zones(chassis("ch1", vec![geneve("10.0.0.1")]), &["tz1", "tz2"]),
        with_zones(chassis("ch2", vec![geneve("10.0.0.2")]), &["tz2"]),
        with_zones(chassis("ch3", vec![geneve("10.0.0.3")]), &["tz3"]),
        chassis("ch4", vec![geneve("10.0.0.4")]),
        chassis("ch5", vec![geneve("10.0.0.5")]),
    ]);
    let d1 = desired_peers(&s, "ch1");
    let peers1: Vec<&str> = d1
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peers1, vec!["ch2"]);
    assert!(d1.excluded.contains(&Exclusion::TransportZonesDisjoint {
        chassis: "ch3".into()
    }));
    assert!(d1.excluded.contains(&Exclusion::TransportZonesDisjoint {
        chassis: "ch4".into()
    }));

    // Neither in a zone: a tunnel; one in a zone, the other not: none.
    let d4 = desired_peers(&s, "ch4");
    let peers4: Vec<&str> = d4
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peers4, vec!["ch5"]);
}

#[test]
fn dst_port_option_is_honoured_per_direction() {
    let s = snapshot(vec![
        chassis(
            "ch1",
            vec![encap(
                EncapType::Geneve,
                "10.0.0.1",
                &[("dst_port", "7081")],
            )],
        ),
        chassis(
            "ch2",
            vec![encap(
                EncapType::Geneve,
                "10.0.0.2",
                &[("dst_port", "8081")],
            )],
        ),
    ]);
    let p = &desired_peers(&s, "ch1").peers[&key("10.0.0.1", "10.0.0.2")];
    assert_eq!((p.local_port, p.remote_port), (7081, 8081));
    let q = &desired_peers(&s, "ch2").peers[&key("10.0.0.2", "10.0.0.1")];
    assert_eq!((q.local_port, q.remote_port), (8081, 7081));
}

#[test]
fn invalid_dst_port_excludes_that_encap_on_both_sides() {
    for bad in ["0", "65536", "geneve", ""] {
        let s = snapshot(vec![
            chassis("ch1", vec![geneve("10.0.0.1")]),
            chassis(
                "ch2",
                vec![encap(EncapType::Geneve, "10.0.0.2", &[("dst_port", bad)])],
            ),
        ]);
        let d1 = desired_peers(&s, "ch1");
        assert!(d1.peers.is_empty(), "{bad}");
        assert!(d1.excluded.contains(&Exclusion::InvalidDstPort {
            chassis: "ch2".into(),
            ip: "10.0.0.2".into(),
            value: bad.into()
        }));
        assert!(desired_peers(&s, "ch2").peers.is_empty(), "{bad}");
    }
}

#[test]
fn ipv6_encaps_pair_only_with_ipv6() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("fd00::1"), geneve("10.0.0.1")]),
        chassis("ch2", vec![geneve("fd00::2")]),
        chassis("ch3", vec![geneve("10.0.0.3")]),
    ]);
    let d = desired_peers(&s, "ch1");
    let keys: Vec<PeerKey> = d.peers.keys().copied().collect();
    assert_eq!(
        keys,
        vec![key("10.0.0.1", "10.0.0.3"), key("fd00::1", "fd00::2")]
    );
    // ch2 (v6 only) and ch3 (v4 only) have no pair.
    assert!(desired_peers(&s, "ch2")
        .excluded
        .contains(&Exclusion::NoUsableEncapPair {
            chassis: "ch3".into()
        }));
}

#[test]
fn several_encap_ips_give_one_peer_per_ip_pair() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1"), geneve("10.0.1.1")]),
        chassis("ch2", vec![geneve("10.0.0.2"), geneve("10.0.1.2")]),
    ]);
    let d = desired_peers(&s, "ch1");
    let keys: Vec<PeerKey> = d.peers.keys().copied().collect();
    assert_eq!(
        keys,
        vec![
            key("10.0.0.1", "10.0.0.2"),
            key("10.0.0.1", "10.0.1.2"),
            key("10.0.1.1", "10.0.0.2"),
            key("10.0.1.1", "10.0.1.2"),
        ]
    );
    assert!(d.peers.values().all(|p| p.remote_chassis == "ch2"));
}

#[test]
fn encap_ip_claimed_twice_is_never_used() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1")]),
        chassis("ch2", vec![geneve("10.0.0.9"), geneve("10.0.0.2")]),
        chassis("ch3", vec![geneve("10.0.0.9")]),
    ]);
    let d = desired_peers(&s, "ch1");
    let keys: Vec<PeerKey> = d.peers.keys().copied().collect();
    assert_eq!(keys, vec![key("10.0.0.1", "10.0.0.2")]);
    let dup = Exclusion::DuplicateEncapIp {
        ip: ip("10.0.0.9"),
        chassis: ["ch2".to_string(), "ch3".to_string()].into(),
    };
    assert!(d.excluded.contains(&dup));
    assert_eq!(
        dup.to_string(),
        "encap IP 10.0.0.9 is claimed by ch2, ch3: not used"
    );
    assert!(d.excluded.contains(&Exclusion::NoUsableEncapPair {
        chassis: "ch3".into()
    }));
    // ch3 itself has no usable encap left.
    assert!(desired_peers(&s, "ch3").peers.is_empty());
}

#[test]
fn invalid_encap_ip_is_reported() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1")]),
        chassis("ch2", vec![geneve("not-an-ip")]),
    ]);
    let d = desired_peers(&s, "ch1");
    assert!(d.peers.is_empty());
    assert!(d.excluded.contains(&Exclusion::InvalidEncapIp {
        chassis: "ch2".into(),
        ip: "not-an-ip".into()
    }));
}

#[test]
fn forced_udp_encapsulation_follows_sb_global_options() {
    for (k, v, forced) in [
        ("ipsec_encapsulation", "yes", true),
        ("ipsec_forceencaps", "yes", true),
        ("ipsec_encapsulation", "true", true),
        ("ipsec_forceencaps", "TRUE", true),
        ("ipsec_encapsulation", "no", false),
        ("ipsec_forceencaps", "false", false),
        ("something_else", "yes", false),
    ] {
        let mut s = two_geneve();
        s.options.insert(k.into(), v.into());
        let d = desired_peers(&s, "ch1");
        assert_eq!(
            d.peers[&key("10.0.0.1", "10.0.0.2")].force_udp_encap,
            forced,
            "{k}={v}"
        );
    }
}

#[test]
fn chassis_in_a_common_exempt_group_are_not_protected() {
    let s = snapshot(vec![
        with_other_config(
            chassis("ch1", vec![geneve("10.0.0.1")]),
            CMS_OPTIONS_KEY,
            "enable-chassis-as-gw,ipsec-exempt-group=rack7",
        ),
        with_other_config(
            chassis("ch2", vec![geneve("10.0.0.2")]),
            CMS_OPTIONS_KEY,
            "ipsec-exempt-group=rack1, ipsec-exempt-group=rack7",
        ),
        with_other_config(
            chassis("ch3", vec![geneve("10.0.0.3")]),
            CMS_OPTIONS_KEY,
            "ipsec-exempt-group=rack1",
        ),
        chassis("ch4", vec![geneve("10.0.0.4")]),
    ]);
    let d1 = desired_peers(&s, "ch1");
    let peers1: Vec<&str> = d1
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peers1, vec!["ch3", "ch4"]);
    assert!(d1.excluded.contains(&Exclusion::Exempt {
        chassis: "ch2".into(),
        group: "rack7".into()
    }));
    let d2 = desired_peers(&s, "ch2");
    let peers2: Vec<&str> = d2
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peers2, vec!["ch4"]);
}

#[test]
fn exempt_chassis_lists_each_encap_pair_it_would_have_with_its_group() {
    let s = snapshot(vec![
        with_other_config(
            chassis("ch1", vec![geneve("10.0.0.1"), geneve("fd00::1")]),
            CMS_OPTIONS_KEY,
            "ipsec-exempt-group=rack7",
        ),
        with_other_config(
            chassis(
                "ch2",
                vec![geneve("10.0.0.2"), geneve("fd00::2"), geneve("not-an-ip")],
            ),
            CMS_OPTIONS_KEY,
            "ipsec-exempt-group=rack7",
        ),
        chassis("ch3", vec![geneve("10.0.0.3")]),
    ]);
    let d = desired_peers(&s, "ch1");
    let pairs: Vec<(String, String, &str, &str)> = d
        .exempt
        .iter()
        .map(|e| {
            (
                e.key.local_ip.to_string(),
                e.key.remote_ip.to_string(),
                e.remote_chassis.as_str(),
                e.group.as_str(),
            )
        })
        .collect();
    let want = |l: &str, r: &str| (l.to_owned(), r.to_owned(), "ch2", "rack7");
    assert_eq!(
        pairs,
        vec![want("10.0.0.1", "10.0.0.2"), want("fd00::1", "fd00::2")]
    );
    assert!(d.exempt.iter().all(|e| e.encap_type == EncapType::Geneve));
    // The exempt chassis is counted once and its unusable encap is not reported: nothing
    // is programmed for it.
    let exempt = d
        .excluded
        .iter()
        .filter(|x| matches!(x, Exclusion::Exempt { .. }))
        .count();
    assert_eq!(exempt, 1);
    assert!(!d
        .excluded
        .iter()
        .any(|x| matches!(x, Exclusion::InvalidEncapIp { .. })));
    assert_eq!(d.peers.len(), 1);
}

#[test]
fn exempt_group_is_read_from_external_ids_when_other_config_lacks_it() {
    let mut c = chassis("ch1", vec![]);
    c.external_ids
        .insert(CMS_OPTIONS_KEY.into(), "ipsec-exempt-group=old".into());
    assert_eq!(exempt_groups(&c), ["old".to_string()].into());
    let c = with_other_config(c, CMS_OPTIONS_KEY, "ipsec-exempt-group=new");
    assert_eq!(exempt_groups(&c), ["new".to_string()].into());
    let c = with_other_config(c, CMS_OPTIONS_KEY, "ipsec-exempt-group=,other=x");
    assert!(exempt_groups(&c).is_empty());
}

#[test]
fn remote_chassis_of_another_zone_only_for_interconnection_gateways() {
    let s = snapshot(vec![
        chassis("ch1", vec![geneve("10.0.0.1")]),
        with_other_config(
            chassis("gw", vec![geneve("10.0.0.2")]),
            "is-interconn",
            "true",
        ),
        with_other_config(
            chassis("far", vec![geneve("10.9.0.1")]),
            "is-remote",
            "true",
        ),
    ]);
    let d1 = desired_peers(&s, "ch1");
    let peers1: Vec<&str> = d1
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peers1, vec!["gw"]);
    assert!(d1.excluded.contains(&Exclusion::RemoteNotInterconn {
        chassis: "far".into()
    }));
    let dgw = desired_peers(&s, "gw");
    let peersgw: Vec<&str> = dgw
        .peers
        .values()
        .map(|p| p.remote_chassis.as_str())
        .collect();
    assert_eq!(peersgw, vec!["ch1", "far"]);
}

// --- Both sides agree, for random snapshots ---

/// An encap of chassis `i`: mostly its own addresses (IPv4 and IPv6), sometimes an address
/// another chassis may claim too, or junk.
fn arb_encap(i: usize) -> impl Strategy<Value = Encap> {
    (
        prop_oneof![
            6 => Just(EncapType::Geneve),
            2 => Just(EncapType::Vxlan),
            2 => Just(EncapType::Stt),
            1 => Just(EncapType::Other("gre".into()))
        ],
        prop_oneof![
            8 => (1u8..3).prop_map(move |h| format!("10.0.{i}.{h}")),
            4 => (1u8..3).prop_map(move |h| format!("fd00:{i}::{h}")),
            1 => Just("10.9.9.9".to_string()),
            1 => Just("bogus".to_string()),
        ],
        prop_oneof![
            8 => Just(None),
            2 => Just(Some("7000")),
            1 => Just(Some("0"))
        ],
    )
        .prop_map(|(t, ip, port)| {
            let opts: Vec<(&str, &str)> = port.map(|p| ("dst_port", p)).into_iter().collect();
            encap(t, &ip, &opts)
        })
}

fn arb_set(names: [&'static str; 2]) -> impl Strategy<Value = BTreeSet<&'static str>> {
    prop_oneof![
        6 => Just(BTreeSet::new()),
        2 => prop::collection::btree_set(prop::sample::select(names.to_vec()), 1..=2),
    ]
}

fn arb_chassis(i: usize) -> impl Strategy<Value = Chassis> {
    (
        prop::collection::vec(arb_encap(i), 0..4),
        arb_set(["tz1", "tz2"]),
        arb_set(["g1", "g2"]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(encaps, zones, groups, interconn, in_external_ids)| {
            let mut c = chassis(&format!("ch{i}"), encaps);
            // One encap per (type, ip), as the Southbound's index requires.
            c.encaps
                .dedup_by(|a, b| a.encap_type == b.encap_type && a.ip == b.ip);
            c.transport_zones = zones.into_iter().map(String::from).collect();
            if !groups.is_empty() {
                let opts = groups
                    .iter()
                    .map(|g| format!("{EXEMPT_GROUP_OPTION}={g}"))
                    .collect::<Vec<_>>()
                    .join(",");
                if in_external_ids {
                    c.external_ids.insert(CMS_OPTIONS_KEY.into(), opts);
                } else {
                    c.other_config.insert(CMS_OPTIONS_KEY.into(), opts);
                }
            }
            if interconn {
                c.other_config.insert("is-interconn".into(), "true".into());
            }
            c
        })
}

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    (2usize..6)
        .prop_flat_map(|n| ((0..n).map(arb_chassis).collect::<Vec<_>>(), any::<bool>()))
        .prop_map(|(chassis, forced)| {
            let mut s = snapshot(chassis);
            if forced {
                s.options.insert("ipsec_encapsulation".into(), "yes".into());
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_algorithm: prop::test_runner::RngAlgorithm::ChaCha,
        rng_seed: prop::test_runner::RngSeed::Fixed(0x0f0e_0d0c),
        ..ProptestConfig::default()
    })]

    #[test]
    fn both_ends_of_every_pair_agree(s in arb_snapshot()) {
        let views: BTreeMap<&String, DesiredPeers> = s
            .chassis
            .keys()
            .map(|name| (name, desired_peers(&s, name)))
            .collect();
        for (a, da) in &views {
            prop_assert_eq!(da.state, DesiredState::Protecting);
            for (k, pa) in &da.peers {
                prop_assert_ne!(&pa.remote_chassis, *a);
                let db = &views[&pa.remote_chassis];
                let mirrored = PeerKey { local_ip: k.remote_ip, remote_ip: k.local_ip };
                let pb = db.peers.get(&mirrored);
                prop_assert!(pb.is_some(), "{} has {} but {} lacks it", a, k, pa.remote_chassis);
                let pb = pb.unwrap();
                prop_assert_eq!(&pb.remote_chassis, *a);
                prop_assert_eq!(&pa.encap_type, &pb.encap_type);
                prop_assert_eq!(pa.protocol, pb.protocol);
                prop_assert_eq!(pa.local_port, pb.remote_port);
                prop_assert_eq!(pa.remote_port, pb.local_port);
                prop_assert_eq!(pa.force_udp_encap, pb.force_udp_encap);
                // And so are the CHILD_SAs and policies both plan for it.
                // And so are the CHILD_SAs' selectors both program for it.
                let (pair_a, pair_b) = (pa.protected_pair(0), pb.protected_pair(1));
                prop_assert_eq!(pair_a.mirrored(1), pair_b);
                for child in ChildKind::BOTH {
                    prop_assert_eq!(
                        pair_a.selector(child, SaDirection::Outbound),
                        pair_b.selector(child.mirrored(), SaDirection::Inbound)
                    );
                }
                prop_assert_eq!(pair_a.policies(&KernelConfig::default()).ok().map(|p| p.len()), Some(4));
                let initiators = [pa.role, pb.role]
                    .iter()
                    .filter(|r| **r == Role::Initiator)
                    .count();
                prop_assert_eq!(initiators, 1);
                // The peer's IP belongs to the chassis it must prove, and only to it.
                let owners: Vec<&String> = s
                    .chassis
                    .values()
                    .filter(|c| c.encaps.iter().any(|e| e.ip_addr() == Some(k.remote_ip)))
                    .map(|c| &c.name)
                    .collect();
                prop_assert_eq!(owners, vec![&pa.remote_chassis]);
            }
        }
    }
}

#[test]
fn random_snapshots_exercise_peers_exemptions_and_zones() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let (mut peers, mut exempt, mut zones) = (0, 0, 0);
    for _ in 0..200 {
        let s = arb_snapshot().new_tree(&mut runner).unwrap().current();
        for name in s.chassis.keys() {
            let d = desired_peers(&s, name);
            peers += d.peers.len();
            exempt += d
                .excluded
                .iter()
                .filter(|x| matches!(x, Exclusion::Exempt { .. }))
                .count();
            zones += d
                .excluded
                .iter()
                .filter(|x| matches!(x, Exclusion::TransportZonesDisjoint { .. }))
                .count();
        }
    }
    assert!(
        peers > 200 && exempt > 30 && zones > 100,
        "{peers} {exempt} {zones}"
    );
}

#[test]
fn desired_peer_converts_to_the_kernel_layers_pair() {
    use crate::kernel::pair::TunnelProtocol as K;
    let s = snapshot(vec![
        chassis("ch1", vec![encap(EncapType::Stt, "10.0.0.1", &[])]),
        chassis(
            "ch2",
            vec![encap(EncapType::Stt, "10.0.0.2", &[("dst_port", "7472")])],
        ),
    ]);
    let d = desired_peers(&s, "ch1");
    let pair = d.peers[&key("10.0.0.1", "10.0.0.2")].protected_pair(7);
    assert_eq!(
        (
            pair.local,
            pair.remote,
            pair.protocol,
            pair.local_port,
            pair.remote_port,
            pair.index
        ),
        (ip("10.0.0.1"), ip("10.0.0.2"), K::Tcp, 7471, 7472, 7)
    );
    pair.validate().unwrap();
}
