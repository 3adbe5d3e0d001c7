//! INFORMATIONAL on an established IKE SA: Delete both ways, liveness checks, and the
//! answer to CREATE_CHILD_SA while it is not implemented.

use std::time::Duration;

use super::ike_auth::{installs, ups, Mesh};
use super::*;
use crate::codec::{Delete, Header, Notify, Payload, PayloadBody};
use crate::engine::event::DownReason;
use crate::registry::{ExchangeType, NotifyType, ProtocolId};

fn established(seed: u64) -> Mesh {
    let mut mesh = Mesh::new(seed);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!((ups(&ea), ups(&eb)), (1, 1));
    mesh.net.node_mut(mesh.a).events = ea;
    mesh.net.node_mut(mesh.b).events = eb;
    mesh
}

fn informational_requests_to(mesh: &Mesh, to: IpAddr) -> usize {
    mesh.net
        .deliveries()
        .iter()
        .filter(|d| d.datagram.dst.ip() == to)
        .filter_map(|d| Header::decode(&d.datagram.bytes).ok())
        .filter(|h| h.exchange_type == ExchangeType::INFORMATIONAL && !h.flags.is_response())
        .count()
}

/// Has `b` send a request of `exchange` with `inner` on its IKE SA, as the peer would; returns
/// the decrypted response `a` sent back.
fn request_from_b(mesh: &mut Mesh, exchange: ExchangeType, inner: &[Payload]) -> Vec<Payload> {
    let b = &mut mesh.net.node_mut(mesh.b).endpoint;
    let id = b.ike_sas().next().unwrap();
    let mid = b.ike_sas.get_mut(&id).unwrap().requests.allocate().unwrap();
    let request = b.seal(id, exchange, mid, false, inner).unwrap();
    let (local, remote) = {
        let sa = &b.ike_sas[&id];
        (sa.local, sa.remote)
    };
    let now = mesh.net.now();
    let a = &mut mesh.net.node_mut(mesh.a).endpoint;
    for datagram in &request {
        a.handle_datagram(now, remote, local, datagram);
    }
    let response = a.poll_transmit().expect("a answers");
    let header = Header::decode(&response.bytes).unwrap();
    assert!(header.flags.is_response());
    assert_eq!(header.message_id, mid);
    let b = &mut mesh.net.node_mut(mesh.b).endpoint;
    b.unseal(id, &header, &response.bytes).unwrap()
}

#[test]
fn terminate_deletes_the_ike_sa_and_child_sas_on_both_sides() {
    let mut mesh = established(20);
    let ia = installs(&mesh.events(mesh.a));
    let ib = installs(&mesh.events(mesh.b));

    let now = mesh.net.now();
    let peer = mesh.a_to_b;
    mesh.net
        .node_mut(mesh.a)
        .endpoint
        .terminate(now, peer)
        .unwrap();
    mesh.run(Duration::from_secs(1));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert!(
        matches!(
            ea.as_slice(),
            [
                Event::ChildSaDelete { spi_in, .. },
                Event::ChildSaDelete { .. },
                Event::IkeSaDown { reason: DownReason::Terminated, .. },
            ] if *spi_in == ia[0].spi_in
        ),
        "{ea:?}"
    );
    assert!(
        matches!(
            eb.as_slice(),
            [
                Event::ChildSaDelete { spi_in, .. },
                Event::ChildSaDelete { .. },
                Event::IkeSaDown { reason: DownReason::DeletedByPeer, .. },
            ] if *spi_in == ib[0].spi_in
        ),
        "{eb:?}"
    );
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 0);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 0);
}

#[test]
fn liveness_checks_after_each_silent_interval_keep_the_ike_sa() {
    let mut mesh = established(21);
    mesh.events(mesh.a);
    mesh.run(Duration::from_secs(100));

    // a and b each check every 30 s of silence; each check's answer counts as hearing from
    // the other, so they settle into one check per interval between them or each.
    let checks = informational_requests_to(&mesh, B) + informational_requests_to(&mesh, A);
    assert!(checks >= 3, "{checks}");
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
    assert!(mesh.events(mesh.a).is_empty());
}

