//! One IKE SA: its SPIs, addresses, Message ID windows, timers and typed state.

use std::net::SocketAddr;

use super::event::{DownReason, IkeAlgorithms, IkeSaId, PeerId, SpiRequestId};
use super::nat::NatDetection;
use super::proposal::{OfferedProposal, Selected};
use super::timers::{Timer, TimerTable};
use super::traffic_selector::{Narrowed, TrafficSelector};
use super::window::{RequestWindow, ResponseWindow};
use crate::codec;
use crate::crypto::{AeadCipher, KeyExchange, PrfAlgorithm};
use crate::keys::IkeSaKeys;
use crate::registry::{HashAlgorithm, NotifyType};

/// Which end of the IKE SA we are: the original initiator sets the I flag in every message it
/// sends (RFC 7296 §3.1), whoever initiates a given exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the first IKE_SA_INIT request.
    Initiator,
    /// We answered it.
    Responder,
}

/// Initiator: IKE_SA_INIT request sent, waiting for the response.
pub(crate) struct InitSent {
    /// Our key exchange for the group in the KE payload.
    pub ke: KeyExchange,
    /// Ni.
    pub ni: Vec<u8>,
    /// The proposals we send, as encoded in SAi1.
    pub proposals: Vec<codec::Proposal>,
    /// The same, as the answer is checked against.
    pub offered: Vec<OfferedProposal>,
    /// The request as last sent, signed in our AUTH (RFC 7296 §2.15).
    pub request: Vec<u8>,
    /// INVALID_KE_PAYLOAD answers followed so far (RFC 7296 §1.2), bounded.
    pub invalid_ke_retries: u32,
    /// COOKIE answers followed so far (RFC 7296 §2.6), bounded.
    pub cookie_retries: u32,
    /// The COOKIE to echo, once the responder asked for one.
    pub cookie: Option<Vec<u8>>,
}

/// IKE_SA_INIT is complete: keys derived, IKE_AUTH is next.
// IKE_AUTH (not implemented yet) is what reads most of these.
#[allow(dead_code)]
pub(crate) struct InitDone {
    /// SK_d, SK_a*, SK_e*, SK_p*.
    pub keys: IkeSaKeys,
    /// What was negotiated.
    pub algorithms: IkeAlgorithms,
    /// The negotiated PRF.
    pub prf: PrfAlgorithm,
    /// The negotiated SK payload cipher.
    pub cipher: AeadCipher,
    /// Ni.
    pub ni: Vec<u8>,
    /// Nr.
    pub nr: Vec<u8>,
    /// The IKE_SA_INIT request as sent, signed in the initiator's AUTH (RFC 7296 §2.15).
    pub init_request: Vec<u8>,
    /// The IKE_SA_INIT response as sent, signed in the responder's AUTH.
    pub init_response: Vec<u8>,
    /// What NAT detection found.
    pub nat: NatDetection,
    /// The peer sent IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub peer_supports_fragmentation: bool,
    /// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), `None` when it sent none.
    pub peer_hash_algorithms: Option<Vec<HashAlgorithm>>,
    /// Where IKE_AUTH is.
    pub auth: AuthProgress,
}

/// Progress of IKE_AUTH (RFC 7296 §1.2) within [`InitDone`].
pub(crate) enum AuthProgress {
    /// Initiator: waiting for the kernel's inbound SPI of the first CHILD_SA.
    AwaitingSpi(SpiRequestId),
    /// Initiator: IKE_AUTH request sent with this CHILD_SA proposed.
    Sent(Box<ChildRequest>),
    /// Responder: waiting for the IKE_AUTH request.
    AwaitingRequest,
    /// Responder: the IKE_AUTH request is verified; the answer waits for the inbound SPI.
    Answering(Box<PendingAnswer>),
}

/// The CHILD_SA an initiator proposed in IKE_AUTH.
pub(crate) struct ChildRequest {
    /// Index of its configuration in the peer's `children`.
    pub child: usize,
    /// Our inbound SPI, sent in SAi2.
    pub spi_in: u32,
    /// The ESP proposals sent.
    pub offered: Vec<OfferedProposal>,
    /// TSi sent.
    pub tsi: Vec<TrafficSelector>,
    /// TSr sent.
    pub tsr: Vec<TrafficSelector>,
}

