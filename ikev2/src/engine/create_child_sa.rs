//! CREATE_CHILD_SA for additional CHILD_SAs (RFC 7296 §1.3.1), with optional PFS, and CHILD_SA
//! rekeying (§1.3.3) with the collision rule of §2.8.1: the initiator of the IKE SA creates
//! every configured CHILD_SA after the first, one exchange at a time; the responder matches
//! each against its own configurations. IKE SA rekeys arrive here too and go to
//! `ike_rekey.rs`.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {[N(REKEY_SA)], [N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}  -->
//!                              <--  HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Nr, [KEr], TSi, TSr}
//! ```
//!
//! Simultaneous rekeys of one CHILD_SA (§2.8.1): both requests are answered, so each side
//! ends up with two new CHILD_SAs. The exchange that used the lowest of the four nonces
//! loses: its initiator deletes the CHILD_SA that exchange made, and the initiator of the
//! other exchange deletes the old CHILD_SA. A request for a CHILD_SA we have already replaced
//! (our rekey finished first) is answered with CHILD_SA_NOT_FOUND, so only one new CHILD_SA
//! results.

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::config::{Mode, PeerConfig};
use super::endpoint::Endpoint;
use super::event::{Event, IkeSaId, Outbound, SpiRequestId};
use super::ike_auth::{
    accept_child, child_install, derive_child_keys, spi_of, supported_esp, AuthPayloads,
    ChildRefusal, NewChild,
};
use super::ike_sa::{
    Answering, ChildRequest, ChildSa, Creating, PeerChildRekey, PendingOutbound, Role, State,
};
use super::ike_sa_init::{MAX_NONCE_LEN, MIN_NONCE_LEN, NONCE_LEN};
use super::proposal::{to_wire_proposal, KeRule, OfferedProposal};
use super::traffic_selector;
use crate::codec::{self, Delete, Ke, Nonce, Notify, NotifyData, Payload, PayloadBody, Sa};
use crate::crypto::{KeMethod, KeyExchange};
use crate::keys::ChildSaKeys;
use crate::registry::{ExchangeType, KeGroup, NotifyType, ProtocolId, TransformType};

/// A rekey that could not start, or was refused (TEMPORARY_FAILURE), is tried again after
/// this plus up to two seconds at random, so two peers do not collide forever.
pub const REKEY_RETRY: Duration = Duration::from_secs(2);

/// INVALID_KE_PAYLOAD answers to a CREATE_CHILD_SA we follow (RFC 7296 §1.3): one retry with
/// the group the responder asked for.
pub const MAX_CHILD_KE_RETRIES: u32 = 1;

/// How long after we installed a CHILD_SA a CHILD_SA_NOT_FOUND for it is taken as the peer
/// having deleted it: longer than the peer's retransmissions of the exchange that made it
/// (47.5 s), whose answer may still be on its way to the peer.
pub const NOT_FOUND_SETTLE: Duration = Duration::from_secs(60);

/// As the responder of a CHILD_SA rekey, how long after our response the new outbound SA is
/// reported ready ([`Event::ChildSaOutboundReady`]) if nothing proved the initiator switched
/// before. The initiator's Delete of the old CHILD_SA and its later requests are that proof,
/// but an initiator may send neither (one that keeps old CHILD_SAs to their hard lifetime, or
/// one whose window was full, as ours drops a retired CHILD_SA without a Delete then), and we
/// must not keep sending on the old SA until it expires. Longer than the whole retransmission
/// schedule of the request (47.5 s, `timers.rs`), which started before our response: by then
/// the initiator has our response or has given the IKE SA up, so switching cannot lose
/// packets to an SA the peer lacks. A peer with a longer schedule (strongSwan's runs about
/// 165 s) deletes the old CHILD_SA as soon as it has the response anyway.
pub const OUTBOUND_SWITCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the responder does with a CREATE_CHILD_SA request.
pub(crate) enum CreateChildReply {
    /// Answer at once with these payloads.
    Now(Vec<Payload>),
    /// The answer waits for an inbound SPI.
    Later,
}

/// The lower of two nonces, octet by octet; a nonce that is a prefix of the other is the
/// lower (RFC 7296 §2.8.1), which is how slices compare.
pub(crate) fn lower_nonce(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.min(b).to_vec()
}

/// The ESP proposal's Key Exchange group of the first proposal in `lists`, if any.
fn first_pfs_group(lists: &[Vec<super::proposal::TransformSpec>]) -> Option<KeGroup> {
    lists
        .first()
        .and_then(|l| l.iter().find(|t| t.transform_type == TransformType::KE))
        .map(|t| KeGroup(t.id))
}

/// Whether any of `lists` offers `group`.
fn offers_group(lists: &[Vec<super::proposal::TransformSpec>], group: KeGroup) -> bool {
    lists
        .iter()
        .flatten()
        .any(|t| t.transform_type == TransformType::KE && t.id == group.0)
}

