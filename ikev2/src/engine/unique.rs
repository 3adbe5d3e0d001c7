//! One IKE SA per peer: a newly authenticated IKE SA replaces the older ones with the same
//! peer, even without INITIAL_CONTACT.
//!
//! Libreswan's pluto re-initiates after a restart without INITIAL_CONTACT (RFC 7296 §2.4 only
//! says SHOULD), so the IKE SA we hold from before its restart would otherwise stay until DPD
//! or its lifetime ends it, with CHILD_SAs whose peer ends are gone.
//!
//! The rule: when IKE_AUTH establishes an IKE SA with a peer configuration, which names one
//! remote address and the one identity its certificate had to prove, every other
//! *established* IKE SA of that configuration is replaced. Its CHILD_SAs are reported deleted
//! after the new IKE SA's first CHILD_SA was reported installed (make before break), and one
//! INFORMATIONAL Delete is sent under its keys, not retransmitted: a peer that restarted
//! answers it with INVALID_IKE_SPI at most, a peer that still holds it (it set up a second
//! IKE SA on purpose) learns that it is gone. Half-open IKE SAs are left to crossed
//! initiation (`ike_sa_init.rs`) and the half-open timer.
//!
//! An IKE SA established less than [`REPLACE_MIN_AGE`] before the new one is kept: two IKE
//! SAs completing that close together come from a crossed initiation with a peer that does
//! not follow our lower-address rule, and each side may see them complete in the other
//! order; replacing on both sides would delete both. The peer's own uniqueness rule, or its
//! Delete, settles which one stays.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::info;

use super::endpoint::Endpoint;
use super::event::{DownReason, IkeSaId, PeerId};
use super::ike_sa::State;

/// How long an IKE SA must have been established before a newer one replaces it: longer
/// than the few round trips in which crossed initiations complete, shorter than a peer's
/// restart.
pub const REPLACE_MIN_AGE: Duration = Duration::from_secs(5);

/// When each IKE SA established by IKE_AUTH came up.
#[derive(Debug, Default)]
pub(crate) struct EstablishedAt(HashMap<IkeSaId, Instant>);

impl Endpoint {
    /// IKE SA `new` with `peer` was just established by IKE_AUTH: replaces every other
    /// established IKE SA with `peer`.
    pub(crate) fn replace_older_ike_sas(&mut self, now: Instant, new: IkeSaId, peer: PeerId) {
        let ike_sas = &self.ike_sas;
        self.established_at
            .0
            .retain(|id, _| ike_sas.contains_key(id));
        self.established_at.0.insert(new, now);
        let established_at = &self.established_at.0;
        let old_enough = |id: &IkeSaId| {
            established_at
                .get(id)
                .is_none_or(|&at| now.saturating_duration_since(at) >= REPLACE_MIN_AGE)
        };
        let older: Vec<IkeSaId> = self
            .ike_sas
            .values()
            .filter(|sa| sa.peer == peer && sa.id != new && old_enough(&sa.id))
            .filter(|sa| matches!(&sa.state, State::Established(e) if !e.deleting))
            .map(|sa| sa.id)
            .collect();
        for old in older {
            info!(
                ike_sa = old.0,
                replaced_by = new.0,
                "a new IKE SA with the same peer and identity replaces this one"
            );
            self.stats.ike_sas_replaced += 1;
            // Queues the Delete and reports the CHILD_SAs deleted; the IKE SA goes at once.
            self.delete_established(now, old, true);
            self.remove_ike_sa(old, DownReason::Replaced);
        }
    }
}
