//! A simulated network of sans-IO nodes with virtual time, in the style of quinn-proto's
//! `Pair`: any number of nodes, datagrams routed by destination address, and seeded link
//! conditions (latency, jitter that reorders, loss, duplication, MTU).
//!
//! Nothing waits on a real clock: [`Network::step_until`] jumps virtual time to the next delivery
//! or node deadline, so an hour of lifetimes runs in microseconds.

pub mod kernel;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A datagram with its addresses, as a node emits it and receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The sender's address.
    pub src: SocketAddr,
    /// The receiver's address.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub bytes: Vec<u8>,
}

/// What the network needs of a node: the sans-IO surface of an Endpoint.
pub trait Node {
    /// A datagram arrived at `local` from `remote`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    );
    /// A deadline from [`Node::poll_timeout`] has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// The node's next deadline.
    fn poll_timeout(&mut self) -> Option<Instant>;
}

impl Node for super::Endpoint {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        super::Endpoint::handle_datagram(self, now, local, remote, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        super::Endpoint::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        super::Endpoint::poll_transmit(self).map(|t| Datagram {
            src: t.local,
            dst: t.remote,
            bytes: t.bytes,
        })
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        super::Endpoint::poll_timeout(self)
    }
}

/// An [`Endpoint`](super::Endpoint) with a stand-in for the kernel: it answers every
/// [`Event::AllocateSpi`](super::Event::AllocateSpi) at once with SPIs counting up from
/// `first_spi`, applies the CHILD_SA events to a [`KernelModel`](kernel::KernelModel), and
/// keeps every other event for the test to read.
pub struct Chassis {
    /// The endpoint.
    pub endpoint: super::Endpoint,
    /// Events other than `AllocateSpi`, in order.
    pub events: Vec<super::Event>,
    /// The states the daemon would have installed from those events.
    pub kernel: kernel::KernelModel,
    /// When false, `AllocateSpi` requests are kept in `events` unanswered.
    pub allocate_spis: bool,
    next_spi: u32,
}

impl Chassis {
    /// Wraps `endpoint`; inbound SPIs start at `first_spi`.
    pub fn new(endpoint: super::Endpoint, first_spi: u32) -> Self {
        Chassis {
            endpoint,
            events: Vec::new(),
            kernel: kernel::KernelModel::default(),
            allocate_spis: true,
            next_spi: first_spi,
        }
    }

    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<super::Event> {
        std::mem::take(&mut self.events)
    }

    /// Answers the endpoint's SPI requests and keeps its other events (after a command that
    /// queued some, such as a CHILD_SA to create).
    pub fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                super::Event::AllocateSpi { request, .. } if self.allocate_spis => {
                    let spi = self.next_spi;
                    self.next_spi = self.next_spi.wrapping_add(1);
                    // The request was just issued, so it is outstanding.
                    let _ = self.endpoint.spi_allocated(now, request, spi);
                }
                other => {
                    self.kernel.apply(&other);
                    self.events.push(other);
                }
            }
        }
    }
}

impl Node for Chassis {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        self.endpoint.handle_datagram(now, local, remote, bytes);
        self.drain_events(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.drain_events(now);
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        Node::poll_transmit(&mut self.endpoint)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }
}

/// Link conditions applied to every datagram.
#[derive(Debug, Clone, Copy)]
pub struct Conditions {
    /// One-way delay of every datagram.
    pub latency: Duration,
    /// Extra delay chosen uniformly in `0..=jitter` per datagram; reorders datagrams sent closer
    /// together than it.
    pub jitter: Duration,
    /// Probability in parts per million that a datagram is lost.
    pub loss_ppm: u32,
    /// Probability in parts per million that a datagram is delivered twice.
    pub duplicate_ppm: u32,
    /// Datagrams longer than this are dropped, as an IP fragment loss would.
    pub mtu: usize,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss_ppm: 0,
            duplicate_ppm: 0,
            mtu: 1500,
        }
    }
}

/// What happened to the datagrams so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams nodes emitted.
    pub sent: u64,
    /// Datagrams handed to a node (duplicates count twice).
    pub delivered: u64,
    /// Lost to `loss_ppm`.
    pub lost: u64,
    /// Dropped by a test's filter.
    pub filtered: u64,
    /// Extra copies made by `duplicate_ppm`.
    pub duplicated: u64,
    /// Dropped for exceeding the MTU.
    pub too_big: u64,
    /// Addressed to no node.
    pub unroutable: u64,
}

/// Index of a node in a [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A filter a test installs to drop chosen datagrams ("lose the second response").
pub type Filter = Box<dyn FnMut(&Datagram) -> bool>;

/// A property of the nodes checked after every step; `Err` says what is wrong.
pub type Invariant<N> = Box<dyn Fn(&[&N]) -> Result<(), String>>;

/// One delivery record, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Time since the start of the simulation.
    pub at: Duration,
    /// The datagram.
    pub datagram: Datagram,
}

struct InFlight {
    deliver_at: Instant,
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.seq) == (other.deliver_at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at, self.seq).cmp(&(other.deliver_at, other.seq))
    }
}

/// SplitMix64: a small deterministic generator, so link conditions depend only on the seed.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `ppm` parts per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.next_u64() % 1_000_000 < u64::from(ppm)
    }

    /// A duration uniform in `0..=max`.
    pub fn up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (nanos + 1))
    }
}

/// Nodes, their addresses, and the datagrams in flight between them.
pub struct Network<N: Node> {
    start: Instant,
    now: Instant,
    nodes: Vec<(Vec<IpAddr>, N)>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: SimRng,
    /// The link conditions; tests may change them between steps.
    pub conditions: Conditions,
    filter: Option<Filter>,
    invariant: Option<Invariant<N>>,
    violations: Vec<(Duration, String)>,
    stats: Stats,
    log: Vec<Delivery>,
}

