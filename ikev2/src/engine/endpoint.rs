//! The [`Endpoint`]: every IKE SA of a node, driven by the caller's datagrams, time and
//! commands.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use thiserror::Error;
use tracing::{debug, trace};

use super::config::{ConfigError, EndpointConfig, PeerConfig};
use super::cookie::CookieJar;
use super::datagram::{self, Inbound, NAT_KEEPALIVE};
use super::event::{DownReason, Event, IkeAlgorithms, IkeSaId, PeerId, SpiRequestId};
use super::ike_sa::{AuthProgress, IkeSa, Role, State};
use super::nat::NatDetection;
use super::stats::EndpointStats;
use super::timers::{Timer, NAT_KEEPALIVE_INTERVAL};
use super::unknown_spi::{
    RateLimiter, MAX_INVALID_SPI_ANSWERS_PER_SECOND, MAX_INVALID_SPI_HINTS_PER_SECOND,
    UNPROTECTED_FIRST_PAYLOAD,
};
use super::window::{RequestDisposition, RetransmitOutcome};
use crate::codec::Header;
use crate::crypto::{CryptoProvider, Random, UnsupportedAlgorithm};
use crate::registry::ExchangeType;

/// How many times we draw an SPI before giving up on finding an unused one; with 64 random
/// bits a second draw is already improbable.
const MAX_SPI_DRAWS: usize = 16;

/// A datagram the endpoint wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The address to send from (our IKE or NAT-T port).
    pub local: SocketAddr,
    /// The address to send to.
    pub remote: SocketAddr,
    /// The UDP payload, non-ESP marker included when it goes over NAT-T.
    pub bytes: Vec<u8>,
}

/// Why a command was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The peer configuration does not exist (never added, or removed).
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
    /// There is already an IKE SA with this peer being set up or established.
    #[error("peer {peer:?} already has IKE SA {ike_sa:?}")]
    AlreadyActive {
        /// The peer.
        peer: PeerId,
        /// Its IKE SA.
        ike_sa: IkeSaId,
    },
    /// The command needs an established IKE SA with the peer.
    #[error("peer {0:?} has no established IKE SA")]
    NotEstablished(PeerId),
    /// No CHILD_SA of the peer has this inbound SPI.
    #[error("no CHILD_SA with inbound SPI {0:#010x}")]
    UnknownChildSa(u32),
    /// No IKE SA has this handle (never was, or gone).
    #[error("no IKE SA {0:?}")]
    UnknownIkeSa(IkeSaId),
    /// The IKE SA has an exchange of this kind under way or is going away.
    #[error("IKE SA {0:?} is busy (an exchange in progress, or being deleted)")]
    IkeSaBusy(IkeSaId),
    /// The peer configuration has no CHILD_SA of this name.
    #[error("no configured CHILD_SA named {0:?}")]
    UnknownChildConfig(String),
    /// No [`Event::AllocateSpi`] request with this ID is outstanding.
    #[error("no outstanding SPI request {0:?}")]
    UnknownSpiRequest(SpiRequestId),
    /// The SPI given for an [`Event::AllocateSpi`] request is 0 (reserved) or already the
    /// inbound SPI of another CHILD_SA on that address.
    #[error("inbound SPI {0:#010x} is reserved or already in use")]
    UnusableSpi(u32),
    /// The endpoint holds as many IKE SAs as it is configured to.
    #[error("the endpoint already holds {0} IKE SAs")]
    TooManyIkeSas(usize),
    /// The randomness source kept producing SPIs already in use.
    #[error("could not draw an unused IKE SPI")]
    SpiExhausted,
    /// The configuration names an algorithm this crate does not implement.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedAlgorithm),
    /// The first message of the exchange could not be built.
    #[error("could not build the {exchange} request: {reason}")]
    Build {
        /// The exchange.
        exchange: ExchangeType,
        /// What failed.
        reason: String,
    },
}

/// Whether `message` is not an SKF fragment, or is fragment number 1.
fn is_first_or_unfragmented(message: &[u8]) -> bool {
    match crate::codec::locate_encrypted_payload(message) {
        Ok(Some(location)) => location.fragment.is_none_or(|f| f.number == 1),
        _ => true,
    }
}