/// A verified IKE_AUTH request waiting for our inbound SPI before it is answered.
pub(crate) struct PendingAnswer {
    /// The SPI request.
    pub request: SpiRequestId,
    /// Message ID of the IKE_AUTH request.
    pub message_id: u32,
    /// The CHILD_SA to create, or the notify explaining why none is.
    pub child: Result<ChildAnswer, NotifyType>,
}

/// What the responder agreed to for the first CHILD_SA.
pub(crate) struct ChildAnswer {
    /// Index of the matching configuration in the peer's `children`.
    pub child: usize,
    /// The chosen ESP proposal (SPI: the peer's inbound, our outbound).
    pub selected: Selected,
    /// The narrowed TSi and TSr.
    pub narrowed: Narrowed,
}

/// One CHILD_SA of an established IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildSa {
    /// Its configuration's name.
    pub name: String,
    /// Index of its configuration in the peer's `children`.
    pub index: usize,
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI (the peer's inbound).
    pub spi_out: u32,
    /// Negotiated selectors of our end.
    pub local_ts: Vec<TrafficSelector>,
    /// Negotiated selectors of the peer's end.
    pub remote_ts: Vec<TrafficSelector>,
    /// When to rekey it (soft lifetime with jitter).
    pub rekey_at: std::time::Instant,
    /// When it expires (hard lifetime).
    pub expire_at: std::time::Instant,
    /// A rekey of it is in progress (ours, or the peer's that we answered), or it has been
    /// replaced and waits for the peer's Delete: no rekey of it is started.
    pub rekeying: bool,
    /// The peer's rekey of it that we answered while ours was outstanding (RFC 7296 §2.8.1).
    pub peer_rekey: Option<Box<PeerChildRekey>>,
    /// Responder of the rekey that made it: its outbound SA is not reported ready yet
    /// (RFC 7296 §2.8, see [`Outbound::Pending`](super::event::Outbound::Pending)).
    pub pending_outbound: Option<PendingOutbound>,
}

/// The outbound SA of a CHILD_SA we made as the responder of a rekey, waiting for the
/// initiator to switch to the new CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingOutbound {
    /// Inbound SPI of the CHILD_SA it replaces: its going (the initiator's Delete, expiry)
    /// makes the outbound SA ready.
    pub replaces: u32,
    /// Message ID of the CREATE_CHILD_SA request: a later request of the peer beyond our
    /// window proves it has our response (`None` once the Message IDs it counts in are gone:
    /// moved to a rekeyed IKE SA, or the redundant CHILD_SA of a collision).
    pub message_id: Option<u32>,
    /// When it is reported ready regardless; `None` for the redundant CHILD_SA of a
    /// simultaneous rekey we won (RFC 7296 §2.8.1), which the peer deletes.
    pub until: Option<std::time::Instant>,
}

/// A CHILD_SA the peer made by rekeying one of ours while we were rekeying it too: which of
/// the two new CHILD_SAs survives depends on all four nonces (RFC 7296 §2.8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerChildRekey {
    /// Our inbound SPI of the CHILD_SA the peer's exchange made.
    pub spi_in: u32,
    /// Our outbound SPI of it.
    pub spi_out: u32,
    /// The lower of the two nonces of the peer's exchange.
    pub lowest_nonce: Vec<u8>,
}

/// The peer's IKE SA rekey that we answered while ours was outstanding (RFC 7296 §2.8.1).
pub(crate) struct PeerIkeRekey {
    /// The IKE SA the peer's exchange made.
    pub new: IkeSaId,
    /// The lower of the two nonces of the peer's exchange.
    pub lowest_nonce: Vec<u8>,
}

