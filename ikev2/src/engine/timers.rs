//! The timers of one IKE SA: a table of deadlines indexed by [`Timer`], the retransmission
//! schedule with exponential backoff, and lifetimes with random jitter.
//!
//! Nothing here reads a clock: every function takes `now` from the caller, so tests drive the
//! timers with virtual time.

use std::time::{Duration, Instant};

use thiserror::Error;

/// First retransmission timeout of a request (RFC 7296 §2.1 leaves the schedule to us).
pub const RETRANSMIT_INITIAL_TIMEOUT: Duration = Duration::from_millis(500);

/// Each retransmission waits this many times as long as the previous one.
pub const RETRANSMIT_BACKOFF_FACTOR: u32 = 2;

/// No single wait between retransmissions exceeds this.
pub const RETRANSMIT_MAX_TIMEOUT: Duration = Duration::from_secs(16);

/// Retransmissions of one request before the peer is declared dead (RFC 7296 §2.4).
///
/// With the values above the peer is given up on about 48 seconds after the first send.
pub const RETRANSMIT_MAX_RETRIES: u32 = 6;

/// How long a responder keeps an IKE SA that has not completed IKE_AUTH (RFC 7296 §2.6: half-open
/// SAs are what an attacker floods us with, so they do not live long).
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval of NAT keepalives (RFC 3948 §2.3 suggests 20 seconds).
pub const NAT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// The timers of one IKE SA.
///
/// Each has at most one deadline at a time; the IKE SA's next wake-up is the earliest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Retransmit the oldest outstanding request, or declare the peer dead when the schedule has
    /// run out (RFC 7296 §2.1, §2.4).
    Retransmit,
    /// The IKE SA has not been established in time; forget it (RFC 7296 §2.6).
    HalfOpen,
    /// Soft lifetime of the IKE SA: start an IKE SA rekey (RFC 7296 §2.8).
    Rekey,
    /// Reauthentication: build a new IKE SA from scratch with fresh authentication (§2.8.3).
    Reauth,
    /// Nothing heard from the peer for the DPD interval: send a liveness check (RFC 7296 §2.4).
    Dpd,
    /// Send a NAT keepalive so a NAT keeps the mapping for port 4500 open (RFC 3948 §2.3).
    NatKeepalive,
    /// Hard lifetime, or the grace period after a rekey or Delete: remove the IKE SA and its
    /// CHILD_SAs without further negotiation.
    Delete,
    /// The earliest soft (rekey) or hard (expiry) lifetime of the IKE SA's CHILD_SAs.
    ChildLifetime,
    /// A newer IKE SA with the same peer and identity came up: replace this one unless the
    /// peer deleted it by then (its reauthentication, RFC 7296 §2.8.3).
    Replace,
}

impl Timer {
    /// Every timer, in the order of the table.
    pub const ALL: [Timer; 9] = [
        Timer::Retransmit,
        Timer::HalfOpen,
        Timer::Rekey,
        Timer::Reauth,
        Timer::Dpd,
        Timer::NatKeepalive,
        Timer::Delete,
        Timer::ChildLifetime,
        Timer::Replace,
    ];

    fn index(self) -> usize {
        match self {
            Timer::Retransmit => 0,
            Timer::HalfOpen => 1,
            Timer::Rekey => 2,
            Timer::Reauth => 3,
            Timer::Dpd => 4,
            Timer::NatKeepalive => 5,
            Timer::Delete => 6,
            Timer::ChildLifetime => 7,
            Timer::Replace => 8,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` to fire at `deadline`, replacing any earlier deadline it had.
    pub fn set(&mut self, timer: Timer, deadline: Instant) {
        self.deadlines[timer.index()] = Some(deadline);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer (the IKE SA is going away).
    pub fn stop_all(&mut self) {
        self.deadlines = Default::default();
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// Whether `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// The earliest armed deadline: when the IKE SA next needs `handle_timeout`.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer whose deadline is at or before `now`.
    ///
    /// Call it in a loop: timers come out in deadline order, ties in table order.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, _) = Timer::ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|d| (t, d)))
            .filter(|&(_, d)| d <= now)
            .min_by_key(|&(t, d)| (d, t))?;
        self.stop(timer);
        Some(timer)
    }
}

/// What to do when the retransmission timer of a request fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetransmitDecision {
    /// Send the request again and wait until the given deadline.
    Resend {
        /// When to look again.
        next_deadline: Instant,
    },
    /// The schedule has run out: the peer is dead (RFC 7296 §2.4).
    GiveUp,
}

/// The retransmission state of one outstanding request (RFC 7296 §2.1: only the initiator of
/// an exchange retransmits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    retries: u32,
    timeout: Duration,
}

