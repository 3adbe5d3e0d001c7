//! IP fragment reassembly (RFC 791 for IPv4, RFC 8200 §4.5 for IPv6), bounded.
//!
//! Fragments are keyed by (source, destination, protocol, Identification). Overlapping
//! fragments are accepted only when the overlapping bytes agree; a fragment that disagrees
//! with what is already held drops the whole datagram (the conservative choice of RFC 5722).
//! Memory is bounded by [`MAX_FRAGMENTS_PER_DATAGRAM`], [`MAX_REASSEMBLED_BYTES`] and
//! [`MAX_DATAGRAMS_IN_FLIGHT`]; the oldest incomplete datagram is evicted first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::ip::FragmentInfo;

/// The most fragments one datagram may arrive in.
pub const MAX_FRAGMENTS_PER_DATAGRAM: usize = 64;
/// The largest reassembled payload: the IPv4 and (non-jumbo) IPv6 maximum.
pub const MAX_REASSEMBLED_BYTES: usize = 65_535;
/// The most datagrams being reassembled at once; more evict the oldest.
pub const MAX_DATAGRAMS_IN_FLIGHT: usize = 64;

/// Identifies the datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatagramKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol.
    pub protocol: u8,
    /// IP Identification.
    pub id: u32,
}

/// A datagram whose fragments have all arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// Which datagram.
    pub key: DatagramKey,
    /// The whole upper-layer payload.
    pub payload: Vec<u8>,
    /// The frames whose fragments made it up, in arrival order.
    pub frames: Vec<u64>,
}

/// Why a datagram was dropped while being reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// More fragments than [`MAX_FRAGMENTS_PER_DATAGRAM`].
    #[error("more than {MAX_FRAGMENTS_PER_DATAGRAM} fragments")]
    TooManyFragments,
    /// A fragment ends past [`MAX_REASSEMBLED_BYTES`].
    #[error("fragment ends at byte {end}, past the {MAX_REASSEMBLED_BYTES}-byte limit")]
    TooLarge {
        /// Where the fragment ends.
        end: usize,
    },
    /// A fragment other than the last is not a multiple of 8 bytes long.
    #[error("non-last fragment at offset {offset} has {len} bytes, not a multiple of 8")]
    Misaligned {
        /// Its offset.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// Overlapping fragments carry different bytes.
    #[error("fragment at offset {offset} overlaps earlier data with different bytes")]
    ConflictingOverlap {
        /// Its offset.
        offset: usize,
    },
    /// Two last fragments give different total lengths.
    #[error("last fragments disagree on the datagram length ({first} and {second} bytes)")]
    ConflictingLength {
        /// Length from the first last fragment.
        first: usize,
        /// Length from the second.
        second: usize,
    },
    /// Data beyond the length the last fragment gave.
    #[error("fragment data reaches byte {end}, past the datagram's end at {total}")]
    BeyondEnd {
        /// Where the data ends.
        end: usize,
        /// The datagram's length.
        total: usize,
    },
}

/// What happened to one fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// Held; more fragments are needed.
    Incomplete,
    /// A repeat of bytes already held; ignored.
    Duplicate,
    /// This fragment completed its datagram.
    Complete(Reassembled),
    /// The datagram was dropped for this reason (its earlier fragments too).
    Dropped {
        /// Which datagram.
        key: DatagramKey,
        /// The frames of the dropped datagram, this one included.
        frames: Vec<u64>,
        /// Why.
        error: FragmentError,
    },
}

/// Why a datagram was never completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncompleteReason {
    /// Evicted to stay within [`MAX_DATAGRAMS_IN_FLIGHT`].
    Evicted,
    /// The capture ended before its last fragments.
    EndOfCapture,
}

/// A datagram given up on, for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// Which datagram.
    pub key: DatagramKey,
    /// Frames of the fragments held.
    pub frames: Vec<u64>,
    /// Payload bytes held.
    pub received: usize,
    /// The datagram's length, when the last fragment arrived.
    pub total: Option<usize>,
    /// Why it was given up.
    pub reason: IncompleteReason,
}

