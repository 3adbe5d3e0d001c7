//! A responder under load demands stateless COOKIEs (RFC 7296 §2.6), told as the exchanges
//! happen.

use std::time::Duration;

use super::ike_auth::Mesh;
use super::*;
use crate::codec::{Header, Message, Notify, Payload, PayloadBody};
use crate::engine::cookie::{COOKIE_LEN, COOKIE_SECRET_LIFETIME};
use crate::registry::{ExchangeType, NotifyType};

/// An endpoint configuration that demands COOKIEs from `threshold` half-open IKE SAs on.
fn under_load(threshold: usize) -> EndpointConfig {
    EndpointConfig {
        cookie_threshold: threshold,
        ..EndpointConfig::default()
    }
}

/// A pair whose `b` demands COOKIEs always.
fn pair_with_loaded_b(seed: u64) -> Pair {
    let configs = (EndpointConfig::default(), under_load(0));
    Pair::with_endpoints(seed, Conditions::default(), configs, |_| {}, |_| {})
}

/// The COOKIE notify of an IKE_SA_INIT message, if it has one.
fn cookie_of(bytes: &[u8]) -> Option<Vec<u8>> {
    Message::decode(bytes)
        .ok()?
        .payloads
        .into_iter()
        .find_map(|p| match p.body {
            PayloadBody::Notify(n) if n.notify_type == NotifyType::COOKIE => Some(n.data),
            _ => None,
        })
}

/// `request` with its COOKIE replaced by `cookie`.
fn with_cookie(request: &[u8], cookie: Vec<u8>) -> Vec<u8> {
    let mut m = Message::decode(request).unwrap();
    for p in &mut m.payloads {
        if matches!(&p.body, PayloadBody::Notify(n) if n.notify_type == NotifyType::COOKIE) {
            *p = Payload::new(Notify::cookie(cookie.clone()));
        }
    }
    m.encode().unwrap()
}

/// Delivers `t` to the node it is addressed to and returns what that node sends back.
fn deliver(pair: &mut Pair, node: NodeId, t: &Transmit, now: Instant) -> Vec<Transmit> {
    let endpoint = pair.net.node_mut(node);
    endpoint.handle_datagram(now, t.remote, t.local, &t.bytes);
    std::iter::from_fn(|| endpoint.poll_transmit()).collect()
}

/// `a` initiates to `b`, `b` answers with a COOKIE, `a` retries with it; returns the retry
/// (not yet delivered) and the instant it was made.
fn cookie_round(pair: &mut Pair) -> (Transmit, Instant) {
    let now = pair.net.now();
    let peer = pair.a_to_b;
    pair.a().initiate(now, peer).unwrap();
    let request = pair.a().poll_transmit().unwrap();
    assert_eq!(cookie_of(&request.bytes), None);

    let b = pair.b;
    let answers = deliver(pair, b, &request, now);
    let [answer] = answers.as_slice() else {
        panic!("b answers once: {answers:?}")
    };
    let cookie = cookie_of(&answer.bytes).expect("b answers with a COOKIE");
    assert_eq!(cookie.len(), COOKIE_LEN);
    assert_eq!(
        pair.net.node(pair.b).ike_sas().count(),
        0,
        "no state for it"
    );

    let a = pair.a;
    let retries = deliver(pair, a, answer, now);
    let [retry] = retries.as_slice() else {
        panic!("a retries once: {retries:?}")
    };
    assert_eq!(cookie_of(&retry.bytes), Some(cookie));
    (retry.clone(), now)
}

#[test]
fn loaded_responder_demands_a_cookie_and_honours_its_echo() {
    let mut pair = pair_with_loaded_b(1);
    pair.initiate_from_a();
    pair.run(Duration::from_secs(1));

    let a = pair.only_ike_sa(pair.a).expect("a has one IKE SA");
    let b = pair.only_ike_sa(pair.b).expect("b has one IKE SA");
    assert_eq!(
        pair.net.node(pair.a).ike_sa_info(a).unwrap().state,
        "IKE_SA_INIT done"
    );
    assert_eq!(
        pair.net.node(pair.a).ike_sa_keys(a),
        pair.net.node(pair.b).ike_sa_keys(b)
    );
    let stats = pair.net.node(pair.b).stats();
    assert_eq!((stats.cookies_sent, stats.cookies_accepted), (1, 1));

    // RFC 7296 §2.6: the retry carries the COOKIE as its first payload.
    let requests: Vec<Message> = pair
        .net
        .deliveries()
        .iter()
        .filter(|d| d.datagram.dst.ip() == B)
        .map(|d| Message::decode(&d.datagram.bytes).unwrap())
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(matches!(&requests[1].payloads[0].body,
        PayloadBody::Notify(n) if n.notify_type == NotifyType::COOKIE));
}

