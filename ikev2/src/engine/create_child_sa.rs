//! CREATE_CHILD_SA for additional CHILD_SAs (RFC 7296 §1.3.1), with optional PFS: the
//! initiator of the IKE SA creates every configured CHILD_SA after the first, one exchange at
//! a time; the responder matches each against its own configurations.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}  -->
//!                              <--  HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Nr, [KEr], TSi, TSr}
//! ```

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::config::Mode;
use super::endpoint::Endpoint;
use super::event::{Event, IkeSaId, SpiRequestId};
use super::ike_auth::{
    accept_child, child_install, derive_child_keys, spi_of, supported_esp, AuthPayloads,
    ChildRefusal, NewChild,
};
use super::ike_sa::{ChildRequest, Creating, Role, State};
use super::ike_sa_init::{MAX_NONCE_LEN, MIN_NONCE_LEN, NONCE_LEN};
use super::proposal::{to_wire_proposal, KeRule, OfferedProposal};
use super::traffic_selector;
use crate::codec::{self, Delete, Ke, Nonce, Notify, Payload, PayloadBody, Sa};
use crate::crypto::{KeMethod, KeyExchange};
use crate::registry::{ExchangeType, KeGroup, NotifyType, ProtocolId, TransformType};

/// A rekey that could not start, or was refused (TEMPORARY_FAILURE in a collision), is tried
/// again after this plus up to two seconds at random, so two peers do not collide forever.
pub const REKEY_RETRY: Duration = Duration::from_secs(2);

/// What the responder does with a CREATE_CHILD_SA request.
pub(crate) enum CreateChildReply {
    /// Answer at once with these payloads.
    Now(Vec<Payload>),
    /// The answer waits for an inbound SPI.
    Later,
}

