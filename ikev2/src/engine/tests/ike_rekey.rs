//! IKE SA rekeying (RFC 7296 §2.18) and its collisions (§2.8.1): new SPIs and keys, Message
//! IDs from 0, the CHILD_SAs kept, the old IKE SA deleted by the rekey's initiator.

use std::time::Duration;

use super::collisions::{deleted, installed, nonces, Lowest};
use super::ike_auth::Mesh;
use super::rekey::{assert_agree, downs, established, first_child, live, rekeys};
use super::*;
use crate::engine::event::DownReason;
use crate::engine::{IkeAlgorithms, Role};
use crate::registry::KeGroup;

fn ike_rekeys(events: &[Event]) -> Vec<(IkeSaId, IkeSaId)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed {
                old_ike_sa,
                new_ike_sa,
                ..
            } => Some((*old_ike_sa, *new_ike_sa)),
            _ => None,
        })
        .collect()
}

/// a's and b's IKE SAs are two ends of one: same SPIs, same keys, opposite roles.
fn assert_same_ike_sa(mesh: &Mesh, a: IkeSaId, b: IkeSaId) {
    let (ea, eb) = (
        &mesh.net.node(mesh.a).endpoint,
        &mesh.net.node(mesh.b).endpoint,
    );
    let (ia, ib) = (ea.ike_sa_info(a).unwrap(), eb.ike_sa_info(b).unwrap());
    assert_eq!((ia.spi_i, ia.spi_r), (ib.spi_i, ib.spi_r));
    assert_ne!(ia.role, ib.role);
    assert_eq!((ia.state, ib.state), ("established", "established"));
    assert_eq!(ea.ike_sa_keys(a), eb.ike_sa_keys(b));
}

fn rekey_child_on_a(mesh: &mut Mesh, ea: &mut Vec<Event>, eb: &mut Vec<Event>) {
    let spi = *live(ea).keys().next().unwrap();
    mesh.rekey_child_on(mesh.a, spi);
    mesh.run(Duration::from_secs(2));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!(rekeys(&na).len(), 1, "{na:?}");
    ea.extend(na);
    eb.extend(nb);
    assert_agree(ea, eb, 2);
}

#[test]
fn rekey_ike_command_replaces_the_ike_sa_and_keeps_the_child_sas() {
    let (mut mesh, mut ea, mut eb) = established(70);
    let (old_a, old_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
    let old_keys = mesh.net.node(mesh.a).endpoint.ike_sa_keys(old_a).cloned();
    let old_spi_i = mesh
        .net
        .node(mesh.a)
        .endpoint
        .ike_sa_info(old_a)
        .unwrap()
        .spi_i;

    mesh.rekey_ike_on(mesh.a);
    mesh.run(Duration::from_secs(2));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));

    let (new_a, new_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
    assert_eq!(ike_rekeys(&na), vec![(old_a, new_a)]);
    assert_eq!(ike_rekeys(&nb), vec![(old_b, new_b)]);
    // The old IKE SA is deleted by a, the rekey's initiator, and reported as rekeyed.
    assert_eq!(downs(&na), vec![(old_a, DownReason::Rekeyed)]);
    assert_eq!(downs(&nb), vec![(old_b, DownReason::Rekeyed)]);
    // The CHILD_SAs moved: nothing installed or deleted.
    assert!(
        installed(&na).is_empty() && deleted(&na).is_empty(),
        "{na:?}"
    );
    assert!(
        installed(&nb).is_empty() && deleted(&nb).is_empty(),
        "{nb:?}"
    );

    assert_same_ike_sa(&mesh, new_a, new_b);
    let info = mesh.net.node(mesh.a).endpoint.ike_sa_info(new_a).unwrap();
    assert_eq!(info.role, Role::Initiator);
    assert_ne!(info.spi_i, old_spi_i);
    let new_keys = mesh.net.node(mesh.a).endpoint.ike_sa_keys(new_a).cloned();
    assert_ne!(new_keys.unwrap().sk_d, old_keys.unwrap().sk_d);
    // RFC 7296 §2.18: the new IKE SA's Message IDs start at 0.
    for (node, id) in [(mesh.a, new_a), (mesh.b, new_b)] {
        let sa = &mesh.net.node(node).endpoint.ike_sas[&id];
        assert_eq!(sa.requests.next_message_id(), Some(0));
    }

    // The CHILD_SAs are rekeyed from the new SK_d, on the new IKE SA.
    ea.extend(na);
    eb.extend(nb);
    rekey_child_on_a(&mut mesh, &mut ea, &mut eb);
    assert_eq!(mesh.only_ike_sa(mesh.a), new_a);
}

