//! Level-triggered repair of a peer whose IKE SA is up but lacks one of its CHILD_SAs.
//!
//! Each Geneve pair needs both CHILD_SAs ("in" and "out"). The IKE SA's initiator creates
//! them, but a CHILD_SA can still go missing: a peer's CREATE_CHILD_SA that went to an IKE SA
//! deleted right after (a crossed initiation with strongSwan's charon, which also refuses to
//! create a CHILD_SA it holds on another IKE SA), a refused request, a CHILD_SA the peer
//! deleted alone. The tunnel then carries one direction's Geneve traffic only. So whatever
//! the cause, a peer whose settled IKE SA has lacked a configured CHILD_SA for
//! [`CHILD_REPAIR_AFTER`] gets it created by us with CREATE_CHILD_SA, whichever side
//! initiated the IKE SA; a peer that keeps refusing it is asked ever less often.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::daemon::Daemon;
use crate::peers::IkeState;

/// How long an IKE SA must have lacked a CHILD_SA before we create it: longer than a peer
/// that initiated the IKE SA takes to create its second CHILD_SA itself (a fraction of a
/// second, a few seconds for pluto's asynchronous `--initiate` of its second conn under
/// emulation), so the two do not create it both.
// Limitation: a peer that creates its second CHILD_SA later than this gets it twice (both
// sides hold the pair; the kernel sends on the newer).
pub const CHILD_REPAIR_AFTER: Duration = Duration::from_secs(10);

/// The longest wait between two attempts to create a CHILD_SA the peer keeps refusing.
pub const CHILD_REPAIR_MAX_WAIT: Duration = Duration::from_secs(300);

/// A CHILD_SA seen missing on a peer's current IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing<K> {
    /// The IKE SA it is missing on.
    pub ike_sa: K,
    /// Since when (or since the last attempt).
    pub since: Instant,
    /// Attempts made on this IKE SA so far.
    pub attempts: u32,
}

impl<K> Missing<K> {
    /// When the next attempt is due: [`CHILD_REPAIR_AFTER`], doubled per attempt made, at
    /// most [`CHILD_REPAIR_MAX_WAIT`].
    pub fn due(&self) -> Instant {
        let factor = 1u32.checked_shl(self.attempts.min(16)).unwrap_or(u32::MAX);
        let wait = CHILD_REPAIR_AFTER
            .checked_mul(factor)
            .unwrap_or(CHILD_REPAIR_MAX_WAIT)
            .min(CHILD_REPAIR_MAX_WAIT);
        self.since + wait
    }
}

impl Daemon {
    /// Notes, for every peer with its IKE SA up and settled, whether a configured CHILD_SA is
    /// missing, and creates the first missing one once it is due. Returns whether an
    /// exchange was started (the engine then has an SPI request to drain).
    pub(crate) fn repair_missing_children(&mut self, now: Instant) -> bool {
        let mut started = false;
        for peer in self.peers.peers.values_mut() {
            let (IkeState::Up, Some(id)) = (peer.ike, peer.ike_sa) else {
                peer.child_missing = None;
                continue;
            };
            // Not settled (an exchange under way, our attempt among them): look again later.
            let Some(missing) = self.endpoint.missing_children(id) else {
                continue;
            };
            let (next, create) = repair_step(id, !missing.is_empty(), peer.child_missing, now);
            peer.child_missing = next;
            let (true, Some(name)) = (create, missing.first()) else {
                continue;
            };
            let _span = peer.span.clone().entered();
            match self.endpoint.create_missing_child(id, name) {
                Ok(()) => {
                    info!(child = %name, missing = ?missing, attempts = next.map_or(0, |m| m.attempts), "IKE SA up without this CHILD_SA: creating it");
                    started = true;
                }
                Err(error) => warn!(%error, child = %name, "cannot create the missing CHILD_SA"),
            }
        }
        started
    }

    /// When [`Daemon::repair_missing_children`] next has something to do.
    pub(crate) fn next_child_repair(&self) -> Option<Instant> {
        self.peers
            .peers
            .values()
            .filter_map(|p| p.child_missing.map(|m| m.due()))
            .min()
    }
}

/// One peer whose settled current IKE SA `current` (any handle) lacks a CHILD_SA or not
/// (`lacking`), with what was noted so far: what to note now, and whether to create the
/// CHILD_SA now. The wait starts again on another IKE SA (a crossing or a reauthentication
/// settled meanwhile); each attempt doubles it.
pub fn repair_step<K: PartialEq + Copy>(
    current: K,
    lacking: bool,
    noted: Option<Missing<K>>,
    now: Instant,
) -> (Option<Missing<K>>, bool) {
    if !lacking {
        return (None, false);
    }
    match noted {
        Some(m) if m.ike_sa == current => {
            if now >= m.due() {
                let next = Missing {
                    since: now,
                    attempts: m.attempts.saturating_add(1),
                    ..m
                };
                (Some(next), true)
            } else {
                (noted, false)
            }
        }
        _ => {
            let first = Missing {
                ike_sa: current,
                since: now,
                attempts: 0,
            };
            (Some(first), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_sa_missing_for_the_repair_delay_on_the_same_ike_sa_is_created() {
        let t0 = Instant::now();
        let (noted, create) = repair_step(7u64, true, None, t0);
        assert!(!create);
        let early = t0 + CHILD_REPAIR_AFTER - Duration::from_millis(1);
        assert_eq!(repair_step(7, true, noted, early), (noted, false));
        let due = t0 + CHILD_REPAIR_AFTER;
        let (after, create) = repair_step(7, true, noted, due);
        assert!(create);
        assert_eq!(after.map(|m| m.attempts), Some(1));
        // Present again: forgotten.
        assert_eq!(repair_step(7, false, after, due), (None, false));
    }

    #[test]
    fn a_peer_that_keeps_refusing_is_asked_ever_less_often_up_to_five_minutes() {
        let mut now = Instant::now();
        let (mut noted, _) = repair_step(1u64, true, None, now);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let due = noted.unwrap().due();
            waits.push(due.duration_since(now).as_secs());
            now = due;
            let (next, create) = repair_step(1, true, noted, now);
            assert!(create);
            noted = next;
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn the_wait_starts_over_when_the_current_ike_sa_changes() {
        let t0 = Instant::now();
        let noted = Some(Missing {
            ike_sa: 1u64,
            since: t0,
            attempts: 3,
        });
        let later = t0 + CHILD_REPAIR_MAX_WAIT;
        let (next, create) = repair_step(2, true, noted, later);
        assert!(!create);
        assert_eq!(
            next,
            Some(Missing {
                ike_sa: 2,
                since: later,
                attempts: 0
            })
        );
    }
}
