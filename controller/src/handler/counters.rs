//! Kernel counters of our states, read over XFRM netlink: per state for `ipsecctl sas`, and
//! summed per peer for the metrics, kept monotonic across rekeys.
//!
//! A state's counters (XFRMA_LTIME_VAL bytes and packets, the `stats` replay and integrity
//! drops) vanish with the state. The [`CounterBook`] remembers what every state counted when
//! it was last read; once a state is gone, that last reading moves into the peer's retired
//! sum, so a peer's totals only grow while it stays in the Southbound DB. Traffic in the last
//! interval before a state is deleted is lost from the sums (at most one poll's worth).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use xfrm::{Lifetimes, StateCounters, StateId, StateInfo};

use crate::metrics::{Metrics, PeerKernelCounters};

/// How often the per-peer sums for the metrics are read without anyone asking.
pub const COUNTER_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// A dump that takes longer than this is given up (the control API then shows zeros).
pub const COUNTER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Which peer a reqid of ours belongs to, as the loop last published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOwner {
    /// A reqid of the pair (one per CHILD_SA).
    pub reqid: u32,
    /// The remote chassis name.
    pub chassis: String,
    /// Our encap IP of the pair: a state to it is inbound.
    pub local_ip: IpAddr,
}

/// What the kernel reports about one state, as the control API shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateReading {
    /// Traffic and error counters.
    pub counters: StateCounters,
    /// Configured soft and hard lifetimes.
    pub lifetimes: Lifetimes,
    /// When the state was added (Unix seconds).
    pub add_time: u64,
}

/// The per-state readings of one dump, by state id without the mark.
pub type Readings = HashMap<(IpAddr, IpAddr, u32), StateReading>;

/// The key a reading is found under.
pub fn reading_key(src: IpAddr, dst: IpAddr, spi: u32) -> (IpAddr, IpAddr, u32) {
    (src, dst, spi)
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    inbound: bool,
    counters: StateCounters,
}

/// Per-peer sums over time: the last reading of every live state and what deleted states
/// had counted.
#[derive(Debug, Default)]
pub struct CounterBook {
    live: HashMap<StateId, (String, Seen)>,
    retired: BTreeMap<String, PeerKernelCounters>,
}

fn add_state(sum: &mut PeerKernelCounters, seen: Seen) {
    let c = seen.counters;
    if seen.inbound {
        sum.bytes_in = sum.bytes_in.saturating_add(c.bytes);
        sum.packets_in = sum.packets_in.saturating_add(c.packets);
    } else {
        sum.bytes_out = sum.bytes_out.saturating_add(c.bytes);
        sum.packets_out = sum.packets_out.saturating_add(c.packets);
    }
    // Replay and integrity drops are counted on the receiving state; an outbound state's are
    // zero.
    let replay = u64::from(c.replay).saturating_add(u64::from(c.replay_window));
    sum.replay_failures = sum.replay_failures.saturating_add(replay);
    sum.integrity_failures = sum
        .integrity_failures
        .saturating_add(u64::from(c.integrity_failed));
}

impl CounterBook {
    /// Takes one dump of our states: returns the per-peer totals (every peer of `owners`,
    /// zero when it has no state) and forgets peers no longer among the owners.
    pub fn update(
        &mut self,
        owners: &[StateOwner],
        states: &[StateInfo],
    ) -> BTreeMap<String, PeerKernelCounters> {
        let by_reqid: HashMap<u32, &StateOwner> = owners.iter().map(|o| (o.reqid, o)).collect();
        let mut now: HashMap<StateId, (String, Seen)> = HashMap::new();
        for s in states {
            // Larval states (SPI reservations) have no algorithm and count nothing.
            if s.algorithm.is_none() {
                continue;
            }
            let Some(owner) = by_reqid.get(&s.reqid) else {
                continue;
            };
            let seen = Seen {
                inbound: s.id.dst == owner.local_ip,
                counters: s.counters,
            };
            now.insert(s.id, (owner.chassis.clone(), seen));
        }

        // Limitation: what a state counted after its last reading and before its deletion is
        // lost from the sums (at most one poll interval of its traffic).
        for (id, (chassis, seen)) in &self.live {
            if !now.contains_key(id) {
                add_state(self.retired.entry(chassis.clone()).or_default(), *seen);
            }
        }
        self.live = now;

        let mut totals: BTreeMap<String, PeerKernelCounters> = owners
            .iter()
            .map(|o| (o.chassis.clone(), PeerKernelCounters::default()))
            .collect();
        self.retired
            .retain(|chassis, _| totals.contains_key(chassis));
        for (chassis, retired) in &self.retired {
            if let Some(t) = totals.get_mut(chassis) {
                *t = *retired;
            }
        }
        for (chassis, seen) in self.live.values() {
            if let Some(t) = totals.get_mut(chassis) {
                add_state(t, *seen);
            }
        }
        totals
    }
}

