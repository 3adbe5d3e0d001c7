//! Simultaneous CHILD_SA rekeys resolved by the nonce rule (RFC 7296 §2.8.1), in all four
//! orders of the nonces, and a CHILD_SA deleted by the peer while we rekey it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::ike_auth::{child_pfs, Mesh};
use super::outbound_switch::{outbound_of, ready};
use super::rekey::{assert_agree, established, first_child, live, rekeys};
use super::*;
use crate::engine::ike_sa::State;
use crate::engine::sim::Datagram;
use crate::engine::Outbound;
use crate::registry::ExchangeType;

/// A nonce whose first octet decides every comparison.
fn nonce(first: u8) -> Vec<u8> {
    let mut n = vec![0x55; 32];
    n[0] = first;
    n
}

/// Inbound SPIs of the CHILD_SAs installed in `events`, in order.
pub(super) fn installed(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaInstall { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

pub(super) fn deleted(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDelete { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// Which nonce of the four is the lowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lowest {
    /// Ni of a's exchange: a's exchange loses.
    NiA,
    /// Nr of a's exchange (b's answer): a's exchange loses.
    NrA,
    /// Ni of b's exchange: b's exchange loses.
    NiB,
    /// Nr of b's exchange (a's answer): b's exchange loses.
    NrB,
}

/// Nonces in the order each chassis draws them: its own request's Ni first, then the Nr of
/// its answer to the peer's request.
pub(super) fn nonces(lowest: Lowest) -> ([Vec<u8>; 2], [Vec<u8>; 2]) {
    let (mut a, mut b) = ([nonce(0x80), nonce(0x90)], [nonce(0xa0), nonce(0xb0)]);
    match lowest {
        Lowest::NiA => a[0] = nonce(0x10),
        Lowest::NrA => b[1] = nonce(0x10),
        Lowest::NiB => b[0] = nonce(0x10),
        Lowest::NrB => a[1] = nonce(0x10),
    }
    (a, b)
}

fn collide(seed: u64, lowest: Lowest) {
    let (mut mesh, mut ea, mut eb) = established(seed);
    let (a_old, b_old) = first_child(&ea);
    let (na, nb) = nonces(lowest);
    mesh.net.node_mut(mesh.a).endpoint.forced_nonces = na.into();
    mesh.net.node_mut(mesh.b).endpoint.forced_nonces = nb.into();
    mesh.rekey_child_on(mesh.a, a_old);
    mesh.rekey_child_on(mesh.b, b_old);
    mesh.run(Duration::from_secs(5));
    let (new_a, new_b) = (mesh.events(mesh.a), mesh.events(mesh.b));

    // Each side answered the other's request before its own was answered: two new CHILD_SAs
    // on each side, first the one of the peer's exchange, then the one of its own.
    let (ia, ib) = (installed(&new_a), installed(&new_b));
    assert_eq!((ia.len(), ib.len()), (2, 2), "a {new_a:?}\nb {new_b:?}");
    let a_lost = matches!(lowest, Lowest::NiA | Lowest::NrA);
    // The survivor is the CHILD_SA of the winning exchange, on both sides.
    let (survivor_a, redundant_a) = if a_lost {
        (ia[0], ia[1])
    } else {
        (ia[1], ia[0])
    };
    let (survivor_b, redundant_b) = if a_lost {
        (ib[1], ib[0])
    } else {
        (ib[0], ib[1])
    };
    assert_eq!(rekeys(&new_a), vec![(a_old, survivor_a)], "{lowest:?}");
    assert_eq!(rekeys(&new_b), vec![(b_old, survivor_b)], "{lowest:?}");
    // The old CHILD_SA and the redundant one are deleted on both sides.
    for (d, old, redundant) in [
        (deleted(&new_a), a_old, redundant_a),
        (deleted(&new_b), b_old, redundant_b),
    ] {
        assert!(
            d.contains(&old) && d.contains(&redundant),
            "{lowest:?}: {d:x?}"
        );
        assert_eq!(d.len(), 2);
    }
    // Each side answered the other's exchange, so its CHILD_SA of that exchange was held
    // (RFC 7296 §2.8). The side that answered the winning exchange switches to it once, before
    // the old CHILD_SA goes; the side that answered the losing one never sends on it.
    let ((won, won_new, won_old), (lost, lost_new)) = if a_lost {
        ((&new_a, survivor_a, a_old), (&new_b, redundant_b))
    } else {
        ((&new_b, survivor_b, b_old), (&new_a, redundant_a))
    };
    assert_eq!(outbound_of(won, won_new), Some(Outbound::Pending));
    assert_eq!(outbound_of(lost, lost_new), Some(Outbound::Pending));
    assert_eq!(ready(won), vec![won_new], "{lowest:?}: {won:?}");
    let at = |events: &[Event], f: &dyn Fn(&Event) -> bool| events.iter().position(f);
    let ready_at = at(won, &|e| matches!(e, Event::ChildSaOutboundReady { .. }));
    let delete_at = at(
        won,
        &|e| matches!(e, Event::ChildSaDelete { spi_in, .. } if *spi_in == won_old),
    );
    assert!(ready_at < delete_at, "{lowest:?}: {won:?}");
    assert!(ready(lost).is_empty(), "{lowest:?}: {lost:?}");
    ea.extend(new_a);
    eb.extend(new_b);
    assert_agree(&ea, &eb, 2);
    assert!(live(&ea).contains_key(&survivor_a));
    assert!(live(&eb).contains_key(&survivor_b));
    // Nothing is left to retry: no further rekey of anything for a while.
    mesh.run(Duration::from_secs(60));
    assert!(installed(&mesh.events(mesh.a)).is_empty());
}

#[test]
fn simultaneous_child_rekey_lost_never_sends_on_our_redundant_child_sa_while_the_winners_delete_is_late(
) {
    // a's exchange loses: a deletes the CHILD_SA it made, b (the winner's initiator) deletes
    // the old one; b's Delete is lost once, so a learns late that it may switch to b's
    // CHILD_SA. Meanwhile b removes a's redundant CHILD_SA on a's Delete: a must never have
    // sent on it (the make-before-break invariant of every mesh, checked at each step).
    let (mut mesh, mut ea, mut eb) = established(68);
    let (a_old, b_old) = first_child(&ea);
    let (na, nb) = nonces(Lowest::NiA);
    mesh.net.node_mut(mesh.a).endpoint.forced_nonces = na.into();
    mesh.net.node_mut(mesh.b).endpoint.forced_nonces = nb.into();
    mesh.net
        .set_filter(super::drop_first(informational_request_from_b));
    mesh.rekey_child_on(mesh.a, a_old);
    mesh.rekey_child_on(mesh.b, b_old);
    mesh.run(Duration::from_secs(5));
    mesh.collect_events(&mut ea, &mut eb);
    assert_eq!(rekeys(&ea).len(), 1);
    let redundant = installed(&ea)[3];
    assert_eq!(outbound_of(&ea, redundant), Some(Outbound::Pending));
    assert!(!ready(&ea).contains(&redundant));
    assert!(mesh.violations().is_empty(), "{:?}", mesh.violations());
    assert_agree(&ea, &eb, 2);
}

#[test]
fn simultaneous_child_rekey_where_our_ni_is_lowest_keeps_the_peers_child_sa() {
    collide(60, Lowest::NiA);
}

#[test]
fn simultaneous_child_rekey_where_the_peers_answer_nonce_is_lowest_keeps_the_peers_child_sa() {
    collide(61, Lowest::NrA);
}

#[test]
fn simultaneous_child_rekey_where_the_peers_ni_is_lowest_keeps_our_child_sa() {
    collide(62, Lowest::NiB);
}

#[test]
fn simultaneous_child_rekey_where_our_answer_nonce_is_lowest_keeps_our_child_sa() {
    collide(63, Lowest::NrB);
}

/// Sets b's copy of the CHILD_SA whose outbound SPI is `b_spi_out` to expire `after` from now.
fn expire_on_b(mesh: &mut Mesh, b_spi_out: u32, after: Duration) {
    let at = mesh.net.now() + after;
    let endpoint = &mut mesh.net.node_mut(mesh.b).endpoint;
    for sa in endpoint.ike_sas.values_mut() {
        if let State::Established(e) = &mut sa.state {
            for c in e.children.iter_mut().filter(|c| c.spi_out == b_spi_out) {
                c.expire_at = at;
            }
        }
        sa.sync_child_timer();
    }
}

/// Whether `d` is an INFORMATIONAL request sent by b (IKE port, no non-ESP marker).
fn informational_request_from_b(d: &Datagram) -> bool {
    d.src.ip() == B
        && d.bytes.len() > 19
        && d.bytes[18] == ExchangeType::INFORMATIONAL.0
        && d.bytes[19] & 0x20 == 0
}

#[test]
fn child_sa_deleted_by_the_peer_before_our_rekey_arrives_is_answered_not_found_and_goes_with_the_peers_delete(
) {
    let (mut mesh, mut ea, mut eb) = established(64);
    let (a_old, spi_out) = first_child(&ea);
    // b's copy expires now (b deletes it) as a starts rekeying it; b's first Delete is lost,
    // so a hears CHILD_SA_NOT_FOUND before the retransmitted Delete. The CHILD_SA is young
    // (b might not know it yet), so a keeps it until the Delete comes.
    expire_on_b(&mut mesh, a_old, Duration::ZERO);
    let dropped = Rc::new(Cell::new(0));
    let counter = dropped.clone();
    mesh.net.set_filter(move |d| {
        let drop = counter.get() == 0 && informational_request_from_b(d);
        if drop {
            counter.set(1);
        }
        drop
    });
    mesh.rekey_child_on(mesh.a, a_old);
    mesh.run(Duration::from_secs(5));
    assert_eq!(dropped.get(), 1);
    let (new_a, new_b) = (mesh.events(mesh.a), mesh.events(mesh.b));

    // No new CHILD_SA anywhere; the old one is gone on both sides.
    assert!(installed(&new_a).is_empty() && installed(&new_b).is_empty());
    assert_eq!(deleted(&new_a), vec![a_old]);
    assert_eq!(deleted(&new_b), vec![spi_out]);
    ea.extend(new_a);
    eb.extend(new_b);
    assert_agree(&ea, &eb, 1);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn child_sa_deleted_by_the_peer_after_it_answered_our_rekey_leaves_the_new_one_on_both_sides() {
    let (mut mesh, mut ea, mut eb) = established(65);
    let (a_old, spi_out) = first_child(&ea);
    // a's request reaches b after 10 ms; b's copy expires at 15 ms, so b's Delete reaches a
    // after b's answer, while a's own Delete of the old CHILD_SA is outstanding.
    expire_on_b(&mut mesh, a_old, Duration::from_millis(15));
    mesh.rekey_child_on(mesh.a, a_old);
    mesh.run(Duration::from_secs(5));
    let (new_a, new_b) = (mesh.events(mesh.a), mesh.events(mesh.b));

    let (ia, ib) = (installed(&new_a), installed(&new_b));
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_eq!(rekeys(&new_a), vec![(a_old, ia[0])]);
    // Deleted once on each side, however the two Deletes crossed.
    assert_eq!(deleted(&new_a), vec![a_old]);
    assert_eq!(deleted(&new_b), vec![spi_out]);
    ea.extend(new_a);
    eb.extend(new_b);
    assert_agree(&ea, &eb, 2);
    assert!(live(&ea).contains_key(&ia[0]));
}

#[test]
fn pfs_group_refused_with_invalid_ke_is_retried_once_with_the_group_asked_for() {
    use crate::registry::KeGroup;
    let mut mesh = Mesh::with(
        66,
        super::ike_auth::jumbo(),
        |a| a.children[1].esp_proposals[0].ke = vec![KeGroup::ECP_256, KeGroup::CURVE25519],
        |b| b.children[1].esp_proposals[0].ke = vec![KeGroup::CURVE25519],
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!(child_pfs(&ea), vec![None, Some(KeGroup::CURVE25519)]);
    assert_eq!(child_pfs(&eb), child_pfs(&ea));
    assert_agree(&ea, &eb, 2);
}

#[test]
fn pfs_group_the_initiator_never_offered_is_not_followed() {
    use crate::registry::KeGroup;
    let mut mesh = Mesh::with(
        67,
        super::ike_auth::jumbo(),
        |a| a.children[1].esp_proposals[0].ke = vec![KeGroup::ECP_256],
        |b| b.children[1].esp_proposals[0].ke = vec![KeGroup::CURVE25519],
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    // The second CHILD_SA is not created; the first and the IKE SA stay.
    assert_agree(&ea, &eb, 1);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

fn spi_requests(events: &[Event]) -> Vec<crate::engine::SpiRequestId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AllocateSpi { request, .. } => Some(*request),
            _ => None,
        })
        .collect()
}

#[test]
fn create_child_sa_waits_for_a_full_window_instead_of_being_skipped() {
    let mut mesh = Mesh::new(68);
    mesh.net.node_mut(mesh.a).allocate_spis = false;
    let a = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(1));
    let first = spi_requests(&mesh.events(mesh.a));
    let now = mesh.net.now();
    let endpoint = &mut mesh.net.node_mut(mesh.a).endpoint;
    endpoint.spi_allocated(now, first[0], 0xa000_0001).unwrap();
    mesh.run(Duration::from_secs(1));
    // IKE_AUTH is done; the second CHILD_SA waits for its SPI.
    let second = spi_requests(&mesh.events(mesh.a));
    assert_eq!(second.len(), 1);

    // A liveness check takes the only slot of the window, and b's answer to it is lost once,
    // so the slot stays taken until the retransmission half a second later.
    let now = mesh.net.now();
    let endpoint = &mut mesh.net.node_mut(mesh.a).endpoint;
    assert!(endpoint.send_informational(now, a, &[]));
    endpoint.spi_allocated(now, second[0], 0xa000_0002).unwrap();
    let dropped = Rc::new(Cell::new(false));
    let flag = dropped.clone();
    mesh.net.set_filter(move |d| {
        let response_from_b = d.src.ip() == B && d.bytes.len() > 19 && d.bytes[19] & 0x20 != 0;
        let drop = !flag.get() && response_from_b;
        if drop {
            flag.set(true);
        }
        drop
    });
    mesh.run(Duration::from_secs(5));
    assert!(dropped.get());
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!(installed(&ea), vec![0xa000_0002], "{ea:?}");
    assert_eq!(installed(&eb).len(), 2);
}

#[test]
fn settled_child_sa_the_peer_answers_not_found_for_is_removed_even_without_its_delete() {
    let (mut mesh, mut ea, mut eb) = established(69);
    // Well past the time our answer creating it could still be on its way to the peer.
    mesh.net
        .advance(crate::engine::create_child_sa::NOT_FOUND_SETTLE * 2, STEPS);
    mesh.collect_events(&mut ea, &mut eb);
    let (a_old, spi_out) = first_child(&ea);
    // b deletes its copy, and every Delete b sends is lost.
    expire_on_b(&mut mesh, a_old, Duration::ZERO);
    mesh.net.set_filter(informational_request_from_b);
    mesh.rekey_child_on(mesh.a, a_old);
    mesh.run(Duration::from_secs(2));
    let (new_a, new_b) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!(deleted(&new_a), vec![a_old]);
    assert_eq!(deleted(&new_b), vec![spi_out]);
    ea.extend(new_a);
    eb.extend(new_b);
    assert_agree(&ea, &eb, 1);
}
