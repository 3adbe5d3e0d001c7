//! The simulated network on its own, with trivial nodes: it must be trustworthy before
//! handshake narratives are written on top of it.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Conditions, Datagram, Network, Node, NodeId};

/// Answers every datagram with the same bytes.
#[derive(Default)]
struct Echo {
    out: VecDeque<Datagram>,
    received: usize,
}

impl Node for Echo {
    fn handle_datagram(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        self.received += 1;
        self.out.push_back(Datagram {
            src: local,
            dst: remote,
            bytes: bytes.to_vec(),
        });
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

/// Sends `count` numbered datagrams at start, then one more each time its timer fires, and
/// records when each echo came back.
struct Pinger {
    local: SocketAddr,
    remote: SocketAddr,
    out: VecDeque<Datagram>,
    replies: Vec<(Instant, Vec<u8>)>,
    timer: Option<Instant>,
    timer_fired: Vec<Instant>,
}

impl Pinger {
    fn new(local: SocketAddr, remote: SocketAddr, count: u32, len: usize) -> Self {
        let out = (0..count)
            .map(|i| {
                let mut bytes = vec![0u8; len.max(4)];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                Datagram {
                    src: local,
                    dst: remote,
                    bytes,
                }
            })
            .collect();
        Pinger {
            local,
            remote,
            out,
            replies: Vec::new(),
            timer: None,
            timer_fired: Vec::new(),
        }
    }
}

impl Node for Pinger {
    fn handle_datagram(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        bytes: &[u8],
    ) {
        self.replies.push((now, bytes.to_vec()));
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.timer_fired.push(now);
        self.timer = None;
        self.out.push_back(Datagram {
            src: self.local,
            dst: self.remote,
            bytes: b"tick".to_vec(),
        });
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.timer
    }
}

enum Peer {
    Echo(Echo),
    Pinger(Pinger),
}

impl Peer {
    fn pinger(&self) -> &Pinger {
        match self {
            Peer::Pinger(p) => p,
            Peer::Echo(_) => panic!("not a pinger"),
        }
    }
    fn pinger_mut(&mut self) -> &mut Pinger {
        match self {
            Peer::Pinger(p) => p,
            Peer::Echo(_) => panic!("not a pinger"),
        }
    }
    fn echo(&self) -> &Echo {
        match self {
            Peer::Echo(e) => e,
            Peer::Pinger(_) => panic!("not an echo"),
        }
    }
}

impl Node for Peer {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        match self {
            Peer::Echo(n) => n.handle_datagram(now, local, remote, bytes),
            Peer::Pinger(n) => n.handle_datagram(now, local, remote, bytes),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Peer::Echo(n) => n.handle_timeout(now),
            Peer::Pinger(n) => n.handle_timeout(now),
        }
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        match self {
            Peer::Echo(n) => n.poll_transmit(),
            Peer::Pinger(n) => n.poll_transmit(),
        }
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        match self {
            Peer::Echo(n) => n.poll_timeout(),
            Peer::Pinger(n) => n.poll_timeout(),
        }
    }
}

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn pair(seed: u64, conditions: Conditions, count: u32, len: usize) -> Network<Peer> {
    let mut net = Network::new(Instant::now(), seed, conditions);
    let pinger = Pinger::new(SocketAddr::new(A, 500), SocketAddr::new(B, 500), count, len);
    net.add_node(&[A], Peer::Pinger(pinger));
    net.add_node(&[B], Peer::Echo(Echo::default()));
    net
}

const STEPS: usize = 100_000;

#[test]
fn echo_comes_back_after_twice_the_latency() {
    let conditions = Conditions {
        latency: Duration::from_millis(25),
        ..Conditions::default()
    };
    let mut net = pair(1, conditions, 1, 8);
    let start = net.now();
    net.run_for(Duration::from_secs(1), STEPS);

    let replies = &net.node(NodeId(0)).pinger().replies;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0 - start, Duration::from_millis(50));
    assert_eq!(net.stats().sent, 2);
    assert_eq!(net.stats().delivered, 2);
}

