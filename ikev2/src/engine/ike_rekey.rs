//! IKE SA rekeying (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA exchange on the old IKE SA
//! with an SA payload of protocol IKE, new SPIs, a new key exchange and nonces. The new IKE
//! SA's keys come from `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`, its Message IDs
//! start at 0, and the CHILD_SAs move to it; the initiator of the rekey then deletes the old
//! IKE SA. The initiator of the rekey is the original initiator of the new IKE SA.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {SA, Ni, KEi}        -->
//!                              <--  HDR, SK {SA, Nr, KEr}
//! ```
//!
//! Simultaneous rekeys (§2.8.1): both are answered, so each side has two new IKE SAs. The
//! exchange with the lowest of the four nonces loses: its initiator deletes the IKE SA it
//! made, and the initiator of the other exchange deletes the old IKE SA. The CHILD_SAs go to
//! the survivor.

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::config::PeerConfig;
use super::create_child_sa::{lower_nonce, REKEY_RETRY};
use super::endpoint::{CommandError, Endpoint};
use super::event::{DownReason, Event, IkeSaId, PeerId};
use super::ike_auth::AuthPayloads;
use super::ike_sa::{Creating, Established, IkeRekeySent, IkeSa, PeerIkeRekey, Role, State};
use super::ike_sa_init::{
    answer_of, derive_keys_from_seed, supported_transforms, DerivedKeys, MAX_INVALID_KE_RETRIES,
    MAX_NONCE_LEN, MIN_NONCE_LEN,
};
use super::proposal::{
    select_from_sa, to_wire_proposal, KeRule, OfferedProposal, SelectError, Selected, TransformSpec,
};
use super::timers::{Timer, TimerTable, NAT_KEEPALIVE_INTERVAL};
use super::window::{RequestWindow, ResponseWindow};
use crate::codec::{Ke, Nonce, Notify, NotifyData, Payload, Sa};
use crate::crypto::{KeMethod, KeyExchange, PrfAlgorithm, SharedSecret};
use crate::keys::rekey_skeyseed;
use crate::registry::{ExchangeType, KeGroup, NotifyType, ProtocolId, TransformType};

/// Size of an IKE SPI in an SA payload (RFC 7296 §3.3.1).
const IKE_SPI_SIZE: usize = 8;

/// How long an IKE SA replaced by a rekey waits for the peer's Delete before it is removed
/// anyway (the peer should send it at once, RFC 7296 §2.18).
pub const REKEYED_IKE_SA_GRACE: Duration = Duration::from_secs(60);

/// The new IKE SA's parameters the two roles share.
struct NewIkeSa {
    role: Role,
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    ni: Vec<u8>,
    nr: Vec<u8>,
    keys: DerivedKeys,
}

/// RFC 7296 §2.18: the new IKE SA's SKEYSEED from the old SK_d, then its SK_* as in §2.14.
// The PRF of SKEYSEED is the old IKE SA's (its key is the old SK_d), as strongSwan does;
// prf+ is the new IKE SA's.
#[allow(clippy::too_many_arguments)]
fn rekeyed_keys(
    provider: &dyn crate::crypto::CryptoProvider,
    old_prf: PrfAlgorithm,
    old_sk_d: &crate::crypto::SecretBytes,
    selected: &Selected,
    shared: &SharedSecret,
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
) -> Option<DerivedKeys> {
    derive_keys_from_seed(provider, selected, ni, nr, spi_i, spi_r, |_| {
        rekey_skeyseed(provider, old_prf, old_sk_d, shared, ni, nr)
    })
}

fn ike_spi(spi: &[u8]) -> Option<[u8; 8]> {
    <[u8; 8]>::try_from(spi).ok().filter(|s| *s != [0; 8])
}

/// Our IKE proposals for `config`, restricted to what we implement.
fn proposal_lists(config: &PeerConfig) -> Vec<Vec<TransformSpec>> {
    config
        .ike_proposals
        .iter()
        .map(supported_transforms)
        .filter(|l| !l.is_empty())
        .collect()
}

fn offers_group(lists: &[Vec<TransformSpec>], group: KeGroup) -> bool {
    lists
        .iter()
        .flatten()
        .any(|t| t.transform_type == TransformType::KE && t.id == group.0)
}

/// Whether `sa` only waits to be deleted: replaced by a rekey or reauthentication, the
/// redundant result of a simultaneous rekey, or being deleted. Such an IKE SA does not count
/// as the peer's IKE SA.
pub(crate) fn is_leaving(sa: &IkeSa) -> bool {
    matches!(&sa.state, State::Established(e)
        if e.deleting || e.rekey.replaced_by.is_some() || e.rekey.redundant)
}

