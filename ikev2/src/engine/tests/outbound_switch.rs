//! The responder of a CHILD_SA rekey switches its outbound traffic to the new CHILD_SA only
//! once the initiator can decrypt it (RFC 7296 §2.8): at the initiator's Delete of the old
//! CHILD_SA, when the old CHILD_SA expires, or after `OUTBOUND_SWITCH_TIMEOUT` at the latest.
//! Every mesh narrative also checks after each step that no chassis sends on an SA its peer
//! has not installed (`make_before_break` in `ike_auth.rs`).

use std::time::{Duration, Instant};

use super::ike_auth::{jumbo as ike_auth_jumbo, Mesh};
use super::rekey::{assert_agree, established, first_child, rekeys};
use super::*;
use crate::engine::sim::Datagram;
use crate::engine::{Outbound, OUTBOUND_SWITCH_TIMEOUT};
use crate::registry::ExchangeType;

/// Inbound SPIs of the CHILD_SAs whose outbound SA `events` report ready, in order.
pub(super) fn ready(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaOutboundReady { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

/// How CHILD_SA `spi_in` was installed in `events`.
pub(super) fn outbound_of(events: &[Event], spi_in: u32) -> Option<Outbound> {
    events.iter().find_map(|e| match e {
        Event::ChildSaInstall {
            spi_in: s,
            outbound,
            ..
        } if *s == spi_in => Some(*outbound),
        _ => None,
    })
}

/// The name and outbound SPI of CHILD_SA `spi_in` installed in `events`.
fn name_and_spi_out(events: &[Event], spi_in: u32) -> (String, u32) {
    events
        .iter()
        .find_map(|e| match e {
            Event::ChildSaInstall {
                spi_in: s,
                name,
                spi_out,
                ..
            } if *s == spi_in => Some((name.clone(), *spi_out)),
            _ => None,
        })
        .unwrap()
}

/// Whether `d` is an INFORMATIONAL request sent by a (its Deletes and liveness checks).
fn informational_request_from_a(d: &Datagram) -> bool {
    d.src.ip() == A
        && d.bytes.len() > 19
        && d.bytes[18] == ExchangeType::INFORMATIONAL.0
        && d.bytes[19] & 0x20 == 0
}

/// Steps the mesh until `done` holds (at most `max` of virtual time); the instant it held.
fn step_until(mesh: &mut Mesh, max: Duration, done: impl Fn(&Mesh) -> bool) -> Instant {
    let limit = mesh.net.now() + max;
    while !done(mesh) {
        assert!(mesh.net.step_until(limit), "not reached within {max:?}");
    }
    mesh.net.now()
}

/// a rekeys its first CHILD_SA; returns the instant b answered (its new CHILD_SA held), with
/// b's events so far.
fn rekey_from_a_until_b_answers(mesh: &mut Mesh, a_old: u32) -> Instant {
    mesh.rekey_child_on(mesh.a, a_old);
    step_until(mesh, Duration::from_secs(2), |m| {
        m.net.node(m.b).kernel.pending_count() == 1
    })
}

#[test]
fn rekey_responder_switches_its_outbound_sa_when_the_initiators_delete_arrives() {
    let (mut mesh, mut ea, mut eb) = established(70);
    let (a_old, b_old) = first_child(&ea);
    let (name, old_out) = name_and_spi_out(&eb, b_old);
    rekey_from_a_until_b_answers(&mut mesh, a_old);

    // b has answered: its new inbound SA is in, but it still sends on the old CHILD_SA, since
    // a installs the new one only when the answer arrives.
    assert_eq!(
        mesh.net.node(mesh.b).kernel.active_outbound(&name),
        Some(old_out)
    );
    mesh.run(Duration::from_secs(2));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    let (a_new, b_new) = (rekeys(&na)[0].1, rekeys(&nb)[0].1);
    assert_eq!(outbound_of(&na, a_new), Some(Outbound::Now));
    assert_eq!(outbound_of(&nb, b_new), Some(Outbound::Pending));

    // a's Delete of the old CHILD_SA: the new outbound SA is ready before the old one goes.
    let order: Vec<&str> = nb
        .iter()
        .map(|e| match e {
            Event::ChildSaInstall { .. } => "install",
            Event::ChildSaRekeyed { .. } => "rekeyed",
            Event::ChildSaOutboundReady { .. } => "ready",
            Event::ChildSaDelete { .. } => "delete",
            _ => "other",
        })
        .collect();
    assert_eq!(order, vec!["install", "rekeyed", "ready", "delete"]);
    assert_eq!(ready(&nb), vec![b_new]);
    let (_, new_out) = name_and_spi_out(&nb, b_new);
    assert_eq!(
        mesh.net.node(mesh.b).kernel.active_outbound(&name),
        Some(new_out)
    );
    assert_eq!(mesh.net.node(mesh.b).kernel.pending_count(), 0);
    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
}

#[test]
fn rekey_responder_switches_after_the_timeout_when_nothing_proves_the_initiator_switched() {
    let (mut mesh, ea, eb) = established(71);
    let (a_old, b_old) = first_child(&ea);
    let (name, _) = name_and_spi_out(&eb, b_old);
    // a's Deletes (and liveness checks) never reach b: nothing proves a switched. (a gives the
    // IKE SA up when its Delete goes unanswered, before the timeout.)
    mesh.net.set_filter(informational_request_from_a);
    let answered = rekey_from_a_until_b_answers(&mut mesh, a_old);
    let switched = step_until(&mut mesh, OUTBOUND_SWITCH_TIMEOUT * 2, |m| {
        m.net.node(m.b).kernel.pending_count() == 0
    });

    let waited = switched - answered;
    assert!(
        waited >= OUTBOUND_SWITCH_TIMEOUT
            && waited < OUTBOUND_SWITCH_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
    let nb = mesh.events(mesh.b);
    let b_new = rekeys(&nb)[0].1;
    assert_eq!(ready(&nb), vec![b_new]);
    let (_, new_out) = name_and_spi_out(&nb, b_new);
    assert_eq!(
        mesh.net.node(mesh.b).kernel.active_outbound(&name),
        Some(new_out)
    );
    // The old CHILD_SA is still there for a's Delete (or its expiry).
    assert!(mesh.net.node(mesh.b).kernel.inbound.contains(&b_old));
}

/// Lifetimes of a's "in" CHILD_SA and b's "out" (the same CHILD_SA): soft 1000 s, hard 1004 s,
/// no jitter: the old CHILD_SA expires well before the timeout.
fn short_first_child(index: usize) -> impl FnOnce(&mut PeerConfig) {
    move |p: &mut PeerConfig| {
        p.children[index].lifetime = crate::engine::timers::Lifetime {
            soft: Duration::from_secs(1000),
            hard: Duration::from_secs(1004),
            jitter: Duration::ZERO,
        };
    }
}

#[test]
fn rekey_responder_switches_when_the_old_child_sa_expires_before_the_timeout() {
    let mut mesh = Mesh::with(
        72,
        ike_auth_jumbo(),
        short_first_child(0),
        short_first_child(1),
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    let (a_old, b_old) = first_child(&ea);
    let (name, _) = name_and_spi_out(&eb, b_old);

    // 9 s before the old CHILD_SA's hard lifetime a rekeys it; its Delete never reaches b.
    mesh.net.advance(Duration::from_secs(995), STEPS);
    mesh.events(mesh.b);
    mesh.net.set_filter(informational_request_from_a);
    let answered = rekey_from_a_until_b_answers(&mut mesh, a_old);
    let switched = step_until(&mut mesh, OUTBOUND_SWITCH_TIMEOUT, |m| {
        m.net.node(m.b).kernel.pending_count() == 0
    });
    assert!(switched - answered < OUTBOUND_SWITCH_TIMEOUT);

    // The expiry made the new outbound SA ready, just before the old CHILD_SA was deleted.
    let nb = mesh.events(mesh.b);
    let b_new = rekeys(&nb)[0].1;
    let at = |f: &dyn Fn(&Event) -> bool| nb.iter().position(f).unwrap();
    let ready_at =
        at(&|e| matches!(e, Event::ChildSaOutboundReady { spi_in, .. } if *spi_in == b_new));
    let delete_at = at(&|e| matches!(e, Event::ChildSaDelete { spi_in, .. } if *spi_in == b_old));
    assert_eq!(ready_at + 1, delete_at, "{nb:?}");
    let (_, new_out) = name_and_spi_out(&nb, b_new);
    assert_eq!(
        mesh.net.node(mesh.b).kernel.active_outbound(&name),
        Some(new_out)
    );
}