/// What an established IKE SA tracks about replacing itself and answering CREATE_CHILD_SA
/// requests (RFC 7296 §2.8, §2.8.1, §2.8.3, §2.18).
#[derive(Default)]
pub(crate) struct Rekeying {
    /// Responder: a CREATE_CHILD_SA request of the peer we accepted, waiting for our SPI.
    pub answering: Option<Box<Answering>>,
    /// The peer's IKE SA rekey answered while ours was outstanding.
    pub peer_ike_rekey: Option<PeerIkeRekey>,
    /// This IKE SA was replaced (rekey or reauthentication) by this one; it only waits to be
    /// deleted, by us or by the peer.
    pub replaced_by: Option<IkeSaId>,
    /// Initiator of a reauthentication: the new IKE SA being set up to replace this one.
    pub reauth: Option<IkeSaId>,
    /// Why the IKE SA is reported down when the peer answers our Delete of it.
    pub delete_reason: Option<DownReason>,
    /// A redundant IKE SA of a simultaneous rekey: it is deleted without ever being reported.
    pub redundant: bool,
    /// The peer deleted a CHILD_SA (inbound SPI here) while both of us were rekeying it: the
    /// peer's rekey it recorded, so our own answer can still be judged by the nonces.
    pub collided: Option<(u32, Box<PeerChildRekey>)>,
}

/// Responder: an accepted CREATE_CHILD_SA request waiting for our inbound SPI.
pub(crate) struct Answering {
    /// The SPI request.
    pub request: SpiRequestId,
    /// Message ID of the request.
    pub message_id: u32,
    /// What was agreed.
    pub answer: ChildAnswer,
    /// The initiator's nonce.
    pub ni: Vec<u8>,
    /// The initiator's KE payload (group and data), for PFS.
    pub ke: Option<(crate::registry::KeGroup, Vec<u8>)>,
    /// SPIs (in, out) of the CHILD_SA this one replaces, for a rekey.
    pub rekey_of: Option<(u32, u32)>,
    /// We are rekeying that CHILD_SA ourselves: a collision (RFC 7296 §2.8.1).
    pub collision: bool,
}

/// Our IKE SA rekey request (RFC 7296 §1.3.2), sent on the old IKE SA.
pub(crate) struct IkeRekeySent {
    /// Our SPI of the new IKE SA, sent in the proposal.
    pub spi: [u8; 8],
    /// Our nonce.
    pub ni: Vec<u8>,
    /// Our key exchange.
    pub ke: KeyExchange,
    /// The proposals sent.
    pub offered: Vec<OfferedProposal>,
    /// INVALID_KE_PAYLOAD answers followed so far.
    pub invalid_ke_retries: u32,
}

/// IKE_AUTH completed: the IKE SA and its CHILD_SAs are up.
// Rekeying and INFORMATIONAL (not implemented yet) are what read most of these.
#[allow(dead_code)]
pub(crate) struct Established {
    /// SK_d, SK_a*, SK_e*, SK_p*.
    pub keys: IkeSaKeys,
    /// What was negotiated.
    pub algorithms: IkeAlgorithms,
    /// The negotiated PRF.
    pub prf: PrfAlgorithm,
    /// The negotiated SK payload cipher.
    pub cipher: AeadCipher,
    /// What NAT detection found.
    pub nat: NatDetection,
    /// The CHILD_SAs.
    pub children: Vec<ChildSa>,
    /// The peer sent IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub peer_supports_fragmentation: bool,
    /// We sent a Delete for the IKE SA and wait for its response (RFC 7296 §1.4.1).
    pub deleting: bool,
    /// The CREATE_CHILD_SA exchange in progress, if any.
    pub creating: Option<Box<Creating>>,
    /// Old CHILD_SAs replaced by a rekey, with the Message ID of the Delete we sent for each.
    pub replaced: Vec<(u32, ChildSa)>,
    /// Initiator: index of the next configured CHILD_SA to create (the first came with
    /// IKE_AUTH).
    pub next_child: usize,
    /// Ni of IKE_SA_INIT.
    pub ni: Vec<u8>,
    /// Nr of IKE_SA_INIT.
    pub nr: Vec<u8>,
    /// Rekey, reauthentication and collision bookkeeping.
    pub rekey: Rekeying,
}

