//! One IKE SA per peer: a newly authenticated IKE SA replaces the older ones with the same
//! peer, even without INITIAL_CONTACT.
//!
//! Libreswan's pluto re-initiates after a restart without INITIAL_CONTACT (RFC 7296 §2.4 only
//! says SHOULD), so the IKE SA we hold from before its restart would otherwise stay until DPD
//! or its lifetime ends it, with CHILD_SAs whose peer ends are gone.
//!
//! The rule: when IKE_AUTH establishes an IKE SA with a peer configuration, which names one
//! remote address and the one identity its certificate had to prove, every other
//! *established* IKE SA of that configuration is replaced [`REPLACE_DELAY`] later, unless it
//! is gone by then. The delay is what tells a restart from a reauthentication (RFC 7296
//! §2.8.3): a reauthenticating peer also sends no INITIAL_CONTACT, creates its CHILD_SAs in
//! the new IKE SA and then deletes the old one itself, well within the delay; replacing at
//! once would delete the old CHILD_SAs before the peer's second CHILD_SA exists. Our own
//! reauthentication deletes the old IKE SA itself (`reauth.rs`) and is not touched here.
//! A replaced IKE SA's CHILD_SAs are reported deleted, and one INFORMATIONAL Delete is sent
//! under its keys, not retransmitted: a peer that restarted answers it with INVALID_IKE_SPI
//! at most, a peer that still holds it (it set up a second IKE SA on purpose) learns that it
//! is gone. Half-open IKE SAs are left to crossed initiation (`ike_sa_init.rs`) and the
//! half-open timer.
//!
//! An IKE SA established less than [`REPLACE_MIN_AGE`] before the new one comes from a
//! crossed initiation with a peer that does not follow our lower-address rule (strongSwan's
//! charon keeps retransmitting the IKE_SA_INIT we ignored while ours was half-open, and we
//! answer once ours is up). The rule there: the responder of the IKE SA established last
//! deletes the older one at once, as charon does with `unique = replace`. Only the responder
//! of the newer IKE SA acts, so the two sides never delete both: for each side to see the
//! other's IKE SA complete last, each would have to send its IKE_AUTH response after
//! receiving the other's, which no order of messages allows. We yield our young IKE SA to
//! the peer's newer one; a peer CHILD_SA that went to ours meanwhile is recreated on the
//! remaining IKE SA (`missing_child.rs`). A young IKE SA of the peer's is kept, to the peer's
//! own uniqueness rule or Delete.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tracing::info;

use super::endpoint::Endpoint;
use super::event::{DownReason, IkeSaId, PeerId};
use super::ike_sa::{Role, State};
use super::timers::Timer;

/// How long an IKE SA must have been established before a newer one replaces it: longer
/// than the few round trips in which crossed initiations complete, shorter than a peer's
/// restart.
pub const REPLACE_MIN_AGE: Duration = Duration::from_secs(5);

/// How long an older IKE SA is kept after a newer one with the same peer came up: long enough
/// for a reauthenticating peer to create its CHILD_SAs and delete the old IKE SA itself, even
/// with a few retransmissions.
pub const REPLACE_DELAY: Duration = Duration::from_secs(20);

/// How long a crossed IKE SA that is to go waits for its window to have room for the
/// Delete (an exchange of its own, such as its second CHILD_SA, still in flight).
pub const CROSSED_DELETE_RETRY: Duration = Duration::from_secs(1);

/// When each IKE SA established by IKE_AUTH came up, and which of ours lost a crossed
/// initiation and are to be deleted.
#[derive(Debug, Default)]
pub(crate) struct EstablishedAt(HashMap<IkeSaId, Instant>, HashSet<IkeSaId>);