#[test]
fn silent_peer_is_declared_dead_by_the_liveness_check() {
    let mut mesh = established(22);
    let ia = installs(&mesh.events(mesh.a));
    mesh.events(mesh.b);
    let start = mesh.net.now();
    // The cable is cut: nothing gets through either way (a request from b would prove it
    // alive to a).
    mesh.net.set_filter(|_| true);
    mesh.run(Duration::from_secs(200));

    let ea = mesh.events(mesh.a);
    assert!(
        matches!(
            ea.as_slice(),
            [
                Event::ChildSaDelete { spi_in, .. },
                Event::ChildSaDelete { .. },
                Event::IkeSaDown { reason: DownReason::PeerUnreachable, .. },
            ] if *spi_in == ia[0].spi_in
        ),
        "{ea:?}"
    );
    // DPD after 30 s, then the retransmission schedule (47.5 s).
    let gone_after = mesh.net.now() - start;
    assert!(
        gone_after <= Duration::from_millis(30_000 + 47_500),
        "{gone_after:?}"
    );
}

#[test]
fn peer_deleting_a_child_sa_gets_our_inbound_spi_back_and_the_ike_sa_stays() {
    let mut mesh = established(23);
    let ia = installs(&mesh.events(mesh.a));
    let ib = installs(&mesh.events(mesh.b));

    let response = request_from_b(
        &mut mesh,
        ExchangeType::INFORMATIONAL,
        &[Payload::new(Delete::esp(&[ib[0].spi_in]))],
    );
    assert_eq!(response, vec![Payload::new(Delete::esp(&[ia[0].spi_in]))]);
    let ea: Vec<Event> =
        std::iter::from_fn(|| mesh.net.node_mut(mesh.a).endpoint.poll_event()).collect();
    assert_eq!(
        ea,
        vec![Event::ChildSaDelete {
            peer: mesh.a_to_b,
            spi_in: ia[0].spi_in,
            spi_out: ia[0].spi_out,
        }]
    );
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);

    // The same Delete again names nothing we have: an empty answer, nothing else happens.
    let again = request_from_b(
        &mut mesh,
        ExchangeType::INFORMATIONAL,
        &[Payload::new(Delete::esp(&[ib[0].spi_in]))],
    );
    assert!(again.is_empty());
    assert!(mesh.net.node_mut(mesh.a).endpoint.poll_event().is_none());
}

fn only_notify(response: &[Payload]) -> NotifyType {
    let [Payload {
        body: PayloadBody::Notify(n),
        ..
    }] = response
    else {
        panic!("{response:?}");
    };
    n.notify_type
}

