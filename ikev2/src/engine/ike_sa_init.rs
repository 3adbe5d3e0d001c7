//! The IKE_SA_INIT exchange (RFC 7296 §1.2): proposal, key exchange, nonces, SKEYSEED and the
//! SK_* keys, NAT detection (§2.23), INVALID_KE_PAYLOAD (§1.2) and COOKIE (§2.6) retries.
//!
//! ```text
//! Initiator                         Responder
//! HDR, SAi1, KEi, Ni, N(NAT_D)* -->
//!                              <--  HDR, SAr1, KEr, Nr, N(NAT_D)*
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info};

use super::endpoint::{CommandError, Endpoint};
use super::event::{DownReason, IkeAlgorithms, IkeSaId, PeerId};
use super::ike_sa::{AuthProgress, IkeSa, InitDone, InitSent, Role, State};
use super::nat::{nat_detection_hash, NatDetection};
use super::proposal::{
    select_from_sa, to_wire_proposal, KeRule, OfferedProposal, SelectError, Selected, TransformSpec,
};
use super::timers::{Timer, TimerTable, HALF_OPEN_TIMEOUT, NAT_KEEPALIVE_INTERVAL};
use super::window::{RequestDisposition, RequestWindow, ResponseWindow};
use super::{datagram, IkeProposal};
use crate::auth::OUR_HASH_ALGORITHMS;
use crate::codec::{
    self, payload::NAT_DETECTION_HASH_LEN, CertReq, Flags, Header, Ke, Message, Nonce, Notify,
    NotifyData, Payload, PayloadBody, Sa,
};
use crate::crypto::{
    AeadCipher, CryptoProvider, KeMethod, KeyExchange, PrfAlgorithm, SharedSecret,
};
use crate::keys::{skeyseed, IkeSaKeyLengths, IkeSaKeys, Skeyseed};
use crate::registry::{
    CertEncoding, ExchangeType, HashAlgorithm, KeGroup, NotifyType, ProtocolId, TransformType,
};

/// Length of the nonces we send: at least half the PRF key size and 128 bits (RFC 7296 §2.10).
pub const NONCE_LEN: usize = 32;

/// Shortest nonce accepted (RFC 7296 §2.10).
pub const MIN_NONCE_LEN: usize = 16;

/// Longest nonce accepted (RFC 7296 §3.9).
pub const MAX_NONCE_LEN: usize = 256;

/// INVALID_KE_PAYLOAD answers we follow before giving up, so a responder cannot keep us
/// switching groups forever.
pub const MAX_INVALID_KE_RETRIES: u32 = 2;

/// COOKIE answers we follow before giving up (RFC 7296 §2.6).
pub const MAX_COOKIE_RETRIES: u32 = 2;

/// NAT_DETECTION_SOURCE_IP notifies we look at (a multihomed peer sends one per address).
pub const MAX_NAT_SOURCE_HASHES: usize = 8;

/// The payloads of an IKE_SA_INIT message the exchange looks at.
struct InitPayloads<'a> {
    sa: Option<&'a Sa>,
    ke: Option<&'a Ke>,
    nonce: Option<&'a Nonce>,
    notifies: Vec<&'a Notify>,
}

impl<'a> InitPayloads<'a> {
    fn of(message: &'a Message) -> Self {
        let mut p = InitPayloads {
            sa: None,
            ke: None,
            nonce: None,
            notifies: Vec::new(),
        };
        for payload in &message.payloads {
            match &payload.body {
                // RFC 7296 §3: one of each; a second one is ignored.
                PayloadBody::Sa(sa) => p.sa = p.sa.or(Some(sa)),
                PayloadBody::Ke(ke) => p.ke = p.ke.or(Some(ke)),
                PayloadBody::Nonce(n) => p.nonce = p.nonce.or(Some(n)),
                PayloadBody::Notify(n) => p.notifies.push(n),
                _ => {}
            }
        }
        p
    }

