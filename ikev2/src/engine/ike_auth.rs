//! The IKE_AUTH exchange with the first CHILD_SA (RFC 7296 §1.2, §2.15, §2.17), certificate
//! authentication (RFC 7427), transport mode and traffic selector narrowing (§2.9).
//!
//! ```text
//! Initiator                         Responder
//! HDR, SK {IDi, CERT, CERTREQ, AUTH, N(INITIAL_CONTACT), N(USE_TRANSPORT_MODE),
//!          SAi2, TSi, TSr}     -->
//!                              <--  HDR, SK {IDr, CERT, AUTH, N(USE_TRANSPORT_MODE),
//!                                            SAr2, TSi, TSr}
//! ```
//!
//! Both sides need an inbound SPI from the kernel before they can send their half, so each
//! emits [`Event::AllocateSpi`] and continues in [`Endpoint::spi_allocated`].

use std::time::{Instant, SystemTime};

use tracing::{debug, info, warn};

use super::config::{Mode, PeerConfig, MIN_FRAGMENT_SIZE};
use super::endpoint::Endpoint;
use super::event::{
    AuthFailure, DownReason, EspAlgorithms, EspKeys, Event, IkeSaId, Selectors, SpiRequestId,
    UdpEncap,
};
use super::ike_sa::{
    AuthProgress, ChildAnswer, ChildRequest, ChildSa, Established, InitDone, PendingAnswer, Role,
    State,
};
use super::proposal::{
    select_from_sa, to_wire_proposal, KeRule, OfferedProposal, SelectError, Selected,
    TransformSpec, CHILD_SPI_SIZE,
};
use super::timers::Timer;
use super::traffic_selector::{self, is_narrowing_of, narrow, TrafficSelector};
use super::{datagram, EspProposal};
use crate::auth::{
    certificate_proves, choose_auth_scheme, signed_octets, verify_auth, Certificate, Identity,
    PeerCredentials, RsaPadding,
};
use crate::codec::{
    self, Auth, Cert, CertReq, Flags, Header, Id, Notify, Payload, PayloadBody, Sa,
};
use crate::crypto::aead::IV_LEN;
use crate::crypto::AeadCipher;
use crate::keys::{ChildSaKeyLengths, ChildSaKeys};
use crate::protection::{self, Opened};
use crate::registry::{CertEncoding, ExchangeType, NotifyType, ProtocolId, TransformType};

/// Octets of an SKF fragment's datagram that are not plaintext: non-ESP marker, IKE header,
/// SKF header with Fragment Number and Total Fragments, IV, ICV and the Pad Length octet.
const FRAGMENT_OVERHEAD: usize = 4 + 28 + 8 + IV_LEN + crate::crypto::aead::ICV_LEN + 1;

/// CERT payloads we look at in one message: the end-entity certificate and intermediates.
pub const MAX_CERT_PAYLOADS: usize = 1 + crate::auth::MAX_INTERMEDIATES;

/// The ESP transforms of `p` this crate can key (AEAD ciphers only, like the IKE SA).
pub(crate) fn supported_esp(p: &EspProposal) -> Vec<TransformSpec> {
    p.transforms()
        .into_iter()
        .filter(|t| match t.transform_type {
            TransformType::ENCR => {
                AeadCipher::from_transform(crate::registry::EncrId(t.id), t.key_length).is_ok()
            }
            // Limitation: ESP with a separate integrity algorithm is not offered.
            TransformType::INTEG => false,
            _ => true,
        })
        .collect()
}

/// `transforms` without its Key Exchange transforms, as the IKE_AUTH CHILD_SA offers them.
pub(crate) fn without_ke(transforms: &[TransformSpec]) -> Vec<TransformSpec> {
    transforms
        .iter()
        .filter(|t| t.transform_type != TransformType::KE)
        .copied()
        .collect()
}

/// The payloads of a decrypted IKE_AUTH or CREATE_CHILD_SA message the exchanges look at.
#[derive(Default)]
pub(crate) struct AuthPayloads<'a> {
    id: Option<&'a Id>,
    certs: Vec<&'a Cert>,
    auth: Option<&'a Auth>,
    pub sa: Option<&'a Sa>,
    pub nonce: Option<&'a codec::Nonce>,
    pub ke: Option<&'a codec::Ke>,
    pub tsi: Option<&'a codec::TrafficSelectors>,
    pub tsr: Option<&'a codec::TrafficSelectors>,
    notifies: Vec<&'a Notify>,
}

impl<'a> AuthPayloads<'a> {
    pub fn of(payloads: &'a [Payload], initiator_sent: bool) -> Self {
        let mut p = AuthPayloads::default();
        for payload in payloads {
            match &payload.body {
                PayloadBody::IdI(id) if initiator_sent => p.id = p.id.or(Some(id)),
                PayloadBody::IdR(id) if !initiator_sent => p.id = p.id.or(Some(id)),
                PayloadBody::Cert(c) if p.certs.len() < MAX_CERT_PAYLOADS => p.certs.push(c),
                PayloadBody::Auth(a) => p.auth = p.auth.or(Some(a)),
                PayloadBody::Sa(sa) => p.sa = p.sa.or(Some(sa)),
                PayloadBody::Nonce(n) => p.nonce = p.nonce.or(Some(n)),
                PayloadBody::Ke(ke) => p.ke = p.ke.or(Some(ke)),
                PayloadBody::TsI(ts) => p.tsi = p.tsi.or(Some(ts)),
                PayloadBody::TsR(ts) => p.tsr = p.tsr.or(Some(ts)),
                PayloadBody::Notify(n) => p.notifies.push(n),
                _ => {}
            }
        }
        p
    }

