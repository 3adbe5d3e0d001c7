//! INFORMATIONAL exchanges on an established IKE SA (RFC 7296 §1.4): Delete of the IKE SA or
//! of CHILD_SAs, and liveness checks (§2.4, "dead peer detection").
//!
//! CREATE_CHILD_SA requests arrive here too and go to `create_child_sa.rs`.

use std::time::Instant;

use tracing::{debug, info};

use super::create_child_sa::CreateChildReply;
use super::endpoint::Endpoint;
use super::event::{DownReason, Event, IkeSaId};
use super::ike_sa::{ChildSa, Creating, State};
use super::timers::Timer;
use crate::codec::{Delete, Header, Payload, PayloadBody};
use crate::registry::{ExchangeType, ProtocolId};

/// SPIs we look at in the Delete payloads of one message.
pub const MAX_DELETED_SPIS: usize = 64;

/// What the Delete payloads of a request ask for.
#[derive(Default)]
struct Deletes {
    ike: bool,
    esp: Vec<u32>,
}

impl Deletes {
    fn of(payloads: &[Payload]) -> Self {
        let mut d = Deletes::default();
        for payload in payloads {
            let PayloadBody::Delete(delete) = &payload.body else {
                continue;
            };
            match delete.protocol {
                ProtocolId::IKE => d.ike = true,
                ProtocolId::ESP => {
                    for spi in &delete.spis {
                        if d.esp.len() >= MAX_DELETED_SPIS {
                            break;
                        }
                        // The codec checked every SPI has the announced size; 4 for ESP.
                        if let Ok(bytes) = <[u8; 4]>::try_from(spi.as_slice()) {
                            d.esp.push(u32::from_be_bytes(bytes));
                        }
                    }
                }
                // Limitation: AH is not supported, so there is nothing to delete.
                _ => {}
            }
        }
        d
    }
}

impl Endpoint {
    /// Something authenticated came from the peer: it is alive, so the liveness check waits
    /// another interval (RFC 7296 §2.4).
    pub(crate) fn peer_alive(&mut self, now: Instant, id: IkeSaId) {
        let interval = self
            .ike_sas
            .get(&id)
            .and_then(|sa| self.peers.get(&sa.peer))
            .and_then(|c| c.dpd_interval);
        if let (Some(interval), Some(sa)) = (interval, self.ike_sas.get_mut(&id)) {
            sa.timers.set(Timer::Dpd, now + interval);
        }
    }

