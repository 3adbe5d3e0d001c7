//! When to initiate again after an IKE SA failed or went down: the kernel layer's doubling
//! [`Backoff`], capped, with jitter so that chassis which lost their peers together (a network
//! partition, a CA mistake) do not retry in lockstep, and so that an impostor or a peer with a
//! bad certificate is retried (and logged) ever less often.
//!
//! No clock and no randomness are read here: the caller passes the random sample, so the
//! delays are deterministic in tests.

use std::time::Duration;

use crate::kernel::Backoff;

/// The first retry delay after a failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// The longest retry delay: a peer that keeps failing is tried at least this often.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// The share of a delay that jitter may take off it, in percent (the delay never exceeds what
/// the backoff says, so [`MAX_RETRY`] holds).
pub const JITTER_PERCENT: u64 = 25;

/// The re-initiation backoff of one peer: reset when its IKE SA comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitiateBackoff {
    backoff: Backoff,
}

impl Default for InitiateBackoff {
    fn default() -> InitiateBackoff {
        InitiateBackoff {
            backoff: Backoff::new(FIRST_RETRY, MAX_RETRY),
        }
    }
}

impl InitiateBackoff {
    /// Records a failed or lost IKE SA and returns how long to wait before initiating again:
    /// the backoff's delay, never less than `floor` (a responder's grace period, so the peer
    /// that should initiate gets its chance first), shortened by jitter from `random`.
    pub fn failed(&mut self, floor: Duration, random: u32) -> Duration {
        let delay = self.backoff.failed().max(floor);
        jittered(delay, random)
    }

    /// Records an IKE SA that came up: the next failure starts from [`FIRST_RETRY`] again.
    pub fn succeeded(&mut self) {
        self.backoff.succeeded();
    }

    /// Consecutive failures since the last IKE SA came up.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

/// `delay` less up to [`JITTER_PERCENT`] of it, the share chosen by `random` (0 takes nothing
/// off, `u32::MAX` the whole share).
pub fn jittered(delay: Duration, random: u32) -> Duration {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let share = millis / 100 * JITTER_PERCENT;
    // share * random / 2^32 fits u128 and is at most `share`.
    let off = (u128::from(share) * u128::from(random)) >> 32;
    let off = u64::try_from(off).unwrap_or(share);
    Duration::from_millis(millis.saturating_sub(off))
}

/// A random sample for [`InitiateBackoff::failed`] from the operating system; 0 (no jitter) if
/// it has none to give.
pub fn random_sample() -> u32 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_five_seconds_up_to_five_minutes_and_reset_on_success() {
        let mut b = InitiateBackoff::default();
        let secs: Vec<u64> = (0..9)
            .map(|_| b.failed(Duration::ZERO, 0).as_secs())
            .collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.failures(), 9);
        b.succeeded();
        assert_eq!(b.failed(Duration::ZERO, 0), FIRST_RETRY);
    }

    #[test]
    fn responder_never_retries_before_its_grace_period() {
        let mut b = InitiateBackoff::default();
        let grace = Duration::from_secs(10);
        assert_eq!(b.failed(grace, 0), grace);
        assert_eq!(b.failed(grace, 0), grace);
        assert_eq!(b.failed(grace, 0), Duration::from_secs(20));
    }

    #[test]
    fn jitter_takes_at_most_a_quarter_off_and_never_adds() {
        let d = Duration::from_secs(300);
        assert_eq!(jittered(d, 0), d);
        assert_eq!(jittered(d, u32::MAX), Duration::from_millis(225_001));
        assert_eq!(jittered(d, 1 << 31), Duration::from_millis(262_500));
        for r in [1, 7, 1 << 20, u32::MAX / 3] {
            let j = jittered(d, r);
            assert!(j <= d && j >= d * 3 / 4, "{j:?}");
        }
        assert_eq!(jittered(Duration::ZERO, u32::MAX), Duration::ZERO);
    }
}
