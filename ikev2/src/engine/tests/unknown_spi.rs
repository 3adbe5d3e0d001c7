//! Messages outside of any IKE SA (RFC 7296 §1.5, §2.21.4): INVALID_IKE_SPI sent for
//! encrypted requests of IKE SAs we do not hold, rate-limited and never to a response; a
//! received INVALID_IKE_SPI tears nothing down; unconfigured peers are not answered.

use std::time::Duration;

use super::ike_auth::{fixture_time, installs, Mesh};
use super::*;
use crate::codec::{Flags, Header, Message, Notify, Payload, PayloadBody};
use crate::engine::event::DownReason;
use crate::engine::sim::Datagram;
use crate::engine::timers::RETRANSMIT_MAX_RETRIES;
use crate::engine::unknown_spi::MAX_INVALID_SPI_ANSWERS_PER_SECOND;
use crate::registry::{ExchangeType, NotifyType};

/// Whether `d` is an unprotected INFORMATIONAL carrying INVALID_IKE_SPI.
fn is_invalid_spi(d: &Datagram) -> bool {
    Message::decode(&d.bytes).is_ok_and(|m| {
        m.header.exchange_type == ExchangeType::INFORMATIONAL
            && m.payloads.iter().any(|p| {
                matches!(&p.body, PayloadBody::Notify(n) if n.notify_type == NotifyType::INVALID_IKE_SPI)
            })
    })
}

/// `node` restarts: a fresh endpoint with the same configuration and no IKE SA.
fn restart(mesh: &mut Mesh, node: NodeId, seed: u64) {
    let (us, them, local, remote) = if node == mesh.a {
        ("chassis-1", "chassis-2", A, B)
    } else {
        ("chassis-2", "chassis-1", B, A)
    };
    let mut fresh = endpoint(seed);
    fresh.set_wall_clock(mesh.net.now(), fixture_time());
    fresh
        .add_peer(geneve_peer(local, us, remote, them))
        .unwrap();
    mesh.net.node_mut(node).endpoint = fresh;
}

#[test]
fn restarted_peer_answers_our_liveness_check_with_invalid_ike_spi_which_tears_nothing_down() {
    let mut mesh = Mesh::new(1);
    let sa = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    assert_eq!(installs(&mesh.events(mesh.a)).len(), 2);
    let b = mesh.b;
    restart(&mut mesh, b, 99);

    // a's DPD after 30 s reaches a b that holds no IKE SA.
    mesh.net.advance(Duration::from_secs(31), STEPS);
    let answer = mesh
        .net
        .deliveries()
        .iter()
        .find(|d| d.datagram.dst.ip() == A && is_invalid_spi(&d.datagram))
        .expect("b answered INVALID_IKE_SPI")
        .datagram
        .clone();
    let request = mesh
        .net
        .deliveries()
        .iter()
        .rev()
        .find(|d| d.datagram.dst.ip() == B)
        .unwrap()
        .datagram
        .clone();
    let (q, r) = (
        Header::decode(&request.bytes).unwrap(),
        Header::decode(&answer.bytes).unwrap(),
    );
    // RFC 7296 §1.5: the request's SPIs and Message ID, the R flag, the I flag flipped.
    assert_eq!(
        (r.spi_i, r.spi_r, r.message_id),
        (q.spi_i, q.spi_r, q.message_id)
    );
    assert!(r.flags.is_response());
    assert_eq!(r.flags.is_initiator(), !q.flags.is_initiator());
    // The check and its first retransmission fell in those 31 s, each answered.
    assert_eq!(
        mesh.net.node(mesh.b).endpoint.stats().invalid_ike_spi_sent,
        2
    );

    // Unauthenticated: a keeps its IKE SA and CHILD_SAs; only the liveness check decides.
    assert!(
        mesh.net
            .node(mesh.a)
            .endpoint
            .stats()
            .invalid_ike_spi_received
            >= 1
    );
    assert!(mesh.net.node(mesh.a).endpoint.ike_sa_info(sa).is_some());
    let evs = mesh.events(mesh.a);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::ChildSaDelete { .. })),
        "{evs:?}"
    );

    // The check runs out (0.5 s doubling, RETRANSMIT_MAX_RETRIES retries) and only then is the
    // IKE SA given up. No INVALID_IKE_SPI answer was ever answered.
    mesh.net.advance(Duration::from_secs(60), STEPS);
    let evs = mesh.events(mesh.a);
    assert!(evs.contains(&Event::IkeSaDown {
        peer: mesh.a_to_b,
        ike_sa: sa,
        reason: DownReason::PeerUnreachable,
    }));
    let to_b = mesh
        .net
        .deliveries()
        .iter()
        .filter(|d| d.datagram.dst.ip() == B && d.at > Duration::from_secs(30))
        .count();
    assert_eq!(to_b, 1 + RETRANSMIT_MAX_RETRIES as usize);
}