impl Endpoint {
    /// Initiator: starts the next configured CHILD_SA of established IKE SA `id`, if any.
    pub(crate) fn next_child(&mut self, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let State::Established(e) = &sa.state else {
            return;
        };
        let count = self.peers.get(&peer).map_or(0, |c| c.children.len());
        if sa.role != Role::Initiator || e.deleting || e.creating.is_some() || e.next_child >= count
        {
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
        match e.creating.as_deref() {
            Some(Creating::AwaitingSpi {
                request: r,
                child,
                rekey,
            }) if *r == request => {
                let (child, rekey) = (*child, *rekey);
                self.send_create_child_request(now, id, child, rekey, spi);
            }
            Some(Creating::Answering { request: r, .. }) if *r == request => {
                self.send_create_child_response(now, id, spi);
            }
            _ => {}
        }
    }

    fn set_creating(&mut self, id: IkeSaId, creating: Option<Creating>) {
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.creating = creating.map(Box::new);
            }
        }
    }

    fn send_create_child_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        child: usize,
        rekey: Option<u32>,
        spi_in: u32,
    ) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let Some(mut config) = self
            .peers
            .get(&sa.peer)
            .and_then(|c| c.children.get(child))
            .cloned()
        else {
            return;
        };
        // A rekey proposes the selectors the old CHILD_SA was narrowed to.
        if let (Some(old), State::Established(e)) = (rekey, &sa.state) {
            if let Some(c) = e.children.iter().find(|c| c.spi_in == old) {
                config.local_ts = c.local_ts.clone();
                config.remote_ts = c.remote_ts.clone();
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

        // PFS (RFC 7296 §1.3.1): a KE payload of the first group our first proposal lists.
        let pfs_group = lists
            .first()
            .and_then(|l| l.iter().find(|t| t.transform_type == TransformType::KE))
            .map(|t| KeGroup(t.id));
        let ke = match pfs_group.map(KeMethod::from_group) {
            Some(Ok(method)) => KeyExchange::generate(method, &mut *self.rng)
                .ok()
                .map(Box::new),
            _ => None,
        };
        let mut ni = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut ni);

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
            // Limitation: with the peer's window full (a liveness check outstanding) this
            // CHILD_SA is skipped rather than queued.
            debug!(ike_sa = id.0, child = %config.name, "window full; CHILD_SA not created");
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
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.requests.sent(mid, datagrams.clone(), now);
        sa.sync_retransmit_timer();
        let (local, remote) = (sa.local, sa.remote);
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
            }),
        );
        debug!(ike_sa = id.0, child = %config.name, mid, rekey = rekey.is_some(),
            "CREATE_CHILD_SA request sent");
        self.queue_datagrams(local, remote, datagrams);
    }

    /// Responder: a CREATE_CHILD_SA request on established IKE SA `id`.
    pub(crate) fn create_child_request(
        &mut self,
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
        if e.creating.is_some() || e.deleting {
            // RFC 7296 §2.25: another exchange on this IKE SA is in the way.
            // Limitation: simultaneous rekeys are not resolved by nonces (§2.8.1); both sides
            // are refused and retry after a random delay.
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
        let rekey_of = match p.notify(NotifyType::REKEY_SA) {
            None => None,
            Some(n) if n.protocol != ProtocolId::ESP => {
                // Limitation: IKE SA rekeying is not implemented; RFC 7296 §1.3 lets us refuse.
                return refuse(NotifyType::NO_ADDITIONAL_SAS);
            }
            Some(n) => {
                // The peer names its inbound SPI of the old CHILD_SA: our outbound one.
                let old = <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes)
                    .and_then(|spi| e.children.iter().find(|c| c.spi_out == spi));
                match old {
                    Some(c) if c.rekeying => return refuse(NotifyType::TEMPORARY_FAILURE),
                    Some(c) => Some((c.spi_in, c.spi_out)),
                    None => return refuse(NotifyType::CHILD_SA_NOT_FOUND),
                }
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
        let ke = p.ke.map(|k| (k.group, k.data.clone()));
        let request = self.request_spi(id, peer, local, remote);
        self.set_creating(
            id,
            Some(Creating::Answering {
                request,
                message_id,
                answer,
                ni,
                ke,
                rekey_of,
            }),
        );
        if let Some((old_in, _)) = rekey_of {
            // The old CHILD_SA is being replaced: it must not start a rekey of its own.
            self.set_rekeying(id, old_in, true);
        }
        CreateChildReply::Later
    }

    fn send_create_child_response(&mut self, now: Instant, id: IkeSaId, spi_in: u32) {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(Creating::Answering {
            message_id,
            answer,
            ni,
            ke,
            rekey_of,
            ..
        }) = e.creating.take().map(|b| *b)
        else {
            return;
        };
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };

        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut nr);
        let mut ke_payload = None;
        let mut g_ir = None;
        if let Some((group, data)) = &ke {
            let ours = KeMethod::from_group(*group)
                .ok()
                .and_then(|m| KeyExchange::generate(m, &mut *self.rng).ok());
            let Some(ours) = ours else {
                return;
            };
            let Ok(shared) = ours.agree(data) else {
                // Limitation: an invalid KEi leaves the request unanswered.
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

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.responses.responded(message_id, datagrams.clone());
        let (local, remote) = (sa.local, sa.remote);
        self.queue_datagrams(local, remote, datagrams);

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
        let deadlines = config
            .children
            .get(child.index)
            .map(|c| c.lifetime.deadlines(now, self.random_u64()));
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let made = keys
            .zip(deadlines)
            .and_then(|(k, d)| child_install(sa, id, &config, child, k, false, pfs, d));
        let new = made.as_ref().map(|(c, _)| (c.spi_in, c.spi_out));
        self.record_child(id, made);
        if let (Some((old_spi_in, old_spi_out)), Some((new_spi_in, new_spi_out))) = (rekey_of, new)
        {
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
    }

    /// Adds a new CHILD_SA to IKE SA `id` and reports it.
    fn record_child(&mut self, id: IkeSaId, made: Option<(super::ike_sa::ChildSa, Event)>) {
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
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                if let Some(c) = e.children.iter_mut().find(|c| c.spi_in == spi_in) {
                    c.rekeying = rekeying;
                }
            }
            sa.sync_child_timer();
        }
    }

    /// A rekey of CHILD_SA `rekey` (if any) did not happen; try again a little later.
    fn rekey_later(&mut self, now: Instant, id: IkeSaId, rekey: Option<u32>) {
        let Some(old) = rekey else {
            return;
        };
        let jitter = Duration::from_millis(self.random_u64() % 2000);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                if let Some(c) = e.children.iter_mut().find(|c| c.spi_in == old) {
                    c.rekeying = false;
                    c.rekey_at = now + REKEY_RETRY + jitter;
                }
            }
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
        if e.creating.is_some() || e.deleting || child.rekeying || !sa.requests.can_send() {
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
        sa.sync_child_timer();

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
            self.send_informational(now, id, &[Payload::new(Delete::esp(&spis))]);
        }
        for spi_in in due {
            if !self.start_child_rekey(id, spi_in) {
                self.rekey_later(now, id, Some(spi_in));
            }
        }
    }

    /// Initiator: the response to our CREATE_CHILD_SA request.
    pub(crate) fn handle_create_child_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        inner: &[Payload],
    ) {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(Creating::Sent {
            request,
            ni,
            ke,
            rekey,
        }) = e.creating.take().map(|b| *b)
        else {
            return;
        };
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };
        let p = AuthPayloads::of(inner, false);

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
        match result {
            Ok((index, selected, tsi, tsr, nr, g_ir)) => {
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
                let deadlines = config
                    .children
                    .get(child.index)
                    .map(|c| c.lifetime.deadlines(now, self.random_u64()));
                let Some(sa) = self.ike_sas.get(&id) else {
                    return;
                };
                let made = keys
                    .zip(deadlines)
                    .and_then(|(k, d)| child_install(sa, id, &config, child, k, true, pfs, d));
                let new = made.as_ref().map(|(c, _)| (c.spi_in, c.spi_out));
                self.record_child(id, made);
                if let (Some(old), Some(new)) = (rekey, new) {
                    self.retire_rekeyed_child(now, id, old, new);
                } else if let Some(old) = rekey {
                    self.rekey_later(now, id, Some(old));
                }
            }
            Err(reason) => {
                // Limitation: INVALID_KE_PAYLOAD for a CHILD_SA is not retried with the group
                // asked for; the CHILD_SA is not created and the IKE SA stays.
                debug!(
                    ike_sa = id.0,
                    ?reason,
                    rekey = rekey.is_some(),
                    "CHILD_SA not created"
                );
                self.rekey_later(now, id, rekey);
            }
        }
        self.next_child(id);
    }

    /// Make-before-break (RFC 7296 §2.8): the new CHILD_SA is installed on both sides, so the
    /// old one is reported replaced and deleted with an INFORMATIONAL Delete.
    fn retire_rekeyed_child(&mut self, now: Instant, id: IkeSaId, old_in: u32, new: (u32, u32)) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(pos) = e.children.iter().position(|c| c.spi_in == old_in) else {
            return;
        };
        let old = e.children.remove(pos);
        sa.sync_child_timer();
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
        let mid = self
            .ike_sas
            .get(&id)
            .and_then(|sa| sa.requests.next_message_id());
        if self.send_informational(now, id, &[Payload::new(Delete::esp(&[old.spi_in]))]) {
            if let (Some(mid), Some(sa)) = (mid, self.ike_sas.get_mut(&id)) {
                if let State::Established(e) = &mut sa.state {
                    e.replaced.push((mid, old));
                }
            }
        } else {
            // Limitation: with the window full the old CHILD_SA is dropped without a Delete.
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: old.spi_in,
                spi_out: old.spi_out,
            });
        }
    }
}