impl Default for Retransmission {
    fn default() -> Self {
        Self::new()
    }
}

impl Retransmission {
    /// The state right after the first transmission.
    pub fn new() -> Self {
        Retransmission {
            retries: 0,
            timeout: RETRANSMIT_INITIAL_TIMEOUT,
        }
    }

    /// When the first retransmission is due, for a request first sent at `sent`.
    pub fn first_deadline(&self, sent: Instant) -> Instant {
        sent + self.timeout
    }

    /// How many times the request has been retransmitted.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The timer fired at `now`: retransmit with a doubled timeout, or give up after
    /// [`RETRANSMIT_MAX_RETRIES`] retransmissions went unanswered.
    pub fn on_timeout(&mut self, now: Instant) -> RetransmitDecision {
        if self.retries >= RETRANSMIT_MAX_RETRIES {
            return RetransmitDecision::GiveUp;
        }
        self.retries += 1;
        self.timeout = self
            .timeout
            .saturating_mul(RETRANSMIT_BACKOFF_FACTOR)
            .min(RETRANSMIT_MAX_TIMEOUT);
        RetransmitDecision::Resend {
            next_deadline: now + self.timeout,
        }
    }
}

/// Why a [`Lifetime`] is unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LifetimeError {
    /// The rekey (soft) time must come before the expiry (hard) time.
    #[error("soft lifetime {soft:?} is not shorter than hard lifetime {hard:?}")]
    SoftNotBeforeHard {
        /// Configured soft lifetime.
        soft: Duration,
        /// Configured hard lifetime.
        hard: Duration,
    },
    /// The jitter must be smaller than the soft lifetime, or rekeying could start at once.
    #[error("jitter {jitter:?} is not shorter than soft lifetime {soft:?}")]
    JitterTooLarge {
        /// Configured jitter.
        jitter: Duration,
        /// Configured soft lifetime.
        soft: Duration,
    },
}

/// Soft and hard lifetime of an IKE SA or CHILD_SA, with random jitter on the soft one so that
/// the two peers (and the many SAs of one node) do not all rekey at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// After this long (minus up to `jitter`), start a rekey.
    pub soft: Duration,
    /// After this long the SA is deleted whether or not the rekey succeeded.
    pub hard: Duration,
    /// Up to this much is subtracted at random from `soft`.
    pub jitter: Duration,
}

/// The deadlines a [`Lifetime`] gives an SA established at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifetimeDeadlines {
    /// When to start the rekey.
    pub rekey: Instant,
    /// When to delete the SA.
    pub expire: Instant,
}

impl Lifetime {
    /// Checks that soft < hard and jitter < soft.
    pub fn validate(&self) -> Result<(), LifetimeError> {
        if self.soft >= self.hard {
            return Err(LifetimeError::SoftNotBeforeHard {
                soft: self.soft,
                hard: self.hard,
            });
        }
        if self.jitter >= self.soft && !self.jitter.is_zero() {
            return Err(LifetimeError::JitterTooLarge {
                jitter: self.jitter,
                soft: self.soft,
            });
        }
        Ok(())
    }