/// An encrypted INFORMATIONAL request of an IKE SA nobody holds, from `A` to `B`.
fn stray_request(spi: u64, response: bool) -> Vec<u8> {
    // A real SK payload is not needed to be recognised as encrypted: the header and an SK
    // payload header suffice, and nothing is decrypted without an IKE SA.
    let flags = if response {
        Flags::INITIATOR.with(Flags::RESPONSE)
    } else {
        Flags::INITIATOR
    };
    let body = [0u8; 8 + 16 + 16];
    let sk_len = 4 + body.len();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&spi.to_be_bytes());
    bytes.extend_from_slice(&(!spi).to_be_bytes());
    bytes.push(crate::registry::PayloadType::SK.0);
    bytes.push(0x20);
    bytes.push(ExchangeType::INFORMATIONAL.0);
    bytes.push(flags.0);
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&((28 + sk_len) as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&(sk_len as u16).to_be_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

#[test]
fn invalid_ike_spi_answers_are_rate_limited_and_never_sent_to_responses() {
    let mut b = endpoint(2);
    let (local, remote) = (SocketAddr::new(B, 500), SocketAddr::new(A, 500));
    let start = Instant::now();
    let burst = 3 * MAX_INVALID_SPI_ANSWERS_PER_SECOND as u64;
    for spi in 1..=burst {
        b.handle_datagram(start, local, remote, &stray_request(spi, false));
    }
    let answers: Vec<Transmit> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(answers.len(), MAX_INVALID_SPI_ANSWERS_PER_SECOND as usize);
    assert!(answers.iter().all(|t| {
        let m = Message::decode(&t.bytes).unwrap();
        m.header.flags.is_response()
            && matches!(&m.payloads[..], [p] if matches!(&p.body,
                PayloadBody::Notify(n) if n.notify_type == NotifyType::INVALID_IKE_SPI))
    }));
    let stats = b.stats();
    assert_eq!(
        stats.invalid_ike_spi_suppressed,
        burst - u64::from(MAX_INVALID_SPI_ANSWERS_PER_SECOND)
    );

    // A second later the budget is back.
    let later = start + Duration::from_secs(1);
    b.handle_datagram(later, local, remote, &stray_request(burst + 1, false));
    assert!(b.poll_transmit().is_some());

    // Responses are never answered, INVALID_IKE_SPI itself included (no ping-pong).
    let much_later = start + Duration::from_secs(10);
    b.handle_datagram(much_later, local, remote, &stray_request(7, true));
    let echo = answers[0].bytes.clone();
    b.handle_datagram(much_later, local, remote, &echo);
    assert!(b.poll_transmit().is_none());
    assert_eq!(b.ike_sas().count(), 0);
}

#[test]
fn unencrypted_request_of_an_unknown_ike_sa_is_dropped() {
    let mut b = endpoint(3);
    // A bare header of a CREATE_CHILD_SA request: no SK payload.
    let mut bytes = vec![1u8; 8];
    bytes.extend_from_slice(&[2; 8]);
    bytes.extend_from_slice(&[0, 0x20, ExchangeType::CREATE_CHILD_SA.0, Flags::INITIATOR.0]);
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&28u32.to_be_bytes());
    b.handle_datagram(
        Instant::now(),
        SocketAddr::new(B, 500),
        SocketAddr::new(A, 500),
        &bytes,
    );
    assert!(b.poll_transmit().is_none());
}