#[test]
fn same_seed_gives_the_same_deliveries() {
    let conditions = Conditions {
        jitter: Duration::from_millis(30),
        loss_ppm: 200_000,
        duplicate_ppm: 100_000,
        ..Conditions::default()
    };
    let run = |seed| {
        let mut net = pair(seed, conditions, 200, 16);
        net.run_for(Duration::from_secs(10), STEPS);
        net.deliveries().to_vec()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn loss_drops_about_the_configured_fraction() {
    let conditions = Conditions {
        loss_ppm: 100_000,
        ..Conditions::default()
    };
    let mut net = pair(7, conditions, 2000, 8);
    net.run_for(Duration::from_secs(1), STEPS);
    let stats = net.stats();
    // 2000 pings and their echoes at 10% loss: about 380 of ~3800 datagrams lost.
    assert!((300..=460).contains(&stats.lost), "{stats:?}");
    assert_eq!(stats.sent, stats.delivered + stats.lost);
}

#[test]
fn duplication_delivers_extra_copies() {
    let conditions = Conditions {
        duplicate_ppm: 500_000,
        ..Conditions::default()
    };
    let mut net = pair(3, conditions, 100, 8);
    net.run_for(Duration::from_secs(1), STEPS);
    let stats = net.stats();
    assert!(stats.duplicated > 50, "{stats:?}");
    assert_eq!(stats.delivered, stats.sent + stats.duplicated);
    let echo = net.node(NodeId(1)).echo();
    assert!(echo.received > 100);
}

#[test]
fn jitter_reorders_datagrams_sent_together() {
    let conditions = Conditions {
        jitter: Duration::from_millis(50),
        ..Conditions::default()
    };
    let mut net = pair(5, conditions, 50, 8);
    net.run_for(Duration::from_secs(1), STEPS);
    let order: Vec<u32> = net
        .deliveries()
        .iter()
        .filter(|d| d.datagram.dst.ip() == B)
        .map(|d| u32::from_be_bytes(d.datagram.bytes[..4].try_into().unwrap()))
        .collect();
    assert_eq!(order.len(), 50);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_ne!(order, sorted, "jitter should reorder");
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
}

#[test]
fn datagrams_larger_than_the_mtu_are_dropped() {
    let conditions = Conditions {
        mtu: 1280,
        ..Conditions::default()
    };
    let mut small = pair(1, conditions, 1, 1280);
    small.run_for(Duration::from_secs(1), STEPS);
    assert_eq!(small.stats().too_big, 0);

    let mut big = pair(1, conditions, 1, 1281);
    big.run_for(Duration::from_secs(1), STEPS);
    assert_eq!(big.stats().too_big, 1);
    assert_eq!(big.stats().delivered, 0);
}

#[test]
fn timers_fire_at_their_virtual_deadline_without_waiting() {
    let mut net = pair(1, Conditions::default(), 0, 8);
    let start = net.now();
    let deadline = start + Duration::from_secs(3600);
    net.node_mut(NodeId(0)).pinger_mut().timer = Some(deadline);

    let wall = Instant::now();
    net.run_for(Duration::from_secs(7200), STEPS);
    assert!(wall.elapsed() < Duration::from_secs(5));

    let pinger = net.node(NodeId(0)).pinger();
    assert_eq!(pinger.timer_fired, vec![deadline]);
    // The tick it sent on its timer was echoed one round trip later.
    assert_eq!(pinger.replies.len(), 1);
    assert_eq!(pinger.replies[0].0, deadline + Duration::from_millis(20));
}

#[test]
fn run_stops_at_the_limit_and_advance_moves_the_clock() {
    let mut net = pair(1, Conditions::default(), 0, 8);
    let start = net.now();
    net.node_mut(NodeId(0)).pinger_mut().timer = Some(start + Duration::from_secs(60));
    net.advance(Duration::from_secs(30), STEPS);
    assert_eq!(net.elapsed(), Duration::from_secs(30));
    assert!(net.node(NodeId(0)).pinger().timer_fired.is_empty());

    net.advance(Duration::from_secs(30), STEPS);
    assert_eq!(net.elapsed(), Duration::from_secs(60));
    assert_eq!(net.node(NodeId(0)).pinger().timer_fired.len(), 1);
}

#[test]
fn filter_drops_the_datagrams_a_test_chooses() {
    let mut net = pair(1, Conditions::default(), 10, 8);
    // Lose every echo of an even-numbered ping.
    net.set_filter(|d| d.src.ip() == B && d.bytes[3] % 2 == 0);
    net.run_for(Duration::from_secs(1), STEPS);
    let replies = &net.node(NodeId(0)).pinger().replies;
    assert_eq!(replies.len(), 5);
    assert_eq!(net.stats().filtered, 5);
}

#[test]
fn datagrams_to_unknown_addresses_are_counted_unroutable() {
    let mut net: Network<Peer> = Network::new(Instant::now(), 1, Conditions::default());
    let elsewhere = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 500);
    let pinger = Pinger::new(SocketAddr::new(A, 500), elsewhere, 3, 8);
    net.add_node(&[A], Peer::Pinger(pinger));
    net.run_for(Duration::from_secs(1), STEPS);
    assert_eq!(net.stats().unroutable, 3);
}
