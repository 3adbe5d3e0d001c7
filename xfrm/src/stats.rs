//! Counters: per state (bytes, packets, replay and integrity failures) and the namespace-wide
//! `/proc/net/xfrm_stat` table.

use std::collections::BTreeMap;

use netlink_packet_xfrm::{Lifetime as KernelCurrent, Stats};

/// Largest `/proc/net/xfrm_stat` we read; the real file is about 1.5 KiB.
const MAX_XFRM_STAT_BYTES: u64 = 64 * 1024;

/// Traffic and error counters of one state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounters {
    /// Bytes protected (encrypted or decrypted).
    pub bytes: u64,
    /// Packets protected.
    pub packets: u64,
    /// Packets dropped because they fell outside the replay window.
    pub replay_window: u32,
    /// Packets dropped as replays.
    pub replay: u32,
    /// Packets that failed the integrity check.
    pub integrity_failed: u32,
}

impl StateCounters {
    pub(crate) fn from_kernel(stats: &Stats, cur: &KernelCurrent) -> StateCounters {
        StateCounters {
            bytes: cur.bytes,
            packets: cur.packets,
            replay_window: stats.replay_window,
            replay: stats.replay,
            integrity_failed: stats.integrity_failed,
        }
    }
}

/// The namespace-wide XFRM error counters (`/proc/net/xfrm_stat`), by kernel name
/// (`XfrmInNoStates`, `XfrmOutPolBlock` …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XfrmStat(pub BTreeMap<String, u64>);

impl XfrmStat {
    /// Reads `/proc/net/xfrm_stat` of the calling thread's network namespace.
    pub fn read() -> std::io::Result<XfrmStat> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open("/proc/thread-self/net/xfrm_stat")
            .or_else(|_| std::fs::File::open("/proc/net/xfrm_stat"))?
            .take(MAX_XFRM_STAT_BYTES)
            .read_to_string(&mut text)?;
        Ok(XfrmStat::parse(&text))
    }

    /// Parses the `Name <whitespace> value` lines; malformed lines are skipped.
    pub fn parse(text: &str) -> XfrmStat {
        let map = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next()?;
                let value = parts.next()?.parse().ok()?;
                Some((name.to_owned(), value))
            })
            .collect();
        XfrmStat(map)
    }

    /// One counter; 0 when the kernel does not have it.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Outbound packets dropped by a block policy (`XfrmOutPolBlock`).
    pub fn out_policy_block(&self) -> u64 {
        self.get("XfrmOutPolBlock")
    }

    /// Outbound packets dropped for want of a state (`XfrmOutNoStates`).
    pub fn out_no_states(&self) -> u64 {
        self.get("XfrmOutNoStates")
    }

    /// Inbound packets that failed the integrity check (`XfrmInStateProtoError`).
    pub fn in_state_proto_error(&self) -> u64 {
        self.get("XfrmInStateProtoError")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfrm_stat_lines_parse_and_garbage_is_skipped() {
        let s = XfrmStat::parse("XfrmInError             \t0\nXfrmOutPolBlock\t17\nbroken\nX y\n");
        assert_eq!(s.out_policy_block(), 17);
        assert_eq!(s.get("XfrmInError"), 0);
        assert_eq!(s.0.len(), 2);
    }
}