#[test]
fn forged_invalid_ike_spi_keeps_the_ike_sa_and_starts_a_liveness_check() {
    let mut mesh = Mesh::with(
        4,
        super::ike_auth::jumbo(),
        |a| a.dpd_interval = None,
        |_| {},
    );
    let sa = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    assert_eq!(installs(&mesh.events(mesh.a)).len(), 2);
    let info = mesh.net.node(mesh.a).endpoint.ike_sa_info(sa).unwrap();

    // An off-path attacker sends a an INVALID_IKE_SPI in b's name for the live IKE SA.
    let forged = Message {
        header: Header::new(
            info.spi_i.to_be_bytes(),
            info.spi_r.to_be_bytes(),
            ExchangeType::INFORMATIONAL,
            Flags::RESPONSE,
            5,
        ),
        payloads: vec![Payload::new(Notify::status(NotifyType::INVALID_IKE_SPI))],
    }
    .encode()
    .unwrap();
    let before = mesh.net.deliveries().len();
    let now = mesh.net.now();
    let a = mesh.a;
    mesh.net
        .node_mut(a)
        .endpoint
        .handle_datagram(now, info.local, info.remote, &forged);
    assert!(
        mesh.net.node_mut(a).endpoint.poll_transmit().is_none(),
        "never answered"
    );
    mesh.run(Duration::from_secs(2));

    // a checked liveness at once (DPD is off for it), b answered, nothing was torn down.
    let checks = mesh.net.deliveries()[before..]
        .iter()
        .filter(|d| d.datagram.dst.ip() == B)
        .count();
    assert_eq!(checks, 1);
    assert!(mesh.net.node(a).endpoint.ike_sa_info(sa).is_some());
    let evs = mesh.events(a);
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::ChildSaDelete { .. } | Event::IkeSaDown { .. })),
        "{evs:?}"
    );
    assert_eq!(
        mesh.net.node(a).endpoint.stats().invalid_ike_spi_received,
        1
    );
}

#[test]
fn unconfigured_peer_is_not_answered_until_its_configuration_arrives() {
    let start = Instant::now();
    let mut a = endpoint_with(10, EndpointConfig::default());
    let mut b = endpoint_with(11, EndpointConfig::default());
    a.set_wall_clock(start, fixture_time());
    b.set_wall_clock(start, fixture_time());
    let peer = a
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    let mut net = Network::new(start, 10, super::ike_auth::jumbo());
    let na = net.add_node(&[A], crate::engine::sim::Chassis::new(a, 0xa000_0000));
    let nb = net.add_node(&[B], crate::engine::sim::Chassis::new(b, 0xb000_0000));
    net.node_mut(na).endpoint.initiate(start, peer).unwrap();

    // b's Southbound copy does not name a yet: its requests go unanswered.
    net.advance(Duration::from_secs(2), STEPS);
    assert!(net.deliveries().iter().all(|d| d.datagram.dst.ip() == B));
    assert!(net.node(nb).endpoint.stats().unconfigured_dropped >= 2);

    // Then it does, and the next retransmission gets through.
    net.node_mut(nb)
        .endpoint
        .add_peer(geneve_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    net.advance(Duration::from_secs(10), STEPS);
    assert_eq!(installs(&net.node_mut(na).take_events()).len(), 2);
    assert_eq!(installs(&net.node_mut(nb).take_events()).len(), 2);
}
