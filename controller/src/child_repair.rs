//! Level-triggered repair of a peer whose IKE SA is up but lacks one of its CHILD_SAs.
//!
//! Each Geneve pair needs both CHILD_SAs ("in" and "out"). The IKE SA's initiator creates
//! them, but a CHILD_SA can still go missing: a peer's CREATE_CHILD_SA that went to an IKE SA
//! deleted right after (a crossed initiation with strongSwan's charon, which sends its second
//! child on whichever IKE SA it finds), a refused request, a CHILD_SA the peer deleted alone.
//! The tunnel then carries one direction's Geneve traffic only. So whatever the cause, a peer
//! whose settled IKE SA has lacked a configured CHILD_SA for [`CHILD_REPAIR_AFTER`] gets it
//! created by us with CREATE_CHILD_SA, whichever side initiated the IKE SA.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::daemon::Daemon;
use crate::peers::IkeState;

/// How long an IKE SA must have lacked a CHILD_SA before we create it: longer than a peer
/// that initiated the IKE SA takes to create its second CHILD_SA itself (a fraction of a
/// second, a few seconds for pluto's asynchronous `--initiate` of its second conn under
/// emulation), so the two do not create it both.
pub const CHILD_REPAIR_AFTER: Duration = Duration::from_secs(10);

impl Daemon {
    /// Notes, for every peer with its IKE SA up, whether a configured CHILD_SA is missing,
    /// and creates the first missing one of those missing for [`CHILD_REPAIR_AFTER`]. Returns
    /// whether an exchange was started (the engine then has an SPI request to drain).
    pub(crate) fn repair_missing_children(&mut self, now: Instant) -> bool {
        let mut started = false;
        for peer in self.peers.peers.values_mut() {
            let (IkeState::Up, Some(id)) = (peer.ike, peer.ike_sa) else {
                peer.child_missing_since = None;
                continue;
            };
            let missing = self.endpoint.missing_children(id);
            let Some(name) = missing.first() else {
                peer.child_missing_since = None;
                continue;
            };
            let (next, create) = repair_step(id, peer.child_missing_since, now);
            peer.child_missing_since = next;
            if !create {
                continue;
            }
            let _span = peer.span.clone().entered();
            match self.endpoint.create_missing_child(id, name) {
                Ok(()) => {
                    info!(child = %name, missing = ?missing, "IKE SA up without this CHILD_SA: creating it");
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
            .filter_map(|p| p.child_missing_since)
            .map(|(_, since)| since + CHILD_REPAIR_AFTER)
            .min()
    }
}

/// One peer whose current IKE SA `current` (any handle) lacks a CHILD_SA, missing since `since` (the IKE SA
/// it was seen missing on, and when): the next value of `since`, and whether to create the
/// CHILD_SA now. The wait starts again on another IKE SA (a crossing or a reauthentication
/// settled meanwhile) and after each attempt.
pub(crate) fn repair_step<K: PartialEq + Copy>(
    current: K,
    since: Option<(K, Instant)>,
    now: Instant,
) -> (Option<(K, Instant)>, bool) {
    match since {
        Some((seen, at)) if seen == current => {
            if now.saturating_duration_since(at) >= CHILD_REPAIR_AFTER {
                (None, true)
            } else {
                (since, false)
            }
        }
        _ => (Some((current, now)), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_sa_missing_for_the_repair_delay_on_the_same_ike_sa_is_created_once() {
        let t0 = Instant::now();
        let ike = 7u64;
        let (since, create) = repair_step(ike, None, t0);
        assert_eq!((since, create), (Some((ike, t0)), false));
        let early = t0 + CHILD_REPAIR_AFTER - Duration::from_millis(1);
        assert_eq!(repair_step(ike, since, early), (since, false));
        let due = t0 + CHILD_REPAIR_AFTER;
        assert_eq!(repair_step(ike, since, due), (None, true));
        // Still missing after the attempt: the wait starts over.
        assert_eq!(repair_step(ike, None, due), (Some((ike, due)), false));
    }

    #[test]
    fn the_wait_starts_over_when_the_current_ike_sa_changes() {
        let t0 = Instant::now();
        let since = Some((1u64, t0));
        let later = t0 + CHILD_REPAIR_AFTER * 2;
        assert_eq!(
            repair_step(2u64, since, later),
            (Some((2u64, later)), false)
        );
    }
}