/// Public, non-secret facts about one IKE SA, for status output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The peer configuration.
    pub peer: PeerId,
    /// Our end.
    pub role: Role,
    /// The state's name.
    pub state: &'static str,
    /// SPIi.
    pub spi_i: u64,
    /// SPIr (0 until known).
    pub spi_r: u64,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Negotiated algorithms, once IKE_SA_INIT is done.
    pub algorithms: Option<IkeAlgorithms>,
    /// NAT detection results, once IKE_SA_INIT is done.
    pub nat: Option<NatDetection>,
    /// When the IKE SA is due to be rekeyed (its soft lifetime, with jitter); `None` until
    /// it is established and once it is being replaced or deleted.
    pub rekey_at: Option<Instant>,
    /// When it is due to be reauthenticated, when that is configured (RFC 7296 §2.8.3).
    pub reauth_at: Option<Instant>,
    /// It was replaced by a rekey or reauthentication, or is being deleted: it only waits to
    /// go away.
    pub winding_down: bool,
    /// The deadlines of its CHILD_SAs, once established.
    pub child_sas: Vec<ChildSaTimes>,
}

/// When one CHILD_SA of an IKE SA is due to be rekeyed and to expire, for status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSaTimes {
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI (the peer's inbound).
    pub spi_out: u32,
    /// When it is due to be rekeyed (soft lifetime, with jitter); `None` while a rekey of it
    /// is in progress or it was replaced.
    pub rekey_at: Option<Instant>,
    /// When it expires (hard lifetime).
    pub expire_at: Instant,
}