// Limitation: fragments never expire by time (Linux gives up after 30 s); in a capture with
// long gaps, fragments the receiver would have discarded can still be joined here.
#[derive(Debug, Default)]
struct Pending {
    buffer: Vec<u8>,
    /// Covered byte ranges `[start, end)`, sorted and merged.
    covered: Vec<(usize, usize)>,
    total: Option<usize>,
    frames: Vec<u64>,
}

impl Pending {
    fn received(&self) -> usize {
        self.covered.iter().map(|(s, e)| e - s).sum()
    }

    fn is_complete(&self) -> bool {
        matches!((self.total, self.covered.as_slice()), (Some(t), [(0, e)]) if *e == t)
            || self.total == Some(0)
    }

    /// Checks `data` at `offset` against the bytes already held; `Ok(true)` when every
    /// byte of it is already held (a duplicate).
    fn check_overlap(&self, offset: usize, data: &[u8]) -> Result<bool, FragmentError> {
        let end = offset + data.len();
        let mut contained = false;
        for &(start, stop) in &self.covered {
            let lo = start.max(offset);
            let hi = stop.min(end);
            if lo >= hi {
                continue;
            }
            let held = self.buffer.get(lo..hi);
            let new = data.get(lo - offset..hi - offset);
            if held != new {
                return Err(FragmentError::ConflictingOverlap { offset });
            }
            if start <= offset && end <= stop {
                contained = true;
            }
        }
        Ok(contained)
    }

    fn insert(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        if let Some(dest) = self.buffer.get_mut(offset..end) {
            dest.copy_from_slice(data);
        }

        self.covered.push((offset, end));
        self.covered.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.covered.len());
        for &(s, e) in &self.covered {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.covered = merged;
    }
}

/// Reassembles IP datagrams from their fragments, within fixed memory limits.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: HashMap<DatagramKey, Pending>,
    /// Keys in order of their first fragment, for eviction.
    arrival: VecDeque<DatagramKey>,
    given_up: Vec<Incomplete>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the fragment carried in frame `frame`.
    pub fn add(
        &mut self,
        key: DatagramKey,
        fragment: FragmentInfo,
        data: &[u8],
        frame: u64,
    ) -> FragmentOutcome {
        match self.try_add(key, fragment, data, frame) {
            Ok(outcome) => outcome,
            Err(error) => {
                let mut frames = self.remove(&key).map(|p| p.frames).unwrap_or_default();
                frames.push(frame);
                FragmentOutcome::Dropped { key, frames, error }
            }
        }
    }

    fn try_add(
        &mut self,
        key: DatagramKey,
        fragment: FragmentInfo,
        data: &[u8],
        frame: u64,
    ) -> Result<FragmentOutcome, FragmentError> {
        let offset = fragment.offset;
        let end = offset.saturating_add(data.len());
        if end > MAX_REASSEMBLED_BYTES {
            return Err(FragmentError::TooLarge { end });
        }
        if fragment.more && !data.len().is_multiple_of(8) {
            return Err(FragmentError::Misaligned {
                offset,
                len: data.len(),
            });
        }

        if !self.pending.contains_key(&key) {
            self.make_room();
            self.arrival.push_back(key);
        }
        let pending = self.pending.entry(key).or_default();

        if !fragment.more {
            match pending.total {
                Some(first) if first != end => {
                    return Err(FragmentError::ConflictingLength { first, second: end });
                }
                _ => pending.total = Some(end),
            }
        }
        if let Some(total) = pending.total {
            let held_end = pending.covered.last().map_or(0, |&(_, e)| e);
            let reach = end.max(held_end);
            if reach > total {
                return Err(FragmentError::BeyondEnd { end: reach, total });
            }
        }

        if pending.check_overlap(offset, data)? {
            return Ok(FragmentOutcome::Duplicate);
        }
        if pending.frames.len() >= MAX_FRAGMENTS_PER_DATAGRAM {
            return Err(FragmentError::TooManyFragments);
        }
        pending.insert(offset, data);
        pending.frames.push(frame);

        if pending.is_complete() {
            let done = self.remove(&key).unwrap_or_default();
            let mut payload = done.buffer;
            payload.truncate(done.total.unwrap_or(0));
            return Ok(FragmentOutcome::Complete(Reassembled {
                key,
                payload,
                frames: done.frames,
            }));
        }
        Ok(FragmentOutcome::Incomplete)
    }

    /// Datagrams evicted since the last call, for reporting.
    pub fn take_evicted(&mut self) -> Vec<Incomplete> {
        std::mem::take(&mut self.given_up)
    }

    /// Ends reassembly: every datagram still incomplete (evicted ones not yet taken first).
    pub fn finish(mut self) -> Vec<Incomplete> {
        let mut out = std::mem::take(&mut self.given_up);
        while let Some(key) = self.arrival.pop_front() {
            if let Some(p) = self.pending.remove(&key) {
                out.push(incomplete(key, &p, IncompleteReason::EndOfCapture));
            }
        }
        out
    }

    fn make_room(&mut self) {
        while self.pending.len() >= MAX_DATAGRAMS_IN_FLIGHT {
            let Some(oldest) = self.arrival.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.remove(&oldest) {
                self.given_up
                    .push(incomplete(oldest, &p, IncompleteReason::Evicted));
            }
        }
    }

    fn remove(&mut self, key: &DatagramKey) -> Option<Pending> {
        self.arrival.retain(|k| k != key);
        self.pending.remove(key)
    }
}

