//! IKE fragmentation (RFC 7383) on a path that drops IP fragments: IKE_AUTH with RSA-2048
//! certificates gets through only in SKF fragments, lost fragments are recovered by
//! retransmission, and reassembly is bounded in size and time.

use std::time::Duration;

use super::ike_auth::{installs, Mesh};
use super::*;
use crate::codec::{locate_encrypted_payload, Header, Nonce, Payload};
use crate::engine::sim::Datagram;
use crate::protection::{MAX_REASSEMBLED_LEN, MAX_REASSEMBLY_TIME};
use crate::registry::{ExchangeType, PayloadType};

/// The MTU of an IPv6 path that drops IP fragments, and our default fragment size.
const MTU: usize = 1280;

fn mtu_1280() -> Conditions {
    Conditions {
        mtu: MTU,
        ..Conditions::default()
    }
}

/// The IKE message in a datagram (without the non-ESP marker on port 4500).
fn ike_of(d: &Datagram) -> &[u8] {
    if d.dst.port() == NAT_T_PORT {
        d.bytes.get(4..).unwrap_or(&[])
    } else {
        &d.bytes
    }
}

/// `(exchange, is response, fragment number, total)` of an SKF datagram.
fn skf(d: &Datagram) -> Option<(ExchangeType, bool, u16, u16)> {
    let message = ike_of(d);
    let header = Header::decode(message).ok()?;
    let location = locate_encrypted_payload(message).ok()??;
    let f = location.fragment?;
    Some((
        header.exchange_type,
        header.flags.is_response(),
        f.number,
        f.total,
    ))
}

use crate::engine::config::NAT_T_PORT;

#[test]
fn ike_auth_with_rsa_2048_certificates_over_mtu_1280_completes_only_in_fragments() {
    let mut mesh = Mesh::with(1, mtu_1280(), |_| {}, |_| {});
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_eq!(mesh.net.stats().too_big, 0);
    let auth: Vec<_> = mesh
        .net
        .deliveries()
        .iter()
        .filter_map(|d| skf(&d.datagram))
        .filter(|(exchange, ..)| *exchange == ExchangeType::IKE_AUTH)
        .collect();
    assert!(auth
        .iter()
        .any(|(_, response, _, total)| !response && *total > 1));
    assert!(auth
        .iter()
        .any(|(_, response, _, total)| *response && *total > 1));
    assert!(mesh
        .net
        .deliveries()
        .iter()
        .all(|d| d.datagram.bytes.len() <= MTU));

    // The same certificates in whole messages do not get through this path at all.
    let whole = EndpointConfig {
        fragmentation: false,
        ..EndpointConfig::default()
    };
    let mut mesh = Mesh::with_endpoints(1, mtu_1280(), (whole.clone(), whole), |_| {}, |_| {});
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(60));
    assert!(installs(&mesh.events(mesh.a)).is_empty());
    assert!(mesh.net.stats().too_big > 0);
}

#[test]
fn lost_request_fragment_is_recovered_by_the_retransmission_of_every_fragment() {
    let mut mesh = Mesh::with(2, mtu_1280(), |_| {}, |_| {});
    // The first transmission of the IKE_AUTH request's last fragment is lost.
    mesh.net.set_filter(drop_first(
        |d| matches!(skf(d), Some((ExchangeType::IKE_AUTH, false, n, t)) if n == t),
    ));
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(10));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_eq!(mesh.net.stats().filtered, 1);
    let request_fragments = mesh
        .net
        .deliveries()
        .iter()
        .filter(|d| matches!(skf(&d.datagram), Some((ExchangeType::IKE_AUTH, false, ..))))
        .count();
    let (_, _, _, total) = mesh
        .net
        .deliveries()
        .iter()
        .find_map(|d| skf(&d.datagram).filter(|f| f.0 == ExchangeType::IKE_AUTH && !f.1))
        .unwrap();
    // All fragments twice, but the lost one once.
    assert_eq!(request_fragments, 2 * usize::from(total) - 1);
}