impl Endpoint {
    /// Rekeys the IKE SA with `peer` now (RFC 7296 §2.18): the rekey starts at the next
    /// `handle_timeout`, or as soon as the exchange in progress on the IKE SA is done.
    pub fn rekey_ike(&mut self, now: Instant, peer: PeerId) -> Result<(), CommandError> {
        self.arm_on_staying_ike_sa(now, peer, Timer::Rekey)
    }

    /// Arms `timer` at `now` on `peer`'s established IKE SA that is not on its way out (see
    /// [`is_leaving`]): what the rekey and reauthenticate commands start from.
    pub(super) fn arm_on_staying_ike_sa(
        &mut self,
        now: Instant,
        peer: PeerId,
        timer: Timer,
    ) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::UnknownPeer(peer));
        }
        let sa = self.ike_sas.values_mut().find(|sa| {
            sa.peer == peer && matches!(sa.state, State::Established(_)) && !is_leaving(sa)
        });
        let Some(sa) = sa else {
            return Err(CommandError::NotEstablished(peer));
        };
        sa.timers.set(timer, now);
        Ok(())
    }

    /// Whether the peer of IKE SA `id` has another IKE SA with us (a reauthentication in
    /// progress), so `id` must not claim INITIAL_CONTACT.
    pub(crate) fn has_other_ike_sa(&self, id: IkeSaId) -> bool {
        let Some(peer) = self.ike_sas.get(&id).map(|sa| sa.peer) else {
            return false;
        };
        self.ike_sas
            .values()
            .any(|sa| sa.id != id && sa.peer == peer && matches!(sa.state, State::Established(_)))
    }

    /// Arms the lifetime timers of a newly established IKE SA: rekey at the soft lifetime
    /// (with jitter), removal at the hard one, reauthentication when configured.
    pub(crate) fn arm_ike_lifetime(&mut self, now: Instant, sa: &mut IkeSa, config: &PeerConfig) {
        let deadlines = config.ike_lifetime.deadlines(now, self.random_u64());
        sa.timers.set(Timer::Rekey, deadlines.rekey);
        sa.timers.set(Timer::Delete, deadlines.expire);
        if let Some(interval) = config.reauth_interval {
            // Up to a tenth earlier at random, so a mesh does not reauthenticate in lockstep.
            let jitter = Duration::from_nanos(
                self.random_u64() % u64::try_from(interval.as_nanos() / 10).unwrap_or(1).max(1),
            );
            sa.timers
                .set(Timer::Reauth, now + interval.saturating_sub(jitter));
        }
    }

    /// [`Timer::Rekey`] fired: start an IKE SA rekey, or try again a little later when
    /// another exchange is in the way.
    pub(crate) fn on_ike_rekey_timer(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        if e.deleting || e.rekey.replaced_by.is_some() || e.rekey.redundant {
            return;
        }
        let busy = e.creating.is_some()
            || e.rekey.answering.is_some()
            || e.rekey.peer_ike_rekey.is_some()
            || !sa.requests.can_send();
        if busy || !self.send_ike_rekey(now, id, None, 0) {
            self.ike_rekey_later(now, id);
        }
    }

    /// Arms [`Timer::Rekey`] a little later (a rekey was refused or could not start).
    fn ike_rekey_later(&mut self, now: Instant, id: IkeSaId) {
        let jitter = Duration::from_millis(self.random_u64() % 2000);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            sa.timers.set(Timer::Rekey, now + REKEY_RETRY + jitter);
        }
    }

    /// Sends the IKE SA rekey request on IKE SA `id`, with a KE of `group` (the negotiated
    /// group unless the peer asked for another); false when it could not be sent.
    fn send_ike_rekey(
        &mut self,
        now: Instant,
        id: IkeSaId,
        group: Option<KeGroup>,
        invalid_ke_retries: u32,
    ) -> bool {
        let Some(sa) = self.ike_sas.get(&id) else {
            return false;
        };
        let State::Established(e) = &sa.state else {
            return false;
        };
        let Some(config) = self.peers.get(&sa.peer) else {
            return false;
        };
        let lists = proposal_lists(config);
        let negotiated = e.algorithms.ke;
        let group = group
            .or_else(|| offers_group(&lists, negotiated).then_some(negotiated))
            .or_else(|| {
                lists
                    .iter()
                    .flatten()
                    .find(|t| t.transform_type == TransformType::KE)
                    .map(|t| KeGroup(t.id))
            });
        let Some(Ok(method)) = group.map(KeMethod::from_group) else {
            return false;
        };
        let Ok(ke) = KeyExchange::generate(method, &mut *self.rng) else {
            return false;
        };
        let Ok(spi) = self.random_spi() else {
            return false;
        };
        let ni = self.exchange_nonce();
        let proposals: Vec<_> = lists
            .iter()
            .zip(1u8..)
            .map(|(l, n)| to_wire_proposal(n, ProtocolId::IKE, spi.to_vec(), l))
            .collect();
        let offered = proposals.iter().map(OfferedProposal::from).collect();
        let inner = [
            Payload::new(Sa { proposals }),
            Payload::new(Nonce { data: ni.clone() }),
            Payload::new(Ke {
                group: ke.method().group(),
                data: ke.public_value().to_vec(),
            }),
        ];
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return false;
        };
        let Ok(mid) = sa.requests.allocate() else {
            return false;
        };
        let Some(datagrams) = self.seal(id, ExchangeType::CREATE_CHILD_SA, mid, false, &inner)
        else {
            return false;
        };
        let Some((local, remote)) = self.record_request(id, mid, &datagrams, now) else {
            return false;
        };
        self.set_creating(
            id,
            Some(Creating::IkeRekey(Box::new(IkeRekeySent {
                spi,
                ni,
                ke,
                offered,
                invalid_ke_retries,
            }))),
        );
        info!(ike_sa = id.0, mid, "IKE SA rekey request sent");
        self.queue_datagrams(local, remote, datagrams);
        true
    }

    /// Responder: the peer asks to rekey IKE SA `id`; the payloads of the answer.
    pub(crate) fn ike_rekey_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        p: &AuthPayloads<'_>,
    ) -> Vec<Payload> {
        let refuse = |t: NotifyType| vec![Payload::new(Notify::status(t))];
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get(&id) else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let State::Established(e) = &sa.state else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let collision = match e.creating.as_deref() {
            None => false,
            Some(Creating::IkeRekey(_)) => true,
            // RFC 7296 §2.25.2: we are creating or rekeying a CHILD_SA.
            Some(_) => return refuse(NotifyType::TEMPORARY_FAILURE),
        };
        if e.rekey.peer_ike_rekey.is_some() || e.rekey.redundant {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
        if !collision && sa.requests.pending_len() > 0 {
            // A request of ours (a CHILD_SA's Delete, a liveness check) is outstanding on this
            // IKE SA; once the CHILD_SAs move, its answer could no longer be matched to them.
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
        let (Some(sa_payload), Some(ke), Some(ni)) = (
            p.sa,
            p.ke,
            p.nonce
                .map(|n| n.data.clone())
                .filter(|n| (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&n.len())),
        ) else {
            return refuse(NotifyType::INVALID_SYNTAX);
        };
        let Some(config) = self.peers.get(&sa.peer) else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let lists = proposal_lists(config);
        let selected = match select_from_sa(
            sa_payload,
            &lists,
            ProtocolId::IKE,
            IKE_SPI_SIZE,
            KeRule::MustMatch(ke.group),
        ) {
            Ok(s) => s,
            Err(SelectError::NoProposalChosen) => return refuse(NotifyType::NO_PROPOSAL_CHOSEN),
            Err(SelectError::InvalidKe { preferred }) => {
                return vec![Payload::new(Notify::invalid_ke_payload(preferred))]
            }
        };
        let Some(spi_i) = ike_spi(&selected.spi) else {
            return refuse(NotifyType::INVALID_SYNTAX);
        };
        let (old_prf, old_sk_d) = (e.prf, e.keys.sk_d.clone());
        let our_ke = KeMethod::from_group(selected.ke_group())
            .ok()
            .and_then(|m| KeyExchange::generate(m, &mut *self.rng).ok());
        let Some(our_ke) = our_ke else {
            return refuse(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let Ok(shared) = our_ke.agree(&ke.data) else {
            return refuse(NotifyType::INVALID_SYNTAX);
        };
        let Ok(spi_r) = self.random_spi() else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let nr = self.exchange_nonce();
        let Some(keys) = rekeyed_keys(
            provider.as_ref(),
            old_prf,
            &old_sk_d,
            &selected,
            &shared,
            &ni,
            &nr,
            &spi_i,
            &spi_r,
        ) else {
            return refuse(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let lowest_nonce = lower_nonce(&ni, &nr);
        let new = NewIkeSa {
            role: Role::Responder,
            spi_i,
            spi_r,
            ni,
            nr: nr.clone(),
            keys,
        };
        let Some(new_id) = self.install_rekeyed_ike_sa(now, id, new) else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        if collision {
            // Which new IKE SA survives is known once our own rekey is answered (§2.8.1).
            debug!(
                ike_sa = id.0,
                new = new_id.0,
                "simultaneous IKE SA rekey: answered the peer's"
            );
            if let Some(e) = self.established_mut(id) {
                e.rekey.peer_ike_rekey = Some(PeerIkeRekey {
                    new: new_id,
                    lowest_nonce,
                });
            }
        } else {
            self.switch_to_rekeyed(now, id, new_id);
        }
        vec![
            Payload::new(Sa {
                proposals: vec![selected.to_wire_proposal(spi_r.to_vec())],
            }),
            Payload::new(Nonce { data: nr }),
            Payload::new(Ke {
                group: our_ke.method().group(),
                data: our_ke.public_value().to_vec(),
            }),
        ]
    }

    /// Initiator: the answer to our IKE SA rekey request on IKE SA `id`.
    pub(crate) fn handle_ike_rekey_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        sent: IkeRekeySent,
        inner: &[Payload],
    ) {
        let provider = self.provider.clone();
        let p = AuthPayloads::of(inner, false);
        if let Some(n) = p.notify(NotifyType::INVALID_KE_PAYLOAD) {
            let lists = self
                .ike_sas
                .get(&id)
                .and_then(|sa| self.peers.get(&sa.peer))
                .map(proposal_lists)
                .unwrap_or_default();
            if let Ok(NotifyData::InvalidKePayload(group)) = n.typed_data() {
                if sent.invalid_ke_retries < MAX_INVALID_KE_RETRIES
                    && group != sent.ke.method().group()
                    && offers_group(&lists, group)
                    && self.send_ike_rekey(now, id, Some(group), sent.invalid_ke_retries + 1)
                {
                    debug!(ike_sa = id.0, %group, "IKE SA rekey retried with the group asked for");
                    return;
                }
            }
            self.ike_rekey_failed(now, id, NotifyType::INVALID_KE_PAYLOAD);
            return;
        }
        if let Some(error) = p.error() {
            debug!(ike_sa = id.0, %error, "IKE SA rekey refused");
            self.ike_rekey_failed(now, id, error);
            return;
        }
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        let our_group = sent.ke.method().group();
        let checked = (|| {
            let selected = answer_of(p.sa?)?;
            let nr = p
                .nonce
                .map(|n| n.data.clone())
                .filter(|n| (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&n.len()))?;
            let ke = p.ke?;
            let spi_r = ike_spi(&selected.spi)?;
            let valid = selected.protocol == ProtocolId::IKE
                && selected.is_valid_answer(&sent.offered)
                && selected.ke_group() == our_group
                && ke.group == our_group;
            if !valid {
                return None;
            }
            let shared = sent.ke.agree(&ke.data).ok()?;
            let keys = rekeyed_keys(
                provider.as_ref(),
                e.prf,
                &e.keys.sk_d,
                &selected,
                &shared,
                &sent.ni,
                &nr,
                &sent.spi,
                &spi_r,
            )?;
            Some((spi_r, nr, keys))
        })();
        let Some((spi_r, nr, keys)) = checked else {
            debug!(
                ike_sa = id.0,
                "IKE SA rekey answer does not answer our proposal"
            );
            self.ike_rekey_failed(now, id, NotifyType::NO_PROPOSAL_CHOSEN);
            return;
        };
        let ours_lowest = lower_nonce(&sent.ni, &nr);
        let new = NewIkeSa {
            role: Role::Initiator,
            spi_i: sent.spi,
            spi_r,
            ni: sent.ni,
            nr,
            keys,
        };
        let Some(new_id) = self.install_rekeyed_ike_sa(now, id, new) else {
            self.ike_rekey_failed(now, id, NotifyType::TEMPORARY_FAILURE);
            return;
        };
        let theirs = self
            .established_mut(id)
            .and_then(|e| e.rekey.peer_ike_rekey.take());
        match theirs {
            Some(theirs) if ours_lowest < theirs.lowest_nonce => {
                // §2.8.1: our exchange has the lowest nonce: the peer's new IKE SA survives
                // and the peer deletes the old one; ours is redundant and ours to delete.
                info!(
                    ike_sa = id.0,
                    ours = new_id.0,
                    theirs = theirs.new.0,
                    "simultaneous IKE SA rekey lost: deleting our redundant IKE SA"
                );
                self.switch_to_rekeyed(now, id, theirs.new);
                if let Some(e) = self.established_mut(new_id) {
                    e.rekey.redundant = true;
                    e.rekey.delete_reason = Some(DownReason::Superseded);
                }
                self.delete_established(now, new_id, true);
            }
            Some(theirs) => {
                info!(
                    ike_sa = id.0,
                    ours = new_id.0,
                    theirs = theirs.new.0,
                    "simultaneous IKE SA rekey won: the peer deletes its redundant IKE SA"
                );
                self.mark_redundant(now, theirs.new);
                self.finish_ike_rekey(now, id, new_id);
            }
            None => self.finish_ike_rekey(now, id, new_id),
        }
    }

    /// We initiated the rekey that made `new`: the CHILD_SAs move to it and we delete `old`.
    fn finish_ike_rekey(&mut self, now: Instant, old: IkeSaId, new: IkeSaId) {
        self.switch_to_rekeyed(now, old, new);
        if let Some(e) = self.established_mut(old) {
            e.rekey.delete_reason = Some(DownReason::Rekeyed);
        }
        // RFC 7296 §2.18: the Delete is the last request on the old IKE SA.
        self.delete_established(now, old, true);
    }

    /// Our IKE SA rekey on `id` made no IKE SA.
    fn ike_rekey_failed(&mut self, now: Instant, id: IkeSaId, reason: NotifyType) {
        let theirs = self
            .established_mut(id)
            .and_then(|e| e.rekey.peer_ike_rekey.take());
        if let Some(theirs) = theirs {
            // Only the peer's rekey made an IKE SA (§2.8.1); the peer deletes the old one.
            info!(
                ike_sa = id.0,
                new = theirs.new.0,
                ?reason,
                "IKE SA rekeyed by the peer"
            );
            self.switch_to_rekeyed(now, id, theirs.new);
            return;
        }
        debug!(
            ike_sa = id.0,
            ?reason,
            "IKE SA rekey failed; retrying later"
        );
        self.ike_rekey_later(now, id);
    }

    /// The peer deleted IKE SA `id`: why it is down. A rekeyed IKE SA goes as
    /// [`DownReason::Rekeyed`]; one with the peer's collided rekey recorded hands its
    /// CHILD_SAs to that rekey's IKE SA first (the peer won, §2.8.1).
    pub(crate) fn ike_sa_deleted_by_peer(&mut self, now: Instant, id: IkeSaId) -> DownReason {
        let Some(e) = self.established_mut(id) else {
            return DownReason::DeletedByPeer;
        };
        if let Some(theirs) = e.rekey.peer_ike_rekey.take() {
            // Limitation: if our own rekey's answer is still on the way (reordered behind
            // this Delete), the IKE SA the peer made for it is left to the peer's liveness
            // check or rekey to remove.
            self.switch_to_rekeyed(now, id, theirs.new);
            return DownReason::Rekeyed;
        }
        if e.rekey.replaced_by.is_some() {
            DownReason::Rekeyed
        } else if e.rekey.redundant {
            DownReason::Superseded
        } else {
            DownReason::DeletedByPeer
        }
    }

    /// The Established state of IKE SA `id`.
    pub(crate) fn established_mut(&mut self, id: IkeSaId) -> Option<&mut Established> {
        match &mut self.ike_sas.get_mut(&id)?.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    /// Creates the IKE SA a rekey of `old` made, without CHILD_SAs yet; its timers run from
    /// `now` except reauthentication, which keeps the old IKE SA's deadline.
    fn install_rekeyed_ike_sa(
        &mut self,
        now: Instant,
        old: IkeSaId,
        new: NewIkeSa,
    ) -> Option<IkeSaId> {
        let our_spi = match new.role {
            Role::Initiator => new.spi_i,
            Role::Responder => new.spi_r,
        };
        if self.by_spi.contains_key(&our_spi) {
            return None;
        }
        let sa = self.ike_sas.get(&old)?;
        let State::Established(e) = &sa.state else {
            return None;
        };
        let config = self.peers.get(&sa.peer)?.clone();
        let (peer, local, remote, nat_t) = (sa.peer, sa.local, sa.remote, sa.nat_t);
        let (nat, fragments) = (e.nat, e.peer_supports_fragmentation);
        // The configured CHILD_SAs were all tried on the first IKE SA (its initiator creates
        // them, one exchange at a time, before any rekey can start); whoever is the new
        // initiator creates none.
        let next_child = config.children.len();
        let reauth_at = sa.timers.get(Timer::Reauth);
        let keepalive = sa.timers.is_set(Timer::NatKeepalive);
        let id = self.allocate_ike_sa_id();
        let mut timers = TimerTable::default();
        if keepalive {
            timers.set(Timer::NatKeepalive, now + NAT_KEEPALIVE_INTERVAL);
        }
        if let Some(interval) = config.dpd_interval {
            timers.set(Timer::Dpd, now + interval);
        }
        let mut sa = IkeSa {
            id,
            peer,
            role: new.role,
            spi_i: new.spi_i,
            spi_r: new.spi_r,
            local,
            remote,
            nat_t,
            next_iv: 0,
            // RFC 7296 §2.18: the new IKE SA's Message IDs start at 0.
            // Limitation: windows restart at size 1; a SET_WINDOW_SIZE the peer sent on the
            // old IKE SA is not carried over.
            requests: RequestWindow::new(),
            responses: ResponseWindow::new(),
            timers,
            reassembler: Default::default(),
            state: State::Established(Box::new(Established {
                keys: new.keys.keys,
                algorithms: new.keys.algorithms,
                prf: new.keys.prf,
                cipher: new.keys.cipher,
                nat,
                children: Vec::new(),
                peer_supports_fragmentation: fragments,
                deleting: false,
                creating: None,
                replaced: Vec::new(),
                next_child,
                ni: new.ni,
                nr: new.nr,
                rekey: Default::default(),
            })),
        };
        self.arm_ike_lifetime(now, &mut sa, &config);
        match reauth_at {
            Some(at) => sa.timers.set(Timer::Reauth, at),
            None => sa.timers.stop(Timer::Reauth),
        }
        self.ike_sas.insert(id, sa);
        self.by_spi.insert(our_spi, id);
        Some(id)
    }

    /// `new` replaces `old`: the CHILD_SAs move over, the event is reported, and `old` only
    /// waits for its Delete (ours or the peer's; removed after a grace period regardless).
    fn switch_to_rekeyed(&mut self, now: Instant, old: IkeSaId, new: IkeSaId) {
        let Some(sa) = self.ike_sas.get_mut(&old) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let children = std::mem::take(&mut e.children);
        e.rekey.replaced_by = Some(new);
        let reauth = e.rekey.reauth.take();
        sa.timers.stop_all();
        sa.timers.set(Timer::Delete, now + REKEYED_IKE_SA_GRACE);
        sa.sync_retransmit_timer();
        let Some(sa) = self.ike_sas.get_mut(&new) else {
            return;
        };
        let State::Established(e) = &mut sa.state else {
            return;
        };
        // Message IDs start again on the new IKE SA: a pending outbound SA moved here waits for
        // the Delete of the CHILD_SA it replaces, or its timer.
        e.children.extend(children.into_iter().map(|mut c| {
            if let Some(p) = c.pending_outbound.as_mut() {
                p.message_id = None;
            }
            c
        }));
        e.rekey.redundant = false;
        e.rekey.reauth = reauth;
        let algorithms = e.algorithms;
        sa.sync_child_timer();
        info!(old = old.0, new = new.0, "IKE SA rekeyed");
        self.push_event(Event::IkeSaRekeyed {
            peer,
            old_ike_sa: old,
            new_ike_sa: new,
            algorithms,
        });
    }

    /// IKE SA `id` is the redundant result of a simultaneous rekey that the peer deletes; it
    /// is removed after the grace period if the peer does not.
    fn mark_redundant(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        if let State::Established(e) = &mut sa.state {
            e.rekey.redundant = true;
        }
        sa.timers.stop_all();
        sa.timers.set(Timer::Delete, now + REKEYED_IKE_SA_GRACE);
        sa.sync_retransmit_timer();
    }

    /// [`Timer::Delete`] fired: the hard lifetime passed, or a replaced IKE SA's grace period.
    pub(crate) fn on_ike_delete_timer(&mut self, id: IkeSaId) {
        let reason = match self.established_mut(id) {
            Some(e) if e.rekey.replaced_by.is_some() => DownReason::Rekeyed,
            Some(e) if e.rekey.redundant => DownReason::Superseded,
            _ => DownReason::Expired,
        };
        self.remove_ike_sa(id, reason);
    }
}