    /// A request on an established IKE SA (the window already said it is new).
    pub(crate) fn handle_established_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        header: &Header,
        message: &[u8],
    ) {
        let mid = header.message_id;
        let Some(inner) = self.unseal(id, header, message) else {
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                sa.responses.abandoned(mid);
            }
            return;
        };
        self.peer_alive(now, id);
        self.outbound_ready_by_message_id(id, mid);

        let response = match header.exchange_type {
            ExchangeType::INFORMATIONAL => self.answer_informational(id, &inner),
            ExchangeType::CREATE_CHILD_SA => {
                match self.create_child_request(now, id, mid, &inner) {
                    CreateChildReply::Now(payloads) => Some(payloads),
                    // Answered once the inbound SPI is there; the request stays in progress.
                    CreateChildReply::Later => return,
                }
            }
            _ => None,
        };
        let Some(response) = response else {
            debug!(ike_sa = id.0, exchange = %header.exchange_type, "request dropped when established");
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                sa.responses.abandoned(mid);
            }
            return;
        };

        let deleted_ike =
            Deletes::of(&inner).ike && header.exchange_type == ExchangeType::INFORMATIONAL;
        let Some(datagrams) = self.seal(id, header.exchange_type, mid, true, &response) else {
            return;
        };
        if !self.send_response(id, mid, datagrams) {
            return;
        }
        if deleted_ike {
            let reason = self.ike_sa_deleted_by_peer(now, id);
            info!(ike_sa = id.0, ?reason, "IKE SA deleted by the peer");
            self.remove_ike_sa(id, reason);
        }
    }

    /// RFC 7296 §1.4.1: the response to an INFORMATIONAL request, deleting what it asks for.
    /// Deleting the IKE SA answers with nothing; deleting CHILD_SAs answers with Deletes for
    /// our inbound SPIs of the same CHILD_SAs. Unknown SPIs are ignored.
    fn answer_informational(&mut self, id: IkeSaId, inner: &[Payload]) -> Option<Vec<Payload>> {
        let deletes = Deletes::of(inner);
        if deletes.ike {
            return Some(Vec::new());
        }
        // A Delete that crossed an IKE SA rekey arrives on the old IKE SA: its CHILD_SAs are
        // on the new one now (the answer still goes out on the old one).
        let successor = match &self.ike_sas.get(&id)?.state {
            State::Established(e) => e.rekey.replaced_by.filter(|n| self.ike_sas.contains_key(n)),
            _ => None,
        };
        let target = successor.unwrap_or(id);
        let sa = self.ike_sas.get_mut(&target)?;
        let peer = sa.peer;
        let State::Established(established) = &mut sa.state else {
            return None;
        };
        let rekeying_ours = match established.creating.as_deref() {
            Some(Creating::Sent { rekey, .. }) => *rekey,
            _ => None,
        };
        let mut ours = Vec::new();
        let mut events = Vec::new();
        let mut collided = None;
        let (deleted, kept): (Vec<ChildSa>, Vec<ChildSa>) =
            std::mem::take(&mut established.children)
                .into_iter()
                // The peer names its inbound SPI, which is our outbound one.
                .partition(|child| deletes.esp.contains(&child.spi_out));
        established.children = kept;
        for mut child in deleted {
            ours.push(child.spi_in);
            if let Some(theirs) = child.peer_rekey.take() {
                // Both of us rekeyed it and the peer's rekey won (RFC 7296 §2.8.1).
                events.push(Event::ChildSaRekeyed {
                    peer,
                    old_spi_in: child.spi_in,
                    old_spi_out: child.spi_out,
                    new_spi_in: theirs.spi_in,
                    new_spi_out: theirs.spi_out,
                });
                if rekeying_ours == Some(child.spi_in) {
                    collided = Some((child.spi_in, theirs));
                }
            }
            events.push(Event::ChildSaDelete {
                peer,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
            });
        }
        // CHILD_SAs we are deleting ourselves (replaced by a rekey): the peer's Delete crossed
        // ours; they are gone now.
        established.replaced.retain(|(_, child)| {
            if deletes.esp.contains(&child.spi_out) {
                ours.push(child.spi_in);
                events.push(Event::ChildSaDelete {
                    peer,
                    spi_in: child.spi_in,
                    spi_out: child.spi_out,
                });
                false
            } else {
                true
            }
        });
        if collided.is_some() {
            established.rekey.collided = collided;
        }
        sa.sync_child_timer();
        // The initiator of a rekey deletes the old CHILD_SA once it has switched to the new one
        // (RFC 7296 §2.8): the new outbound SA may carry traffic now, before the old one goes.
        let old: Vec<u32> = ours.clone();
        self.outbound_ready_after(target, &old);
        for event in events {
            self.push_event(event);
        }
        if ours.is_empty() {
            return Some(Vec::new());
        }
        Some(vec![Payload::new(Delete::esp(&ours))])
    }

    /// A response on an established IKE SA.
    pub(crate) fn handle_established_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        header: &Header,
        message: &[u8],
    ) {
        let Some(inner) = self.unseal(id, header, message) else {
            return;
        };
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        if sa.requests.on_response(header.message_id).is_none() {
            return;
        }
        sa.sync_retransmit_timer();
        if header.exchange_type == ExchangeType::CREATE_CHILD_SA {
            self.peer_alive(now, id);
            self.handle_create_child_response(now, id, &inner);
            self.send_queued(now, id);
            return;
        }
        // The answer to the Delete of a CHILD_SA replaced by a rekey: now it is gone.
        let peer = sa.peer;
        let mut gone = Vec::new();
        if let State::Established(e) = &mut sa.state {
            let mid = header.message_id;
            let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut e.replaced)
                .into_iter()
                .partition(|(m, _)| *m == mid);
            e.replaced = rest;
            gone = done;
        }
        for (_, old) in gone {
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: old.spi_in,
                spi_out: old.spi_out,
            });
        }
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let deleting = match &sa.state {
            State::Established(e) if e.deleting => {
                Some(e.rekey.delete_reason.unwrap_or(DownReason::Terminated))
            }
            _ => None,
        };
        if let Some(reason) = deleting {
            self.remove_ike_sa(id, reason);
            return;
        }
        self.peer_alive(now, id);
        self.send_queued(now, id);
    }

    /// Sends an INFORMATIONAL request with `inner` on IKE SA `id`; false when the peer's
    /// window is full or the message cannot be built.
    pub(crate) fn send_informational(
        &mut self,
        now: Instant,
        id: IkeSaId,
        inner: &[Payload],
    ) -> bool {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return false;
        };
        let Ok(mid) = sa.requests.allocate() else {
            return false;
        };
        let Some(datagrams) = self.seal(id, ExchangeType::INFORMATIONAL, mid, false, inner) else {
            return false;
        };
        let Some((local, remote)) = self.record_request(id, mid, &datagrams, now) else {
            return false;
        };
        self.queue_datagrams(local, remote, datagrams);
        true
    }

    /// The DPD timer fired: nothing was heard for the interval, so ask the peer whether it is
    /// alive with an empty INFORMATIONAL request; the retransmission schedule decides.
    pub(crate) fn on_dpd(&mut self, now: Instant, id: IkeSaId) {
        let busy = self.ike_sas.get(&id).is_none_or(|sa| {
            !sa.requests.can_send()
                || !matches!(&sa.state, State::Established(e)
                    if e.rekey.replaced_by.is_none() && !e.rekey.redundant)
        });
        if busy {
            // A request is outstanding already; its retransmissions check liveness.
            self.peer_alive(now, id);
            return;
        }
        debug!(ike_sa = id.0, "liveness check");
        self.send_informational(now, id, &[]);
    }

    /// Deletes established IKE SA `id` with an INFORMATIONAL Delete (RFC 7296 §1.4.1). Its
    /// CHILD_SAs are reported deleted at once; the IKE SA goes when the peer answers, or at
    /// once when `wait` is false (the configuration is going away).
    pub(crate) fn delete_established(&mut self, now: Instant, id: IkeSaId, wait: bool) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let peer = sa.peer;
        let State::Established(established) = &mut sa.state else {
            return;
        };
        if established.deleting {
            return;
        }
        established.deleting = true;
        let reason = established
            .rekey
            .delete_reason
            .unwrap_or(DownReason::Terminated);
        // Limitation: the CHILD_SAs are reported deleted as the Delete leaves, while the peer
        // may send on them until it has it (a reauthentication's old IKE SA included).
        let children = std::mem::take(&mut established.children);
        for child in children {
            self.push_event(Event::ChildSaDelete {
                peer,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
            });
        }
        let sent = self.send_informational(now, id, &[Payload::new(Delete::ike_sa())]);
        if !sent || !wait {
            // Limitation: with the peer's window full the Delete is not sent; the peer's
            // liveness check or lifetime removes its copy.
            self.remove_ike_sa(id, reason);
        }
    }
}
