//! CREATE_CHILD_SA for additional CHILD_SAs (RFC 7296 §1.3.1), with optional PFS: the
//! initiator of the IKE SA creates every configured CHILD_SA after the first, one exchange at
//! a time; the responder matches each against its own configurations.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}  -->
//!                              <--  HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Nr, [KEr], TSi, TSr}
//! ```

use std::time::Instant;

use tracing::debug;

use super::config::Mode;
use super::endpoint::Endpoint;
use super::event::{IkeSaId, SpiRequestId};
use super::ike_auth::{
    accept_child, child_install, derive_child_keys, spi_of, supported_esp, AuthPayloads,
    ChildRefusal, NewChild,
};
use super::ike_sa::{ChildRequest, Creating, Role, State};
use super::ike_sa_init::{MAX_NONCE_LEN, MIN_NONCE_LEN, NONCE_LEN};
use super::proposal::{to_wire_proposal, KeRule, OfferedProposal};
use super::traffic_selector;
use crate::codec::{self, Ke, Nonce, Notify, Payload, PayloadBody, Sa};
use crate::crypto::{KeMethod, KeyExchange};
use crate::registry::{ExchangeType, KeGroup, NotifyType, ProtocolId, TransformType};

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
                e.creating = Some(Box::new(Creating::AwaitingSpi { request, child }));
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
            Some(Creating::AwaitingSpi { request: r, child }) if *r == request => {
                let child = *child;
                self.send_create_child_request(now, id, child, spi);
            }
            Some(Creating::Answering { request: r, .. }) if *r == request => {
                self.send_create_child_response(id, spi);
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

    fn send_create_child_request(&mut self, now: Instant, id: IkeSaId, child: usize, spi_in: u32) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let Some(config) = self
            .peers
            .get(&sa.peer)
            .and_then(|c| c.children.get(child))
            .cloned()
        else {
            return;
        };
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
            return;
        };
        let Some(datagram) = self.seal(id, ExchangeType::CREATE_CHILD_SA, mid, false, &inner)
        else {
            self.set_creating(id, None);
            return;
        };
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.requests.sent(mid, vec![datagram.clone()], now);
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
            }),
        );
        debug!(ike_sa = id.0, child = %config.name, mid, "CREATE_CHILD_SA request sent");
        self.queue_datagram(local, remote, datagram);
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
        if p.has(NotifyType::REKEY_SA) {
            // Limitation: CHILD_SA and IKE SA rekeying are not implemented; RFC 7296 §1.3
            // lets us refuse, which keeps the IKE SA and the CHILD_SA.
            return refuse(NotifyType::NO_ADDITIONAL_SAS);
        }
        if e.creating.is_some() || e.deleting {
            // RFC 7296 §2.25: another exchange on this IKE SA is in the way.
            return refuse(NotifyType::TEMPORARY_FAILURE);
        }
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
            }),
        );
        CreateChildReply::Later
    }

    fn send_create_child_response(&mut self, id: IkeSaId, spi_in: u32) {
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
        let Some(datagram) = self.seal(id, ExchangeType::CREATE_CHILD_SA, message_id, true, &inner)
        else {
            return;
        };

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.responses.responded(message_id, vec![datagram.clone()]);
        let (local, remote) = (sa.local, sa.remote);
        self.queue_datagram(local, remote, datagram);

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
        let made = keys.and_then(|k| child_install(sa, id, &config, child, k, false, pfs));
        self.record_child(id, made);
    }

    /// Adds a new CHILD_SA to IKE SA `id` and reports it.
    fn record_child(&mut self, id: IkeSaId, made: Option<(super::ike_sa::ChildSa, super::Event)>) {
        let Some((record, event)) = made else {
            return;
        };
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::Established(e) = &mut sa.state {
                e.children.push(record);
            }
        }
        self.push_event(event);
    }

    /// Initiator: the response to our CREATE_CHILD_SA request.
    pub(crate) fn handle_create_child_response(&mut self, id: IkeSaId, inner: &[Payload]) {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(e) = &mut sa.state else {
            return;
        };
        let Some(Creating::Sent { request, ni, ke }) = e.creating.take().map(|b| *b) else {
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
                let made = keys.and_then(|k| child_install(sa, id, &config, child, k, true, pfs));
                self.record_child(id, made);
            }
            Err(reason) => {
                // Limitation: INVALID_KE_PAYLOAD for a CHILD_SA is not retried with the group
                // asked for; the CHILD_SA is not created and the IKE SA stays.
                debug!(ike_sa = id.0, ?reason, "CHILD_SA not created");
            }
        }
        self.next_child(id);
    }
}