    pub fn notify(&self, notify_type: NotifyType) -> Option<&'a Notify> {
        self.notifies
            .iter()
            .find(|n| n.notify_type == notify_type)
            .copied()
    }

    pub fn has(&self, notify_type: NotifyType) -> bool {
        self.notifies.iter().any(|n| n.notify_type == notify_type)
    }

    pub fn error(&self) -> Option<NotifyType> {
        self.notifies
            .iter()
            .map(|n| n.notify_type)
            .find(|t| t.is_error())
    }
}

/// The ID payload carrying `identity`.
fn id_payload(identity: &Identity) -> Id {
    Id {
        id_type: identity.id_type(),
        data: identity.id_data(),
    }
}

fn mode_of(transport_requested: bool) -> Mode {
    if transport_requested {
        Mode::Transport
    } else {
        Mode::Tunnel
    }
}

impl Endpoint {
    /// Initiator, right after IKE_SA_INIT: ask the kernel for the first CHILD_SA's inbound SPI.
    pub(crate) fn begin_ike_auth(&mut self, id: IkeSaId) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let (peer, local, remote) = (sa.peer, sa.local, sa.remote);
        let request = self.request_spi(id, peer, local, remote);
        if let Some(sa) = self.ike_sas.get_mut(&id) {
            if let State::InitDone(done) = &mut sa.state {
                done.auth = AuthProgress::AwaitingSpi(request);
            }
        }
    }

    /// Calendar time at `now`, for certificate validity; see [`Endpoint::set_wall_clock`].
    fn wall_time(&self, now: Instant) -> Option<SystemTime> {
        let (at, wall) = self.wall_clock?;
        Some(if now >= at {
            wall + (now - at)
        } else {
            wall - (at - now)
        })
    }

    /// Continues whatever waited for the SPI `request` asked for.
    pub(crate) fn on_spi_allocated(
        &mut self,
        now: Instant,
        id: IkeSaId,
        request: SpiRequestId,
        spi: u32,
    ) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let done = match &sa.state {
            State::InitDone(done) => done,
            State::Established(_) => {
                self.on_create_child_spi(now, id, request, spi);
                return;
            }
            State::InitSent(_) => return,
        };
        match &done.auth {
            AuthProgress::AwaitingSpi(r) if *r == request => {
                self.send_ike_auth_request(now, id, spi)
            }
            AuthProgress::Answering(a) if a.request == request => {
                self.send_ike_auth_response(now, id, spi)
            }
            _ => {}
        }
    }

    /// Seals `inner` in an SK payload of IKE SA `id` (our SK_e, the next IV).
    pub(crate) fn seal(
        &mut self,
        id: IkeSaId,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
        inner: &[Payload],
    ) -> Option<Vec<Vec<u8>>> {
        let provider = self.provider.clone();
        let fragmentation = self.config().fragmentation;
        let fragment_size = self.config().fragment_size.max(MIN_FRAGMENT_SIZE);
        let sa = self.ike_sas.get_mut(&id)?;
        let (keys, cipher, peer_fragments) = match &sa.state {
            State::InitDone(d) => (&d.keys, d.cipher, d.peer_supports_fragmentation),
            State::Established(e) => (&e.keys, e.cipher, e.peer_supports_fragmentation),
            State::InitSent(_) => return None,
        };
        let mut flags = Flags(0);
        if sa.role == Role::Initiator {
            flags = flags.with(Flags::INITIATOR);
        }
        if response {
            flags = flags.with(Flags::RESPONSE);
        }
        let header = Header::new(sa.spi_i, sa.spi_r, exchange, flags, message_id);
        let sk_e = protection::sender_sk_e(&header, keys.sk_ei.as_bytes(), keys.sk_er.as_bytes());
        let iv: [u8; IV_LEN] = sa.next_iv.to_be_bytes();
        sa.next_iv = sa.next_iv.wrapping_add(1);
        let whole =
            protection::protect(provider.as_ref(), &header, &[], inner, cipher, sk_e, &iv, 0);
        let whole = match whole {
            Ok(bytes) => datagram::frame(bytes, sa.nat_t),
            Err(error) => {
                debug!(ike_sa = id.0, %error, "could not seal message");
                return None;
            }
        };
        // RFC 7383 §2.5: fragment only when both sides announced support.
        if !(fragmentation && peer_fragments) || whole.len() <= fragment_size {
            return Some(vec![whole]);
        }

        let piece_len = fragment_size.saturating_sub(FRAGMENT_OVERHEAD);
        let mut counter = sa.next_iv;
        let mut next_iv = || {
            let iv = counter.to_be_bytes();
            counter = counter.wrapping_add(1);
            iv
        };
        let fragments = protection::protect_fragments(
            provider.as_ref(),
            &header,
            &[],
            inner,
            cipher,
            sk_e,
            piece_len,
            &mut next_iv,
        );
        sa.next_iv = counter;
        match fragments {
            Ok(fragments) => {
                let nat_t = sa.nat_t;
                debug!(
                    ike_sa = id.0,
                    count = fragments.len(),
                    "message sent in fragments"
                );
                Some(
                    fragments
                        .into_iter()
                        .map(|f| datagram::frame(f, nat_t))
                        .collect(),
                )
            }
            Err(error) => {
                debug!(ike_sa = id.0, %error, "could not fragment message");
                Some(vec![whole])
            }
        }
    }

    /// Like [`Self::seal`] but cut into SKF fragments of `piece_len` plaintext octets (RFC 7383),
    /// as a peer would send them.
    #[cfg(test)]
    pub(crate) fn seal_fragments(
        &mut self,
        id: IkeSaId,
        exchange: ExchangeType,
        message_id: u32,
        inner: &[Payload],
        piece_len: usize,
    ) -> Vec<Vec<u8>> {
        let provider = self.provider.clone();
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return Vec::new();
        };
        let State::Established(e) = &sa.state else {
            return Vec::new();
        };
        let flags = if sa.role == Role::Initiator {
            Flags::INITIATOR
        } else {
            Flags(0)
        };
        let header = Header::new(sa.spi_i, sa.spi_r, exchange, flags, message_id);
        let sk_e =
            protection::sender_sk_e(&header, e.keys.sk_ei.as_bytes(), e.keys.sk_er.as_bytes());
        let mut counter = sa.next_iv;
        let mut next_iv = || {
            counter += 1;
            counter.to_be_bytes()
        };
        let fragments = protection::protect_fragments(
            provider.as_ref(),
            &header,
            &[],
            inner,
            e.cipher,
            sk_e,
            piece_len,
            &mut next_iv,
        )
        .unwrap_or_default();
        sa.next_iv = counter + 1;
        fragments
    }

    /// Fragments (RFC 7383) are authenticated one by one and held until the message is
    /// complete; only then are its payloads returned.
    pub(crate) fn unseal(
        &mut self,
        id: IkeSaId,
        header: &Header,
        message: &[u8],
    ) -> Option<Vec<Payload>> {
        let sa = self.ike_sas.get_mut(&id)?;
        let (keys, cipher) = match &sa.state {
            State::InitDone(d) => (&d.keys, d.cipher),
            State::Established(e) => (&e.keys, e.cipher),
            State::InitSent(_) => return None,
        };
        let sk_e = protection::sender_sk_e(header, keys.sk_ei.as_bytes(), keys.sk_er.as_bytes());
        match protection::open(self.provider.as_ref(), message, cipher, sk_e) {
            Ok(Opened::Message(m)) => Some(m.payloads),
            Ok(Opened::Fragment(fragment)) => {
                let key = protection::FragmentedMessageKey::of(header);
                match sa.reassembler.add(key, fragment) {
                    Ok(protection::FragmentProgress::Complete(m)) => Some(m.payloads),
                    Ok(_) => None,
                    Err(error) => {
                        debug!(ike_sa = id.0, %error, "fragment refused");
                        None
                    }
                }
            }
            Err(error) => {
                debug!(ike_sa = id.0, %error, "message does not open");
                None
            }
        }
    }

    /// Our AUTH payload: a signature over our signed octets (RFC 7296 §2.15).
    fn our_auth(&self, id: IkeSaId, config: &PeerConfig) -> Option<Auth> {
        let sa = self.ike_sas.get(&id)?;
        let State::InitDone(done) = &sa.state else {
            return None;
        };
        let (real_message, peer_nonce, sk_p) = match sa.role {
            Role::Initiator => (&done.init_request, &done.nr, &done.keys.sk_pi),
            Role::Responder => (&done.init_response, &done.ni, &done.keys.sk_pr),
        };
        let rest = config.local_id.rest_of_id_payload();
        let maced_id = self.provider.prf(done.prf, sk_p.as_bytes(), &[&rest]);
        let octets = signed_octets(real_message, peer_nonce, maced_id.as_bytes());
        let key = &config.credentials.key;
        let scheme = choose_auth_scheme(
            key.key_type(),
            done.peer_hash_algorithms.as_deref(),
            RsaPadding::Pkcs1v15,
        )
        .ok()?;
        // Limitation: RSA blinding draws from the OS through ring, not from our `Random`.
        let data = key
            .sign_auth(scheme, &octets, &ring::rand::SystemRandom::new())
            .ok()?;
        Some(Auth {
            method: data.method,
            data: data.data,
        })
    }

    /// Checks the peer's ID, certificates and AUTH against `config` (RFC 7296 §2.15).
    fn verify_peer(
        &self,
        now: Instant,
        id: IkeSaId,
        config: &PeerConfig,
        p: &AuthPayloads<'_>,
    ) -> Result<(), AuthFailure> {
        let not_authenticated = |why: String| AuthFailure::PeerNotAuthenticated(why);
        let sa = self
            .ike_sas
            .get(&id)
            .ok_or_else(|| not_authenticated("gone".into()))?;
        let State::InitDone(done) = &sa.state else {
            return Err(not_authenticated("not in IKE_AUTH".into()));
        };
        let (Some(id_payload), Some(auth)) = (p.id, p.auth) else {
            return Err(not_authenticated("no ID or AUTH payload".into()));
        };
        let presented = Identity::from_id_payload(id_payload.id_type, &id_payload.data)
            .map_err(|e| not_authenticated(e.to_string()))?;
        if presented != config.remote_id {
            return Err(AuthFailure::WrongIdentity(presented.to_string()));
        }
        let mut certs = Vec::new();
        for c in &p.certs {
            certs.push(
                Certificate::from_cert_payload(c.encoding, &c.data)
                    .map_err(|e| not_authenticated(e.to_string()))?,
            );
        }
        let Some((end_entity, intermediates)) = certs.split_first() else {
            // Limitation: certificates are not looked up locally; the peer must send its own.
            return Err(not_authenticated("no CERT payload".into()));
        };

        // What the peer signed: its IKE_SA_INIT message, our nonce, its MACed ID.
        let (real_message, our_nonce, sk_p) = match sa.role {
            Role::Initiator => (&done.init_response, &done.ni, &done.keys.sk_pr),
            Role::Responder => (&done.init_request, &done.nr, &done.keys.sk_pi),
        };
        let rest = presented.rest_of_id_payload();
        let maced_id = self.provider.prf(done.prf, sk_p.as_bytes(), &[&rest]);
        let octets = signed_octets(real_message, our_nonce, maced_id.as_bytes());

        let wall = self.wall_time(now).ok_or_else(|| {
            not_authenticated("no wall clock set for certificate validity".into())
        })?;
        let result = match &config.remote_id {
            Identity::Fqdn(chassis) => PeerCredentials {
                id: &presented,
                end_entity,
                intermediates,
                auth_method: auth.method,
                auth_data: &auth.data,
                signed_octets: &octets,
            }
            .prove_chassis(&config.trusted_cas, chassis, wall)
            .map(|_| ()),
            _ => certificate_proves(end_entity, &presented)
                .and_then(|()| {
                    config
                        .trusted_cas
                        .verify_chain(end_entity, intermediates, wall)
                        .map(|_| ())
                })
                .and_then(|()| {
                    verify_auth(end_entity, auth.method, &auth.data, &octets).map(|_| ())
                }),
        };
        result.map_err(|e| not_authenticated(e.to_string()))
    }

    /// Initiator: the inbound SPI is there; send IKE_AUTH with the first CHILD_SA.
    fn send_ike_auth_request(&mut self, now: Instant, id: IkeSaId, spi_in: u32) {
        let Some(sa) = self.ike_sas.get(&id) else {
            return;
        };
        let Some(config) = self.peers.get(&sa.peer).cloned() else {
            return;
        };
        let Some(child) = config.children.first() else {
            return;
        };
        let Some(auth) = self.our_auth(id, &config) else {
            warn!(ike_sa = id.0, peer = %config.name, "cannot sign our AUTH payload");
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        };

        let proposals: Vec<codec::Proposal> = child
            .esp_proposals
            .iter()
            .map(supported_esp)
            // RFC 7296 §1.2: the first CHILD_SA's keys come from the IKE SA, so its proposals
            // carry no KE transform (Libreswan 4.10 answers NO_PROPOSAL_CHOSEN to one that does).
            .map(|t| without_ke(&t))
            .filter(|t| !t.is_empty())
            .zip(1u8..)
            .map(|(t, n)| to_wire_proposal(n, ProtocolId::ESP, spi_in.to_be_bytes().to_vec(), &t))
            .collect();
        let offered: Vec<OfferedProposal> = proposals.iter().map(OfferedProposal::from).collect();
        let mut inner = vec![Payload::new(PayloadBody::IdI(id_payload(&config.local_id)))];
        inner.extend(config.credentials.chain.iter().map(|c| {
            let (encoding, der) = c.cert_payload();
            Payload::new(Cert {
                encoding,
                data: der.to_vec(),
            })
        }));
        inner.push(Payload::new(CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: config.trusted_cas.certreq_data(),
        }));
        inner.push(Payload::new(auth));
        // RFC 7296 §2.4: only when we hold no other IKE SA with this peer (a reauthentication
        // keeps the old one until the new one is up, §2.8.3).
        #[cfg(test)]
        let initial_contact = !self.omit_initial_contact;
        #[cfg(not(test))]
        let initial_contact = true;
        if initial_contact && !self.has_other_ike_sa(id) {
            inner.push(Payload::new(Notify::status(NotifyType::INITIAL_CONTACT)));
        }
        if child.mode == Mode::Transport {
            inner.push(Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)));
        }
        inner.push(Payload::new(Sa { proposals }));
        inner.push(Payload::new(PayloadBody::TsI(
            traffic_selector::to_payload(&child.local_ts),
        )));
        inner.push(Payload::new(PayloadBody::TsR(
            traffic_selector::to_payload(&child.remote_ts),
        )));

        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let Ok(mid) = sa.requests.allocate() else {
            return;
        };
        let Some(datagrams) = self.seal(id, ExchangeType::IKE_AUTH, mid, false, &inner) else {
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        };
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        sa.requests.sent(mid, datagrams.clone(), now);
        sa.sync_retransmit_timer();
        // From here the retransmission schedule bounds the attempt.
        sa.timers.stop(Timer::HalfOpen);
        if let State::InitDone(done) = &mut sa.state {
            done.auth = AuthProgress::Sent(Box::new(ChildRequest {
                child: 0,
                spi_in,
                offered,
                tsi: child.local_ts.clone(),
                tsr: child.remote_ts.clone(),
            }));
        }
        let (local, remote) = (sa.local, sa.remote);
        debug!(ike_sa = id.0, mid, "IKE_AUTH request sent");
        self.queue_datagrams(local, remote, datagrams);
    }

    /// Responder: an IKE_AUTH request in `InitDone` (RFC 7296 §1.2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_ike_auth_request(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
        nat_t: bool,
        header: &Header,
        message: &[u8],
    ) {
        let mid = header.message_id;
        let Some(inner) = self.unseal(id, header, message) else {
            // Not from the peer (or damaged): forget we saw it; a good retransmission will do.
            if let Some(sa) = self.ike_sas.get_mut(&id) {
                sa.responses.abandoned(mid);
            }
            return;
        };
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        // RFC 7296 §2.23: answer where the authenticated request came from (NAT-T floating).
        sa.local = local;
        sa.remote = remote;
        sa.nat_t = nat_t;
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };
        let p = AuthPayloads::of(&inner, true);

        if let Err(reason) = self.verify_peer(now, id, &config, &p) {
            warn!(ike_sa = id.0, peer = %config.name, ?reason, "peer failed authentication");
            let notify = [Payload::new(Notify::status(
                NotifyType::AUTHENTICATION_FAILED,
            ))];
            if let Some(d) = self.seal(id, ExchangeType::IKE_AUTH, mid, true, &notify) {
                self.queue_datagrams(local, remote, d);
            }
            self.push_event(Event::AuthFailed { peer, reason });
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        }

        if p.has(NotifyType::INITIAL_CONTACT) {
            // RFC 7296 §2.4: the peer holds no other IKE SA with us (it restarted), so every
            // older one with this identity is stale.
            self.forget_older_ike_sas(id, peer);
        }

        // With KE transforms ignored, INVALID_KE cannot come out of the selection.
        let child =
            self.choose_child(&config, &p, KeRule::Ignore)
                .map_err(|refusal| match refusal {
                    ChildRefusal::Notify(n) => n,
                    ChildRefusal::InvalidKe(_) => NotifyType::NO_PROPOSAL_CHOSEN,
                });
        let request = self.request_spi(id, peer, local, remote);
        if let Some(IkeSa {
            state: State::InitDone(done),
            ..
        }) = self.ike_sas.get_mut(&id)
        {
            done.auth = AuthProgress::Answering(Box::new(PendingAnswer {
                request,
                message_id: mid,
                child,
            }));
        }
    }

    /// Removes every IKE SA of `peer` other than `keep`, without telling the peer (it has
    /// forgotten them already).
    fn forget_older_ike_sas(&mut self, keep: IkeSaId, peer: super::event::PeerId) {
        let stale: Vec<IkeSaId> = self
            .ike_sas
            .values()
            .filter(|sa| sa.peer == peer && sa.id != keep)
            .filter(|_sa| {
                // charon (played by tests) acts on INITIAL_CONTACT for established IKE SAs
                // only and keeps its own half-open attempt.
                #[cfg(test)]
                if self.keep_crossed_attempt && _sa.is_half_open() {
                    return false;
                }
                true
            })
            .map(|sa| sa.id)
            .collect();
        for old in stale {
            info!(
                ike_sa = old.0,
                "peer restarted (INITIAL_CONTACT): dropping the old IKE SA"
            );
            self.remove_ike_sa(old, DownReason::DeletedByPeer);
        }
    }

    /// Responder: picks the configured CHILD_SA whose proposals and selectors fit the request;
    /// `ke` says how a KE payload takes part (ignored in IKE_AUTH).
    pub(crate) fn choose_child(
        &self,
        config: &PeerConfig,
        p: &AuthPayloads<'_>,
        ke: KeRule,
    ) -> Result<ChildAnswer, ChildRefusal> {
        let (Some(sa), Some(tsi), Some(tsr)) = (p.sa, p.tsi, p.tsr) else {
            return Err(ChildRefusal::Notify(NotifyType::NO_PROPOSAL_CHOSEN));
        };
        let tsi = traffic_selector::from_payload(tsi);
        let tsr = traffic_selector::from_payload(tsr);
        let transport = p.has(NotifyType::USE_TRANSPORT_MODE);
        let mut error = NotifyType::NO_PROPOSAL_CHOSEN;
        let mut narrowed_match = None;
        let mut packet_match = None;
        for (index, child) in config.children.iter().enumerate() {
            // RFC 7296 §1.3.1: transport mode only when both want it.
            if (child.mode == Mode::Transport) != transport {
                continue;
            }
            let ours: Vec<Vec<TransformSpec>> =
                child.esp_proposals.iter().map(supported_esp).collect();
            let selected = match select_from_sa(sa, &ours, ProtocolId::ESP, CHILD_SPI_SIZE, ke) {
                Ok(s) => s,
                Err(SelectError::NoProposalChosen) => continue,
                Err(SelectError::InvalidKe { preferred }) => {
                    // RFC 7296 §1.3: the notify carries the group we want.
                    return Err(ChildRefusal::InvalidKe(preferred));
                }
            };
            match narrow(&tsi, &tsr, &child.remote_ts, &child.local_ts) {
                // A configuration that takes the proposal as it is wins: with an "in" and an
                // "out" child per tunnel, the other one would narrow it to nonsense. As sets:
                // charon, initiating on a packet its trap policy caught, sends that packet's
                // selectors first and the configured ones after, the same one twice for a
                // host-to-host port (TSr 10.0.0.1[udp/6081] twice).
                Ok(narrowed)
                    if same_selectors(&narrowed.initiator, &tsi)
                        && same_selectors(&narrowed.responder, &tsr) =>
                {
                    return Ok(ChildAnswer {
                        child: index,
                        selected,
                        narrowed,
                    })
                }
                // RFC 7296 §2.9: the first selectors may describe the packet that caused the
                // request; a configuration that keeps that packet is the one meant.
                Ok(narrowed)
                    if keeps_first(&tsi, &narrowed.initiator)
                        && keeps_first(&tsr, &narrowed.responder) =>
                {
                    packet_match.get_or_insert(ChildAnswer {
                        child: index,
                        selected,
                        narrowed,
                    });
                }
                Ok(narrowed) => {
                    narrowed_match.get_or_insert(ChildAnswer {
                        child: index,
                        selected,
                        narrowed,
                    });
                }
                Err(_) => error = NotifyType::TS_UNACCEPTABLE,
            }
        }
        packet_match
            .or(narrowed_match)
            .ok_or(ChildRefusal::Notify(error))
    }

    /// Responder: the inbound SPI is there; answer IKE_AUTH and bring the IKE SA up.
    fn send_ike_auth_response(&mut self, now: Instant, id: IkeSaId, spi_in: u32) {
        let Some(sa) = self.ike_sas.get_mut(&id) else {
            return;
        };
        let State::InitDone(done) = &mut sa.state else {
            return;
        };
        let AuthProgress::Answering(pending) =
            std::mem::replace(&mut done.auth, AuthProgress::AwaitingRequest)
        else {
            return;
        };
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };
        let Some(auth) = self.our_auth(id, &config) else {
            warn!(ike_sa = id.0, peer = %config.name, "cannot sign our AUTH payload");
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        };

        let mut inner = vec![Payload::new(PayloadBody::IdR(id_payload(&config.local_id)))];
        inner.extend(config.credentials.chain.iter().map(|c| {
            let (encoding, der) = c.cert_payload();
            Payload::new(Cert {
                encoding,
                data: der.to_vec(),
            })
        }));
        inner.push(Payload::new(auth));
        match &pending.child {
            Ok(answer) => {
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
                inner.push(Payload::new(PayloadBody::TsI(
                    traffic_selector::to_payload(&answer.narrowed.initiator),
                )));
                inner.push(Payload::new(PayloadBody::TsR(
                    traffic_selector::to_payload(&answer.narrowed.responder),
                )));
            }
            // RFC 7296 §1.2: the IKE SA is set up even when its first CHILD_SA is not.
            Err(notify) => inner.push(Payload::new(Notify::status(*notify))),
        }

        let mid = pending.message_id;
        let Some(datagrams) = self.seal(id, ExchangeType::IKE_AUTH, mid, true, &inner) else {
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        };
        if !self.send_response(id, mid, datagrams) {
            return;
        }

        let child = pending.child.ok().map(|answer| NewChild {
            index: answer.child,
            spi_in,
            spi_out: spi_of(&answer.selected),
            selected: answer.selected,
            local_ts: answer.narrowed.responder,
            remote_ts: answer.narrowed.initiator,
        });
        self.establish(now, id, &config, child);
    }

    /// Initiator: the IKE_AUTH response.
    pub(crate) fn handle_ike_auth_response(
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
        let peer = sa.peer;
        let Some(config) = self.peers.get(&peer).cloned() else {
            return;
        };
        let p = AuthPayloads::of(&inner, false);

        if p.has(NotifyType::AUTHENTICATION_FAILED) {
            warn!(ike_sa = id.0, peer = %config.name, "peer rejected our authentication");
            self.push_event(Event::AuthFailed {
                peer,
                reason: AuthFailure::RejectedByPeer,
            });
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        }
        if let Err(reason) = self.verify_peer(now, id, &config, &p) {
            // Limitation: no INFORMATIONAL Delete is sent for the rejected IKE SA.
            warn!(ike_sa = id.0, peer = %config.name, ?reason, "peer failed authentication");
            self.push_event(Event::AuthFailed { peer, reason });
            self.remove_ike_sa(id, DownReason::AuthFailed);
            return;
        }

        let Some(IkeSa {
            state: State::InitDone(done),
            ..
        }) = self.ike_sas.get(&id)
        else {
            return;
        };
        let AuthProgress::Sent(request) = &done.auth else {
            return;
        };
        let child = match accept_child(request, &p, &config) {
            Ok(c) => Some(c),
            Err(reason) => {
                // RFC 7296 §1.2: the IKE SA stands without the CHILD_SA.
                debug!(ike_sa = id.0, ?reason, "first CHILD_SA not created");
                None
            }
        };
        let spi_in = request.spi_in;
        let child = child.map(|(index, selected, tsi, tsr)| NewChild {
            index,
            spi_in,
            spi_out: spi_of(&selected),
            selected,
            local_ts: tsi,
            remote_ts: tsr,
        });
        self.establish(now, id, &config, child);
    }

    /// IKE_AUTH succeeded: move to `Established`, report the IKE SA and its first CHILD_SA.
    fn establish(
        &mut self,
        now: Instant,
        id: IkeSaId,
        config: &PeerConfig,
        child: Option<NewChild>,
    ) {
        let provider = self.provider.clone();
        let Some(mut sa) = self.ike_sas.remove(&id) else {
            return;
        };
        let done = match sa.state {
            State::InitDone(done) => done,
            other => {
                sa.state = other;
                self.ike_sas.insert(id, sa);
                return;
            }
        };
        let InitDone {
            keys,
            algorithms,
            prf,
            cipher,
            ni,
            nr,
            nat,
            peer_supports_fragmentation,
            ..
        } = *done;

        let child_keys = child.as_ref().and_then(|c| {
            derive_child_keys(
                provider.as_ref(),
                prf,
                &keys.sk_d,
                None,
                &ni,
                &nr,
                &c.selected,
            )
        });
        sa.state = State::Established(Box::new(Established {
            keys,
            algorithms,
            prf,
            cipher,
            nat,
            children: Vec::new(),
            peer_supports_fragmentation,
            deleting: false,
            creating: None,
            replaced: Vec::new(),
            next_child: 1,
            ni,
            nr,
            rekey: Default::default(),
        }));
        let mut install = None;
        if let (Some(child), Some(child_keys)) = (child, child_keys) {
            let we_initiated = sa.role == Role::Initiator;
            let deadlines = config
                .children
                .get(child.index)
                .map(|c| c.lifetime.deadlines(now, self.random_u64()));
            if let Some((record, event)) = deadlines.and_then(|d| {
                child_install(&sa, id, config, child, child_keys, we_initiated, None, d)
            }) {
                if let State::Established(e) = &mut sa.state {
                    e.children.push(record);
                }
                install = Some(event);
            }
        }
        sa.timers.stop(Timer::HalfOpen);
        sa.sync_child_timer();
        self.arm_ike_lifetime(now, &mut sa, config);
        if let Some(interval) = config.dpd_interval {
            sa.timers.set(Timer::Dpd, now + interval);
        }
        let event = Event::IkeSaUp {
            peer: sa.peer,
            ike_sa: id,
            local: sa.local,
            remote: sa.remote,
            algorithms,
        };
        info!(ike_sa = id.0, peer = %config.name, child = install.is_some(), "IKE SA established");
        let initiator = sa.role == Role::Initiator;
        let config_peer = sa.peer;
        self.ike_sas.insert(id, sa);
        self.push_event(event);
        if let Some(install) = install {
            self.push_event(install);
        }
        self.replace_older_ike_sas(now, id, config_peer);
        if initiator {
            self.next_child(now, id);
        }
    }
}