#[test]
fn lost_response_fragment_is_resent_with_every_fragment_of_the_cached_response() {
    let mut mesh = Mesh::with(3, mtu_1280(), |_| {}, |_| {});
    mesh.net.set_filter(drop_first(|d| {
        matches!(skf(d), Some((ExchangeType::IKE_AUTH, true, 1, _)))
    }));
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(10));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    // b installed once: the retransmitted request was answered from the cache, on its first
    // fragment only (RFC 7383 §2.6.1), so the response went out exactly twice.
    let fragment_ones = mesh
        .net
        .deliveries()
        .iter()
        .filter(|d| matches!(skf(&d.datagram), Some((ExchangeType::IKE_AUTH, true, 1, _))))
        .count();
    assert_eq!(
        fragment_ones, 1,
        "the second copy is delivered, the first was lost"
    );
    assert_eq!(mesh.net.stats().filtered, 1);
}

/// An established mesh on a 1280-octet path, with DPD off so nothing else is in flight.
fn established(seed: u64) -> Mesh {
    let mut mesh = Mesh::with(
        seed,
        mtu_1280(),
        |a| a.dpd_interval = None,
        |b| b.dpd_interval = None,
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    assert_eq!(installs(&mesh.events(mesh.b)).len(), 2);
    mesh
}

/// `a` cuts an INFORMATIONAL request with `inner` into fragments of `piece_len` plaintext
/// octets, for the Message ID `ahead` after its next one.
fn informational_fragments(
    mesh: &mut Mesh,
    ahead: u32,
    inner: &[Payload],
    piece_len: usize,
) -> Vec<Vec<u8>> {
    let a = mesh.a;
    let endpoint = &mut mesh.net.node_mut(a).endpoint;
    let id = endpoint.ike_sas().next().unwrap();
    let mid = endpoint.ike_sas[&id].requests.next_message_id().unwrap() + ahead;
    endpoint.seal_fragments(id, ExchangeType::INFORMATIONAL, mid, inner, piece_len)
}

/// Hands `fragments` to `b` as if from `a`, at `now`; returns how many datagrams `b` sends.
fn to_b(mesh: &mut Mesh, fragments: &[Vec<u8>], now: Instant) -> usize {
    let b = mesh.b;
    let endpoint = &mut mesh.net.node_mut(b).endpoint;
    for f in fragments {
        endpoint.handle_datagram(now, SocketAddr::new(B, 500), SocketAddr::new(A, 500), f);
    }
    std::iter::from_fn(|| endpoint.poll_transmit()).count()
}

fn held_by_b(mesh: &Mesh) -> usize {
    let endpoint = &mesh.net.node(mesh.b).endpoint;
    let id = endpoint.ike_sas().next().unwrap();
    endpoint.ike_sas[&id].reassembler.incomplete().len()
}

#[test]
fn fragmented_request_is_answered_once_complete() {
    let mut mesh = established(4);
    let small = [Payload::new(Nonce { data: vec![7; 16] })];
    let fragments = informational_fragments(&mut mesh, 0, &small, 1_000);
    assert_eq!(fragments.len(), 1);
    let now = mesh.net.now();
    assert_eq!(
        to_b(&mut mesh, &fragments, now),
        1,
        "one fragment of one is a message"
    );

    let nonce = [Payload::new(Nonce { data: vec![7; 64] })];
    let fragments = informational_fragments(&mut mesh, 1, &nonce, 16);
    assert!(fragments.len() > 4);
    let (last, rest) = fragments.split_last().unwrap();
    assert_eq!(to_b(&mut mesh, rest, now), 0);
    assert_eq!(held_by_b(&mesh), 1);
    assert_eq!(to_b(&mut mesh, std::slice::from_ref(last), now), 1);
    assert_eq!(held_by_b(&mesh), 0);
}

#[test]
fn reassembly_beyond_the_size_limit_is_dropped_and_holds_nothing() {
    let mut mesh = established(5);
    // Three nonces of 50 000 octets: more than MAX_REASSEMBLED_LEN in 1 300-octet pieces.
    let big: Vec<Payload> = (0..3)
        .map(|_| {
            Payload::new(Nonce {
                data: vec![1; 50_000],
            })
        })
        .collect();
    let fragments = informational_fragments(&mut mesh, 0, &big, 1_300);
    assert!(fragments.len() * 1_300 > MAX_REASSEMBLED_LEN);
    let now = mesh.net.now();
    let delivered_before = mesh.net.stats().delivered as usize;
    assert_eq!(to_b(&mut mesh, &fragments, now), 0, "never answered");
    // What was held is dropped at the limit; the fragments after it start again and stay
    // below it (they cannot complete: the first fragment is gone).
    let endpoint = &mesh.net.node(mesh.b).endpoint;
    let id = endpoint.ike_sas().next().unwrap();
    let held = endpoint.ike_sas[&id].reassembler.incomplete();
    assert!(held
        .iter()
        .all(|&(_, have, _)| usize::from(have) * 1_300 <= MAX_REASSEMBLED_LEN));

    // The IKE SA carries on: a's Delete (a whole message, same Message ID) is answered.
    let (a, now, peer) = (mesh.a, mesh.net.now(), mesh.a_to_b);
    mesh.net.node_mut(a).endpoint.terminate(now, peer).unwrap();
    mesh.run(Duration::from_secs(2));
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 0);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 0);
    assert_eq!(mesh.net.stats().delivered as usize, delivered_before + 2);
}