    /// The deadlines for an SA established at `established`; `random` is a uniformly random
    /// 64-bit value from the endpoint's randomness source and picks the jitter.
    pub fn deadlines(&self, established: Instant, random: u64) -> LifetimeDeadlines {
        // jitter * random / 2^64, computed in nanoseconds without overflow.
        let jitter_nanos = self.jitter.as_nanos();
        let offset = (jitter_nanos * u128::from(random)) >> 64;
        let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX));
        let soft = self.soft.saturating_sub(offset);
        LifetimeDeadlines {
            rekey: established + soft,
            expire: established + self.hard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn empty_table_has_no_timeout() {
        let table = TimerTable::default();
        assert_eq!(table.next_timeout(), None);
    }

    #[test]
    fn next_timeout_is_the_earliest_armed_deadline() {
        let start = t0();
        let mut table = TimerTable::default();
        table.set(Timer::Dpd, start + Duration::from_secs(30));
        table.set(Timer::Retransmit, start + Duration::from_secs(1));
        table.set(Timer::Rekey, start + Duration::from_secs(3600));
        assert_eq!(table.next_timeout(), Some(start + Duration::from_secs(1)));

        table.stop(Timer::Retransmit);
        assert_eq!(table.next_timeout(), Some(start + Duration::from_secs(30)));
    }

    #[test]
    fn setting_a_timer_again_replaces_its_deadline() {
        let start = t0();
        let mut table = TimerTable::default();
        table.set(Timer::Dpd, start + Duration::from_secs(1));
        table.set(Timer::Dpd, start + Duration::from_secs(10));
        assert_eq!(table.get(Timer::Dpd), Some(start + Duration::from_secs(10)));
    }

    #[test]
    fn expired_timers_pop_in_deadline_order_and_are_disarmed() {
        let start = t0();
        let mut table = TimerTable::default();
        table.set(Timer::Delete, start + Duration::from_secs(2));
        table.set(Timer::NatKeepalive, start + Duration::from_secs(1));
        table.set(Timer::Rekey, start + Duration::from_secs(5));

        let now = start + Duration::from_secs(3);
        assert_eq!(table.pop_expired(now), Some(Timer::NatKeepalive));
        assert_eq!(table.pop_expired(now), Some(Timer::Delete));
        assert_eq!(table.pop_expired(now), None);
        assert!(!table.is_set(Timer::Delete));
        assert!(table.is_set(Timer::Rekey));
    }

    #[test]
    fn timers_with_equal_deadlines_pop_in_table_order() {
        let start = t0();
        let mut table = TimerTable::default();
        table.set(Timer::Delete, start);
        table.set(Timer::Retransmit, start);
        assert_eq!(table.pop_expired(start), Some(Timer::Retransmit));
        assert_eq!(table.pop_expired(start), Some(Timer::Delete));
    }

    #[test]
    fn retransmissions_double_the_timeout_up_to_the_cap() {
        let start = t0();
        let mut rtx = Retransmission::new();
        let mut now = rtx.first_deadline(start);
        assert_eq!(now - start, Duration::from_millis(500));

        let mut waits = Vec::new();
        while let RetransmitDecision::Resend { next_deadline } = rtx.on_timeout(now) {
            waits.push(next_deadline - now);
            now = next_deadline;
        }
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, vec![1.0, 2.0, 4.0, 8.0, 16.0, 16.0]);
        assert_eq!(rtx.retries(), RETRANSMIT_MAX_RETRIES);
    }

    #[test]
    fn peer_is_declared_dead_after_the_schedule_runs_out() {
        let start = t0();
        let mut rtx = Retransmission::new();
        let mut now = rtx.first_deadline(start);
        let mut sends = 1;
        while let RetransmitDecision::Resend { next_deadline } = rtx.on_timeout(now) {
            sends += 1;
            now = next_deadline;
        }
        assert_eq!(sends, 1 + RETRANSMIT_MAX_RETRIES);
        // 0.5 + 1 + 2 + 4 + 8 + 16 + 16 seconds of silence.
        assert_eq!(now - start, Duration::from_millis(47_500));
        // Once given up, it stays given up.
        assert_eq!(rtx.on_timeout(now), RetransmitDecision::GiveUp);
    }

    fn hour_lifetime() -> Lifetime {
        Lifetime {
            soft: Duration::from_secs(3600),
            hard: Duration::from_secs(4000),
            jitter: Duration::from_secs(360),
        }
    }

    #[test]
    fn lifetime_jitter_only_shortens_the_soft_lifetime_within_bounds() {
        let start = t0();
        let lifetime = hour_lifetime();
        for random in [0, 1, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
            let d = lifetime.deadlines(start, random);
            assert!(d.rekey <= start + lifetime.soft);
            assert!(d.rekey > start + lifetime.soft - lifetime.jitter);
            assert_eq!(d.expire, start + lifetime.hard);
        }
        assert_eq!(lifetime.deadlines(start, 0).rekey, start + lifetime.soft);
        let half = lifetime.deadlines(start, 1 << 63).rekey;
        assert_eq!(half, start + Duration::from_secs(3600 - 180));
    }

    #[test]
    fn different_random_values_spread_rekey_times() {
        let start = t0();
        let lifetime = hour_lifetime();
        let a = lifetime.deadlines(start, 0x1234_5678_9abc_def0).rekey;
        let b = lifetime.deadlines(start, 0xfedc_ba98_7654_3210).rekey;
        assert_ne!(a, b);
    }

    #[test]
    fn lifetime_with_soft_after_hard_is_rejected() {
        let lifetime = Lifetime {
            soft: Duration::from_secs(10),
            hard: Duration::from_secs(10),
            jitter: Duration::ZERO,
        };
        assert!(matches!(
            lifetime.validate(),
            Err(LifetimeError::SoftNotBeforeHard { .. })
        ));
    }

    #[test]
    fn lifetime_with_jitter_as_long_as_soft_is_rejected() {
        let lifetime = Lifetime {
            soft: Duration::from_secs(10),
            hard: Duration::from_secs(20),
            jitter: Duration::from_secs(10),
        };
        assert!(matches!(
            lifetime.validate(),
            Err(LifetimeError::JitterTooLarge { .. })
        ));
        assert_eq!(hour_lifetime().validate(), Ok(()));
    }
}