#[test]
fn the_original_responder_can_rekey_and_becomes_the_new_ike_sas_initiator() {
    let (mut mesh, mut ea, mut eb) = established(71);
    for round in 0..2 {
        mesh.rekey_ike_on(mesh.b);
        mesh.run(Duration::from_secs(2));
        let (new_a, new_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
        let info = mesh.net.node(mesh.b).endpoint.ike_sa_info(new_b).unwrap();
        assert_eq!(info.role, Role::Initiator, "round {round}");
        assert_same_ike_sa(&mesh, new_a, new_b);
        mesh.collect_events(&mut ea, &mut eb);
        assert_eq!(ike_rekeys(&ea).len(), round + 1);
        // The message flags follow the new roles: an exchange in each direction works.
        rekey_child_on_a(&mut mesh, &mut ea, &mut eb);
    }
}

#[test]
fn soft_lifetime_rekeys_the_ike_sa_and_its_child_sas_before_they_expire() {
    let (mut mesh, mut ea, mut eb) = established(72);
    let first: Vec<u32> = live(&ea).keys().copied().collect();
    // IKE SA and CHILD_SAs: soft 3600 s minus up to 300 s of jitter, hard 4000 s; the
    // exchanges may collide and be retried.
    mesh.net.advance(Duration::from_secs(3700), STEPS);
    mesh.collect_events(&mut ea, &mut eb);
    assert_eq!(ike_rekeys(&ea).len(), 1, "{:?}", ike_rekeys(&ea));
    assert_eq!(ike_rekeys(&eb).len(), 1);
    assert_same_ike_sa(&mesh, mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
    assert_agree(&ea, &eb, 2);
    assert!(live(&ea).keys().all(|spi| !first.contains(spi)));
    // Past the old hard lifetime nothing expires: everything was replaced.
    mesh.net.advance(Duration::from_secs(400), STEPS);
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert!(downs(&na).is_empty() && downs(&nb).is_empty());
}

fn collide_ike(seed: u64, lowest: Lowest) {
    let (mut mesh, ea, eb) = established(seed);
    let children = (live(&ea), live(&eb));
    let (old_a, old_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
    let (na, nb) = nonces(lowest);
    mesh.net.node_mut(mesh.a).endpoint.forced_nonces = na.into();
    mesh.net.node_mut(mesh.b).endpoint.forced_nonces = nb.into();
    mesh.rekey_ike_on(mesh.a);
    mesh.rekey_ike_on(mesh.b);
    // Well within the grace period of a replaced IKE SA: the Deletes did the work.
    mesh.run(Duration::from_secs(5));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));

    let (new_a, new_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
    assert_same_ike_sa(&mesh, new_a, new_b);
    // The survivor is the IKE SA of the winning exchange: made by b's rekey when a's
    // exchange had the lowest nonce, so b is its original initiator.
    let a_lost = matches!(lowest, Lowest::NiA | Lowest::NrA);
    let role_a = mesh
        .net
        .node(mesh.a)
        .endpoint
        .ike_sa_info(new_a)
        .unwrap()
        .role;
    let expected = if a_lost {
        Role::Responder
    } else {
        Role::Initiator
    };
    assert_eq!(role_a, expected, "{lowest:?}");
    assert_eq!(ike_rekeys(&na), vec![(old_a, new_a)], "{lowest:?}: {na:?}");
    assert_eq!(ike_rekeys(&nb), vec![(old_b, new_b)], "{lowest:?}: {nb:?}");
    // The old IKE SA is reported rekeyed; the redundant one is never reported up, and goes
    // as superseded.
    for events in [&na, &nb] {
        let d = downs(events);
        assert_eq!(d.len(), 2, "{lowest:?}: {d:?}");
        assert!(d.iter().any(|(_, r)| *r == DownReason::Rekeyed));
        assert!(d.iter().any(|(_, r)| *r == DownReason::Superseded));
        assert!(installed(events).is_empty() && deleted(events).is_empty());
    }
    assert_eq!((live(&ea), live(&eb)), children);

    let (mut ea, mut eb) = (ea, eb);
    rekey_child_on_a(&mut mesh, &mut ea, &mut eb);
}

#[test]
fn simultaneous_ike_rekey_where_our_ni_is_lowest_keeps_the_peers_ike_sa() {
    collide_ike(73, Lowest::NiA);
}

#[test]
fn simultaneous_ike_rekey_where_the_peers_answer_nonce_is_lowest_keeps_the_peers_ike_sa() {
    collide_ike(74, Lowest::NrA);
}

#[test]
fn simultaneous_ike_rekey_where_the_peers_ni_is_lowest_keeps_our_ike_sa() {
    collide_ike(75, Lowest::NiB);
}

#[test]
fn simultaneous_ike_rekey_where_our_answer_nonce_is_lowest_keeps_our_ike_sa() {
    collide_ike(76, Lowest::NrB);
}

#[test]
fn ike_rekey_crossing_a_child_rekey_is_retried_and_both_complete() {
    for seed in 77..80 {
        let (mut mesh, mut ea, mut eb) = established(seed);
        let (spi_in, _) = first_child(&eb);
        mesh.rekey_ike_on(mesh.a);
        mesh.rekey_child_on(mesh.b, spi_in);
        mesh.run(Duration::from_secs(30));
        mesh.collect_events(&mut ea, &mut eb);
        assert_eq!(ike_rekeys(&ea).len(), 1, "seed {seed}");
        assert_eq!(rekeys(&eb).len(), 1, "seed {seed}");
        assert_same_ike_sa(&mesh, mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
        assert_agree(&ea, &eb, 2);
    }
}

#[test]
fn ike_rekey_answered_invalid_ke_is_retried_with_the_group_asked_for() {
    let both = |p: &mut PeerConfig| {
        p.ike_proposals[0].ke = vec![KeGroup::MODP_2048, KeGroup::CURVE25519];
    };
    let mut mesh = Mesh::with(81, super::ike_auth::jumbo(), both, both);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    mesh.events(mesh.a);
    // b now only takes Curve25519.
    let peer = mesh.b_to_a;
    let endpoint = &mut mesh.net.node_mut(mesh.b).endpoint;
    let mut config = endpoint.peer(peer).unwrap().clone();
    config.ike_proposals[0].ke = vec![KeGroup::CURVE25519];
    endpoint.update_peer(peer, config).unwrap();

    mesh.rekey_ike_on(mesh.a);
    mesh.run(Duration::from_secs(2));
    let na = mesh.events(mesh.a);
    let groups: Vec<KeGroup> = na
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed {
                algorithms: IkeAlgorithms { ke, .. },
                ..
            } => Some(*ke),
            _ => None,
        })
        .collect();
    assert_eq!(groups, vec![KeGroup::CURVE25519]);
    assert_same_ike_sa(&mesh, mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
}

#[test]
fn rekey_ike_without_an_established_ike_sa_is_refused() {
    let mut mesh = Mesh::new(82);
    let now = mesh.net.now();
    let peer = mesh.a_to_b;
    assert_eq!(
        mesh.net.node_mut(mesh.a).endpoint.rekey_ike(now, peer),
        Err(crate::engine::CommandError::NotEstablished(peer))
    );
}

#[test]
fn an_ike_sa_waiting_for_its_delete_after_a_rekey_does_not_block_a_new_initiation() {
    let (mut mesh, _, _) = established(83);
    // b never answers a's Delete of the old IKE SA, so it lingers on a.
    mesh.net.set_filter(|d| {
        d.src.ip() == B
            && d.bytes.len() > 19
            && d.bytes[18] == crate::registry::ExchangeType::INFORMATIONAL.0
            && d.bytes[19] & 0x20 != 0
    });
    let peer = mesh.a_to_b;
    mesh.rekey_ike_on(mesh.a);
    mesh.run(Duration::from_secs(2));
    let na = mesh.events(mesh.a);
    let [(_, new)] = ike_rekeys(&na)[..] else {
        panic!("{na:?}")
    };
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 2);
    // The new IKE SA dies; the lingering old one must not make `initiate` refuse.
    let now = mesh.net.now();
    let endpoint = &mut mesh.net.node_mut(mesh.a).endpoint;
    endpoint.remove_ike_sa(new, DownReason::PeerUnreachable);
    assert!(endpoint.initiate(now, peer).is_ok());
}

/// What `ipsecctl rekey PEER` asks of the engine: both CHILD_SAs and the IKE SA at once. The
/// requests queue behind each other in the window; afterwards one IKE SA each, and both
/// CHILD_SAs replaced, keys agreeing.
#[test]
fn rekeying_both_child_sas_and_the_ike_sa_at_once_settles_on_one_of_each() {
    for seed in [71, 72, 73] {
        let (mut mesh, mut ea, mut eb) = established(seed);
        let (old_a, old_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
        let old_children: Vec<u32> = live(&ea).keys().copied().collect();
        let now = mesh.net.now();
        let peer = mesh.a_to_b;
        let endpoint = &mut mesh.net.node_mut(mesh.a).endpoint;
        for spi in &old_children {
            endpoint.rekey_child(now, peer, *spi).unwrap();
        }
        endpoint.rekey_ike(now, peer).unwrap();
        mesh.run(Duration::from_secs(20));
        let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
        let (new_a, new_b) = (mesh.only_ike_sa(mesh.a), mesh.only_ike_sa(mesh.b));
        assert_ne!((new_a, new_b), (old_a, old_b), "{na:?}");
        assert_same_ike_sa(&mesh, new_a, new_b);
        assert_eq!(rekeys(&na).len(), 2, "{na:?}");
        ea.extend(na);
        eb.extend(nb);
        assert_agree(&ea, &eb, 2);
        assert!(live(&ea).keys().all(|spi| !old_children.contains(spi)));
    }
}

#[test]
fn ike_sa_info_reports_the_soft_lifetime_deadlines_of_the_ike_sa_and_its_child_sas() {
    let (mut mesh, ea, _) = established(71);
    let a = mesh.only_ike_sa(mesh.a);
    let now = mesh.net.now();
    let info = mesh.net.node(mesh.a).endpoint.ike_sa_info(a).unwrap();

    // Soft lifetime 3600 s less up to 300 s of jitter, counted from establishment (within
    // the 2 s the handshake ran); the hard lifetime is 4000 s.
    let within_soft = |at: Instant| {
        let left = at.saturating_duration_since(now);
        left > Duration::from_secs(3600 - 300 - 2) && left <= Duration::from_secs(3600)
    };
    assert!(within_soft(info.rekey_at.unwrap()), "{info:?}");
    assert_eq!(info.reauth_at, None);
    assert!(!info.winding_down);
    let live: Vec<u32> = live(&ea).keys().copied().collect();
    assert_eq!(info.child_sas.len(), 2);
    for c in &info.child_sas {
        assert!(live.contains(&c.spi_in), "{c:?} not in {live:x?}");
        assert!(within_soft(c.rekey_at.unwrap()), "{c:?}");
        assert!(c.expire_at > c.rekey_at.unwrap());
        assert!(c.expire_at.saturating_duration_since(now) <= Duration::from_secs(4000));
    }

    // After a rekey the new IKE SA is due at a fresh soft lifetime, with the CHILD_SAs.
    mesh.rekey_ike_on(mesh.a);
    mesh.run(Duration::from_secs(2));
    let new = mesh.only_ike_sa(mesh.a);
    assert_ne!(new, a);
    let info = mesh.net.node(mesh.a).endpoint.ike_sa_info(new).unwrap();
    assert!(info.rekey_at.unwrap() > now + Duration::from_secs(3600 - 300));
    assert_eq!(info.child_sas.len(), 2);
}