use super::ike_sa::IkeSa;

/// Why the responder creates no CHILD_SA for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildRefusal {
    /// Answer with this error notify.
    Notify(NotifyType),
    /// Answer INVALID_KE_PAYLOAD naming this group (RFC 7296 §1.3).
    InvalidKe(crate::registry::KeGroup),
}

/// A CHILD_SA both sides agreed on, from our point of view.
pub(crate) struct NewChild {
    /// Index of its configuration in the peer's `children`.
    pub index: usize,
    /// The chosen ESP proposal.
    pub selected: Selected,
    /// Our end of the traffic.
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's end of the traffic.
    pub remote_ts: Vec<TrafficSelector>,
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI.
    pub spi_out: u32,
}

/// Whether two lists of traffic selectors hold the same selectors, whatever their order and
/// repetitions.
fn same_selectors(a: &[TrafficSelector], b: &[TrafficSelector]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Whether narrowing kept the first proposed selector (the triggering packet's, if the
/// initiator sent one) whole.
fn keeps_first(proposed: &[TrafficSelector], narrowed: &[TrafficSelector]) -> bool {
    proposed
        .first()
        .is_none_or(|first| narrowed.contains(first))
}

/// RFC 7296 §2.17: KEYMAT for a CHILD_SA with the chosen ESP cipher.
pub(crate) fn derive_child_keys(
    provider: &dyn crate::crypto::CryptoProvider,
    prf: crate::crypto::PrfAlgorithm,
    sk_d: &crate::crypto::SecretBytes,
    g_ir: Option<&crate::crypto::SharedSecret>,
    ni: &[u8],
    nr: &[u8],
    selected: &Selected,
) -> Option<ChildSaKeys> {
    let (encryption, key_bits) = selected.encryption();
    let cipher = AeadCipher::from_transform(encryption, key_bits).ok()?;
    ChildSaKeys::derive(
        provider,
        prf,
        sk_d,
        g_ir,
        ni,
        nr,
        ChildSaKeyLengths::aead(cipher),
    )
    .ok()
}

/// The record and the [`Event::ChildSaInstall`] of a new CHILD_SA of `sa`. `we_initiated`
/// says whether we initiated the exchange that made it: KEYMAT's first half protects the
/// exchange initiator's outbound traffic (RFC 7296 §2.17).
#[allow(clippy::too_many_arguments)]
pub(crate) fn child_install(
    sa: &IkeSa,
    id: IkeSaId,
    config: &PeerConfig,
    child: NewChild,
    keys: ChildSaKeys,
    we_initiated: bool,
    pfs: Option<crate::registry::KeGroup>,
    deadlines: super::timers::LifetimeDeadlines,
) -> Option<(ChildSa, Event)> {
    let child_config = config.children.get(child.index)?;
    let (encryption, key_bits) = child.selected.encryption();
    // RFC 7296 §2.23: ESP goes in UDP behind a NAT or when forced, not merely because IKE
    // moved to port 4500 (charon moves there without a NAT whenever MOBIKE may be used).
    let nat = match &sa.state {
        State::InitDone(done) => Some(done.nat),
        State::Established(established) => Some(established.nat),
        State::InitSent(_) => None,
    };
    let encapsulate = sa.nat_t && (config.force_udp_encap || nat.is_some_and(|n| n.nat_detected()));
    let keys = if we_initiated {
        EspKeys {
            encr_in: keys.encr_r,
            integ_in: keys.integ_r,
            encr_out: keys.encr_i,
            integ_out: keys.integ_i,
        }
    } else {
        EspKeys {
            encr_in: keys.encr_i,
            integ_in: keys.integ_i,
            encr_out: keys.encr_r,
            integ_out: keys.integ_r,
        }
    };
    let record = ChildSa {
        name: child_config.name.clone(),
        index: child.index,
        spi_in: child.spi_in,
        spi_out: child.spi_out,
        local_ts: child.local_ts.clone(),
        remote_ts: child.remote_ts.clone(),
        rekey_at: deadlines.rekey,
        expire_at: deadlines.expire,
        rekeying: false,
        peer_rekey: None,
        pending_outbound: None,
    };
    let event = Event::ChildSaInstall {
        peer: sa.peer,
        ike_sa: id,
        name: child_config.name.clone(),
        spi_in: child.spi_in,
        spi_out: child.spi_out,
        keys: Box::new(keys),
        algorithms: EspAlgorithms {
            encryption,
            key_bits,
            integrity: child.selected.integrity(),
            esn: child
                .selected
                .get(TransformType::ESN)
                .map_or(crate::registry::EsnId::NO_ESN, |t| {
                    crate::registry::EsnId(t.id)
                }),
            pfs,
        },
        selectors: Selectors {
            local: child.local_ts,
            remote: child.remote_ts,
        },
        mode: child_config.mode,
        udp_encap: encapsulate.then_some(UdpEncap {
            local_port: sa.local.port(),
            remote_port: sa.remote.port(),
        }),
        soft_lifetime: child_config.lifetime.soft,
        hard_lifetime: child_config.lifetime.hard,
        outbound: super::event::Outbound::Now,
    };
    Some((record, event))
}

/// The peer's SPI from a chosen ESP proposal.
pub(crate) fn spi_of(selected: &Selected) -> u32 {
    <[u8; 4]>::try_from(selected.spi.as_slice()).map_or(0, u32::from_be_bytes)
}

/// Initiator: checks the responder's answer for the CHILD_SA against what we proposed;
/// returns (config index, chosen proposal, TSi as local, TSr as remote).
pub(crate) fn accept_child(
    request: &ChildRequest,
    p: &AuthPayloads<'_>,
    config: &PeerConfig,
) -> Result<(usize, Selected, Vec<TrafficSelector>, Vec<TrafficSelector>), NotifyType> {
    if let Some(error) = p.error() {
        return Err(error);
    }
    let (Some(sa), Some(tsi), Some(tsr)) = (p.sa, p.tsi, p.tsr) else {
        return Err(NotifyType::NO_PROPOSAL_CHOSEN);
    };
    let [proposal] = sa.proposals.as_slice() else {
        return Err(NotifyType::NO_PROPOSAL_CHOSEN);
    };
    let offered = OfferedProposal::from(proposal);
    let selected = Selected {
        number: offered.number,
        protocol: offered.protocol,
        spi: offered.spi,
        transforms: offered.transforms.iter().map(|t| t.spec).collect(),
    };
    if selected.protocol != ProtocolId::ESP
        || selected.spi.len() != CHILD_SPI_SIZE
        || !selected.is_valid_answer(&request.offered)
    {
        return Err(NotifyType::NO_PROPOSAL_CHOSEN);
    }
    let tsi = traffic_selector::from_payload(tsi);
    let tsr = traffic_selector::from_payload(tsr);
    if !is_narrowing_of(&tsi, &request.tsi) || !is_narrowing_of(&tsr, &request.tsr) {
        return Err(NotifyType::TS_UNACCEPTABLE);
    }
    let wanted_transport = config
        .children
        .get(request.child)
        .is_some_and(|c| c.mode == Mode::Transport);
    if mode_of(p.has(NotifyType::USE_TRANSPORT_MODE)) != mode_of(wanted_transport) {
        return Err(NotifyType::NO_PROPOSAL_CHOSEN);
    }
    Ok((request.child, selected, tsi, tsr))
}
