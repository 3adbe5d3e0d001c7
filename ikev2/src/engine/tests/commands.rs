//! Commands and the output queues of a single endpoint.

use std::time::{Duration, Instant};

use super::*;
use crate::engine::config::ConfigError;
use crate::engine::event::{DownReason, SpiRequestId};
use crate::engine::CommandError;

fn one_peer(seed: u64) -> (Endpoint, PeerId) {
    let mut e = endpoint(seed);
    let peer = e
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    (e, peer)
}

#[test]
fn peer_without_ike_proposals_is_refused() {
    let mut e = endpoint(1);
    let mut config = geneve_peer(A, "chassis-1", B, "chassis-2");
    config.ike_proposals.clear();
    assert!(matches!(
        e.add_peer(config),
        Err(ConfigError::BadIkeProposal { .. })
    ));
}

#[test]
fn peer_with_soft_lifetime_after_hard_is_refused() {
    let mut e = endpoint(1);
    let mut config = geneve_peer(A, "chassis-1", B, "chassis-2");
    config.children[1].lifetime.soft = Duration::from_secs(5000);
    assert!(matches!(
        e.add_peer(config),
        Err(ConfigError::Lifetime { .. })
    ));
}

#[test]
fn child_without_traffic_selectors_is_refused() {
    let mut e = endpoint(1);
    let mut config = geneve_peer(A, "chassis-1", B, "chassis-2");
    config.children[0].remote_ts.clear();
    assert!(matches!(
        e.add_peer(config),
        Err(ConfigError::NoTrafficSelector { side: "remote", .. })
    ));
}

#[test]
fn initiate_sends_ike_sa_init_and_arms_the_retransmission_timer() {
    let (mut e, peer) = one_peer(2);
    let now = Instant::now();
    e.initiate(now, peer).unwrap();

    let t = e.poll_transmit().unwrap();
    assert_eq!(t.local, SocketAddr::new(A, 500));
    assert_eq!(t.remote, SocketAddr::new(B, 500));
    let header = crate::codec::Header::decode(&t.bytes).unwrap();
    assert_eq!(
        header.exchange_type,
        crate::registry::ExchangeType::IKE_SA_INIT
    );
    assert_eq!(header.message_id, 0);
    assert!(header.flags.is_initiator());
    assert!(e.poll_transmit().is_none());
    assert_eq!(e.poll_timeout(), Some(now + Duration::from_millis(500)));
}

#[test]
fn retransmission_resends_the_same_bytes_with_backoff() {
    let (mut e, peer) = one_peer(3);
    let now = Instant::now();
    e.initiate(now, peer).unwrap();
    let first = e.poll_transmit().unwrap();

    let t1 = e.poll_timeout().unwrap();
    e.handle_timeout(t1);
    assert_eq!(e.poll_transmit().unwrap(), first);
    assert_eq!(e.poll_timeout(), Some(t1 + Duration::from_secs(1)));

    // Early timeouts do nothing.
    e.handle_timeout(t1 + Duration::from_millis(10));
    assert!(e.poll_transmit().is_none());
}

#[test]
fn initiating_twice_reports_the_active_ike_sa() {
    let (mut e, peer) = one_peer(4);
    let now = Instant::now();
    let sa = e.initiate(now, peer).unwrap();
    assert_eq!(
        e.initiate(now, peer),
        Err(CommandError::AlreadyActive { peer, ike_sa: sa })
    );
}

#[test]
fn commands_for_unknown_peers_are_refused() {
    let (mut e, peer) = one_peer(5);
    let now = Instant::now();
    e.remove_peer(now, peer).unwrap();
    assert_eq!(e.initiate(now, peer), Err(CommandError::UnknownPeer(peer)));
    assert_eq!(e.terminate(now, peer), Err(CommandError::UnknownPeer(peer)));
    assert!(e.peer(peer).is_none());
}

#[test]
fn removing_a_peer_ends_its_ike_sas() {
    let (mut e, peer) = one_peer(6);
    let now = Instant::now();
    let sa = e.initiate(now, peer).unwrap();
    e.remove_peer(now, peer).unwrap();
    assert_eq!(e.ike_sas().count(), 0);
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        events(&mut e),
        vec![Event::IkeSaDown {
            peer,
            ike_sa: sa,
            reason: DownReason::Terminated
        }]
    );
}

#[test]
fn rekey_without_an_established_ike_sa_is_refused() {
    let (mut e, peer) = one_peer(7);
    let now = Instant::now();
    e.initiate(now, peer).unwrap();
    assert_eq!(
        e.rekey_ike(now, peer),
        Err(CommandError::NotEstablished(peer))
    );
    assert_eq!(
        e.rekey_child(now, peer, 0xc000_0001),
        Err(CommandError::NotEstablished(peer))
    );
}

#[test]
fn answer_to_an_unknown_spi_request_is_refused() {
    let (mut e, _) = one_peer(8);
    let request = SpiRequestId(42);
    assert_eq!(
        e.spi_allocated(Instant::now(), request, 0xc000_0001),
        Err(CommandError::UnknownSpiRequest(request))
    );
}

#[test]
fn the_ike_sa_limit_is_enforced() {
    let mut e = Endpoint::new(
        EndpointConfig {
            max_ike_sas: 1,
            ..EndpointConfig::default()
        },
        Arc::new(RingProvider),
        Box::new(SeededRandom::from_u64(9)),
    );
    let p1 = e
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
    let p2 = e
        .add_peer(geneve_peer(A, "chassis-1", c, "chassis-3"))
        .unwrap();
    let now = Instant::now();
    e.initiate(now, p1).unwrap();
    assert_eq!(e.initiate(now, p2), Err(CommandError::TooManyIkeSas(1)));
}