    fn notify(&self, notify_type: NotifyType) -> Option<&'a Notify> {
        self.notifies
            .iter()
            .find(|n| n.notify_type == notify_type)
            .copied()
    }

    /// The first error notify, which ends the exchange (RFC 7296 §2.21.1).
    fn error(&self) -> Option<NotifyType> {
        self.notifies
            .iter()
            .map(|n| n.notify_type)
            .find(|t| t.is_error())
    }

    fn nat_hashes(
        &self,
    ) -> (
        Vec<[u8; NAT_DETECTION_HASH_LEN]>,
        Option<[u8; NAT_DETECTION_HASH_LEN]>,
    ) {
        let hash = |n: &Notify| match n.typed_data() {
            Ok(NotifyData::NatDetection(h)) => Some(*h),
            _ => None,
        };
        let sources = self
            .notifies
            .iter()
            .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
            .filter_map(|n| hash(n))
            .take(MAX_NAT_SOURCE_HASHES)
            .collect();
        let destination = self
            .notify(NotifyType::NAT_DETECTION_DESTINATION_IP)
            .and_then(hash);
        (sources, destination)
    }

    /// The peer's SIGNATURE_HASH_ALGORITHMS, `None` when it sent none (RFC 7427 §4).
    fn hash_algorithms(&self) -> Option<Vec<HashAlgorithm>> {
        match self
            .notify(NotifyType::SIGNATURE_HASH_ALGORITHMS)
            .map(Notify::typed_data)
        {
            Some(Ok(NotifyData::SignatureHashAlgorithms(h))) => Some(h),
            Some(_) => Some(Vec::new()),
            None => None,
        }
    }

    fn nonce_ok(&self) -> Option<&'a [u8]> {
        self.nonce
            .map(|n| n.data.as_slice())
            .filter(|d| (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&d.len()))
    }
}

/// The transforms of `p` this crate implements, as [`super::proposal::select`] takes them; a
/// configured algorithm we cannot run is never offered nor accepted.
pub(crate) fn supported_transforms(p: &IkeProposal) -> Vec<TransformSpec> {
    p.transforms()
        .into_iter()
        .filter(|t| match t.transform_type {
            TransformType::ENCR => {
                AeadCipher::from_transform(crate::registry::EncrId(t.id), t.key_length).is_ok()
            }
            TransformType::PRF => PrfAlgorithm::from_id(crate::registry::PrfId(t.id)).is_ok(),
            TransformType::KE => KeMethod::from_group(KeGroup(t.id)).is_ok(),
            // Limitation: only AEAD ciphers are implemented, so no integrity algorithm is.
            TransformType::INTEG => false,
            _ => false,
        })
        .collect()
}

/// The keys of a new IKE SA and what was negotiated.
pub(super) struct DerivedKeys {
    pub(super) keys: IkeSaKeys,
    pub(super) algorithms: IkeAlgorithms,
    pub(super) prf: PrfAlgorithm,
    pub(super) cipher: AeadCipher,
}

/// RFC 7296 §2.14: SKEYSEED and SK_* for the chosen proposal.
fn derive_keys(
    provider: &dyn CryptoProvider,
    selected: &Selected,
    shared: &SharedSecret,
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
) -> Option<DerivedKeys> {
    derive_keys_from_seed(provider, selected, ni, nr, spi_i, spi_r, |prf| {
        skeyseed(provider, prf, ni, nr, shared)
    })
}

/// RFC 7296 §2.14: SK_* for the chosen proposal from the SKEYSEED `seed` makes with the new
/// IKE SA's PRF; shared by a first IKE SA (§2.14) and a rekeyed one (§2.18), which differ only
/// in how SKEYSEED is computed.
pub(super) fn derive_keys_from_seed(
    provider: &dyn CryptoProvider,
    selected: &Selected,
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    seed: impl FnOnce(PrfAlgorithm) -> Skeyseed,
) -> Option<DerivedKeys> {
    let (encryption, key_bits) = selected.encryption();
    let prf_id = crate::registry::PrfId(selected.get(TransformType::PRF)?.id);
    let cipher = AeadCipher::from_transform(encryption, key_bits).ok()?;
    let prf = PrfAlgorithm::from_id(prf_id).ok()?;
    let seed = seed(prf);
    let lengths = IkeSaKeyLengths::aead(prf, cipher);
    let keys = IkeSaKeys::derive(provider, prf, lengths, &seed, ni, nr, spi_i, spi_r).ok()?;
    Some(DerivedKeys {
        keys,
        algorithms: IkeAlgorithms {
            encryption,
            key_bits,
            prf: prf_id,
            integrity: selected.integrity(),
            ke: selected.ke_group(),
        },
        prf,
        cipher,
    })
}