#[test]
fn create_child_sa_without_a_nonce_is_answered_invalid_syntax() {
    let mut mesh = established(26);
    let response = request_from_b(&mut mesh, ExchangeType::CREATE_CHILD_SA, &[]);
    assert_eq!(only_notify(&response), NotifyType::INVALID_SYNTAX);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn rekey_of_an_unknown_child_sa_is_answered_child_sa_not_found() {
    let mut mesh = established(24);
    // b names a's inbound SPI, which is not b's inbound SPI of any CHILD_SA.
    let ia = installs(&mesh.events(mesh.a));
    let rekey = Notify::rekey_sa(ProtocolId::ESP, ia[0].spi_in.to_be_bytes().to_vec());
    let response = request_from_b(
        &mut mesh,
        ExchangeType::CREATE_CHILD_SA,
        &[Payload::new(rekey)],
    );
    assert_eq!(only_notify(&response), NotifyType::CHILD_SA_NOT_FOUND);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn rekey_sa_notify_naming_no_esp_sa_is_answered_child_sa_not_found() {
    // An IKE SA rekey carries no REKEY_SA (RFC 7296 §1.3.2); one naming protocol IKE names
    // no CHILD_SA we have.
    let mut mesh = established(28);
    let rekey = Notify::rekey_sa(ProtocolId::IKE, Vec::new());
    let response = request_from_b(
        &mut mesh,
        ExchangeType::CREATE_CHILD_SA,
        &[Payload::new(rekey)],
    );
    assert_eq!(only_notify(&response), NotifyType::CHILD_SA_NOT_FOUND);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn empty_informational_is_answered_empty() {
    let mut mesh = established(25);
    assert!(request_from_b(&mut mesh, ExchangeType::INFORMATIONAL, &[]).is_empty());
}

#[test]
fn restarted_peer_coming_back_with_initial_contact_replaces_the_old_ike_sa() {
    let mut mesh = established(27);
    let old_b = installs(&mesh.events(mesh.b));
    mesh.events(mesh.a);

    // a's chassis restarts: a fresh endpoint that knows nothing of the old IKE SA.
    let start = mesh.net.now();
    let mut fresh = endpoint(99);
    fresh.set_wall_clock(start, super::ike_auth::fixture_time());
    let peer = fresh
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    *mesh.net.node_mut(mesh.a) = crate::engine::sim::Chassis::new(fresh, 0xa100_0000);
    let now = mesh.net.now();
    mesh.net
        .node_mut(mesh.a)
        .endpoint
        .initiate(now, peer)
        .unwrap();
    mesh.run(Duration::from_secs(2));

    // b deletes the old IKE SA and CHILD_SAs on INITIAL_CONTACT and keeps the new one.
    let eb = mesh.events(mesh.b);
    for old in &old_b {
        assert!(
            eb.contains(&Event::ChildSaDelete {
                peer: mesh.b_to_a,
                spi_in: old.spi_in,
                spi_out: old.spi_out,
            }),
            "{eb:?}"
        );
    }
    assert!(eb.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::DeletedByPeer,
            ..
        }
    )));
    assert_eq!(installs(&eb).len(), 2);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 1);
    assert_eq!(installs(&mesh.events(mesh.a)).len(), 2);
}

#[test]
fn fragmented_request_is_reassembled_out_of_order_and_answered_once() {
    let mut mesh = established(29);
    let ia = installs(&mesh.events(mesh.a));
    let ib = installs(&mesh.events(mesh.b));

    // b sends a Delete of its first CHILD_SA cut into tiny SKF fragments.
    let b = &mut mesh.net.node_mut(mesh.b).endpoint;
    let id = b.ike_sas().next().unwrap();
    let mid = b.ike_sas.get_mut(&id).unwrap().requests.allocate().unwrap();
    let inner = [Payload::new(Delete::esp(&[ib[0].spi_in]))];
    let fragments = b.seal_fragments(id, ExchangeType::INFORMATIONAL, mid, &inner, 4);
    assert!(fragments.len() >= 3, "{}", fragments.len());
    let (local, remote) = {
        let sa = &b.ike_sas[&id];
        (sa.local, sa.remote)
    };

    // Last first, with a duplicate: a answers only when the message is whole, and once.
    let now = mesh.net.now();
    let a = &mut mesh.net.node_mut(mesh.a).endpoint;
    let mut order: Vec<&Vec<u8>> = fragments.iter().rev().collect();
    order.insert(1, &fragments[fragments.len() - 1]);
    let mut responses = Vec::new();
    for f in order {
        a.handle_datagram(now, remote, local, f);
        responses.extend(std::iter::from_fn(|| a.poll_transmit()));
    }
    assert_eq!(responses.len(), 1);
    let events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(
        events,
        vec![Event::ChildSaDelete {
            peer: mesh.a_to_b,
            spi_in: ia[0].spi_in,
            spi_out: ia[0].spi_out,
        }]
    );

    // The whole request again (b did not get the answer): the cached response, once.
    for f in &fragments {
        a.handle_datagram(now, remote, local, f);
    }
    let again: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].bytes, responses[0].bytes);
}