impl Endpoint {
    /// A nonce for a CREATE_CHILD_SA exchange (RFC 7296 §2.10); tests may force it to put the
    /// four nonces of a collision in a chosen order.
    pub(crate) fn exchange_nonce(&mut self) -> Vec<u8> {
        #[cfg(test)]
        if let Some(forced) = self.forced_nonces.pop_front() {
            return forced;
        }
        let mut nonce = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut nonce);
        nonce
    }

    /// Initiator: starts the next configured CHILD_SA of established IKE SA `id`, if any; once
    /// every one was tried, a reauthentication waiting for them can finish.
    pub(crate) fn next_child(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let State::Established(e) = &sa.state else {
            return;
        };
        let count = self.peers.get(&peer).map_or(0, |c| c.children.len());
        if sa.role != Role::Initiator || e.deleting || e.creating.is_some() {
            return;
        }
        if e.next_child >= count {
            self.children_complete(now, id);
            return;
        }
        let child = e.next_child;
        let request = self.request_spi(id, peer, local, remote);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.next_child += 1;
                e.creating = Some(Box::new(Creating::AwaitingSpi {
                    request,
                    child,
                    rekey: None,
                }));
            }
        }
    }

    /// An inbound SPI arrived for a CREATE_CHILD_SA exchange of IKE SA `id`.
    pub(crate) fn on_create_child_spi(
        &mut self,
        now: Instant,
        id: IkeSaId,
        request: SpiRequestId,
        spi: u32,
    ) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        if let Some(Creating::AwaitingSpi {
            request: r,
            child,
            rekey,
        }) = e.creating.as_deref()
        {
            if *r == request {
                let (child, rekey) = (*child, *rekey);
                self.send_create_child_request(now, id, child, rekey, spi, None, 0);
                return;
            }
        }
        if e.rekey
            .answering
            .as_ref()
            .is_some_and(|a| a.request == request)
        {
            self.send_create_child_response(now, id, spi);
        }
        // Limitation: an SPI for an exchange given up meanwhile (a collision resolved, the
        // IKE SA replaced) is left unused in the kernel until it expires there.
    }

    pub(crate) fn set_creating(&mut self, id: IkeSaId, creating: Option<Creating>) {
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.creating = creating.map(Box::new);
            }
        }
    }

    /// Sends a CREATE_CHILD_SA request for configuration `child` with our inbound SPI
    /// `spi_in`; `group` overrides the PFS group (after INVALID_KE_PAYLOAD). With the peer's
    /// window full the request is queued and sent when a response makes room.
    #[allow(clippy::too_many_arguments)]
    fn send_create_child_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        child: usize,
        rekey: Option<u32>,
        spi_in: u32,
        group: Option<KeGroup>,
        ke_retries: u32,
    ) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        if !sa.requests.can_send() {
            debug!(ike_sa = id.0, child, "window full; CREATE_CHILD_SA queued");
            self.set_creating(
                id,
                Some(Creating::Queued {
                    child,
                    rekey,
                    spi_in,
                }),
            );
            return;
        }
        let Some(mut config) = self
            .peers
            .get(&sa.peer)
            .and_then(|c| c.children.get(child))
            .cloned()
        else {
            self.set_creating(id, None);
            return;
        };
        // A rekey proposes the selectors the old CHILD_SA was narrowed to.
        if let (Some(old), State::Established(e)) = (rekey, &sa.state) {
            match e.children.iter().find(|c| c.spi_in == old) {
                Some(c) => {
                    config.local_ts = c.local_ts.clone();
                    config.remote_ts = c.remote_ts.clone();
                }
                None => {
                    // Deleted while the SPI was being allocated: nothing left to rekey.
                    self.set_creating(id, None);
                    return;
                }
            }
        }
        let lists: Vec<_> = config
            .esp_proposals
            .iter()
            .map(supported_esp)
            .filter(|t| !t.is_empty())
            .collect();
        let proposals: Vec<codec::Proposal> = lists
            .iter()
            .zip(1u8..)
            .map(|(t, n)| to_wire_proposal(n, ProtocolId::ESP, spi_in.to_be_bytes().to_vec(), t))
            .collect();
        let offered: Vec<OfferedProposal> = proposals.iter().map(OfferedProposal::from).collect();

        // PFS (RFC 7296 §1.3.1): a KE payload of the first group our first proposal lists, or
        // of the group the responder asked for.
        let pfs_group = group.or_else(|| first_pfs_group(&lists));
        let ke = match pfs_group.map(KeMethod::from_group) {
            Some(Ok(method)) => KeyExchange::generate(method, &mut *self.rng)
                .ok()
                .map(Box::new),
            _ => None,
        };
        let ni = self.exchange_nonce();

        let mut inner = Vec::new();
        if let Some(old) = rekey {
            // RFC 7296 §1.3.3: name the SA being replaced by our inbound SPI of it.
            inner.push(Payload::new(Notify::rekey_sa(
                ProtocolId::ESP,
                old.to_be_bytes().to_vec(),
            )));
        }
        if config.mode == Mode::Transport {
            inner.push(Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)));
        }
        inner.push(Payload::new(Sa { proposals }));
        inner.push(Payload::new(Nonce { data: ni.clone() }));
        if let Some(ke) = &ke {
            inner.push(Payload::new(Ke {
                group: ke.method().group(),
                data: ke.public_value().to_vec(),
            }));
        }
        inner.push(Payload::new(PayloadBody::TsI(
            traffic_selector::to_payload(&config.local_ts),
        )));
        inner.push(Payload::new(PayloadBody::TsR(
            traffic_selector::to_payload(&config.remote_ts),
        )));

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let Ok(mid) = sa.requests.allocate() else {
            // Message IDs exhausted: the IKE SA must be rekeyed first.
            self.set_creating(id, None);
            self.rekey_later(now, id, rekey);
            return;
        };
        let Some(datagrams) = self.seal(id, ExchangeType::CREATE_CHILD_SA, mid, false, &inner)
        else {
            self.set_creating(id, None);
            self.rekey_later(now, id, rekey);
            return;
        };
        let Some((local, remote)) = self.record_request(id, mid, &datagrams, now) else {
            return;
        };
        self.set_creating(
            id,
            Some(Creating::Sent {
                request: ChildRequest {
                    child,
                    spi_in,
                    offered,
                    tsi: config.local_ts.clone(),
                    tsr: config.remote_ts.clone(),
                },
                ni,
                ke,
                rekey,
                ke_retries,
            }),
        );
        debug!(ike_sa = id.0, child = %config.name, mid, rekey = rekey.is_some(),
            "CREATE_CHILD_SA request sent");
        self.queue_datagrams(local, remote, datagrams);
    }

    /// A response made room in the peer's window: send the CREATE_CHILD_SA request queued for
    /// it, if any.
    pub(crate) fn send_queued(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        if !sa.requests.can_send() {
            return;
        }
        if let Some(Creating::Queued {
            child,
            rekey,
            spi_in,
        }) = e.creating.as_deref()
        {
            let (child, rekey, spi_in) = (*child, *rekey, *spi_in);
            self.send_create_child_request(now, id, child, rekey, spi_in, None, 0);
        }
    }

    /// Responder: a CREATE_CHILD_SA request on established IKE SA `id`.
    pub(crate) fn create_child_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        message_id: u32,
        inner: &[Payload],
    ) -> CreateChildReply {
        let refuse = |t: NotifyType| CreateChildReply::Now(vec![Payload::new(Notify::status(t))]);
        let Some(sa) = self.ike_sas.get(&id) else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let State::Established(e) = &sa.state else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let p = AuthPayloads::of(inner, true);
        if e.deleting || e.rekey.replaced_by.is_some() || e.rekey.answering.is_some() {
            // RFC 7296 §2.25: the IKE SA is going away, or another request is being answered.
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
        let is_ike =
            p.sa.and_then(|sa| sa.proposals.first())
                .is_some_and(|prop| prop.protocol == ProtocolId::IKE);
        if is_ike {
            return CreateChildReply::Now(self.ike_rekey_request(now, id, &p));
        }
        if matches!(e.creating.as_deref(), Some(Creating::IkeRekey(_))) {
            // RFC 7296 §2.25.1: we are rekeying the IKE SA.
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
        let mut abandon_ours = false;
        let mut collision = false;
        let rekey_of = match p.notify(NotifyType::REKEY_SA) {
            None => None,
            Some(n) if n.protocol != ProtocolId::ESP => {
                return refuse(NotifyType::CHILD_SA_NOT_FOUND);
            }
            Some(n) => {
                // The peer names its inbound SPI of the old CHILD_SA: our outbound one.
                let old = <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes)
                    .and_then(|spi| e.children.iter().find(|c| c.spi_out == spi));
                let Some(c) = old else {
                    // Unknown, or already replaced by our own rekey (§2.8.1: only one new
                    // CHILD_SA then results).
                    return refuse(NotifyType::CHILD_SA_NOT_FOUND);
                };
                if c.rekeying {
                    match e.creating.as_deref() {
                        // Our request is out: answer both (§2.8.1).
                        Some(Creating::Sent { rekey: Some(r), .. }) if *r == c.spi_in => {
                            collision = true;
                        }
                        // Ours is not sent yet: give it up, the peer's rekey does the job.
                        Some(Creating::AwaitingSpi { rekey: Some(r), .. })
                        | Some(Creating::Queued { rekey: Some(r), .. })
                            if *r == c.spi_in =>
                        {
                            abandon_ours = true;
                        }
                        _ => return refuse(NotifyType::TEMPORARY_FAILURE),
                    }
                }
                Some((c.spi_in, c.spi_out))
            }
        };
        let Some(ni) = p
            .nonce
            .map(|n| n.data.clone())
            .filter(|n| (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&n.len()))
        else {
            return refuse(NotifyType::INVALID_SYNTAX);
        };
        let Some(config) = self.peers.get(&peer).cloned() else {
            return refuse(NotifyType::TEMPORARY_FAILURE);
        };
        let ke_rule = p.ke.map_or(KeRule::None, |k| KeRule::MustMatch(k.group));
        let answer = match self.choose_child(&config, &p, ke_rule) {
            Ok(answer) => answer,
            Err(ChildRefusal::Notify(t)) => return refuse(t),
            Err(ChildRefusal::InvalidKe(group)) => {
                return CreateChildReply::Now(vec![Payload::new(Notify::invalid_ke_payload(group))])
            }
        };
        if abandon_ours {
            debug!(
                ike_sa = id.0,
                "the peer rekeys the CHILD_SA first; ours is given up"
            );
            self.set_creating(id, None);
        }
        let ke = p.ke.map(|k| (k.group, k.data.clone()));
        let request = self.request_spi(id, peer, local, remote);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.rekey.answering = Some(Box::new(Answering {
                    request,
                    message_id,
                    answer,
                    ni,
                    ke,
                    rekey_of,
                    collision,
                }));
            }
        }
        if let Some((old_in, _)) = rekey_of {
            // The old CHILD_SA is being replaced: it must not start a rekey of its own.
            self.set_rekeying(id, old_in, true);
        }
        CreateChildReply::Later
    }

    /// Sends a refusal as the response to request `message_id` (an answer that became
    /// impossible while the inbound SPI was allocated).
    fn send_refusal(&mut self, id: IkeSaId, message_id: u32, notify: NotifyType) {
        let inner = [Payload::new(Notify::status(notify))];
        let Some(datagrams) =
            self.seal(id, ExchangeType::CREATE_CHILD_SA, message_id, true, &inner)
        else {
            return;
        };
        self.send_response(id, message_id, datagrams);
    }

    fn send_create_child_response(&mut self, now: Instant, id: IkeSaId, spi_in: u32) {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(Answering {
            message_id,
            answer,
            ni,
            ke,
            rekey_of,
            collision,
            ..
        }) = e.rekey.answering.take().map(|b| *b)
        else {
            return;
        };
        if let Some((old_in, _)) = rekey_of {
            if !e.children.iter().any(|c| c.spi_in == old_in) {
                // Our own rekey of it finished (or the peer deleted it) while the SPI was
                // allocated: a second replacement would be redundant (§2.8.1).
                // Limitation: the SPI allocated for the answer is left unused.
                self.send_refusal(id, message_id, NotifyType::CHILD_SA_NOT_FOUND);
                return;
            }
        }
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };

        let nr = self.exchange_nonce();
        let mut ke_payload = None;
        let mut g_ir = None;
        if let Some((group, data)) = &ke {
            let ours = KeMethod::from_group(*group)
                .ok()
                .and_then(|m| KeyExchange::generate(m, &mut *self.rng).ok());
            let Some(ours) = ours else {
                self.send_refusal(id, message_id, NotifyType::NO_PROPOSAL_CHOSEN);
                return;
            };
            let Ok(shared) = ours.agree(data) else {
                self.send_refusal(id, message_id, NotifyType::INVALID_SYNTAX);
                return;
            };
            ke_payload = Some(Ke {
                group: *group,
                data: ours.public_value().to_vec(),
            });
            g_ir = Some(shared);
        }

        let mut inner = Vec::new();
        if config
            .children
            .get(answer.child)
            .is_some_and(|c| c.mode == Mode::Transport)
        {
            inner.push(Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)));
        }
        inner.push(Payload::new(Sa {
            proposals: vec![answer
                .selected
                .to_wire_proposal(spi_in.to_be_bytes().to_vec())],
        }));
        inner.push(Payload::new(Nonce { data: nr.clone() }));
        if let Some(k) = ke_payload {
            inner.push(Payload::new(k));
        }
        inner.push(Payload::new(PayloadBody::TsI(
            traffic_selector::to_payload(&answer.narrowed.initiator),
        )));
        inner.push(Payload::new(PayloadBody::TsR(
            traffic_selector::to_payload(&answer.narrowed.responder),
        )));
        let Some(datagrams) =
            self.seal(id, ExchangeType::CREATE_CHILD_SA, message_id, true, &inner)
        else {
            return;
        };

        if !self.send_response(id, message_id, datagrams) {
            return;
        }

        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        let pfs = ke.as_ref().map(|(g, _)| *g);
        let keys = derive_child_keys(
            provider.as_ref(),
            e.prf,
            &e.keys.sk_d,
            g_ir.as_ref(),
            &ni,
            &nr,
            &answer.selected,
        );
        let child = NewChild {
            index: answer.child,
            spi_in,
            spi_out: spi_of(&answer.selected),
            selected: answer.selected,
            local_ts: answer.narrowed.responder,
            remote_ts: answer.narrowed.initiator,
        };
        // RFC 7296 §2.8: as the responder of a rekey we keep sending on the old CHILD_SA until
        // the initiator, which installs the new one when it gets this response, has switched.
        // Limitation: an additional CHILD_SA (no old one to keep sending on) is `Outbound::Now`,
        // as is every CHILD_SA we answer in IKE_AUTH, a peer's reauthentication included.
        let pending = rekey_of.map(|(old_in, _)| PendingOutbound {
            replaces: old_in,
            message_id: Some(message_id),
            until: Some(now + OUTBOUND_SWITCH_TIMEOUT),
        });
        let new = self.add_child(now, id, &config, child, keys, false, pfs, pending);
        let (Some((old_spi_in, old_spi_out)), Some((new_spi_in, new_spi_out))) = (rekey_of, new)
        else {
            return;
        };
        if collision {
            // Which new CHILD_SA survives is known once our own exchange is answered.
            debug!(
                ike_sa = id.0,
                old = old_spi_in,
                new = new_spi_in,
                "simultaneous rekey: the peer's CHILD_SA is up, ours is outstanding"
            );
            if let Some(c) = self.child_mut(id, old_spi_in) {
                c.peer_rekey = Some(Box::new(PeerChildRekey {
                    spi_in: new_spi_in,
                    spi_out: new_spi_out,
                    lowest_nonce: lower_nonce(&ni, &nr),
                }));
            }
            return;
        }
        info!(
            ike_sa = id.0,
            old = old_spi_in,
            new = new_spi_in,
            "CHILD_SA rekeyed"
        );
        self.push_event(Event::ChildSaRekeyed {
            peer,
            old_spi_in,
            old_spi_out,
            new_spi_in,
            new_spi_out,
        });
    }

    /// Reports the pending outbound SA of CHILD_SA `spi_in` of IKE SA `id` ready (at most
    /// once: the pending mark is taken).
    pub(crate) fn outbound_ready(&mut self, id: IkeSaId, spi_in: u32) {
        let Some(peer) = self.ike_sas.get(&id).map(|sa| sa.peer) else {
            return;
        };
        let Some(c) = self.child_mut(id, spi_in) else {
            return;
        };
        if c.pending_outbound.take().is_none() {
            return;
        }
        let spi_out = c.spi_out;
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            sa.sync_child_timer();
        }
        debug!(
            ike_sa = id.0,
            spi_in, "outbound SA of the rekeyed CHILD_SA ready"
        );
        self.push_event(Event::ChildSaOutboundReady {
            peer,
            ike_sa: id,
            spi_in,
            spi_out,
        });
    }

    /// The CHILD_SAs `old` (inbound SPIs) of IKE SA `id` are going: the outbound SAs of those
    /// that replace them are ready, before the old ones are reported deleted.
    pub(crate) fn outbound_ready_after(&mut self, id: IkeSaId, old: &[u32]) {
        let ready: Vec<u32> = match self.ike_sas.get(&id).map(|sa| &sa.state) {
            Some(State::Established(e)) => e
                .children
                .iter()
                .filter(|c| {
                    c.pending_outbound
                        .is_some_and(|p| old.contains(&p.replaces))
                })
                .map(|c| c.spi_in)
                .collect(),
            _ => return,
        };
        for spi_in in ready {
            self.outbound_ready(id, spi_in);
        }
    }

    /// A new request `message_id` of the peer arrived on IKE SA `id`: RFC 7296 §2.3 lets the
    /// peer send it only once it has the responses to every request up to our window size
    /// before it, so the rekeys we answered that far back are complete at the peer.
    pub(crate) fn outbound_ready_by_message_id(&mut self, id: IkeSaId, message_id: u32) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let window = sa.responses.size();
        let State::Established(e) = &sa.state else {
            return;
        };
        let ready: Vec<u32> = e
            .children
            .iter()
            .filter(|c| {
                c.pending_outbound
                    .and_then(|p| p.message_id)
                    .and_then(|m| m.checked_add(window))
                    .is_some_and(|m| message_id >= m)
            })
            .map(|c| c.spi_in)
            .collect();
        for spi_in in ready {
            self.outbound_ready(id, spi_in);
        }
    }

    /// Whether an established IKE SA with the same peer configuration was made after `id`
    /// (a reauthentication, or the peer's new IKE SA after a restart).
    fn has_newer_ike_sa(&self, id: IkeSaId) -> bool {
        let Some(peer) = self.ike_sas.get(&id).map(|sa| sa.peer) else {
            return false;
        };
        self.ike_sas.values().any(|other| {
            other.peer == peer
                && other.id > id
                && matches!(&other.state, State::Established(e)
                    if !e.deleting && e.rekey.replaced_by.is_none())
        })
    }

    /// CHILD_SA `spi_in` of IKE SA `id`.
    fn child_mut(&mut self, id: IkeSaId, spi_in: u32) -> Option<&mut ChildSa> {
        match &mut self.ike_sas.get_mut(&id)?.state {
            State::Established(e) => e.children.iter_mut().find(|c| c.spi_in == spi_in),
            _ => None,
        }
    }

    /// Arms the lifetime of the new CHILD_SA `child` of IKE SA `id`, adds it with its `keys`
    /// (see [`child_install`]) and reports it; its (SPI in, SPI out), `None` if not made.
    #[allow(clippy::too_many_arguments)]
    fn add_child(
        &mut self,
        now: Instant,
        id: IkeSaId,
        config: &PeerConfig,
        child: NewChild,
        keys: Option<ChildSaKeys>,
        we_initiated: bool,
        pfs: Option<KeGroup>,
        pending: Option<PendingOutbound>,
    ) -> Option<(u32, u32)> {
        let deadlines = config
            .children
            .get(child.index)
            .map(|c| c.lifetime.deadlines(now, self.random_u64()));
        let sa = self.ike_sas.get(&id)?;
        let mut made = keys
            .zip(deadlines)
            .and_then(|(k, d)| child_install(sa, id, config, child, k, we_initiated, pfs, d));
        if let (Some((record, Event::ChildSaInstall { outbound, .. })), Some(p)) =
            (made.as_mut(), pending)
        {
            record.pending_outbound = Some(p);
            *outbound = Outbound::Pending;
        }
        let new = made.as_ref().map(|(c, _)| (c.spi_in, c.spi_out));
        self.record_child(id, made);
        new
    }

    /// Adds a new CHILD_SA to IKE SA `id` and reports it.
    fn record_child(&mut self, id: IkeSaId, made: Option<(ChildSa, Event)>) {
        let Some((record, event)) = made else {
            return;
        };
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.children.push(record);
            }
            sa.sync_child_timer();
        }
        self.push_event(event);
    }

    /// Marks CHILD_SA `spi_in` of IKE SA `id` as being rekeyed, or not.
    fn set_rekeying(&mut self, id: IkeSaId, spi_in: u32, rekeying: bool) {
        if let Some(c) = self.child_mut(id, spi_in) {
            c.rekeying = rekeying;
        }
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            sa.sync_child_timer();
        }
    }

    /// A rekey of CHILD_SA `rekey` (if any) did not happen; try again a little later.
    fn rekey_later(&mut self, now: Instant, id: IkeSaId, rekey: Option<u32>) {
        let Some(old) = rekey else {
            return;
        };
        let jitter = Duration::from_millis(self.random_u64() % 2000);
        if let Some(c) = self.child_mut(id, old) {
            c.rekeying = false;
            c.rekey_at = now + REKEY_RETRY + jitter;
        }
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            sa.sync_child_timer();
        }
    }

    /// Starts rekeying CHILD_SA `spi_in` of IKE SA `id` (RFC 7296 §1.3.3); false when another
    /// exchange is in the way.
    pub(crate) fn start_child_rekey(&mut self, id: IkeSaId, spi_in: u32) -> bool {
        let Some(sa) = self.ike_sas.get(&id) else {
            return false;
        };
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let State::Established(e) = &sa.state else {
            return false;
        };
        let Some(child) = e.children.iter().find(|c| c.spi_in == spi_in) else {
            return false;
        };
        if e.creating.is_some()
            || e.deleting
            || e.rekey.replaced_by.is_some()
            || child.rekeying
            || !sa.requests.can_send()
        {
            return false;
        }
        let index = child.index;
        let request = self.request_spi(id, peer, local, remote);
        self.set_creating(
            id,
            Some(Creating::AwaitingSpi {
                request,
                child: index,
                rekey: Some(spi_in),
            }),
        );
        self.set_rekeying(id, spi_in, true);
        true
    }

    /// [`Timer::ChildLifetime`](super::timers::Timer::ChildLifetime) fired: rekey CHILD_SAs
    /// past their soft lifetime, delete those past their hard lifetime.
    pub(crate) fn on_child_lifetime(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut e.children)
            .into_iter()
            .partition(|c| c.expire_at <= now);
        e.children = live;
        let due: Vec<u32> = e
            .children
            .iter()
            .filter(|c| !c.rekeying && c.rekey_at <= now)
            .map(|c| c.spi_in)
            .collect();
        let switch: Vec<u32> = e
            .children
            .iter()
            .filter(|c| {
                c.pending_outbound
                    .and_then(|p| p.until)
                    .is_some_and(|t| t <= now)
            })
            .map(|c| c.spi_in)
            .collect();
        sa.sync_child_timer();

        if !switch.is_empty() && self.has_newer_ike_sa(id) {
            // A reauthentication replaced this IKE SA: its initiator may have given up the
            // rekey we answered here, so the new outbound SA waits for the old IKE SA to go.
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                if let State::Established(e) = &mut sa.state {
                    for c in e.children.iter_mut().filter(|c| switch.contains(&c.spi_in)) {
                        if let Some(p) = c.pending_outbound.as_mut() {
                            p.until = Some(now + OUTBOUND_SWITCH_TIMEOUT);
                        }
                    }
                }
                sa.sync_child_timer();
            }
        } else {
            for spi_in in switch {
                debug!(
                    ike_sa = id.0,
                    spi_in, "no proof the rekey's initiator switched; outbound SA ready anyway"
                );
                self.outbound_ready(id, spi_in);
            }
        }
        let gone: Vec<u32> = expired.iter().map(|c| c.spi_in).collect();
        self.outbound_ready_after(id, &gone);

        for child in &expired {
            // The kernel removes the SAs at their hard lifetime itself; tell the peer too.
            info!(ike_sa = id.0, spi_in = child.spi_in, "CHILD_SA expired");
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
            });
        }
        if !expired.is_empty() {
            let spis: Vec<u32> = expired.iter().map(|c| c.spi_in).collect();
            // Limitation: with the peer's window full, the Delete of expired CHILD_SAs is not
            // sent; the peer's own hard lifetime removes them there.
            self.send_informational(now, id, &[Payload::new(Delete::esp(&spis))]);
        }
        for spi_in in due {
            if !self.start_child_rekey(id, spi_in) {
                self.rekey_later(now, id, Some(spi_in));
            }
        }
    }

    /// Initiator: the response to our CREATE_CHILD_SA request (a CHILD_SA, or an IKE SA
    /// rekey).
    pub(crate) fn handle_create_child_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        inner: &[Payload],
    ) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let State::Established(e) = &mut sa.state else {
            return;
        };
        match e.creating.take().map(|b| *b) {
            Some(Creating::IkeRekey(sent)) => {
                self.handle_ike_rekey_response(now, id, *sent, inner);
            }
            Some(Creating::Sent {
                request,
                ni,
                ke,
                rekey,
                ke_retries,
            }) => {
                self.handle_child_response(now, id, request, ni, ke, rekey, ke_retries, inner);
                self.next_child(now, id);
            }
            other => e.creating = other.map(Box::new),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_child_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        request: ChildRequest,
        ni: Vec<u8>,
        ke: Option<Box<KeyExchange>>,
        rekey: Option<u32>,
        ke_retries: u32,
        inner: &[Payload],
    ) {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };
        let p = AuthPayloads::of(inner, false);

        // RFC 7296 §1.3: the responder wants another PFS group; retry once with it if we
        // offered it.
        if let Some(n) = p.notify(NotifyType::INVALID_KE_PAYLOAD) {
            let asked = match n.typed_data() {
                Ok(NotifyData::InvalidKePayload(group)) => Some(group),
                _ => None,
            };
            let lists: Vec<_> = config
                .children
                .get(request.child)
                .map(|c| c.esp_proposals.iter().map(supported_esp).collect())
                .unwrap_or_default();
            let ours = ke.as_ref().map(|k| k.method().group());
            match asked {
                Some(group)
                    if ke_retries < MAX_CHILD_KE_RETRIES
                        && ours.is_some_and(|g| g != group)
                        && offers_group(&lists, group) =>
                {
                    debug!(ike_sa = id.0, %group, "retrying CREATE_CHILD_SA with the group asked for");
                    self.send_create_child_request(
                        now,
                        id,
                        request.child,
                        rekey,
                        request.spi_in,
                        Some(group),
                        ke_retries + 1,
                    );
                    return;
                }
                _ => {
                    debug!(ike_sa = id.0, ?asked, "INVALID_KE_PAYLOAD not followed");
                    self.child_rekey_failed(now, id, rekey, NotifyType::INVALID_KE_PAYLOAD);
                    return;
                }
            }
        }

        let result = accept_child(&request, &p, &config).and_then(|(index, selected, tsi, tsr)| {
            let nr = p
                .nonce
                .map(|n| n.data.clone())
                .filter(|n| (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&n.len()))
                .ok_or(NotifyType::INVALID_SYNTAX)?;
            // With PFS the answer carries KEr of our group; without, no KE at all.
            let g_ir = match (&ke, p.ke) {
                (Some(ours), Some(theirs)) if theirs.group == ours.method().group() => Some(
                    ours.agree(&theirs.data)
                        .map_err(|_| NotifyType::INVALID_SYNTAX)?,
                ),
                (None, None) => None,
                _ => return Err(NotifyType::INVALID_KE_PAYLOAD),
            };
            Ok((index, selected, tsi, tsr, nr, g_ir))
        });
        let (index, selected, tsi, tsr, nr, g_ir) = match result {
            Ok(r) => r,
            Err(reason) => {
                debug!(
                    ike_sa = id.0,
                    ?reason,
                    rekey = rekey.is_some(),
                    "CHILD_SA not created"
                );
                self.child_rekey_failed(now, id, rekey, reason);
                return;
            }
        };
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::Established(e) = &sa.state else {
            return;
        };
        let keys = derive_child_keys(
            provider.as_ref(),
            e.prf,
            &e.keys.sk_d,
            g_ir.as_ref(),
            &ni,
            &nr,
            &selected,
        );
        let pfs = ke.as_ref().map(|k| k.method().group());
        let child = NewChild {
            index,
            spi_in: request.spi_in,
            spi_out: spi_of(&selected),
            selected,
            local_ts: tsi,
            remote_ts: tsr,
        };
        // §2.8.1: when the peer's simultaneous rekey of the same CHILD_SA wins, ours is deleted
        // at once and must never carry traffic (the peer drops it on our Delete, and it is
        // the newest outbound SA); it is reported with its outbound SA held, never ready.
        let lowest = lower_nonce(&ni, &nr);
        let ours_loses = rekey.is_some_and(|old| {
            e.children
                .iter()
                .find(|c| c.spi_in == old)
                .and_then(|c| c.peer_rekey.as_ref())
                .map(|theirs| lowest < theirs.lowest_nonce)
                .or_else(|| {
                    e.rekey
                        .collided
                        .as_ref()
                        .filter(|(spi, _)| *spi == old)
                        .map(|(_, theirs)| lowest < theirs.lowest_nonce)
                })
                .unwrap_or(false)
        });
        let held = rekey.filter(|_| ours_loses).map(|old| PendingOutbound {
            replaces: old,
            message_id: None,
            until: None,
        });
        let new = self.add_child(now, id, &config, child, keys, true, pfs, held);
        let Some(old) = rekey else {
            return;
        };
        let Some(new) = new else {
            self.child_rekey_failed(now, id, rekey, NotifyType::NO_PROPOSAL_CHOSEN);
            return;
        };
        let Some(c) = self.child_mut(id, old) else {
            // The peer deleted the old CHILD_SA meanwhile. If that was the end of a collision
            // the peer won, ours is redundant; otherwise the new one stands on both sides.
            let collided = self
                .established_mut(id)
                .and_then(|e| e.rekey.collided.take_if(|(spi, _)| *spi == old));
            if let Some((_, theirs)) = collided {
                if lower_nonce(&ni, &nr) < theirs.lowest_nonce {
                    self.retire_child(now, id, new.0);
                }
            }
            debug!(
                ike_sa = id.0,
                old, "CHILD_SA rekeyed after the peer deleted the old one"
            );
            return;
        };
        let (old_spi_in, old_spi_out) = (c.spi_in, c.spi_out);
        match c.peer_rekey.take() {
            Some(theirs) if lower_nonce(&ni, &nr) < theirs.lowest_nonce => {
                // §2.8.1: our exchange has the lowest nonce, so ours is the redundant CHILD_SA;
                // the peer deletes the old one.
                info!(
                    ike_sa = id.0,
                    old,
                    ours = new.0,
                    theirs = theirs.spi_in,
                    "simultaneous rekey lost: deleting our redundant CHILD_SA"
                );
                self.push_event(Event::ChildSaRekeyed {
                    peer,
                    old_spi_in,
                    old_spi_out,
                    new_spi_in: theirs.spi_in,
                    new_spi_out: theirs.spi_out,
                });
                self.retire_child(now, id, new.0);
            }
            Some(theirs) => {
                info!(
                    ike_sa = id.0,
                    old,
                    ours = new.0,
                    theirs = theirs.spi_in,
                    "simultaneous rekey won: the peer deletes its redundant CHILD_SA"
                );
                // Its outbound SA must never carry traffic: the peer deletes it (§2.8.1).
                if let Some(p) = self
                    .child_mut(id, theirs.spi_in)
                    .and_then(|c| c.pending_outbound.as_mut())
                {
                    p.message_id = None;
                    p.until = None;
                }
                self.retire_rekeyed_child(now, id, old, new);
            }
            None => self.retire_rekeyed_child(now, id, old, new),
        }
    }

    /// Our rekey of CHILD_SA `rekey` (if any) ended without a new CHILD_SA of ours, answered
    /// with `reason`.
    fn child_rekey_failed(
        &mut self,
        now: Instant,
        id: IkeSaId,
        rekey: Option<u32>,
        reason: NotifyType,
    ) {
        let Some(old) = rekey else {
            return;
        };
        let Some(peer) = self.ike_sas.get(&id).map(|sa| sa.peer) else {
            return;
        };
        let Some(c) = self.child_mut(id, old) else {
            return;
        };
        let (old_spi_in, spi_out) = (c.spi_in, c.spi_out);
        if let Some(theirs) = c.peer_rekey.take() {
            // §2.8.1: only the peer's rekey made a CHILD_SA; it replaces the old one, which the
            // peer deletes.
            info!(
                ike_sa = id.0,
                old,
                new = theirs.spi_in,
                "CHILD_SA rekeyed by the peer"
            );
            self.push_event(Event::ChildSaRekeyed {
                peer,
                old_spi_in,
                old_spi_out: spi_out,
                new_spi_in: theirs.spi_in,
                new_spi_out: theirs.spi_out,
            });
            return;
        }
        let (index, expire_at) = (c.index, c.expire_at);
        let installed_at = self
            .ike_sas
            .get(&id)
            .and_then(|sa| self.peers.get(&sa.peer))
            .and_then(|config| config.children.get(index))
            .and_then(|child| expire_at.checked_sub(child.lifetime.hard));
        // A CHILD_SA we made as responder may not be known to the peer yet (our answer lost,
        // retransmitted for up to this long); not finding it then proves nothing.
        let settled =
            installed_at.is_none_or(|at| now.saturating_duration_since(at) > NOT_FOUND_SETTLE);
        if reason == NotifyType::CHILD_SA_NOT_FOUND && settled {
            // The peer has no such CHILD_SA (it deleted it; its Delete may still be on the way):
            // keeping ours would leave it installed on one side only.
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                if let State::Established(e) = &mut sa.state {
                    e.children.retain(|c| c.spi_in != old);
                }
                sa.sync_child_timer();
            }
            info!(ike_sa = id.0, old, "CHILD_SA unknown to the peer; removed");
            self.outbound_ready_after(id, &[old]);
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: old,
                spi_out,
            });
            return;
        }
        self.rekey_later(now, id, rekey);
    }

    /// Make-before-break (RFC 7296 §2.8): the new CHILD_SA is installed on both sides, so the
    /// old one is reported replaced and deleted with an INFORMATIONAL Delete.
    fn retire_rekeyed_child(&mut self, now: Instant, id: IkeSaId, old_in: u32, new: (u32, u32)) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &sa.state else {
            return;
        };
        let Some(old) = e.children.iter().find(|c| c.spi_in == old_in) else {
            return;
        };
        info!(
            ike_sa = id.0,
            old = old.spi_in,
            new = new.0,
            "CHILD_SA rekeyed"
        );
        self.push_event(Event::ChildSaRekeyed {
            peer,
            old_spi_in: old.spi_in,
            old_spi_out: old.spi_out,
            new_spi_in: new.0,
            new_spi_out: new.1,
        });
        self.retire_child(now, id, old_in);
    }

    /// Deletes CHILD_SA `spi_in` with an INFORMATIONAL Delete; it is reported deleted when
    /// the peer answers (so packets still in flight on it are accepted until then).
    pub(crate) fn retire_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(pos) = e.children.iter().position(|c| c.spi_in == spi_in) else {
            return;
        };
        let old = e.children.remove(pos);
        sa.sync_child_timer();
        let mid = sa.requests.next_message_id();
        if self.send_informational(now, id, &[Payload::new(Delete::esp(&[old.spi_in]))]) {
            if let (Some(mid), Some(sa)) = (mid, self.ike_sas.get_mut(&id)) {
                if let State::Established(e) = &mut sa.state {
                    e.replaced.push((mid, old));
                }
            }
        } else {
            // Limitation: with the window full the CHILD_SA is dropped without a Delete; the
            // peer's copy lives until its hard lifetime.
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: old.spi_in,
                spi_out: old.spi_out,
            });
        }
    }
}