/// The status notifies every IKE_SA_INIT message of ours carries after NAT detection.
fn capability_notifies(fragmentation: bool) -> Vec<Payload> {
    let mut notifies = Vec::new();
    if fragmentation {
        // RFC 7383 §2.3.
        notifies.push(Payload::new(Notify::status(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
        )));
    }
    // RFC 7427 §4.
    notifies.push(Payload::new(Notify::signature_hash_algorithms(
        &OUR_HASH_ALGORITHMS,
    )));
    notifies
}

impl Endpoint {
    /// Our proposals for `peer`, restricted to what we implement.
    fn ike_proposal_lists(&self, peer: PeerId) -> Vec<Vec<TransformSpec>> {
        self.peers
            .get(&peer)
            .map(|c| c.ike_proposals.iter().map(supported_transforms).collect())
            .unwrap_or_default()
    }

    /// A NAT_DETECTION_SOURCE_IP hash; random when encapsulation is forced, so the peer
    /// believes we are behind a NAT (RFC 7296 §2.23 allows this for forced NAT-T).
    fn source_nat_hash(
        &mut self,
        force: bool,
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        addr: SocketAddr,
    ) -> [u8; NAT_DETECTION_HASH_LEN] {
        if force {
            let mut fake = [0u8; NAT_DETECTION_HASH_LEN];
            self.rng.fill(&mut fake);
            return fake;
        }
        nat_detection_hash(spi_i, spi_r, addr)
    }

    /// Initiator: creates the IKE SA and sends IKE_SA_INIT with our first group's KE.
    pub(crate) fn start_ike_sa_init(
        &mut self,
        now: Instant,
        peer: PeerId,
    ) -> Result<IkeSaId, CommandError> {
        let Some(config) = self.peers.get(&peer) else {
            return Err(CommandError::UnknownPeer(peer));
        };
        let (local, remote) = (config.local, config.remote);
        let lists = self.ike_proposal_lists(peer);
        let group = lists
            .iter()
            .flatten()
            .find(|t| t.transform_type == TransformType::KE)
            .map(|t| KeGroup(t.id))
            .ok_or(crate::crypto::UnsupportedAlgorithm::KeGroup(KeGroup::NONE))?;

        let ke = self.new_key_exchange(group)?;
        let mut ni = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut ni);
        let spi_i = self.random_spi()?;
        let proposals: Vec<codec::Proposal> = lists
            .iter()
            .filter(|l| !l.is_empty())
            .zip(1u8..)
            .map(|(l, number)| to_wire_proposal(number, ProtocolId::IKE, Vec::new(), l))
            .collect();
        let offered = proposals.iter().map(OfferedProposal::from).collect();

        // The retransmission schedule bounds the attempt; the half-open timer starts once
        // IKE_SA_INIT is done.
        let id = self.allocate_ike_sa_id();
        let timers = TimerTable::default();
        self.ike_sas.insert(
            id,
            IkeSa {
                id,
                peer,
                role: Role::Initiator,
                spi_i,
                spi_r: [0; 8],
                local,
                remote,
                nat_t: false,
                next_iv: 0,
                requests: RequestWindow::new(),
                responses: ResponseWindow::new(),
                timers,
                reassembler: Default::default(),
                state: State::InitSent(Box::new(InitSent {
                    ke,
                    ni,
                    proposals,
                    offered,
                    request: Vec::new(),
                    invalid_ke_retries: 0,
                    cookie_retries: 0,
                    cookie: None,
                })),
            },
        );
        self.by_spi.insert(spi_i, id);

