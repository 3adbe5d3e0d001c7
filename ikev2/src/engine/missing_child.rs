//! Repair of an IKE SA that lacks one of its configured CHILD_SAs.
//!
//! Every CHILD_SA of a peer configuration is meant to exist on the peer's IKE SA. The
//! initiator of the IKE SA creates them (the first with IKE_AUTH, the others with
//! CREATE_CHILD_SA); a responder leaves it to the peer. When one is missing anyway (the peer's
//! CREATE_CHILD_SA went to an IKE SA that a crossed initiation or the peer's uniqueness rule
//! then deleted, a refused request, a CHILD_SA the peer deleted alone), either side may create
//! it (RFC 7296 §1.3). The caller decides when: [`Endpoint::missing_children`] says what is
//! missing, [`Endpoint::create_missing_child`] starts the exchange.

use tracing::info;

use super::endpoint::{CommandError, Endpoint};
use super::event::IkeSaId;
use super::ike_rekey::is_leaving;
use super::ike_sa::{Creating, Role, State};

impl Endpoint {
    /// The names of the configured CHILD_SAs that established IKE SA `id` has none of, if
    /// the IKE SA is settled: nothing under way on it (no exchange in flight, its initiator's
    /// own CHILD_SAs all tried, no rekey, reauthentication or Delete) and no other IKE SA with
    /// the same peer (a crossed initiation or a reauthentication settles first: a CHILD_SA the
    /// other IKE SA holds would be created twice). `None` while it is not settled (or is no
    /// established IKE SA).
    pub fn missing_children(&self, id: IkeSaId) -> Option<Vec<String>> {
        let sa = self.ike_sas.get(&id)?;
        let State::Established(e) = &sa.state else {
            return None;
        };
        let config = self.peers.get(&sa.peer)?;
        let initial_done = sa.role == Role::Responder || e.next_child >= config.children.len();
        let busy = is_leaving(sa)
            || e.creating.is_some()
            || e.rekey.answering.is_some()
            || e.rekey.reauth.is_some()
            || sa.requests.pending_len() > 0
            || !initial_done;
        let others = self
            .ike_sas
            .values()
            .any(|o| o.peer == sa.peer && o.id != id && !is_leaving(o));
        if busy || others {
            return None;
        }
        let missing = config
            .children
            .iter()
            .enumerate()
            .filter(|(index, _)| !e.children.iter().any(|c| c.index == *index))
            .map(|(_, c)| c.name.clone())
            .collect();
        Some(missing)
    }

    /// Creates the configured CHILD_SA `name` on established IKE SA `id` with CREATE_CHILD_SA,
    /// whichever side initiated the IKE SA (the exchange starts once the caller answers the
    /// [`super::Event::AllocateSpi`] it asks for); it is reported like any other CHILD_SA
    /// ([`super::Event::ChildSaInstall`]).
    pub fn create_missing_child(&mut self, id: IkeSaId, name: &str) -> Result<(), CommandError> {
        let sa = self
            .ike_sas
            .get(&id)
            .ok_or(CommandError::UnknownIkeSa(id))?;
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let State::Established(e) = &sa.state else {
            return Err(CommandError::NotEstablished(peer));
        };
        if is_leaving(sa) || e.creating.is_some() {
            return Err(CommandError::IkeSaBusy(id));
        }
        let child = self
            .peers
            .get(&peer)
            .and_then(|c| c.children.iter().position(|c| c.name == name))
            .ok_or_else(|| CommandError::UnknownChildConfig(name.to_string()))?;
        info!(
            ike_sa = id.0,
            child = name,
            "the IKE SA lacks this CHILD_SA: creating it"
        );
        let request = self.request_spi(id, peer, local, remote);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.creating = Some(Box::new(Creating::AwaitingSpi {
                    request,
                    child,
                    rekey: None,
                }));
            }
        }
        Ok(())
    }
}