/// Sets the metrics' per-peer series to `totals` and removes the series of peers that are
/// gone (those in `previous` but not in `totals`).
pub fn publish_totals(
    metrics: &Metrics,
    previous: &[String],
    totals: &BTreeMap<String, PeerKernelCounters>,
) -> Vec<String> {
    for gone in previous.iter().filter(|p| !totals.contains_key(*p)) {
        metrics.remove_peer(gone);
    }
    for (peer, counters) in totals {
        metrics.set_peer_kernel_counters(peer, *counters);
    }
    totals.keys().cloned().collect()
}

/// The per-state readings of a dump.
pub fn readings(states: &[StateInfo]) -> Readings {
    states
        .iter()
        .map(|s| {
            (
                reading_key(s.id.src, s.id.dst, s.id.spi),
                StateReading {
                    counters: s.counters,
                    lifetimes: s.lifetimes,
                    add_time: s.usage.add_time,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xfrm::{Mode, Selector, Usage};

    const LOCAL: &str = "10.0.0.1";
    const REMOTE: &str = "10.0.0.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn owners() -> Vec<StateOwner> {
        [100, 101]
            .into_iter()
            .map(|reqid| StateOwner {
                reqid,
                chassis: "chassis-2".into(),
                local_ip: ip(LOCAL),
            })
            .collect()
    }

    fn state(inbound: bool, spi: u32, reqid: u32, bytes: u64, packets: u64) -> StateInfo {
        let (src, dst) = if inbound {
            (ip(REMOTE), ip(LOCAL))
        } else {
            (ip(LOCAL), ip(REMOTE))
        };
        StateInfo {
            id: StateId {
                src,
                dst,
                spi,
                mark: None,
            },
            reqid,
            mode: Mode::Transport,
            algorithm: Some("rfc4106(gcm(aes))".into()),
            selector: Selector::udp(src, dst, None, None),
            replay_window: 32,
            esn: false,
            sequence: None,
            encap: None,
            if_id: None,
            lifetimes: Lifetimes::default(),
            usage: Usage::default(),
            counters: StateCounters {
                bytes,
                packets,
                ..StateCounters::default()
            },
        }
    }

    #[test]
    fn states_of_a_peer_sum_by_direction_and_failures_come_from_the_stats() {
        let mut inbound = state(true, 1, 100, 1000, 10);
        inbound.counters.replay = 2;
        inbound.counters.replay_window = 1;
        inbound.counters.integrity_failed = 4;
        let states = [
            inbound,
            state(false, 2, 100, 500, 5),
            state(true, 3, 101, 7, 1),
        ];
        let totals = CounterBook::default().update(&owners(), &states);
        let t = totals["chassis-2"];
        assert_eq!((t.bytes_in, t.packets_in), (1007, 11));
        assert_eq!((t.bytes_out, t.packets_out), (500, 5));
        assert_eq!((t.replay_failures, t.integrity_failures), (3, 4));
    }

    #[test]
    fn a_rekeyed_away_state_keeps_counting_in_the_peer_sum() {
        let mut book = CounterBook::default();
        book.update(&owners(), &[state(false, 2, 100, 500, 5)]);
        // The old outbound state is deleted after the rekey; the new one starts at zero.
        let totals = book.update(&owners(), &[state(false, 9, 100, 40, 1)]);
        assert_eq!(totals["chassis-2"].bytes_out, 540);
        assert_eq!(totals["chassis-2"].packets_out, 6);
        let again = book.update(&owners(), &[state(false, 9, 100, 60, 2)]);
        assert_eq!(again["chassis-2"].bytes_out, 560);
    }

    #[test]
    fn peer_that_left_is_forgotten_and_larval_and_foreign_states_are_ignored() {
        let mut book = CounterBook::default();
        let mut larval = state(true, 5, 100, 0, 0);
        larval.algorithm = None;
        let foreign = state(true, 6, 999, 1 << 20, 100);
        let totals = book.update(
            &owners(),
            &[state(true, 1, 100, 10, 1), larval.clone(), foreign],
        );
        assert_eq!(totals["chassis-2"].bytes_in, 10);
        let totals = book.update(&[], &[larval]);
        assert!(totals.is_empty());
        assert!(book.retired.is_empty());
    }
}