fn incomplete(key: DatagramKey, p: &Pending, reason: IncompleteReason) -> Incomplete {
    Incomplete {
        key,
        frames: p.frames.clone(),
        received: p.received(),
        total: p.total,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> DatagramKey {
        DatagramKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
            protocol: 17,
            id,
        }
    }

    fn frag(offset: usize, more: bool) -> FragmentInfo {
        FragmentInfo {
            id: 0,
            offset,
            more,
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn fragments_out_of_order_reassemble_to_the_original_payload() {
        let data = payload(40);
        let mut r = Reassembler::new();
        assert_eq!(
            r.add(key(1), frag(32, false), &data[32..], 3),
            FragmentOutcome::Incomplete
        );
        assert_eq!(
            r.add(key(1), frag(0, true), &data[..16], 1),
            FragmentOutcome::Incomplete
        );
        match r.add(key(1), frag(16, true), &data[16..32], 2) {
            FragmentOutcome::Complete(done) => {
                assert_eq!(done.payload, data);
                assert_eq!(done.frames, vec![3, 1, 2]);
            }
            other => panic!("expected completion, got {other:?}"),
        }
        assert!(r.finish().is_empty());
    }

    #[test]
    fn duplicate_fragment_is_ignored() {
        let data = payload(24);
        let mut r = Reassembler::new();
        assert_eq!(
            r.add(key(1), frag(0, true), &data[..16], 1),
            FragmentOutcome::Incomplete
        );
        assert_eq!(
            r.add(key(1), frag(0, true), &data[..16], 2),
            FragmentOutcome::Duplicate
        );
        assert_eq!(
            r.add(key(1), frag(8, true), &data[8..16], 3),
            FragmentOutcome::Duplicate
        );
        let FragmentOutcome::Complete(done) = r.add(key(1), frag(16, false), &data[16..], 4) else {
            panic!("expected completion");
        };
        assert_eq!(done.payload, data);
        assert_eq!(done.frames, vec![1, 4]);
    }

    #[test]
    fn overlap_with_the_same_bytes_is_accepted() {
        let data = payload(32);
        let mut r = Reassembler::new();
        assert_eq!(
            r.add(key(1), frag(0, true), &data[..16], 1),
            FragmentOutcome::Incomplete
        );
        let FragmentOutcome::Complete(done) = r.add(key(1), frag(8, false), &data[8..], 2) else {
            panic!("expected completion");
        };
        assert_eq!(done.payload, data);
    }

    #[test]
    fn overlap_with_different_bytes_drops_the_datagram() {
        let data = payload(32);
        let mut r = Reassembler::new();
        r.add(key(1), frag(0, true), &data[..16], 1);
        let mut forged = data[8..].to_vec();
        forged[0] ^= 0xff;
        assert_eq!(
            r.add(key(1), frag(8, false), &forged, 2),
            FragmentOutcome::Dropped {
                key: key(1),
                frames: vec![1, 2],
                error: FragmentError::ConflictingOverlap { offset: 8 },
            }
        );
        assert!(
            r.finish().is_empty(),
            "the dropped datagram is no longer held"
        );
    }

    #[test]
    fn conflicting_last_fragments_and_data_past_the_end_are_rejected() {
        let data = payload(48);
        let mut r = Reassembler::new();
        r.add(key(1), frag(16, false), &data[16..32], 1);
        assert!(matches!(
            r.add(key(1), frag(16, false), &data[16..40], 2),
            FragmentOutcome::Dropped {
                error: FragmentError::ConflictingLength {
                    first: 32,
                    second: 40
                },
                ..
            }
        ));

        r.add(key(2), frag(16, false), &data[16..24], 4);
        assert!(matches!(
            r.add(key(2), frag(24, true), &data[24..32], 5),
            FragmentOutcome::Dropped {
                error: FragmentError::BeyondEnd { end: 32, total: 24 },
                ..
            }
        ));
    }

    #[test]
    fn misaligned_non_last_fragment_is_rejected() {
        let mut r = Reassembler::new();
        assert!(matches!(
            r.add(key(1), frag(0, true), &[0; 12], 1),
            FragmentOutcome::Dropped {
                error: FragmentError::Misaligned { offset: 0, len: 12 },
                ..
            }
        ));
    }

    #[test]
    fn fragment_past_the_size_limit_is_rejected() {
        let mut r = Reassembler::new();
        assert!(matches!(
            r.add(key(1), frag(MAX_REASSEMBLED_BYTES - 4, false), &[0; 8], 1),
            FragmentOutcome::Dropped {
                error: FragmentError::TooLarge { .. },
                ..
            }
        ));
    }

    #[test]
    fn fragment_count_is_bounded() {
        let mut r = Reassembler::new();
        for i in 0..MAX_FRAGMENTS_PER_DATAGRAM {
            assert_eq!(
                r.add(key(1), frag(i * 8, true), &[1; 8], i as u64),
                FragmentOutcome::Incomplete
            );
        }
        assert!(matches!(
            r.add(
                key(1),
                frag(MAX_FRAGMENTS_PER_DATAGRAM * 8, true),
                &[1; 8],
                999
            ),
            FragmentOutcome::Dropped {
                error: FragmentError::TooManyFragments,
                ..
            }
        ));
    }

    #[test]
    fn datagrams_in_flight_are_bounded_by_evicting_the_oldest() {
        let mut r = Reassembler::new();
        for id in 0..=MAX_DATAGRAMS_IN_FLIGHT as u32 {
            r.add(key(id), frag(0, true), &[0; 8], u64::from(id));
        }
        let evicted = r.take_evicted();
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].key, key(0));
        assert_eq!(evicted[0].reason, IncompleteReason::Evicted);
        assert_eq!(evicted[0].received, 8);

        let left = r.finish();
        assert_eq!(left.len(), MAX_DATAGRAMS_IN_FLIGHT);
        assert!(left
            .iter()
            .all(|i| i.reason == IncompleteReason::EndOfCapture));
        assert_eq!(left[0].key, key(1), "reported in arrival order");
    }

    #[test]
    fn fragments_of_different_datagrams_do_not_mix() {
        let a = payload(16);
        let b: Vec<u8> = a.iter().map(|x| x ^ 0x55).collect();
        let mut r = Reassembler::new();
        r.add(key(1), frag(0, true), &a[..8], 1);
        r.add(key(2), frag(0, true), &b[..8], 2);
        let FragmentOutcome::Complete(done_b) = r.add(key(2), frag(8, false), &b[8..], 3) else {
            panic!("expected completion");
        };
        assert_eq!(done_b.payload, b);
        let FragmentOutcome::Complete(done_a) = r.add(key(1), frag(8, false), &a[8..], 4) else {
            panic!("expected completion");
        };
        assert_eq!(done_a.payload, a);
    }
}
