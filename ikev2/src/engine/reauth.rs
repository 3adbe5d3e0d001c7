//! Reauthentication (RFC 7296 §2.8.3) as make-before-break: a whole new IKE SA is built with
//! IKE_SA_INIT and IKE_AUTH, from the peer configuration as it is now (so a renewed
//! certificate is used), its CHILD_SAs are created, and only then is the old IKE SA deleted.
//!
//! The new IKE_AUTH carries no INITIAL_CONTACT, so the peer keeps the old IKE SA (and its
//! CHILD_SAs) until our Delete of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, info};

use super::config::{ConfigError, Credentials, PeerConfig};
use super::endpoint::{CommandError, Endpoint};
use super::event::{DownReason, Event, IkeSaId, PeerId};
use super::ike_rekey::is_leaving;
use super::ike_sa::State;
use super::timers::Timer;
use crate::auth::TrustStore;

/// How long a reauthentication may take before it is started again; a new IKE SA that failed
/// is noticed at this interval.
pub const REAUTH_RETRY: Duration = Duration::from_secs(60);

/// Why [`Endpoint::update_peer`] refused a configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpdatePeerError {
    /// The peer configuration does not exist.
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
    /// The new configuration is unusable.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Endpoint {
    /// Replaces the configuration of `peer` after checking it, returning the old one. IKE SAs
    /// already established keep their keys and addresses; every exchange from now on reads
    /// the new configuration, so the next reauthentication signs with new credentials (e.g.
    /// a renewed certificate).
    pub fn update_peer(
        &mut self,
        peer: PeerId,
        config: PeerConfig,
    ) -> Result<PeerConfig, UpdatePeerError> {
        config.validate()?;
        let slot = self
            .peers
            .get_mut(&peer)
            .ok_or(UpdatePeerError::UnknownPeer(peer))?;
        Ok(std::mem::replace(slot, config))
    }

    /// Gives `peer` new credentials and CAs (certificate rotation), keeping the rest of its
    /// configuration; the old ones stay if the result is not valid. Established IKE SAs keep
    /// their keys; the next IKE_AUTH (a new IKE SA or a reauthentication) presents the new
    /// certificate and checks the peer against the new CAs.
    pub fn update_credentials(
        &mut self,
        peer: PeerId,
        credentials: Credentials,
        trusted_cas: Arc<TrustStore>,
    ) -> Result<(), UpdatePeerError> {
        let mut updated = self
            .peers
            .get(&peer)
            .ok_or(UpdatePeerError::UnknownPeer(peer))?
            .clone();
        updated.credentials = credentials;
        updated.trusted_cas = trusted_cas;
        self.update_peer(peer, updated).map(drop)
    }

    /// Reauthenticates with `peer` now: a new IKE SA is set up next to the established one,
    /// which is deleted once the new one and its CHILD_SAs are up.
    pub fn reauthenticate(&mut self, now: Instant, peer: PeerId) -> Result<(), CommandError> {
        self.arm_on_staying_ike_sa(now, peer, Timer::Reauth)
    }

    /// [`Timer::Reauth`] fired on established IKE SA `id`: start the new IKE SA, unless one is
    /// on its way already; look again after [`REAUTH_RETRY`] in case it fails.
    pub(crate) fn on_reauth_timer(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &sa.state else {
            return;
        };
        if e.deleting || e.rekey.replaced_by.is_some() || e.rekey.redundant {
            return;
        }
        // Our earlier attempt is still on its way, or the peer is reauthenticating (its new
        // IKE SA exists here already and it deletes this one when done): not a second one.
        let in_progress = self
            .ike_sas
            .values()
            .any(|other| other.peer == peer && other.id != id && !is_leaving(other));
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            sa.timers.set(Timer::Reauth, now + REAUTH_RETRY);
        }
        if in_progress {
            return;
        }
        match self.start_ike_sa_init(now, peer) {
            Ok(new) => {
                info!(
                    ike_sa = id.0,
                    new = new.0,
                    "reauthenticating: new IKE SA started"
                );
                if let Some(e) = self.established_mut(id) {
                    e.rekey.reauth = Some(new);
                }
            }
            Err(error) => debug!(ike_sa = id.0, %error, "reauthentication could not start"),
        }
    }

    // Limitation: as the responder of the peer's reauthentication we report the new
    // CHILD_SAs installed and the old ones deleted (when the peer deletes the old IKE SA),
    // without ChildSaRekeyed between them.
    /// Initiator: new IKE SA `id` has tried every configured CHILD_SA. If it reauthenticates
    /// an older IKE SA, that one's CHILD_SAs are reported replaced by their namesakes and it
    /// is deleted (RFC 7296 §2.8.3).
    pub(crate) fn children_complete(&mut self, now: Instant, id: IkeSaId) {
        let old = self
            .ike_sas
            .values()
            .find(|sa| matches!(&sa.state, State::Established(e) if e.rekey.reauth == Some(id)));
        let Some(old) = old.map(|sa| sa.id) else {
            return;
        };
        let (Some(State::Established(new_e)), Some(old_sa)) = (
            self.ike_sas.get(&id).map(|sa| &sa.state),
            self.ike_sas.get(&old),
        ) else {
            return;
        };
        let State::Established(old_e) = &old_sa.state else {
            return;
        };
        let peer = old_sa.peer;
        let replaced: Vec<Event> = old_e
            .children
            .iter()
            .filter_map(|o| {
                let n = new_e.children.iter().find(|n| n.index == o.index)?;
                Some(Event::ChildSaRekeyed {
                    peer,
                    old_spi_in: o.spi_in,
                    old_spi_out: o.spi_out,
                    new_spi_in: n.spi_in,
                    new_spi_out: n.spi_out,
                })
            })
            .collect();
        info!(
            old = old.0,
            new = id.0,
            "reauthenticated: deleting the old IKE SA"
        );
        for event in replaced {
            self.push_event(event);
        }
        if let Some(e) = self.established_mut(old) {
            e.rekey.reauth = None;
            e.rekey.replaced_by = Some(id);
            e.rekey.delete_reason = Some(DownReason::Rekeyed);
        }
        self.delete_established(now, old, true);
    }
}