/// The sans-IO IKEv2 endpoint of one node: it owns every IKE SA (and their CHILD_SAs) with
/// every configured peer, and never touches a socket or a clock.
///
/// # Driving it
///
/// The caller owns the UDP sockets (the IKE port and the NAT-T port), the clock and the
/// kernel, and loops:
///
/// 1. Feed input: every datagram received on either port with
///    [`handle_datagram`](Self::handle_datagram), and [`handle_timeout`](Self::handle_timeout)
///    whenever the instant last returned by [`poll_timeout`](Self::poll_timeout) has passed.
///    Commands ([`add_peer`](Self::add_peer), [`initiate`](Self::initiate),
///    [`terminate`](Self::terminate), …) are input too.
/// 2. Drain output after every input, until each returns `None`:
///    [`poll_transmit`](Self::poll_transmit) (send each datagram from `local` to `remote`),
///    [`poll_event`](Self::poll_event) (install or delete CHILD_SAs in the kernel, allocate
///    SPIs and answer with [`spi_allocated`](Self::spi_allocated), log), and finally
///    [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout` next; it can only move
///    after new input).
///
/// Every input takes `now`, the caller's monotonic time; the endpoint compares instants only
/// with each other, so a simulation can run with virtual time. Every random byte comes from
/// the [`Random`] source given at construction, so a run is reproducible from its seed.
pub struct Endpoint {
    config: EndpointConfig,
    pub(crate) provider: Arc<dyn CryptoProvider>,
    pub(crate) rng: Box<dyn Random + Send>,
    pub(crate) peers: BTreeMap<PeerId, PeerConfig>,
    next_peer: u64,
    pub(crate) ike_sas: BTreeMap<IkeSaId, IkeSa>,
    next_ike_sa: u64,
    /// Our SPI of each IKE SA, by which incoming messages find it.
    pub(crate) by_spi: HashMap<[u8; 8], IkeSaId>,
    /// Responder IKE SAs by the peer's address and SPIi, to recognise a retransmitted
    /// IKE_SA_INIT request (RFC 7296 §2.1), whose SPIr is still zero.
    pub(crate) by_init: HashMap<(SocketAddr, [u8; 8]), IkeSaId>,
    /// Outstanding [`Event::AllocateSpi`] requests and the IKE SA each is for.
    spi_requests: BTreeMap<SpiRequestId, IkeSaId>,
    next_spi_request: u64,
    /// An instant and the calendar time it corresponds to, for certificate validity.
    pub(crate) wall_clock: Option<(Instant, SystemTime)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Tests: nonces for the next CREATE_CHILD_SA exchanges, to force a collision's order.
    #[cfg(test)]
    pub(crate) forced_nonces: VecDeque<Vec<u8>>,
    /// Stateless COOKIE secrets (RFC 7296 §2.6).
    pub(crate) cookies: CookieJar,
    /// INVALID_IKE_SPI answers to unknown IKE SAs (RFC 7296 §1.5).
    pub(crate) invalid_spi_answers: RateLimiter,
    /// INVALID_IKE_SPI notifications acted on (RFC 7296 §2.21.4).
    pub(crate) invalid_spi_hints: RateLimiter,
    pub(crate) stats: EndpointStats,
    /// When IKE SAs came up, for replacing older ones (`unique.rs`).
    pub(crate) established_at: super::unique::EstablishedAt,
    /// Tests play Libreswan's pluto, which re-initiates after a restart without
    /// INITIAL_CONTACT.
    #[cfg(test)]
    pub(crate) omit_initial_contact: bool,
    /// Tests play strongSwan's charon, which keeps its own IKE_SA_INIT going (and answers
    /// ours) when the two cross.
    #[cfg(test)]
    pub(crate) keep_crossed_attempt: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("peers", &self.peers.len())
            .field("ike_sas", &self.ike_sas.len())
            .field("transmits", &self.transmits.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint without peers, using `provider` for cryptography and `rng` for every random
    /// byte (SPIs, nonces, key exchange private keys, jitter).
    pub fn new(
        config: EndpointConfig,
        provider: Arc<dyn CryptoProvider>,
        rng: Box<dyn Random + Send>,
    ) -> Self {
        Endpoint {
            config,
            provider,
            rng,
            peers: BTreeMap::new(),
            next_peer: 0,
            ike_sas: BTreeMap::new(),
            next_ike_sa: 0,
            by_spi: HashMap::new(),
            by_init: HashMap::new(),
            spi_requests: BTreeMap::new(),
            next_spi_request: 0,
            wall_clock: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            #[cfg(test)]
            forced_nonces: VecDeque::new(),
            cookies: CookieJar::default(),
            invalid_spi_answers: RateLimiter::per_second(MAX_INVALID_SPI_ANSWERS_PER_SECOND),
            invalid_spi_hints: RateLimiter::per_second(MAX_INVALID_SPI_HINTS_PER_SECOND),
            stats: EndpointStats::default(),
            established_at: Default::default(),
            #[cfg(test)]
            omit_initial_contact: false,
            #[cfg(test)]
            keep_crossed_attempt: false,
        }
    }

    /// Tells the endpoint that the monotonic instant `at` is the calendar time `wall`:
    /// certificate validity is checked in calendar time, which the endpoint never reads itself.
    /// Call it at start and again whenever the system clock is stepped; until it is called,
    /// peers cannot be authenticated.
    pub fn set_wall_clock(&mut self, at: Instant, wall: SystemTime) {
        self.wall_clock = Some((at, wall));
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Counters of COOKIEs, INVALID_IKE_SPI and other answers outside any IKE SA.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Adds a peer configuration after checking it; the peer can then initiate to us, and
    /// [`initiate`](Self::initiate) starts an IKE SA with it.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, ConfigError> {
        config.validate()?;
        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        self.peers.insert(id, config);
        Ok(id)
    }

    /// Removes a peer configuration and every IKE SA with it; established IKE SAs get one
    /// INFORMATIONAL Delete, not retransmitted, since nothing of them is kept.
    pub fn remove_peer(&mut self, now: Instant, peer: PeerId) -> Result<PeerConfig, CommandError> {
        self.end_ike_sas(now, peer, false)?;
        self.peers
            .remove(&peer)
            .ok_or(CommandError::UnknownPeer(peer))
    }

    /// The configuration of `peer`.
    pub fn peer(&self, peer: PeerId) -> Option<&PeerConfig> {
        self.peers.get(&peer)
    }

    /// Starts an IKE SA with `peer` (IKE_SA_INIT, then IKE_AUTH with the first CHILD_SA).
    pub fn initiate(&mut self, now: Instant, peer: PeerId) -> Result<IkeSaId, CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::UnknownPeer(peer));
        }
        // An IKE SA that only waits for its Delete (replaced by a rekey) does not count.
        let active = self
            .ike_sas
            .values()
            .find(|sa| sa.peer == peer && !super::ike_rekey::is_leaving(sa));
        if let Some(sa) = active {
            return Err(CommandError::AlreadyActive {
                peer,
                ike_sa: sa.id,
            });
        }
        if self.ike_sas.len() >= self.config.max_ike_sas {
            return Err(CommandError::TooManyIkeSas(self.ike_sas.len()));
        }
        self.start_ike_sa_init(now, peer)
    }

    /// Ends every IKE SA with `peer` and their CHILD_SAs: established ones with an
    /// INFORMATIONAL Delete (the IKE SA is reported down when the peer answers or the
    /// retransmissions run out), others at once.
    pub fn terminate(&mut self, now: Instant, peer: PeerId) -> Result<(), CommandError> {
        self.end_ike_sas(now, peer, true)
    }

    fn end_ike_sas(&mut self, now: Instant, peer: PeerId, wait: bool) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::UnknownPeer(peer));
        }
        let ids: Vec<IkeSaId> = self
            .ike_sas
            .values()
            .filter(|sa| sa.peer == peer)
            .map(|sa| sa.id)
            .collect();
        for id in ids {
            let established = self
                .ike_sas
                .get(&id)
                .is_some_and(|sa| matches!(sa.state, State::Established(_)));
            if established {
                self.delete_established(now, id, wait);
            } else {
                self.remove_ike_sa(id, DownReason::Terminated);
            }
        }
        Ok(())
    }

    /// Rekeys the CHILD_SA with inbound SPI `spi_in` now (e.g. on the kernel's soft expire):
    /// the rekey starts at the next `handle_timeout`, or as soon as the exchange in progress
    /// on its IKE SA is done.
    pub fn rekey_child(
        &mut self,
        now: Instant,
        peer: PeerId,
        spi_in: u32,
    ) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::UnknownPeer(peer));
        }
        let mut established = false;
        for sa in self.ike_sas.values_mut().filter(|sa| sa.peer == peer) {
            let State::Established(e) = &mut sa.state else {
                continue;
            };
            established = true;
            if let Some(c) = e.children.iter_mut().find(|c| c.spi_in == spi_in) {
                c.rekey_at = c.rekey_at.min(now);
                sa.sync_child_timer();
                return Ok(());
            }
        }
        if established {
            Err(CommandError::UnknownChildSa(spi_in))
        } else {
            Err(CommandError::NotEstablished(peer))
        }
    }

    /// Answers an [`Event::AllocateSpi`] with the SPI the kernel allocated; the exchange that
    /// waited for it continues.
    pub fn spi_allocated(
        &mut self,
        now: Instant,
        request: SpiRequestId,
        spi: u32,
    ) -> Result<(), CommandError> {
        let id = *self
            .spi_requests
            .get(&request)
            .ok_or(CommandError::UnknownSpiRequest(request))?;
        if spi == 0 || self.inbound_spi_in_use(id, spi) {
            // RFC 4303 §2.1: SPI 0 is reserved, and an inbound SA is found by its SPI (with our
            // address), so two CHILD_SAs must never share one; the kernel never allocates such
            // an SPI. The request stays outstanding for a correct answer.
            return Err(CommandError::UnusableSpi(spi));
        }
        self.spi_requests.remove(&request);
        self.on_spi_allocated(now, id, request, spi);
        Ok(())
    }

    /// Whether a CHILD_SA of an IKE SA on the same local address as IKE SA `id` already has
    /// inbound SPI `spi`.
    // Limitation: SPIs of CHILD_SAs still being negotiated are not compared.
    fn inbound_spi_in_use(&self, id: IkeSaId, spi: u32) -> bool {
        let Some(local) = self.ike_sas.get(&id).map(|sa| sa.local.ip()) else {
            return false;
        };
        self.ike_sas
            .values()
            .filter(|sa| sa.local.ip() == local)
            .any(|sa| match &sa.state {
                State::Established(e) => e.children.iter().any(|c| c.spi_in == spi),
                _ => false,
            })
    }

    /// Asks the caller for an inbound ESP SPI for IKE SA `id`.
    pub(crate) fn request_spi(
        &mut self,
        id: IkeSaId,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> SpiRequestId {
        let request = SpiRequestId(self.next_spi_request);
        self.next_spi_request += 1;
        self.spi_requests.insert(request, id);
        self.events.push_back(Event::AllocateSpi {
            request,
            peer,
            protocol: crate::registry::ProtocolId::ESP,
            local,
            remote,
        });
        request
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Public facts about IKE SA `id`.
    pub fn ike_sa_info(&self, id: IkeSaId) -> Option<IkeSaInfo> {
        let sa = self.ike_sas.get(&id)?;
        let (algorithms, nat) = match &sa.state {
            State::InitDone(done) => (Some(done.algorithms), Some(done.nat)),
            State::Established(e) => (Some(e.algorithms), Some(e.nat)),
            State::InitSent(_) => (None, None),
        };
        let (winding_down, child_sas) = match &sa.state {
            State::Established(e) => (
                e.deleting || e.rekey.replaced_by.is_some() || e.rekey.redundant,
                e.children
                    .iter()
                    .map(|c| ChildSaTimes {
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                        rekey_at: (!c.rekeying).then_some(c.rekey_at),
                        expire_at: c.expire_at,
                    })
                    .collect(),
            ),
            _ => (false, Vec::new()),
        };
        let established = matches!(sa.state, State::Established(_));
        Some(IkeSaInfo {
            peer: sa.peer,
            role: sa.role,
            state: sa.state.name(),
            spi_i: u64::from_be_bytes(sa.spi_i),
            spi_r: u64::from_be_bytes(sa.spi_r),
            local: sa.local,
            remote: sa.remote,
            algorithms,
            nat,
            rekey_at: sa
                .timers
                .get(Timer::Rekey)
                .filter(|_| established && !winding_down),
            reauth_at: sa
                .timers
                .get(Timer::Reauth)
                .filter(|_| established && !winding_down),
            winding_down,
            child_sas,
        })
    }

    /// Every IKE SA, by handle.
    pub fn ike_sas(&self) -> impl Iterator<Item = IkeSaId> + '_ {
        self.ike_sas.keys().copied()
    }

    /// A datagram arrived on `local` (our IKE or NAT-T port) from `remote`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        let (message, nat_t) = match datagram::classify(local.port(), self.config.nat_t_port, bytes)
        {
            Inbound::Ike { message, nat_t } => (message, nat_t),
            Inbound::NatKeepalive => return,
            Inbound::Esp | Inbound::Runt => {
                trace!(%remote, len = bytes.len(), "not an IKE message on the NAT-T port");
                return;
            }
        };
        let header = match Header::decode(message) {
            Ok(header) => header,
            Err(error) => {
                debug!(%remote, %error, "dropping undecodable IKE header");
                return;
            }
        };

        let is_request = !header.flags.is_response();
        if is_request && header.exchange_type == ExchangeType::IKE_SA_INIT && header.spi_r == [0; 8]
        {
            self.handle_ike_sa_init_request(now, local, remote, nat_t, &header, message);
            return;
        }

        // RFC 7296 §2.21.4: an unprotected notification (INVALID_IKE_SPI) belongs to no IKE SA.
        if header.exchange_type == ExchangeType::INFORMATIONAL
            && header.next_payload == UNPROTECTED_FIRST_PAYLOAD
        {
            self.handle_unprotected_informational(now, remote, message);
            return;
        }

        // The I flag says the sender is the original initiator, so our SPI is the other one.
        let our_spi = if header.flags.is_initiator() {
            header.spi_r
        } else {
            header.spi_i
        };
        let Some(&id) = self.by_spi.get(&our_spi) else {
            self.handle_unknown_spi(now, local, remote, nat_t, &header, message);
            return;
        };

        if is_request {
            self.handle_request(now, id, local, remote, nat_t, &header, message);
        } else {
            self.handle_response(now, id, local, remote, &header, message);
        }
    }

    /// A request for an existing IKE SA: cached response, drop, or process (RFC 7296 §2.3).
    #[allow(clippy::too_many_arguments)]
    fn handle_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        header: &Header,
        message: &[u8],
    ) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        if header.spi_i != sa.spi_i || header.spi_r != sa.spi_r {
            return;
        }
        sa.reassembler.observe(now);
        match sa.responses.on_request(header.message_id) {
            // RFC 7383 §2.6.1: a fragmented request is retransmitted whole; answer its first
            // fragment only, not every one.
            RequestDisposition::Retransmit(_) if !is_first_or_unfragmented(message) => {}
            RequestDisposition::Retransmit(cached) => {
                let cached = cached.to_vec();
                let (local, remote) = (sa.local, sa.remote);
                for d in cached {
                    self.queue_datagram(local, remote, d);
                }
            }
            RequestDisposition::Process => {
                let expecting_auth = matches!(
                    &sa.state,
                    State::InitDone(done) if matches!(done.auth, AuthProgress::AwaitingRequest)
                );
                if header.exchange_type == ExchangeType::IKE_AUTH && expecting_auth {
                    self.handle_ike_auth_request(now, id, local, remote, nat_t, header, message);
                    return;
                }
                if matches!(sa.state, State::Established(_)) {
                    self.handle_established_request(now, id, header, message);
                    return;
                }
                // A request out of place (CREATE_CHILD_SA or INFORMATIONAL before IKE_AUTH, a new
                // IKE_AUTH while one is answered) is dropped; RFC 7296 §2.21 lets us ignore it.
                debug!(exchange = %header.exchange_type, mid = header.message_id,
                    state = sa.state.name(), "request not handled in this state");
                sa.responses.abandoned(header.message_id);
            }
            RequestDisposition::InProgress
            | RequestDisposition::TooOld
            | RequestDisposition::BeyondWindow => {
                trace!(
                    mid = header.message_id,
                    "dropping request outside the window"
                );
            }
        }
    }

    /// A response for an existing IKE SA: it must answer an outstanding request.
    fn handle_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        message: &[u8],
    ) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.reassembler.observe(now);
        if !sa.requests.is_pending(header.message_id) {
            trace!(
                mid = header.message_id,
                "dropping response to no outstanding request"
            );
            return;
        }
        match (&sa.state, header.exchange_type) {
            (State::InitSent(_), ExchangeType::IKE_SA_INIT) => {
                self.handle_ike_sa_init_response(now, id, local, remote, header, message);
            }
            (State::InitDone(done), ExchangeType::IKE_AUTH)
                if matches!(done.auth, AuthProgress::Sent(_)) =>
            {
                self.handle_ike_auth_response(now, id, header, message);
            }
            (
                State::Established(_),
                ExchangeType::INFORMATIONAL | ExchangeType::CREATE_CHILD_SA,
            ) => {
                self.handle_established_response(now, id, header, message);
            }
            (State::InitSent(_) | State::InitDone(_) | State::Established(_), _) => {
                debug!(exchange = %header.exchange_type, state = sa.state.name(),
                    "dropping response not expected in this state");
            }
        }
    }

    /// Deadlines have passed: retransmit, give up on dead peers, expire half-open IKE SAs.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.cookies.on_timeout(now);
        let ids: Vec<IkeSaId> = self.ike_sas.keys().copied().collect();
        for id in ids {
            while let Some(timer) = self
                .ike_sas
                .get_mut(&id)
                .and_then(|sa| sa.timers.pop_expired(now))
            {
                if !self.on_timer(now, id, timer) {
                    break;
                }
            }
        }
    }

    /// Runs one expired timer; false when the IKE SA is gone.
    fn on_timer(&mut self, now: Instant, id: IkeSaId, timer: Timer) -> bool {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return false;
        };
        match timer {
            Timer::Retransmit => match sa.requests.on_timeout(now) {
                RetransmitOutcome::Resend(datagrams) => {
                    sa.sync_retransmit_timer();
                    self.stats.retransmissions += 1;
                    let (local, remote) = (sa.local, sa.remote);
                    for bytes in datagrams {
                        self.transmits.push_back(Transmit {
                            local,
                            remote,
                            bytes,
                        });
                    }
                    true
                }
                RetransmitOutcome::PeerDead => {
                    self.remove_ike_sa(id, DownReason::PeerUnreachable);
                    false
                }
            },
            Timer::HalfOpen => {
                if sa.is_half_open() {
                    self.remove_ike_sa(id, DownReason::HalfOpenTimeout);
                    return false;
                }
                true
            }
            Timer::Delete => {
                self.on_ike_delete_timer(id);
                false
            }
            Timer::NatKeepalive => {
                // RFC 3948 §2.3: keep the NAT's mapping for our NAT-T port alive.
                sa.timers
                    .set(Timer::NatKeepalive, now + NAT_KEEPALIVE_INTERVAL);
                let (local, remote) = (sa.local, sa.remote);
                self.transmits.push_back(Transmit {
                    local,
                    remote,
                    bytes: NAT_KEEPALIVE.to_vec(),
                });
                true
            }
            Timer::Dpd => {
                self.on_dpd(now, id);
                self.ike_sas.contains_key(&id)
            }
            Timer::ChildLifetime => {
                self.on_child_lifetime(now, id);
                self.ike_sas.contains_key(&id)
            }
            Timer::Replace => {
                self.on_replace_timer(now, id);
                self.ike_sas.contains_key(&id)
            }
            Timer::Rekey => {
                self.on_ike_rekey_timer(now, id);
                self.ike_sas.contains_key(&id)
            }
            Timer::Reauth => {
                self.on_reauth_timer(now, id);
                self.ike_sas.contains_key(&id)
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    // Limitation: a linear scan over IKE SAs; a timer heap would be needed for very large meshes.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.ike_sas
            .values()
            .filter_map(|sa| sa.timers.next_timeout())
            .chain(self.cookies.next_timeout())
            .min()
    }

    /// Queues datagrams (already framed for their port), e.g. the fragments of one message.
    pub(crate) fn queue_datagrams(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        datagrams: Vec<Vec<u8>>,
    ) {
        for bytes in datagrams {
            self.queue_datagram(local, remote, bytes);
        }
    }

    /// Keeps the datagrams of request `mid` of IKE SA `id` for retransmission and rearms the
    /// retransmission timer; the IKE SA's addresses to send them on, `None` if it is gone.
    pub(crate) fn record_request(
        &mut self,
        id: IkeSaId,
        mid: u32,
        datagrams: &[Vec<u8>],
        now: Instant,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let sa = self.ike_sas.get_mut(&id)?;
        sa.requests.sent(mid, datagrams.to_vec(), now);
        sa.sync_retransmit_timer();
        Some((sa.local, sa.remote))
    }

    /// Keeps the datagrams of our response to request `mid` of IKE SA `id`, to answer a
    /// retransmitted request again (RFC 7296 §2.1), and queues them; false if the IKE SA is gone.
    pub(crate) fn send_response(&mut self, id: IkeSaId, mid: u32, datagrams: Vec<Vec<u8>>) -> bool {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return false;
        };
        sa.responses.responded(mid, datagrams.clone());
        let (local, remote) = (sa.local, sa.remote);
        self.queue_datagrams(local, remote, datagrams);
        true
    }

    /// Queues a datagram (already framed for its port).
    pub(crate) fn queue_datagram(&mut self, local: SocketAddr, remote: SocketAddr, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            local,
            remote,
            bytes,
        });
    }

    pub(crate) fn allocate_ike_sa_id(&mut self) -> IkeSaId {
        let id = IkeSaId(self.next_ike_sa);
        self.next_ike_sa += 1;
        id
    }

    /// 64 random bits (lifetime jitter).
    pub(crate) fn random_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b);
        u64::from_be_bytes(b)
    }

    /// A random, non-zero IKE SPI that no IKE SA of ours uses (RFC 7296 §2.6).
    pub(crate) fn random_spi(&mut self) -> Result<[u8; 8], CommandError> {
        for _ in 0..MAX_SPI_DRAWS {
            let mut spi = [0u8; 8];
            self.rng.fill(&mut spi);
            if spi != [0; 8] && !self.by_spi.contains_key(&spi) {
                return Ok(spi);
            }
        }
        Err(CommandError::SpiExhausted)
    }

    /// Forgets IKE SA `id` and reports it down.
    pub(crate) fn remove_ike_sa(&mut self, id: IkeSaId, reason: DownReason) {
        let Some(sa) = self.ike_sas.remove(&id) else {
            return;
        };
        self.by_spi.remove(&sa.our_spi());
        if sa.role == Role::Responder {
            self.by_init.retain(|_, v| *v != id);
        }
        self.spi_requests.retain(|_, v| *v != id);
        if let State::Established(e) = &sa.state {
            let replaced = e.replaced.iter().map(|(_, c)| c);
            for child in e.children.iter().chain(replaced) {
                self.events.push_back(Event::ChildSaDelete {
                    peer: sa.peer,
                    spi_in: child.spi_in,
                    spi_out: child.spi_out,
                });
            }
        }
        debug!(ike_sa = id.0, ?reason, "IKE SA removed");
        self.events.push_back(Event::IkeSaDown {
            peer: sa.peer,
            ike_sa: id,
            reason,
        });
    }

    /// How many IKE SAs have not completed IKE_AUTH.
    pub(crate) fn half_open_count(&self) -> usize {
        self.ike_sas.values().filter(|sa| sa.is_half_open()).count()
    }
}