#[test]
fn incomplete_message_older_than_the_reassembly_time_is_dropped() {
    let mut mesh = established(6);
    let nonce = [Payload::new(Nonce { data: vec![7; 64] })];
    let fragments = informational_fragments(&mut mesh, 0, &nonce, 32);
    let (first, rest) = fragments.split_first().unwrap();
    let start = mesh.net.now();
    to_b(&mut mesh, std::slice::from_ref(first), start);
    assert_eq!(held_by_b(&mesh), 1);

    // The rest arrives too late: the first fragment was dropped, nothing completes.
    let late = start + MAX_REASSEMBLY_TIME + Duration::from_secs(1);
    assert_eq!(to_b(&mut mesh, rest, late), 0);

    // A retransmission of every fragment completes afresh.
    assert_eq!(to_b(&mut mesh, &fragments, late), 1);
}

#[test]
fn skf_payload_type_is_what_the_sender_uses() {
    // Guards the helper above: the fragments we send are SKF payloads.
    let mut mesh = established(7);
    let small = [Payload::new(Nonce { data: vec![7; 16] })];
    let fragments = informational_fragments(&mut mesh, 0, &small, 1_000);
    let location = locate_encrypted_payload(&fragments[0]).unwrap().unwrap();
    assert_eq!(location.payload_type, PayloadType::SKF);
}

/// Fragment 1 of `total` of an INFORMATIONAL request, sealed with `a`'s real keys: a
/// genuine peer claiming that many fragments.
fn first_of(mesh: &Mesh, total: u16) -> Vec<u8> {
    use crate::codec::{encode_encrypted_prefix, EncryptedPayloadHeader, Flags, Fragment};
    use crate::crypto::sk::{seal_padded, sealed_body_len};
    use crate::engine::ike_sa::State;

    let endpoint = &mesh.net.node(mesh.a).endpoint;
    let id = endpoint.ike_sas().next().unwrap();
    let sa = &endpoint.ike_sas[&id];
    let State::Established(e) = &sa.state else {
        panic!("established")
    };
    let mid = sa.requests.next_message_id().unwrap();
    let header = Header::new(
        sa.spi_i,
        sa.spi_r,
        ExchangeType::INFORMATIONAL,
        Flags::INITIATOR,
        mid,
    );
    let encrypted = EncryptedPayloadHeader {
        first_inner: PayloadType::NONCE,
        fragment: Some(Fragment { number: 1, total }),
    };
    let plaintext = [0u8; 16];
    let mut message =
        encode_encrypted_prefix(&header, &[], encrypted, sealed_body_len(plaintext.len(), 0))
            .unwrap();
    let iv = [0xee; crate::crypto::aead::IV_LEN];
    let sk_ei = e.keys.sk_ei.as_bytes();
    let body = seal_padded(
        &crate::crypto::RingProvider,
        e.cipher,
        sk_ei,
        &iv,
        &message,
        &plaintext,
        0,
    )
    .unwrap();
    message.extend_from_slice(&body);
    message
}

#[test]
fn message_of_more_than_the_most_fragments_is_not_held() {
    use crate::protection::MAX_FRAGMENTS_PER_MESSAGE;

    let mut mesh = established(8);
    let now = mesh.net.now();
    let too_many = first_of(&mesh, MAX_FRAGMENTS_PER_MESSAGE + 1);
    assert_eq!(to_b(&mut mesh, &[too_many], now), 0);
    assert_eq!(held_by_b(&mesh), 0, "nothing is held for it");

    let most = first_of(&mesh, MAX_FRAGMENTS_PER_MESSAGE);
    assert_eq!(to_b(&mut mesh, &[most], now), 0);
    assert_eq!(
        held_by_b(&mesh),
        1,
        "the most fragments allowed are waited for"
    );
}
