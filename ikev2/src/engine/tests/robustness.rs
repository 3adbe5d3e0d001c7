//! No bytes from the network make an endpoint panic or corrupt its state.

use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::engine::datagram::NON_ESP_MARKER;
use crate::registry::KeGroup;

/// Curve25519 keeps the many cases fast; the paths under test do not depend on the group.
fn fast_peer(local: IpAddr, us: &str, remote: IpAddr, them: &str) -> PeerConfig {
    let mut p = geneve_peer(local, us, remote, them);
    p.ike_proposals[0].ke = vec![KeGroup::CURVE25519];
    p
}

/// The initiator `a`, always the same from its seed, right after sending IKE_SA_INIT.
fn initiator() -> (Endpoint, Transmit) {
    let mut a = endpoint(1);
    let peer = a
        .add_peer(fast_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    a.initiate(Instant::now(), peer).unwrap();
    let request = a.poll_transmit().unwrap();
    (a, request)
}

fn responder() -> Endpoint {
    let mut b = endpoint(2);
    b.add_peer(fast_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    b
}

/// A responder endpoint for `a`, and a real IKE_SA_INIT request from `a`.
fn responder_and_request() -> (Endpoint, Vec<u8>) {
    static REQUEST: OnceLock<Vec<u8>> = OnceLock::new();
    let request = REQUEST.get_or_init(|| initiator().1.bytes).clone();
    (responder(), request)
}

/// `b`'s real response to `a`'s request.
fn response() -> Vec<u8> {
    static RESPONSE: OnceLock<Vec<u8>> = OnceLock::new();
    RESPONSE
        .get_or_init(|| {
            let (_, request) = initiator();
            let mut b = responder();
            b.handle_datagram(
                Instant::now(),
                request.remote,
                request.local,
                &request.bytes,
            );
            b.poll_transmit().unwrap().bytes
        })
        .clone()
}

fn feed(e: &mut Endpoint, port: u16, bytes: &[u8]) {
    let now = Instant::now();
    e.handle_datagram(
        now,
        SocketAddr::new(B, port),
        SocketAddr::new(A, port),
        bytes,
    );
    while e.poll_transmit().is_some() {}
    while e.poll_event().is_some() {}
    e.handle_timeout(now);
}

#[test]
fn unmodified_response_completes_ike_sa_init() {
    let (mut a, request) = initiator();
    a.handle_datagram(Instant::now(), request.local, request.remote, &response());
    let sa = a.ike_sas().next().unwrap();
    assert_eq!(a.ike_sa_info(sa).unwrap().state, "IKE_SA_INIT done");
}

#[test]
fn keepalives_and_esp_on_the_nat_t_port_are_ignored() {
    let (mut b, _) = responder_and_request();
    feed(&mut b, 4500, &[0xff]);
    feed(&mut b, 4500, &[0xc0, 0, 0, 1, 0, 0, 0, 1, 0xaa]);
    feed(&mut b, 4500, &[0]);
    assert_eq!(b.ike_sas().count(), 0);
}

#[test]
fn real_request_over_the_nat_t_port_is_answered_there() {
    let (mut b, request) = responder_and_request();
    let mut framed = NON_ESP_MARKER.to_vec();
    framed.extend_from_slice(&request);
    let now = Instant::now();
    b.handle_datagram(
        now,
        SocketAddr::new(B, 4500),
        SocketAddr::new(A, 4500),
        &framed,
    );
    let t = b.poll_transmit().unwrap();
    assert_eq!(t.remote.port(), 4500);
    assert_eq!(t.bytes[..4], NON_ESP_MARKER);
    assert_eq!(b.ike_sas().count(), 1);
}

#[test]
fn request_from_an_unconfigured_address_is_dropped() {
    let (mut b, request) = responder_and_request();
    let stranger = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)), 500);
    b.handle_datagram(Instant::now(), SocketAddr::new(B, 500), stranger, &request);
    assert!(b.poll_transmit().is_none());
    assert_eq!(b.ike_sas().count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_datagrams_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        nat_t in any::<bool>(),
    ) {
        let (mut b, _) = responder_and_request();
        feed(&mut b, if nat_t { 4500 } else { 500 }, &bytes);
    }

    #[test]
    fn mutated_ike_sa_init_requests_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut b, mut request) = responder_and_request();
        for (i, v) in flips {
            let i = i.index(request.len());
            request[i] ^= v;
        }
        if truncate {
            request.truncate(cut.index(request.len()));
        }
        feed(&mut b, 500, &request);
        prop_assert!(b.ike_sas().count() <= 1);
    }

    #[test]
    fn mutated_ike_sa_init_responses_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let now = Instant::now();
        let (mut a, request) = initiator();
        let mut response = response();
        for (i, v) in flips {
            let i = i.index(response.len());
            response[i] ^= v;
        }
        a.handle_datagram(now, request.local, request.remote, &response);
        while a.poll_transmit().is_some() {}
        a.handle_timeout(now + std::time::Duration::from_secs(100));
        prop_assert!(a.ike_sas().count() <= 1);
    }
}