impl Endpoint {
    /// IKE SA `new` with `peer` was just established by IKE_AUTH: replaces every other
    /// established IKE SA with `peer`.
    pub(crate) fn replace_older_ike_sas(&mut self, now: Instant, new: IkeSaId, peer: PeerId) {
        let ike_sas = &self.ike_sas;
        self.established_at
            .0
            .retain(|id, _| ike_sas.contains_key(id));
        self.established_at.1.retain(|id| ike_sas.contains_key(id));
        self.established_at.0.insert(new, now);
        let established_at = &self.established_at.0;
        let old_enough = |id: &IkeSaId| {
            established_at
                .get(id)
                .is_none_or(|&at| now.saturating_duration_since(at) >= REPLACE_MIN_AGE)
        };
        let new_is_peers = self
            .ike_sas
            .get(&new)
            .is_some_and(|sa| sa.role == Role::Responder);
        let candidates = self
            .ike_sas
            .values()
            .filter(|sa| sa.peer == peer && sa.id != new)
            .filter(|sa| {
                matches!(&sa.state, State::Established(e)
                    if !e.deleting && e.rekey.replaced_by.is_none() && e.rekey.reauth.is_none())
            });
        let (older, young): (Vec<_>, Vec<_>) = candidates.partition(|sa| old_enough(&sa.id));
        let crossed: Vec<IkeSaId> = young
            .into_iter()
            .filter(|sa| new_is_peers && sa.role == Role::Initiator)
            .map(|sa| sa.id)
            .collect();
        let older: Vec<IkeSaId> = older.into_iter().map(|sa| sa.id).collect();
        for old in crossed {
            if let Some(sa) = self.ike_sas.get_mut(&old) {
                info!(
                    ike_sa = old.0,
                    newer = new.0,
                    "crossed initiation: the peer kept its attempt too and it came up last; ours goes"
                );
                self.established_at.1.insert(old);
                sa.timers.set(Timer::Replace, now);
            }
        }
        for old in older {
            if let Some(sa) = self.ike_sas.get_mut(&old) {
                if !sa.timers.is_set(Timer::Replace) {
                    info!(
                        ike_sa = old.0,
                        newer = new.0,
                        "a newer IKE SA with the same peer and identity is up: this one goes unless the peer deletes it first"
                    );
                    sa.timers.set(Timer::Replace, now + REPLACE_DELAY);
                }
            }
        }
    }

    /// [`Timer::Replace`]: the older IKE SA is still here, so the peer did not reauthenticate
    /// but restarted; it goes now.
    pub(crate) fn on_replace_timer(&mut self, now: Instant, old: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&old) else {
            return;
        };
        let still_ours = matches!(&sa.state, State::Established(e)
            if !e.deleting && e.rekey.replaced_by.is_none() && e.rekey.reauth.is_none());
        if !still_ours {
            self.established_at.1.remove(&old);
            return;
        }
        if self.established_at.1.contains(&old) {
            self.delete_crossed(now, old);
            return;
        }
        info!(
            ike_sa = old.0,
            "replaced by a newer IKE SA with the same peer and identity"
        );
        self.stats.ike_sas_replaced += 1;
        // Queues the Delete and reports the CHILD_SAs deleted; the IKE SA goes at once.
        self.delete_established(now, old, true);
        self.remove_ike_sa(old, DownReason::Replaced);
    }

    /// Deletes our IKE SA `old` that lost a crossed initiation, with a Delete the peer answers
    /// (it holds the IKE SA and its CHILD_SAs); while an exchange of its own is in flight the
    /// Delete waits [`CROSSED_DELETE_RETRY`].
    fn delete_crossed(&mut self, now: Instant, old: IkeSaId) {
        let Some(sa) = self.ike_sas.get_mut(&old) else {
            self.established_at.1.remove(&old);
            return;
        };
        if !sa.requests.can_send() {
            sa.timers.set(Timer::Replace, now + CROSSED_DELETE_RETRY);
            return;
        }
        if let State::Established(e) = &mut sa.state {
            e.rekey.delete_reason = Some(DownReason::Replaced);
        }
        self.established_at.1.remove(&old);
        self.stats.ike_sas_replaced += 1;
        self.delete_established(now, old, true);
    }
}