/// A CREATE_CHILD_SA exchange for an additional CHILD_SA (RFC 7296 §1.3.1).
pub(crate) enum Creating {
    /// Initiator: waiting for the inbound SPI of configuration `child`.
    AwaitingSpi {
        /// The SPI request.
        request: SpiRequestId,
        /// Index in the peer's `children`.
        child: usize,
        /// Inbound SPI of the CHILD_SA this one replaces, for a rekey.
        rekey: Option<u32>,
    },
    /// Initiator: request sent.
    Sent {
        /// What was proposed.
        request: ChildRequest,
        /// Our nonce.
        ni: Vec<u8>,
        /// Our PFS key exchange, when the proposal has a group.
        ke: Option<Box<KeyExchange>>,
        /// Inbound SPI of the CHILD_SA this one replaces, for a rekey.
        rekey: Option<u32>,
        /// INVALID_KE_PAYLOAD answers followed so far (RFC 7296 §1.3), bounded.
        ke_retries: u32,
    },
    /// Initiator: the SPI is there but the peer's window is full; sent once it has room.
    Queued {
        /// Index in the peer's `children`.
        child: usize,
        /// Inbound SPI of the CHILD_SA this one replaces, for a rekey.
        rekey: Option<u32>,
        /// Our inbound SPI of the new CHILD_SA.
        spi_in: u32,
    },
    /// Initiator: IKE SA rekey request sent (RFC 7296 §1.3.2).
    IkeRekey(Box<IkeRekeySent>),
}

/// Where the IKE SA is in its life: `InitSent` (initiator only) → `InitDone` → `Established`.
pub(crate) enum State {
    /// See [`InitSent`].
    InitSent(Box<InitSent>),
    /// See [`InitDone`].
    InitDone(Box<InitDone>),
    /// See [`Established`].
    Established(Box<Established>),
}

impl State {
    /// A name for logs and [`IkeSaInfo`](super::IkeSaInfo).
    pub fn name(&self) -> &'static str {
        match self {
            State::InitSent(_) => "IKE_SA_INIT sent",
            State::InitDone(_) => "IKE_SA_INIT done",
            State::Established(_) => "established",
        }
    }
}

/// One IKE SA and everything the endpoint tracks for it.
pub(crate) struct IkeSa {
    /// Its handle.
    pub id: IkeSaId,
    /// The configuration it was made for.
    pub peer: PeerId,
    /// Our end.
    pub role: Role,
    /// SPIi.
    pub spi_i: [u8; 8],
    /// SPIr (zero until the IKE_SA_INIT response names it).
    pub spi_r: [u8; 8],
    /// Our address as the IKE SA uses it (the IKE port, or the NAT-T port after moving).
    pub local: SocketAddr,
    /// The peer's address as the IKE SA uses it.
    pub remote: SocketAddr,
    /// Messages carry the non-ESP marker (we moved to the NAT-T port).
    pub nat_t: bool,
    /// The IV of the next SK payload we seal: a counter, so it never repeats under our SK_e.
    pub next_iv: u64,
    /// The requests we initiate.
    pub requests: RequestWindow,
    /// The requests the peer initiates.
    pub responses: ResponseWindow,
    /// Deadlines.
    pub timers: TimerTable,
    /// Fragments of messages not yet complete (RFC 7383 §2.6).
    pub reassembler: crate::protection::FragmentReassembler,
    /// Typed state.
    pub state: State,
}

impl IkeSa {
    /// The SPI we chose, by which incoming messages find this IKE SA.
    pub fn our_spi(&self) -> [u8; 8] {
        match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        }
    }

    /// Arms [`Timer::ChildLifetime`] at the earliest rekey or expiry of the CHILD_SAs.
    pub fn sync_child_timer(&mut self) {
        let next = match &self.state {
            State::Established(e) => e
                .children
                .iter()
                .flat_map(|c| {
                    [
                        (!c.rekeying).then_some(c.rekey_at),
                        Some(c.expire_at),
                        c.pending_outbound.and_then(|p| p.until),
                    ]
                })
                .flatten()
                .min(),
            _ => None,
        };
        match next {
            Some(at) => self.timers.set(Timer::ChildLifetime, at),
            None => self.timers.stop(Timer::ChildLifetime),
        }
    }

    /// Arms the retransmission timer at the earliest outstanding request's deadline, or
    /// disarms it when nothing is outstanding.
    pub fn sync_retransmit_timer(&mut self) {
        match self.requests.next_deadline() {
            Some(deadline) => self.timers.set(Timer::Retransmit, deadline),
            None => self.timers.stop(Timer::Retransmit),
        }
    }

    /// Whether this IKE SA has not completed IKE_AUTH (RFC 7296 §2.6 "half-open").
    pub fn is_half_open(&self) -> bool {
        match self.state {
            State::InitSent(_) | State::InitDone(_) => true,
            State::Established(_) => false,
        }
    }
}
