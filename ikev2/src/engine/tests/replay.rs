//! The premise of the `endpoint_datagrams` fuzz target: endpoints made with the same seeds
//! accept the captured messages of an earlier run as their own, so mutating those messages
//! reaches every state of the handshake.

use std::time::Duration;

use super::ike_auth::fixture_time;
use super::*;

/// Two endpoints with fixed seeds and the fuzz target's way of answering SPI requests.
fn two(start: Instant) -> (Endpoint, Endpoint, PeerId) {
    let mut a = endpoint(1);
    let mut b = endpoint(2);
    a.set_wall_clock(start, fixture_time());
    b.set_wall_clock(start, fixture_time());
    let peer = a
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    b.add_peer(geneve_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    (a, b, peer)
}

/// Answers `e`'s SPI requests with `*next`, `*next + 1`, … (as a kernel: never one in use).
fn answer_spis(e: &mut Endpoint, now: Instant, next: &mut u32) -> usize {
    let mut installs = 0;
    while let Some(event) = e.poll_event() {
        match event {
            Event::AllocateSpi { request, .. } => {
                e.spi_allocated(now, request, *next).unwrap();
                *next += 1;
            }
            Event::ChildSaInstall { .. } => installs += 1,
            _ => {}
        }
    }
    installs
}

#[test]
fn captured_handshake_replays_into_fresh_endpoints_with_the_same_seeds() {
    let start = Instant::now();
    let (mut a, mut b, peer) = two(start);
    a.initiate(start, peer).unwrap();
    let mut captured = Vec::new();
    let (mut spi_a, mut spi_b) = (0xa000_0001, 0xb000_0001);
    for _ in 0..32 {
        answer_spis(&mut a, start, &mut spi_a);
        answer_spis(&mut b, start, &mut spi_b);
        let mut quiet = true;
        while let Some(t) = a.poll_transmit() {
            quiet = false;
            b.handle_datagram(start, t.remote, t.local, &t.bytes);
            captured.push((true, t));
        }
        while let Some(t) = b.poll_transmit() {
            quiet = false;
            a.handle_datagram(start, t.remote, t.local, &t.bytes);
            captured.push((false, t));
        }
        if quiet {
            break;
        }
    }
    assert!(captured.len() > 4);

    // A second run, later: a's own datagrams are thrown away, the captured ones delivered.
    let later = start + Duration::from_secs(7);
    let (mut a, mut b, peer) = two(later);
    a.initiate(later, peer).unwrap();
    let mut installs = 0;
    let (mut spi_a, mut spi_b) = (0xa000_0001, 0xb000_0001);
    for (to_b, t) in &captured {
        let (target, next) = if *to_b {
            (&mut b, &mut spi_b)
        } else {
            (&mut a, &mut spi_a)
        };
        target.handle_datagram(later, t.remote, t.local, &t.bytes);
        installs += answer_spis(target, later, next);
        while a.poll_transmit().is_some() {}
        while b.poll_transmit().is_some() {}
    }
    for e in [&a, &b] {
        let id = e.ike_sas().next().unwrap();
        assert_eq!(e.ike_sa_info(id).unwrap().state, "established");
    }
    assert_eq!(installs, 4, "both CHILD_SAs on both sides");
}

#[test]
fn spi_already_in_use_or_zero_is_refused_and_the_request_stays_open() {
    let now = Instant::now();
    let (mut a, mut b, peer) = two(now);
    a.initiate(now, peer).unwrap();
    let (mut spi_a, mut spi_b) = (0xa000_0001, 0xb000_0001);
    for _ in 0..32 {
        answer_spis(&mut a, now, &mut spi_a);
        answer_spis(&mut b, now, &mut spi_b);
        let mut quiet = true;
        while let Some(t) = a.poll_transmit() {
            quiet = false;
            b.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        while let Some(t) = b.poll_transmit() {
            quiet = false;
            a.handle_datagram(now, t.remote, t.local, &t.bytes);
        }
        if quiet {
            break;
        }
    }
    // Both CHILD_SAs are up with a's SPIs 0xa0000001 and 0xa0000002; a rekey asks for another.
    a.rekey_child(now, peer, 0xa000_0001).unwrap();
    a.handle_timeout(now);
    let request = std::iter::from_fn(|| a.poll_event())
        .find_map(|e| match e {
            Event::AllocateSpi { request, .. } => Some(request),
            _ => None,
        })
        .expect("the rekey asks for an inbound SPI");
    for unusable in [0xa000_0002, 0] {
        assert_eq!(
            a.spi_allocated(now, request, unusable),
            Err(crate::engine::CommandError::UnusableSpi(unusable))
        );
    }
    assert_eq!(a.spi_allocated(now, request, 0xa000_0003), Ok(()));
}
