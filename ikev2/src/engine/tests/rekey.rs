//! CHILD_SA rekeying (RFC 7296 §1.3.3, §2.8): soft lifetimes, the command, make-before-break,
//! and two chassis rekeying the same CHILD_SA at once.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ike_auth::{installed_pairs_match, ups, Mesh};
use super::*;
use crate::engine::event::DownReason;

/// Replays `events` into the CHILD_SAs still installed, by inbound SPI.
pub(super) fn live(events: &[Event]) -> BTreeMap<u32, Event> {
    let mut live = BTreeMap::new();
    for e in events {
        match e {
            Event::ChildSaInstall { spi_in, .. } => {
                live.insert(*spi_in, e.clone());
            }
            Event::ChildSaDelete { spi_in, .. } => {
                live.remove(spi_in);
            }
            _ => {}
        }
    }
    live
}

/// The inbound and outbound SPIs of the CHILD_SA with the lowest inbound SPI still installed
/// after `events`.
pub(super) fn first_child(events: &[Event]) -> (u32, u32) {
    let (spi_in, install) = live(events).into_iter().next().unwrap();
    let Event::ChildSaInstall { spi_out, .. } = install else {
        unreachable!("live holds installs only")
    };
    (spi_in, spi_out)
}

/// The IKE SAs that went down in `events`, with why.
pub(super) fn downs(events: &[Event]) -> Vec<(IkeSaId, DownReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { ike_sa, reason, .. } => Some((*ike_sa, *reason)),
            _ => None,
        })
        .collect()
}

pub(super) fn rekeys(events: &[Event]) -> Vec<(u32, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaRekeyed {
                old_spi_in,
                new_spi_in,
                ..
            } => Some((*old_spi_in, *new_spi_in)),
            _ => None,
        })
        .collect()
}

/// Every live CHILD_SA of `a` has its other end live on `b`, and there are `n` of each.
pub(super) fn assert_agree(ea: &[Event], eb: &[Event], n: usize) {
    let (la, lb) = (live(ea), live(eb));
    assert_eq!((la.len(), lb.len()), (n, n), "a {la:?}\nb {lb:?}");
    for install in la.values() {
        let Event::ChildSaInstall { spi_out, .. } = install else {
            unreachable!()
        };
        assert!(installed_pairs_match(install, &lb[spi_out]));
    }
}

pub(super) fn established(seed: u64) -> (Mesh, Vec<Event>, Vec<Event>) {
    let mut mesh = Mesh::new(seed);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!((ups(&ea), ups(&eb)), (1, 1));
    (mesh, ea, eb)
}

#[test]
fn soft_lifetime_rekeys_both_child_sas_before_they_expire() {
    let (mut mesh, mut ea, mut eb) = established(40);
    let first: Vec<u32> = live(&ea).keys().copied().collect();

    // Soft lifetime 3600 s minus up to 300 s of jitter; the IKE SA's hard lifetime is 4000 s.
    mesh.net.advance(Duration::from_secs(3650), STEPS);
    mesh.collect_events(&mut ea, &mut eb);

    // Each CHILD_SA was replaced once, on both sides, and the old ones are gone.
    let (ra, rb) = (rekeys(&ea), rekeys(&eb));
    assert_eq!((ra.len(), rb.len()), (2, 2), "{ra:?} {rb:?}");
    for (old, _) in &ra {
        assert!(first.contains(old));
    }
    assert_agree(&ea, &eb, 2);
    assert!(live(&ea).keys().all(|spi| !first.contains(spi)));
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn rekey_command_replaces_the_child_sa_make_before_break() {
    let (mut mesh, mut ea, mut eb) = established(41);
    let old = *live(&ea).keys().next().unwrap();
    mesh.rekey_child_on(mesh.a, old);
    mesh.run(Duration::from_secs(2));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));

    // a: the new CHILD_SA is installed, then reported as replacing the old, and only then
    // (after the peer answered the Delete) the old one is deleted.
    let order: Vec<&str> = na
        .iter()
        .map(|e| match e {
            Event::ChildSaInstall { .. } => "install",
            Event::ChildSaRekeyed { .. } => "rekeyed",
            Event::ChildSaDelete { .. } => "delete",
            _ => "other",
        })
        .collect();
    assert_eq!(order, vec!["install", "rekeyed", "delete"]);
    assert_eq!(rekeys(&na)[0].0, old);
    assert_eq!(rekeys(&nb).len(), 1);

    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
}

#[test]
fn rekey_command_for_an_unknown_spi_is_refused() {
    let (mut mesh, _, _) = established(42);
    let now = mesh.net.now();
    let peer = mesh.a_to_b;
    assert_eq!(
        mesh.net
            .node_mut(mesh.a)
            .endpoint
            .rekey_child(now, peer, 0x1234_5678),
        Err(crate::engine::CommandError::UnknownChildSa(0x1234_5678))
    );
}

#[test]
fn simultaneous_rekeys_of_one_child_sa_settle_on_one_replacement() {
    for seed in 50..56 {
        let (mut mesh, mut ea, mut eb) = established(seed);
        // Both ends of the same CHILD_SA ask for a rekey at the same instant.
        let (a_spi, spi_out) = first_child(&ea);
        mesh.rekey_child_on(mesh.a, a_spi);
        mesh.rekey_child_on(mesh.b, spi_out);
        mesh.run(Duration::from_secs(30));

        mesh.collect_events(&mut ea, &mut eb);
        // Both rekeys are answered; the nonce rule of RFC 7296 §2.8.1 keeps one replacement.
        assert_eq!(rekeys(&ea).len(), 1, "seed {seed}: {:?}", rekeys(&ea));
        assert_eq!(rekeys(&eb).len(), 1);
        assert_agree(&ea, &eb, 2);
    }
}
