//! A newly authenticated IKE SA replaces the older one with the same peer, even without
//! INITIAL_CONTACT: what Libreswan's pluto needs when it re-initiates after a restart.

use std::time::Duration;

use super::ike_auth::{fixture_time, installs, Mesh};
use super::*;
use crate::engine::event::DownReason;
use crate::engine::unique::{REPLACE_DELAY, REPLACE_MIN_AGE};

/// `a` restarts as pluto does: a fresh endpoint that initiates again without INITIAL_CONTACT.
fn restart_a_as_pluto(mesh: &mut Mesh, seed: u64) -> IkeSaId {
    let mut fresh = endpoint(seed);
    fresh.set_wall_clock(mesh.net.now(), fixture_time());
    fresh.omit_initial_contact = true;
    let peer = fresh
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    let now = mesh.net.now();
    let a = mesh.a;
    mesh.net.node_mut(a).endpoint = fresh;
    mesh.net.node_mut(a).endpoint.initiate(now, peer).unwrap()
}

#[test]
fn peer_restarting_without_initial_contact_replaces_the_old_ike_sa_after_the_new_child_sas() {
    let mut mesh = Mesh::new(1);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    let old = mesh.only_ike_sa(mesh.b);
    let old_children = installs(&mesh.events(mesh.b));
    assert_eq!(old_children.len(), 2);
    mesh.events(mesh.a);

    // Some time later, a restarts.
    mesh.net.advance(REPLACE_MIN_AGE, STEPS);
    restart_a_as_pluto(&mut mesh, 77);
    mesh.run(Duration::from_secs(5));
    // The old IKE SA waits REPLACE_DELAY for the peer to delete it (a reauthentication would).
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 2);
    mesh.net.advance(REPLACE_DELAY, STEPS);

    // b holds exactly the new IKE SA, with both CHILD_SAs.
    let new = mesh.only_ike_sa(mesh.b);
    assert_ne!(new, old);
    let evs = mesh.events(mesh.b);
    assert!(evs.contains(&Event::IkeSaDown {
        peer: mesh.b_to_a,
        ike_sa: old,
        reason: DownReason::Replaced,
    }));
    // Make before break: the first new CHILD_SA is installed before the old ones go.
    let first_install = evs
        .iter()
        .position(|e| matches!(e, Event::ChildSaInstall { .. }))
        .unwrap();
    let deletes: Vec<usize> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::ChildSaDelete { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(deletes.len(), 2);
    assert!(deletes.iter().all(|&i| i > first_install));
    assert_eq!(installs(&evs).len(), 2);
    assert_eq!(mesh.net.node(mesh.b).endpoint.stats().ike_sas_replaced, 1);

    // b's Delete for the old IKE SA reached the restarted a, which knows nothing of it and
    // says so; b does not answer that.
    assert_eq!(
        mesh.net.node(mesh.a).endpoint.stats().invalid_ike_spi_sent,
        1
    );
    let ea = mesh.events(mesh.a);
    assert_eq!(installs(&ea).len(), 2);
    assert!(
        !ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })),
        "{ea:?}"
    );
}

#[test]
fn ike_sa_established_moments_before_the_new_one_is_kept() {
    // Two IKE SAs completing within REPLACE_MIN_AGE look like a crossed initiation by a peer
    // that does not follow our rule; replacing could delete both on the two sides.
    let mut mesh = Mesh::new(3);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(1));
    let old = mesh.only_ike_sa(mesh.b);
    restart_a_as_pluto(&mut mesh, 79);
    mesh.run(Duration::from_secs(1));

    let ids: Vec<IkeSaId> = mesh.net.node(mesh.b).endpoint.ike_sas().collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&old));
    assert_eq!(mesh.net.node(mesh.b).endpoint.stats().ike_sas_replaced, 0);
}

#[test]
fn restart_with_initial_contact_drops_the_old_ike_sa_at_authentication() {
    let mut mesh = Mesh::new(2);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    let old = mesh.only_ike_sa(mesh.b);
    mesh.events(mesh.b);

    let id = restart_a_as_pluto(&mut mesh, 78);
    let _ = id;
    let a = mesh.a;
    // Our own initiator announces INITIAL_CONTACT: the older IKE SA goes without a Delete.
    mesh.net.node_mut(a).endpoint.omit_initial_contact = false;
    mesh.run(Duration::from_secs(5));
    let evs = mesh.events(mesh.b);
    assert!(evs.contains(&Event::IkeSaDown {
        peer: mesh.b_to_a,
        ike_sa: old,
        reason: DownReason::DeletedByPeer,
    }));
    assert_eq!(mesh.net.node(mesh.b).endpoint.stats().ike_sas_replaced, 0);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 1);
}
