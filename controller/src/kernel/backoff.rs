//! Exponential backoff for retrying a reconcile whose changes failed, as data for the caller's
//! timer (no clock is read here).

use std::time::Duration;

/// First retry delay after a failure.
pub const INITIAL_RETRY: Duration = Duration::from_millis(200);
/// Longest retry delay; the periodic reconcile runs anyway.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Consecutive-failure counter that yields the next retry delay: 200 ms, doubling, capped at
/// 30 s; reset by a reconcile without failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(INITIAL_RETRY, MAX_RETRY)
    }
}

impl Backoff {
    /// A backoff from `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            failures: 0,
        }
    }

    /// Records a failed attempt and returns how long to wait before the next.
    pub fn failed(&mut self) -> Duration {
        let shift = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32 << shift;
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Records a successful attempt.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_on_success() {
        let mut b = Backoff::default();
        let d: Vec<_> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(
            d,
            vec![200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        b.succeeded();
        assert_eq!(b.failed(), INITIAL_RETRY);
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.failed(), MAX_RETRY);
    }
}