#[test]
fn cookie_handshake_completes_ike_auth_with_the_cookie_in_the_signed_request() {
    // The initiator's AUTH signs its IKE_SA_INIT request as last sent, COOKIE included.
    let mut mesh = Mesh::with_endpoints(
        2,
        super::ike_auth::jumbo(),
        (EndpointConfig::default(), under_load(0)),
        |_| {},
        |_| {},
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));
    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_eq!(mesh.net.node(mesh.b).endpoint.stats().cookies_sent, 1);
}

#[test]
fn wrong_cookie_gets_no_state_and_a_fresh_cookie() {
    let mut pair = pair_with_loaded_b(3);
    let (retry, now) = cookie_round(&mut pair);
    let good = cookie_of(&retry.bytes).unwrap();
    let mut forged_cookie = good.clone();
    forged_cookie[5] ^= 1;
    let forged = Transmit {
        bytes: with_cookie(&retry.bytes, forged_cookie.clone()),
        ..retry.clone()
    };

    let answers = deliver(&mut pair, NodeId(1), &forged, now);
    assert_eq!(pair.net.node(pair.b).ike_sas().count(), 0);
    let [answer] = answers.as_slice() else {
        panic!("{answers:?}")
    };
    assert_eq!(cookie_of(&answer.bytes), Some(good.clone()));
    let stats = pair.net.node(pair.b).stats();
    assert_eq!((stats.cookies_rejected, stats.cookies_sent), (1, 2));

    // A COOKIE is bound to the SPIi it was made for.
    let mut other_spi = retry.bytes.clone();
    other_spi[0] ^= 0x80;
    let moved = Transmit {
        bytes: other_spi,
        ..retry.clone()
    };
    deliver(&mut pair, NodeId(1), &moved, now);
    assert_eq!(pair.net.node(pair.b).ike_sas().count(), 0);

    // The genuine retry still gets in.
    let answers = deliver(&mut pair, NodeId(1), &retry, now);
    assert_eq!(pair.net.node(pair.b).ike_sas().count(), 1);
    assert_eq!(cookie_of(&answers[0].bytes), None);
}

#[test]
fn cookie_survives_one_secret_rotation_between_request_and_retry() {
    let mut pair = pair_with_loaded_b(4);
    let (retry, now) = cookie_round(&mut pair);

    // b's secret is replaced before the retry arrives.
    let b = pair.b;
    let rotation = pair.net.node_mut(b).poll_timeout().unwrap();
    assert_eq!(rotation, now + COOKIE_SECRET_LIFETIME);
    pair.net.node_mut(b).handle_timeout(rotation);

    deliver(&mut pair, b, &retry, rotation);
    assert_eq!(pair.net.node(b).ike_sas().count(), 1);
    assert_eq!(pair.net.node(b).stats().cookies_accepted, 1);
}

#[test]
fn cookie_older_than_two_secrets_is_refused_with_a_new_one() {
    let mut pair = pair_with_loaded_b(5);
    let (retry, now) = cookie_round(&mut pair);
    let old = cookie_of(&retry.bytes).unwrap();
    let b = pair.b;

    // Rotate twice, with COOKIEs handed out in between so the secrets keep rotating.
    let first = now + COOKIE_SECRET_LIFETIME;
    pair.net.node_mut(b).handle_timeout(first);
    let mut other = retry.clone();
    other.bytes[1] ^= 1;
    deliver(&mut pair, b, &other, first);
    pair.net
        .node_mut(b)
        .handle_timeout(first + COOKIE_SECRET_LIFETIME);

    let answers = deliver(&mut pair, b, &retry, first + COOKIE_SECRET_LIFETIME);
    assert_eq!(pair.net.node(b).ike_sas().count(), 0);
    let fresh = cookie_of(&answers[0].bytes).unwrap();
    assert_ne!(fresh, old);
    assert_ne!(fresh[0], old[0], "made by a newer secret");
}