impl<N: Node> Network<N> {
    /// An empty network whose virtual clock starts at `start`, with link randomness from `seed`.
    pub fn new(start: Instant, seed: u64, conditions: Conditions) -> Self {
        Network {
            start,
            now: start,
            nodes: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            rng: SimRng::new(seed),
            conditions,
            filter: None,
            invariant: None,
            violations: Vec::new(),
            stats: Stats::default(),
            log: Vec::new(),
        }
    }

    /// Adds a node reachable at `addrs` (every port of them).
    pub fn add_node(&mut self, addrs: &[IpAddr], node: N) -> NodeId {
        self.nodes.push((addrs.to_vec(), node));
        NodeId(self.nodes.len() - 1)
    }

    /// The node `id`.
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0].1
    }

    /// The node `id`, to give it commands.
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id.0].1
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Counters of what happened to datagrams.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Every delivery so far, in order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.log
    }

    /// Installs a filter; datagrams for which it returns true are dropped.
    pub fn set_filter(&mut self, filter: impl FnMut(&Datagram) -> bool + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Installs a property checked after every step; each time it fails the violation is
    /// recorded with the virtual time (see [`Network::violations`]).
    pub fn set_invariant(&mut self, invariant: impl Fn(&[&N]) -> Result<(), String> + 'static) {
        self.invariant = Some(Box::new(invariant));
    }

    /// The invariant's failures so far, with the time since the start (consecutive repeats of
    /// one message are recorded once).
    pub fn violations(&self) -> &[(Duration, String)] {
        &self.violations
    }

    fn check_invariant(&mut self) {
        let Some(invariant) = &self.invariant else {
            return;
        };
        let nodes: Vec<&N> = self.nodes.iter().map(|(_, n)| n).collect();
        if let Err(message) = invariant(&nodes) {
            if self.violations.last().is_none_or(|(_, m)| *m != message) {
                self.violations.push((self.now - self.start, message));
            }
        }
    }

    /// Collects what every node wants to send and puts it on the wire.
    fn collect_transmits(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(d) = self.nodes[i].1.poll_transmit() {
                self.send(d);
            }
        }
    }

    fn send(&mut self, datagram: Datagram) {
        self.stats.sent += 1;
        if let Some(filter) = self.filter.as_mut() {
            if filter(&datagram) {
                self.stats.filtered += 1;
                return;
            }
        }
        if datagram.bytes.len() > self.conditions.mtu {
            self.stats.too_big += 1;
            return;
        }
        if self.rng.chance(self.conditions.loss_ppm) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.conditions.duplicate_ppm) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.conditions.latency + self.rng.up_to(self.conditions.jitter);
            self.seq += 1;
            self.in_flight.push(Reverse(InFlight {
                deliver_at: self.now + delay,
                seq: self.seq,
                datagram: datagram.clone(),
            }));
        }
    }

    fn route(&self, dst: IpAddr) -> Option<usize> {
        self.nodes
            .iter()
            .position(|(addrs, _)| addrs.contains(&dst))
    }

    /// The earliest pending event: a delivery or a node deadline.
    fn next_event(&mut self) -> Option<Instant> {
        let delivery = self.in_flight.peek().map(|Reverse(f)| f.deliver_at);
        let timeout = self
            .nodes
            .iter_mut()
            .filter_map(|(_, n)| n.poll_timeout())
            .min();
        match (delivery, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends what is queued, advances virtual time to the next event (never beyond `limit`) and
    /// runs it: deliveries due by then, and the timeouts of nodes whose deadline has passed.
    /// Returns false when nothing is left to happen before `limit`.
    pub fn step_until(&mut self, limit: Instant) -> bool {
        self.collect_transmits();
        let Some(next) = self.next_event() else {
            return false;
        };
        if next > limit {
            return false;
        }
        self.now = self.now.max(next);

        while self
            .in_flight
            .peek()
            .is_some_and(|Reverse(f)| f.deliver_at <= self.now)
        {
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            self.deliver(f.datagram);
        }
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i].1;
            if node.poll_timeout().is_some_and(|t| t <= self.now) {
                node.handle_timeout(self.now);
            }
        }
        self.collect_transmits();
        self.check_invariant();
        true
    }

    fn deliver(&mut self, d: Datagram) {
        let Some(i) = self.route(d.dst.ip()) else {
            self.stats.unroutable += 1;
            return;
        };
        self.stats.delivered += 1;
        self.log.push(Delivery {
            at: self.now - self.start,
            datagram: d.clone(),
        });
        let now = self.now;
        self.nodes[i].1.handle_datagram(now, d.dst, d.src, &d.bytes);
    }

    /// Runs steps until nothing is left to happen within `max` of virtual time from now, or
    /// `max_steps` steps (a guard against nodes that never go quiet). Returns the steps taken.
    pub fn run_for(&mut self, max: Duration, max_steps: usize) -> usize {
        let limit = self.now + max;
        let mut steps = 0;
        while steps < max_steps && self.step_until(limit) {
            steps += 1;
        }
        steps
    }

    /// Runs everything due within `by` of virtual time, then moves the clock to `now + by`.
    /// Returns the steps taken (at most `max_steps`).
    pub fn advance(&mut self, by: Duration, max_steps: usize) -> usize {
        let limit = self.now + by;
        let mut steps = 0;
        while steps < max_steps && self.step_until(limit) {
            steps += 1;
        }
        self.now = self.now.max(limit);
        steps
    }
}