        if let Err(e) = self.send_init_request(now, id) {
            self.remove_ike_sa(id, DownReason::Terminated);
            return Err(e);
        }
        info!(ike_sa = id.0, spi_i = %hex(&spi_i), %remote, "initiating IKE SA");
        Ok(id)
    }

    fn new_key_exchange(&mut self, group: KeGroup) -> Result<KeyExchange, CommandError> {
        let method = KeMethod::from_group(group)?;
        KeyExchange::generate(method, &mut *self.rng).map_err(|e| CommandError::Build {
            exchange: ExchangeType::IKE_SA_INIT,
            reason: e.to_string(),
        })
    }

    /// Encodes and sends (or re-sends, after INVALID_KE_PAYLOAD or COOKIE) the IKE_SA_INIT
    /// request of initiator IKE SA `id`, as Message ID 0 with a fresh retransmission schedule.
    fn send_init_request(&mut self, now: Instant, id: IkeSaId) -> Result<(), CommandError> {
        let build_error = |reason: String| CommandError::Build {
            exchange: ExchangeType::IKE_SA_INIT,
            reason,
        };
        let Some(sa) = self.ike_sas.get(&id) else {
            return Ok(());
        };
        let force = self.peers.get(&sa.peer).is_some_and(|c| c.force_udp_encap);
        let (spi_i, local, remote) = (sa.spi_i, sa.local, sa.remote);
        let source_hash = self.source_nat_hash(force, &spi_i, &[0; 8], local);
        let capabilities = capability_notifies(self.config().fragmentation);

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return Ok(());
        };
        let State::InitSent(st) = &mut sa.state else {
            return Ok(());
        };
        let mut payloads = Vec::new();
        if let Some(cookie) = &st.cookie {
            // RFC 7296 §2.6: the COOKIE goes first, the rest unchanged.
            payloads.push(Payload::new(Notify::cookie(cookie.clone())));
        }
        payloads.push(Payload::new(Sa {
            proposals: st.proposals.clone(),
        }));
        payloads.push(Payload::new(Ke {
            group: st.ke.method().group(),
            data: st.ke.public_value().to_vec(),
        }));
        payloads.push(Payload::new(Nonce {
            data: st.ni.clone(),
        }));
        payloads.push(Payload::new(Notify::nat_detection_source_ip(source_hash)));
        payloads.push(Payload::new(Notify::nat_detection_destination_ip(
            nat_detection_hash(&spi_i, &[0; 8], remote),
        )));
        payloads.extend(capabilities);

        let message = Message {
            header: Header::new(
                spi_i,
                [0; 8],
                ExchangeType::IKE_SA_INIT,
                Flags::INITIATOR,
                0,
            ),
            payloads,
        };
        let bytes = message.encode().map_err(|e| build_error(e.to_string()))?;
        st.request = bytes.clone();

        sa.requests = RequestWindow::new();
        let mid = sa
            .requests
            .allocate()
            .map_err(|e| build_error(e.to_string()))?;
        let datagram = datagram::frame(bytes, false);
        sa.requests.sent(mid, vec![datagram.clone()], now);
        sa.sync_retransmit_timer();
        self.queue_datagram(local, remote, datagram);
        Ok(())
    }

    /// Responder: an IKE_SA_INIT request (SPIr zero).
    pub(crate) fn handle_ike_sa_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        header: &Header,
        bytes: &[u8],
    ) {
        if header.message_id != 0 {
            debug!(%remote, mid = header.message_id, "IKE_SA_INIT request with non-zero Message ID");
            return;
        }

        // RFC 7296 §2.1: a retransmitted request gets the same response, from the same state.
        if let Some(&id) = self.by_init.get(&(remote, header.spi_i)) {
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                if let RequestDisposition::Retransmit(cached) = sa.responses.on_request(0) {
                    let cached = cached.to_vec();
                    let from = sa.local;
                    for d in cached {
                        self.queue_datagram(from, remote, d);
                    }
                }
            }
            return;
        }

        let message = match Message::decode(bytes) {
            Ok(m) => m,
            Err(error) => {
                debug!(%remote, %error, "undecodable IKE_SA_INIT request");
                return;
            }
        };
        let p = InitPayloads::of(&message);

        // RFC 7296 §2.6: under load, only an initiator that proved its address with our
        // COOKIE gets state; the others get a COOKIE and are forgotten.
        if !self.cookie_admits(now, local, remote, nat_t, header, &p) {
            return;
        }
        if self.half_open_count() >= self.config().max_half_open
            || self.ike_sas.len() >= self.config().max_ike_sas
        {
            self.stats.half_open_dropped += 1;
            debug!(%remote, "too many half-open IKE SAs; dropping IKE_SA_INIT");
            return;
        }

        let Some(peer) = self
            .peers
            .iter()
            .find(|(_, c)| c.remote.ip() == remote.ip())
            .map(|(&id, _)| id)
        else {
            // Unconfigured peers get no answer, on purpose: a chassis the Southbound DB just
            // added reaches us before our own copy of the DB names it, and its retransmissions
            // are answered as soon as it does; an error notify would end its attempt instead.
            // Silence also keeps us from answering spoofed sources.
            self.stats.unconfigured_dropped += 1;
            debug!(%remote, "IKE_SA_INIT from an unconfigured peer; not answered");
            return;
        };
        if !self.resolve_crossed_initiation(peer) {
            return;
        }

        let (Some(sa_payload), Some(ke), Some(ni)) = (p.sa, p.ke, p.nonce_ok()) else {
            debug!(%remote, "IKE_SA_INIT request without SA, KE or a valid nonce");
            self.send_init_error(
                local,
                remote,
                nat_t,
                header.spi_i,
                NotifyType::INVALID_SYNTAX,
            );
            return;
        };

        let lists = self.ike_proposal_lists(peer);
        let selected = match select_from_sa(
            sa_payload,
            &lists,
            ProtocolId::IKE,
            0,
            KeRule::MustMatch(ke.group),
        ) {
            Ok(s) => s,
            Err(SelectError::NoProposalChosen) => {
                debug!(%remote, "no acceptable IKE proposal");
                self.send_init_error(
                    local,
                    remote,
                    nat_t,
                    header.spi_i,
                    NotifyType::NO_PROPOSAL_CHOSEN,
                );
                return;
            }
            Err(SelectError::InvalidKe { preferred }) => {
                debug!(%remote, offered = %ke.group, %preferred, "asking for another KE group");
                let notify = Notify::invalid_ke_payload(preferred);
                self.send_init_notify(local, remote, nat_t, header.spi_i, notify);
                return;
            }
        };

        let Ok(our_ke) = self.new_key_exchange(selected.ke_group()) else {
            return;
        };
        let shared = match our_ke.agree(&ke.data) {
            Ok(s) => s,
            Err(error) => {
                debug!(%remote, %error, "invalid KEi");
                self.send_init_error(
                    local,
                    remote,
                    nat_t,
                    header.spi_i,
                    NotifyType::INVALID_SYNTAX,
                );
                return;
            }
        };
        let Ok(spi_r) = self.random_spi() else {
            return;
        };
        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut nr);
        let spi_i = header.spi_i;
        let Some(derived) = derive_keys(
            self.provider.as_ref(),
            &selected,
            &shared,
            ni,
            &nr,
            &spi_i,
            &spi_r,
        ) else {
            return;
        };

        let (sources, destination) = p.nat_hashes();
        let nat = NatDetection::evaluate(
            &spi_i,
            &[0; 8],
            local,
            remote,
            &sources,
            destination.as_ref(),
        );
        let force = self.peers.get(&peer).is_some_and(|c| c.force_udp_encap);
        let source_hash = self.source_nat_hash(force, &spi_i, &spi_r, local);
        let mut payloads = vec![
            Payload::new(Sa {
                proposals: vec![selected.to_wire_proposal(Vec::new())],
            }),
            Payload::new(Ke {
                group: selected.ke_group(),
                data: our_ke.public_value().to_vec(),
            }),
            Payload::new(Nonce { data: nr.clone() }),
        ];
        // RFC 7296 §1.2 [CERTREQ]: strongSwan's charon (send_cert = ifasked) sends its CERT in
        // IKE_AUTH only when asked here.
        if let Some(config) = self.peers.get(&peer) {
            payloads.push(Payload::new(CertReq {
                encoding: CertEncoding::X509_SIGNATURE,
                data: config.trusted_cas.certreq_data(),
            }));
        }
        if nat.peer_supports_nat_t {
            payloads.push(Payload::new(Notify::nat_detection_source_ip(source_hash)));
            payloads.push(Payload::new(Notify::nat_detection_destination_ip(
                nat_detection_hash(&spi_i, &spi_r, remote),
            )));
        }
        payloads.extend(capability_notifies(self.config().fragmentation));
        let response = Message {
            header: Header::new(spi_i, spi_r, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0),
            payloads,
        };
        let Ok(response) = response.encode() else {
            return;
        };

        let id = self.allocate_ike_sa_id();
        let mut timers = TimerTable::default();
        timers.set(Timer::HalfOpen, now + HALF_OPEN_TIMEOUT);
        if nat.local_behind_nat {
            timers.set(Timer::NatKeepalive, now + NAT_KEEPALIVE_INTERVAL);
        }
        let mut responses = ResponseWindow::new();
        let datagram = datagram::frame(response.clone(), nat_t);
        if responses.on_request(0) == RequestDisposition::Process {
            responses.responded(0, vec![datagram.clone()]);
        }
        self.ike_sas.insert(
            id,
            IkeSa {
                id,
                peer,
                role: Role::Responder,
                spi_i,
                spi_r,
                local,
                remote,
                nat_t,
                next_iv: 0,
                requests: RequestWindow::new(),
                responses,
                timers,
                reassembler: Default::default(),
                state: State::InitDone(Box::new(InitDone {
                    keys: derived.keys,
                    algorithms: derived.algorithms,
                    prf: derived.prf,
                    cipher: derived.cipher,
                    ni: ni.to_vec(),
                    nr,
                    init_request: bytes.to_vec(),
                    init_response: response,
                    nat,
                    peer_supports_fragmentation: p
                        .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
                        .is_some(),
                    peer_hash_algorithms: p.hash_algorithms(),
                    auth: AuthProgress::AwaitingRequest,
                })),
            },
        );
        self.by_spi.insert(spi_r, id);
        self.by_init.insert((remote, spi_i), id);
        info!(ike_sa = id.0, spi_i = %hex(&spi_i), spi_r = %hex(&spi_r), %remote,
            nat = nat.nat_detected(), "IKE_SA_INIT answered");
        self.queue_datagram(local, remote, datagram);
    }

    /// Whether an IKE_SA_INIT request may create state: always below the COOKIE threshold,
    /// above it only with a valid COOKIE (RFC 7296 §2.6). A request without one, or with a
    /// wrong or expired one, is answered with a fresh COOKIE (the initiator bounds how often
    /// it follows them) and no state is kept.
    fn cookie_admits(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        header: &Header,
        p: &InitPayloads<'_>,
    ) -> bool {
        // Limitation: the threshold counts the half-open IKE SAs of all sources together (a
        // linear scan per request); one busy source is not singled out.
        if self.half_open_count() < self.config().cookie_threshold {
            return true;
        }
        // RFC 7296 §2.10: the COOKIE binds Ni; without a usable one the request is refused
        // later anyway, so it may as well be refused here without state.
        let Some(ni) = p.nonce_ok() else {
            return true;
        };
        let echoed = match p.notify(NotifyType::COOKIE).map(Notify::typed_data) {
            Some(Ok(NotifyData::Cookie(cookie))) => Some(cookie),
            _ => None,
        };
        if let Some(cookie) = echoed {
            let provider = self.provider.clone();
            if self
                .cookies
                .verify(provider.as_ref(), cookie, ni, remote.ip(), &header.spi_i)
            {
                self.stats.cookies_accepted += 1;
                return true;
            }
            self.stats.cookies_rejected += 1;
            debug!(%remote, "IKE_SA_INIT with a wrong or expired COOKIE");
        }
        let provider = self.provider.clone();
        let cookie = self.cookies.issue(
            now,
            &mut *self.rng,
            provider.as_ref(),
            ni,
            remote.ip(),
            &header.spi_i,
        );
        self.stats.cookies_sent += 1;
        debug!(%remote, "under load: answering IKE_SA_INIT with a COOKIE");
        self.send_init_notify(local, remote, nat_t, header.spi_i, Notify::cookie(cookie));
        false
    }

    /// Both chassis initiated at once (RFC 7296 leaves this to us): the attempt of the one
    /// with the lower address wins, so exactly one IKE SA results. Returns whether the
    /// peer's IKE_SA_INIT request should be answered.
    fn resolve_crossed_initiation(&mut self, peer: PeerId) -> bool {
        #[cfg(test)]
        if self.keep_crossed_attempt {
            return true;
        }
        let own = self
            .ike_sas
            .values()
            .find(|sa| sa.peer == peer && sa.role == Role::Initiator && sa.is_half_open())
            .map(|sa| sa.id);
        let Some(own) = own else {
            return true;
        };
        let Some(config) = self.peers.get(&peer) else {
            return true;
        };
        let ours = (config.local.ip(), config.local.port());
        let theirs = (config.remote.ip(), config.remote.port());
        if ours < theirs {
            // Ours wins; the peer gives its own up when our request reaches it.
            debug!(ike_sa = own.0, "crossed initiation: keeping our attempt");
            return false;
        }
        debug!(
            ike_sa = own.0,
            "crossed initiation: the peer's attempt replaces ours"
        );
        // Limitation: an inbound SPI the kernel already allocated for the abandoned attempt is
        // not handed back; its late `spi_allocated` answer gets `UnknownSpiRequest`.
        self.remove_ike_sa(own, DownReason::Superseded);
        true
    }

    /// An unprotected IKE_SA_INIT response carrying only an error notify (no state is kept).
    fn send_init_error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        spi_i: [u8; 8],
        notify_type: NotifyType,
    ) {
        self.send_init_notify(local, remote, nat_t, spi_i, Notify::status(notify_type));
    }

    fn send_init_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        spi_i: [u8; 8],
        notify: Notify,
    ) {
        let message = Message {
            header: Header::new(spi_i, [0; 8], ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0),
            payloads: vec![Payload::new(notify)],
        };
        if let Ok(bytes) = message.encode() {
            self.queue_datagram(local, remote, datagram::frame(bytes, nat_t));
        }
    }

    /// Initiator: the response to our IKE_SA_INIT request.
    pub(crate) fn handle_ike_sa_init_response(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        bytes: &[u8],
    ) {
        if header.message_id != 0 {
            return;
        }
        let message = match Message::decode(bytes) {
            Ok(m) => m,
            Err(error) => {
                // Keep waiting: a forged or damaged response must not end the attempt.
                debug!(ike_sa = id.0, %error, "undecodable IKE_SA_INIT response");
                return;
            }
        };
        let p = InitPayloads::of(&message);

        if let Some(n) = p.notify(NotifyType::INVALID_KE_PAYLOAD) {
            match n.typed_data() {
                Ok(NotifyData::InvalidKePayload(group)) => self.retry_with_group(now, id, group),
                _ => self.fail(id, DownReason::KeyExchangeFailed),
            }
            return;
        }
        if let Some(n) = p.notify(NotifyType::COOKIE) {
            match n.typed_data() {
                Ok(NotifyData::Cookie(cookie)) => self.retry_with_cookie(now, id, cookie.to_vec()),
                _ => self.fail(id, DownReason::PeerError(NotifyType::COOKIE)),
            }
            return;
        }
        if let Some(error) = p.error() {
            let reason = if error == NotifyType::NO_PROPOSAL_CHOSEN {
                DownReason::NoProposalChosen
            } else {
                DownReason::PeerError(error)
            };
            self.fail(id, reason);
            return;
        }

        let spi_r = header.spi_r;
        let (Some(sa_payload), Some(ke), Some(nr)) = (p.sa, p.ke, p.nonce_ok()) else {
            debug!(
                ike_sa = id.0,
                "IKE_SA_INIT response without SA, KE or a valid nonce"
            );
            return;
        };
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let State::InitSent(st) = &sa.state else {
            return;
        };
        let Some(selected) = answer_of(sa_payload) else {
            self.fail(id, DownReason::PeerError(NotifyType::NO_PROPOSAL_CHOSEN));
            return;
        };
        let our_group = st.ke.method().group();
        if spi_r == [0; 8]
            || !selected.is_valid_answer(&st.offered)
            || selected.ke_group() != our_group
            || ke.group != our_group
        {
            debug!(
                ike_sa = id.0,
                "IKE_SA_INIT response does not answer our proposal"
            );
            self.fail(id, DownReason::PeerError(NotifyType::NO_PROPOSAL_CHOSEN));
            return;
        }
        let Ok(shared) = st.ke.agree(&ke.data) else {
            debug!(ike_sa = id.0, "invalid KEr");
            self.fail(id, DownReason::KeyExchangeFailed);
            return;
        };
        let spi_i = sa.spi_i;
        let Some(derived) = derive_keys(
            self.provider.as_ref(),
            &selected,
            &shared,
            &st.ni,
            nr,
            &spi_i,
            &spi_r,
        ) else {
            self.fail(id, DownReason::NoProposalChosen);
            return;
        };
        let (sources, destination) = p.nat_hashes();
        let nat = NatDetection::evaluate(
            &spi_i,
            &spi_r,
            local,
            remote,
            &sources,
            destination.as_ref(),
        );
        let force = self.peers.get(&sa.peer).is_some_and(|c| c.force_udp_encap);
        let nat_t_port = self.config().nat_t_port;

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.requests.on_response(0);
        sa.sync_retransmit_timer();
        sa.spi_r = spi_r;
        let State::InitSent(st) = std::mem::replace(
            &mut sa.state,
            State::InitDone(Box::new(InitDone {
                keys: derived.keys,
                algorithms: derived.algorithms,
                prf: derived.prf,
                cipher: derived.cipher,
                ni: Vec::new(),
                nr: nr.to_vec(),
                init_request: Vec::new(),
                init_response: bytes.to_vec(),
                nat,
                peer_supports_fragmentation: p
                    .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
                    .is_some(),
                peer_hash_algorithms: p.hash_algorithms(),
                // Replaced at once by `begin_ike_auth`.
                auth: AuthProgress::AwaitingRequest,
            })),
        ) else {
            return;
        };
        if let State::InitDone(done) = &mut sa.state {
            done.ni = st.ni;
            done.init_request = st.request;
        }

        // RFC 7296 §2.23: with a NAT (or forced encapsulation), IKE_AUTH goes to port 4500.
        if nat.nat_detected() || (force && nat.peer_supports_nat_t) {
            sa.nat_t = true;
            sa.local.set_port(nat_t_port);
            sa.remote.set_port(nat_t_port);
        }
        if nat.local_behind_nat {
            sa.timers
                .set(Timer::NatKeepalive, now + NAT_KEEPALIVE_INTERVAL);
        }
        sa.timers.set(Timer::HalfOpen, now + HALF_OPEN_TIMEOUT);
        info!(ike_sa = id.0, spi_i = %hex(&spi_i), spi_r = %hex(&spi_r),
            nat = nat.nat_detected(), "IKE_SA_INIT complete");
        self.begin_ike_auth(id);
    }

    /// RFC 7296 §1.2: the responder wants `group`; retry with it, a bounded number of times
    /// and only with a group we offered and have not just used.
    fn retry_with_group(&mut self, now: Instant, id: IkeSaId, group: KeGroup) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let offered_group =
            |t: &TransformSpec| t.transform_type == TransformType::KE && KeGroup(t.id) == group;
        let acceptable = match &sa.state {
            State::InitSent(st) => {
                st.invalid_ke_retries < MAX_INVALID_KE_RETRIES
                    && st.ke.method().group() != group
                    && st
                        .offered
                        .iter()
                        .any(|p| p.transforms.iter().any(|t| offered_group(&t.spec)))
            }
            State::InitDone(_) | State::Established(_) => false,
        };
        if !acceptable {
            debug!(ike_sa = id.0, %group, "refusing INVALID_KE_PAYLOAD group");
            self.fail(id, DownReason::KeyExchangeFailed);
            return;
        }
        let Ok(ke) = self.new_key_exchange(group) else {
            self.fail(id, DownReason::KeyExchangeFailed);
            return;
        };
        if let Some(IkeSa {
            state: State::InitSent(st),
            ..
        }) = self.ike_sas.get_mut(&id)
        {
            st.invalid_ke_retries += 1;
            st.ke = ke;
        }
        debug!(ike_sa = id.0, %group, "retrying IKE_SA_INIT with the group the responder asked for");
        if self.send_init_request(now, id).is_err() {
            self.fail(id, DownReason::KeyExchangeFailed);
        }
    }

    /// RFC 7296 §2.6: the responder wants proof of our address; retry with its COOKIE.
    fn retry_with_cookie(&mut self, now: Instant, id: IkeSaId, cookie: Vec<u8>) {
        let Some(IkeSa {
            state: State::InitSent(st),
            ..
        }) = self.ike_sas.get_mut(&id)
        else {
            return;
        };
        if st.cookie_retries >= MAX_COOKIE_RETRIES {
            self.fail(id, DownReason::PeerError(NotifyType::COOKIE));
            return;
        }
        st.cookie_retries += 1;
        st.cookie = Some(cookie);
        if self.send_init_request(now, id).is_err() {
            self.fail(id, DownReason::PeerError(NotifyType::COOKIE));
        }
    }

    fn fail(&mut self, id: IkeSaId, reason: DownReason) {
        self.remove_ike_sa(id, reason);
    }

    #[cfg(test)]
    pub(crate) fn ike_sa_keys(&self, id: IkeSaId) -> Option<&IkeSaKeys> {
        match &self.ike_sas.get(&id)?.state {
            State::InitDone(done) => Some(&done.keys),
            State::Established(e) => Some(&e.keys),
            State::InitSent(_) => None,
        }
    }
}

/// The responder's chosen proposal, with its SPI: exactly one (RFC 7296 §3.3), in IKE_SA_INIT
/// and in an IKE SA rekey alike.
pub(super) fn answer_of(sa: &Sa) -> Option<Selected> {
    let [proposal] = sa.proposals.as_slice() else {
        return None;
    };
    let offered = OfferedProposal::from(proposal);
    Some(Selected {
        number: offered.number,
        protocol: offered.protocol,
        spi: offered.spi,
        transforms: offered.transforms.iter().map(|t| t.spec).collect(),
    })
}

/// An SPI as 16 hex digits, for logs.
fn hex(spi: &[u8; 8]) -> String {
    format!("{:016x}", u64::from_be_bytes(*spi))
}