#[test]
fn responder_below_the_threshold_sends_no_cookie() {
    let mut pair = Pair::new(6, Conditions::default());
    pair.initiate_from_a();
    pair.run(Duration::from_secs(1));
    assert!(pair.only_ike_sa(pair.b).is_some());
    assert_eq!(pair.net.node(pair.b).stats().cookies_sent, 0);
    // No secret was ever drawn, so no timer is armed for one.
    assert_eq!(
        pair.net.node(pair.b).cookies.next_timeout(),
        None,
        "an idle responder keeps no COOKIE secret"
    );
}

#[test]
fn flood_of_ike_sa_init_requests_from_random_spis_keeps_state_at_the_threshold() {
    const THRESHOLD: usize = 8;
    const FLOOD: usize = 500;
    let mut a = endpoint(7);
    let peer = a
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    let mut b = endpoint_with(8, under_load(THRESHOLD));
    b.add_peer(geneve_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    let now = Instant::now();
    a.initiate(now, peer).unwrap();
    let template = a.poll_transmit().unwrap();

    // The same genuine request, again and again from "new" initiators: SPIi and Ni random.
    let nonce = Message::decode(&template.bytes)
        .unwrap()
        .payloads
        .into_iter()
        .find_map(|p| match p.body {
            PayloadBody::Nonce(n) => Some(n.data),
            _ => None,
        })
        .unwrap();
    let nonce_at = template
        .bytes
        .windows(nonce.len())
        .position(|w| w == nonce.as_slice())
        .unwrap();
    let mut rng = crate::engine::sim::SimRng::new(9);
    let mut answers = 0;
    for _ in 0..FLOOD {
        let mut bytes = template.bytes.clone();
        bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
        bytes[nonce_at..nonce_at + 8].copy_from_slice(&rng.next_u64().to_be_bytes());
        b.handle_datagram(now, template.remote, template.local, &bytes);
        answers += std::iter::from_fn(|| b.poll_transmit()).count();
        assert!(b.ike_sas().count() <= THRESHOLD);
    }

    assert_eq!(b.ike_sas().count(), THRESHOLD);
    assert_eq!(answers, FLOOD, "every request is answered once");
    let stats = b.stats();
    assert_eq!(stats.cookies_sent, (FLOOD - THRESHOLD) as u64);

    // The genuine initiator still gets in, by echoing its COOKIE.
    b.handle_datagram(now, template.remote, template.local, &template.bytes);
    let answer = b.poll_transmit().unwrap();
    assert!(cookie_of(&answer.bytes).is_some());
    a.handle_datagram(now, answer.remote, answer.local, &answer.bytes);
    let retry = a.poll_transmit().unwrap();
    b.handle_datagram(now, retry.remote, retry.local, &retry.bytes);
    let response = b.poll_transmit().unwrap();
    assert!(Header::decode(&response.bytes).unwrap().spi_r != [0; 8]);
    assert_eq!(b.ike_sas().count(), THRESHOLD + 1);
    a.handle_datagram(now, response.remote, response.local, &response.bytes);
    let sa = a.ike_sas().next().unwrap();
    assert_eq!(a.ike_sa_info(sa).unwrap().state, "IKE_SA_INIT done");
    assert_eq!(
        Header::decode(&response.bytes).unwrap().exchange_type,
        ExchangeType::IKE_SA_INIT
    );
}

#[test]
fn valid_cookies_do_not_lift_the_half_open_ceiling() {
    let config = EndpointConfig {
        cookie_threshold: 0,
        max_half_open: 2,
        ..EndpointConfig::default()
    };
    let mut b = endpoint_with(10, config);
    b.add_peer(geneve_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    let now = Instant::now();
    for seed in 0..4u64 {
        let mut a = endpoint(100 + seed);
        let peer = a
            .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
            .unwrap();
        a.initiate(now, peer).unwrap();
        let request = a.poll_transmit().unwrap();
        b.handle_datagram(now, request.remote, request.local, &request.bytes);
        let answer = b.poll_transmit().unwrap();
        a.handle_datagram(now, answer.remote, answer.local, &answer.bytes);
        let retry = a.poll_transmit().unwrap();
        b.handle_datagram(now, retry.remote, retry.local, &retry.bytes);
        while b.poll_transmit().is_some() {}
    }
    assert_eq!(b.ike_sas().count(), 2);
    let stats = b.stats();
    assert_eq!((stats.cookies_accepted, stats.half_open_dropped), (4, 2));
}
