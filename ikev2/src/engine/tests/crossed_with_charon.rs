//! Crossed initiation with a peer that keeps its own attempt, as strongSwan's charon does:
//! the message order seen in tests/daemon/crossing-repro.sh (ovn-ipsecd on the lower address
//! retrying just as charon initiates), and the repair of an IKE SA that lacks a CHILD_SA.
//!
//! The order: our IKE_SA_INIT and charon's cross; charon answers ours, we leave its request
//! unanswered (ours wins by the lower address); our IKE SA comes up with both CHILD_SAs
//! (IKE_AUTH, then CREATE_CHILD_SA). charon retransmits its IKE_SA_INIT and, ours being no
//! longer half-open, we answer it; its IKE_AUTH brings up a second IKE SA with its first
//! CHILD_SA and no INITIAL_CONTACT, and charon, its initiator, applies no uniqueness rule.
//! Before the fix both IKE SAs stayed on both sides, two pairs of CHILD_SAs each.

use std::time::Duration;

use super::ike_auth::Mesh;
use super::rekey::{assert_agree, live};
use super::*;
use crate::engine::event::DownReason;
use crate::engine::ike_sa::Role;

/// a (ovn-ipsecd, lower address) and b (playing charon) initiate at the same moment.
fn crossed(seed: u64) -> (Mesh, Vec<Event>, Vec<Event>) {
    let mut mesh = Mesh::new(seed);
    let (a, b) = (mesh.a, mesh.b);
    mesh.net.node_mut(b).endpoint.keep_crossed_attempt = true;
    let now = mesh.net.now();
    let (a_to_b, b_to_a) = (mesh.a_to_b, mesh.b_to_a);
    mesh.net.node_mut(a).endpoint.initiate(now, a_to_b).unwrap();
    mesh.net.node_mut(b).endpoint.initiate(now, b_to_a).unwrap();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    mesh.run(Duration::from_secs(30));
    mesh.collect_events(&mut ea, &mut eb);
    (mesh, ea, eb)
}

fn ups(events: &[Event]) -> Vec<IkeSaId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .collect()
}

#[test]
fn crossing_a_peer_that_keeps_its_attempt_leaves_its_ike_sa_with_both_child_sas_on_both_sides() {
    let (mut mesh, mut ea, mut eb) = crossed(11);

    // Both IKE SAs came up on a (ours first, then charon's), as in the guest.
    let up_a = ups(&ea);
    assert_eq!(up_a.len(), 2, "{ea:?}");
    let (ours, theirs) = (up_a[0], up_a[1]);
    let info = |mesh: &Mesh, id| mesh.net.node(mesh.a).endpoint.ike_sa_info(id);
    assert_eq!(info(&mesh, theirs).unwrap().role, Role::Responder);

    // Ours went (the peer's came up last and a is its responder) with a Delete the peer
    // answered: exactly one IKE SA on each side, the same one.
    assert!(info(&mesh, ours).is_none());
    assert!(ea.contains(&Event::IkeSaDown {
        peer: mesh.a_to_b,
        ike_sa: ours,
        reason: DownReason::Replaced,
    }));
    let kept_a = mesh.only_ike_sa(mesh.a);
    let kept_b = mesh.only_ike_sa(mesh.b);
    let (ia, ib) = (
        mesh.net.node(mesh.a).endpoint.ike_sa_info(kept_a).unwrap(),
        mesh.net.node(mesh.b).endpoint.ike_sa_info(kept_b).unwrap(),
    );
    assert_eq!((ia.spi_i, ia.spi_r), (ib.spi_i, ib.spi_r));
    assert_eq!(ib.role, Role::Initiator);
    assert_eq!(mesh.net.node(mesh.a).endpoint.stats().ike_sas_replaced, 1);

    // Both CHILD_SAs, matching, on both sides; nothing is missing to repair.
    assert_agree(&ea, &eb, 2);
    assert_eq!(
        mesh.net.node(mesh.a).endpoint.missing_children(kept_a),
        Some(vec![])
    );

    // And it stays that way past the replacement delay of unique.rs.
    mesh.net.advance(Duration::from_secs(60), STEPS);
    mesh.collect_events(&mut ea, &mut eb);
    assert_eq!(mesh.only_ike_sa(mesh.a), kept_a);
    assert_eq!(mesh.only_ike_sa(mesh.b), kept_b);
    assert_agree(&ea, &eb, 2);
}

#[test]
fn responder_creates_the_child_sa_its_ike_sa_lacks_and_both_sides_agree() {
    // b initiates (a is the IKE SA's responder), then deletes one CHILD_SA alone, as a peer
    // whose second CHILD_SA went to an IKE SA that was then deleted ends up.
    let mut mesh = Mesh::new(12);
    let (a, b) = (mesh.a, mesh.b);
    let now = mesh.net.now();
    let b_to_a = mesh.b_to_a;
    mesh.net.node_mut(b).endpoint.initiate(now, b_to_a).unwrap();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    mesh.run(Duration::from_secs(5));
    mesh.collect_events(&mut ea, &mut eb);
    assert_agree(&ea, &eb, 2);
    let ike_b = mesh.only_ike_sa(b);
    let (&gone, _) = live(&eb).iter().next().unwrap();
    let now = mesh.net.now();
    mesh.net.node_mut(b).endpoint.retire_child(now, ike_b, gone);
    mesh.run(Duration::from_secs(5));
    mesh.collect_events(&mut ea, &mut eb);
    assert_agree(&ea, &eb, 1);

    // a sees which configured CHILD_SA is missing and creates it.
    let ike_a = mesh.only_ike_sa(a);
    let missing = mesh.net.node(a).endpoint.missing_children(ike_a).unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    mesh.net
        .node_mut(a)
        .endpoint
        .create_missing_child(ike_a, &missing[0])
        .unwrap();
    // Under way: not settled, nothing to report until the exchange is done.
    assert_eq!(mesh.net.node(a).endpoint.missing_children(ike_a), None);
    let now = mesh.net.now();
    mesh.net.node_mut(a).drain_events(now);
    mesh.run(Duration::from_secs(5));
    mesh.collect_events(&mut ea, &mut eb);
    assert_agree(&ea, &eb, 2);
    assert_eq!(mesh.only_ike_sa(a), ike_a);
    assert_eq!(mesh.only_ike_sa(b), ike_b);
    assert_eq!(
        mesh.net.node(a).endpoint.missing_children(ike_a),
        Some(vec![])
    );
    // The new CHILD_SA is the one that was missing, by name on a's side.
    let names: Vec<String> = live(&ea)
        .values()
        .filter_map(|e| match e {
            Event::ChildSaInstall { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert!(names.contains(&missing[0]), "{names:?}");
}
