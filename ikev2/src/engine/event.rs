//! What an [`Endpoint`](super::Endpoint) tells its caller, drained with
//! [`Endpoint::poll_event`](super::Endpoint::poll_event).

use std::net::SocketAddr;
use std::time::Duration;

use super::config::Mode;
use super::traffic_selector::TrafficSelector;
use crate::crypto::SecretBytes;
use crate::registry::{EncrId, EsnId, IntegId, KeGroup, PrfId, ProtocolId};

/// A peer configuration inside an endpoint, returned by
/// [`Endpoint::add_peer`](super::Endpoint::add_peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u64);

/// One IKE SA inside an endpoint; a rekeyed IKE SA gets a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub(crate) u64);

/// An outstanding [`Event::AllocateSpi`] request, answered with
/// [`Endpoint::spi_allocated`](super::Endpoint::spi_allocated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiRequestId(pub(crate) u64);

/// The algorithms the IKE SA negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeAlgorithms {
    /// Cipher of the SK payload.
    pub encryption: EncrId,
    /// Its key length in bits, when it has a Key Length attribute.
    pub key_bits: Option<u16>,
    /// PRF.
    pub prf: PrfId,
    /// Integrity algorithm (NONE with AEAD).
    pub integrity: IntegId,
    /// Key exchange group.
    pub ke: KeGroup,
}

/// The algorithms of a CHILD_SA, as the kernel needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspAlgorithms {
    /// ESP cipher.
    pub encryption: EncrId,
    /// Its key length in bits, when it has a Key Length attribute.
    pub key_bits: Option<u16>,
    /// Integrity algorithm (NONE with AEAD).
    pub integrity: IntegId,
    /// Extended Sequence Numbers.
    pub esn: EsnId,
    /// The PFS group used to make this CHILD_SA, if any.
    pub pfs: Option<KeGroup>,
}

/// The ESP keys of one CHILD_SA, by direction. Zeroized on drop, redacted in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspKeys {
    /// Cipher key (and salt, for AEAD) of the inbound SA.
    pub encr_in: SecretBytes,
    /// Integrity key of the inbound SA (empty with AEAD).
    pub integ_in: SecretBytes,
    /// Cipher key (and salt, for AEAD) of the outbound SA.
    pub encr_out: SecretBytes,
    /// Integrity key of the outbound SA (empty with AEAD).
    pub integ_out: SecretBytes,
}

/// The UDP ports of ESP-in-UDP encapsulation (RFC 3948), when a CHILD_SA uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    /// Our port (normally 4500).
    pub local_port: u16,
    /// The peer's port (4500, or whatever a NAT mapped it to).
    pub remote_port: u16,
}

/// The selectors a CHILD_SA was negotiated with, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selectors {
    /// Our end of the traffic.
    pub local: Vec<TrafficSelector>,
    /// The peer's end of the traffic.
    pub remote: Vec<TrafficSelector>,
}

/// When the outbound SA of a new CHILD_SA ([`Event::ChildSaInstall`]) may carry traffic.
///
/// RFC 7296 §2.8: the initiator of a rekey installs the new pair once it has the response, so
/// the responder, which sends that response, must not send on the new outbound SA before the
/// initiator can decrypt it. The kernel sends on the newest outbound state, so installing the
/// outbound state is switching to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Install the outbound SA together with the inbound one.
    Now,
    /// Install only the inbound SA now; the outbound one follows with
    /// [`Event::ChildSaOutboundReady`] (or never, if a [`Event::ChildSaDelete`] comes first).
    /// Until then the old CHILD_SA's outbound SA carries the traffic.
    Pending,
}

/// Why an IKE SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// A request went unanswered through the whole retransmission schedule (RFC 7296 §2.4).
    PeerUnreachable,
    /// The peer deleted it with an INFORMATIONAL Delete.
    DeletedByPeer,
    /// We were told to ([`Endpoint::terminate`](super::Endpoint::terminate), or the peer
    /// configuration was removed).
    Terminated,
    /// Its hard lifetime passed.
    Expired,
    /// It did not complete in time (RFC 7296 §2.6).
    HalfOpenTimeout,
    /// The peer refused every proposal (NO_PROPOSAL_CHOSEN).
    NoProposalChosen,
    /// The peer kept asking for key exchange groups we would not or could not use.
    KeyExchangeFailed,
    /// Authentication failed (see the [`Event::AuthFailed`] before it).
    AuthFailed,
    /// The peer answered with an error notify of this type.
    PeerError(crate::registry::NotifyType),
    /// A rekey or a reauthentication replaced it with a new IKE SA (whose CHILD_SAs are
    /// installed already).
    Rekeyed,
    /// Both chassis initiated at once and the peer's attempt was kept instead of this one.
    Superseded,
    /// A newer IKE SA with the same peer was authenticated and replaced it.
    Replaced,
}

/// Why authentication failed; the detail is in the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The peer's AUTH payload did not verify, or its certificate chain did not.
    PeerNotAuthenticated(String),
    /// The peer proved an identity other than the one configured.
    WrongIdentity(String),
    /// The peer rejected our authentication (AUTHENTICATION_FAILED).
    RejectedByPeer,
}

/// Something the caller must act on or may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An IKE SA is established (IKE_AUTH completed, or an IKE SA rekey finished).
    IkeSaUp {
        /// The peer configuration.
        peer: PeerId,
        /// The IKE SA.
        ike_sa: IkeSaId,
        /// Our address as the IKE SA uses it now.
        local: SocketAddr,
        /// The peer's address as the IKE SA uses it now.
        remote: SocketAddr,
        /// The negotiated algorithms.
        algorithms: IkeAlgorithms,
    },
    /// An IKE SA was rekeyed (RFC 7296 §2.18): `new_ike_sa` replaces `old_ike_sa` and took
    /// over its CHILD_SAs, which stay installed. The old one is reported down later with
    /// [`DownReason::Rekeyed`].
    IkeSaRekeyed {
        /// The peer configuration.
        peer: PeerId,
        /// The IKE SA replaced.
        old_ike_sa: IkeSaId,
        /// The IKE SA replacing it.
        new_ike_sa: IkeSaId,
        /// The algorithms the new IKE SA negotiated.
        algorithms: IkeAlgorithms,
    },
    /// An IKE SA is gone, with every CHILD_SA it had (each also reported by
    /// [`Event::ChildSaDelete`]).
    IkeSaDown {
        /// The peer configuration.
        peer: PeerId,
        /// The IKE SA.
        ike_sa: IkeSaId,
        /// Why.
        reason: DownReason,
    },
    /// Install a new CHILD_SA in the kernel: the inbound SA at once, the outbound SA at once or
    /// later, as `outbound` says.
    ChildSaInstall {
        /// The peer configuration.
        peer: PeerId,
        /// The IKE SA it belongs to.
        ike_sa: IkeSaId,
        /// The name of its [`ChildConfig`](super::ChildConfig).
        name: String,
        /// SPI of the inbound SA (allocated by the kernel through [`Event::AllocateSpi`]).
        spi_in: u32,
        /// SPI of the outbound SA (chosen by the peer).
        spi_out: u32,
        /// The ESP keys.
        keys: Box<EspKeys>,
        /// The algorithms.
        algorithms: EspAlgorithms,
        /// Negotiated (narrowed) selectors.
        selectors: Selectors,
        /// Transport or tunnel.
        mode: Mode,
        /// ESP-in-UDP ports, when NAT was detected or encapsulation forced.
        udp_encap: Option<UdpEncap>,
        /// Soft (rekey) lifetime the kernel should report with a soft expire.
        soft_lifetime: Duration,
        /// Hard lifetime after which the kernel deletes the SA.
        hard_lifetime: Duration,
        /// Whether the outbound SA is installed now or waits for
        /// [`Event::ChildSaOutboundReady`]: `Pending` only as the responder of a rekey, and for
        /// the CHILD_SA of our own rekey that a simultaneous rekey of the peer made redundant
        /// (RFC 7296 §2.8.1; deleted at once, never ready).
        outbound: Outbound,
    },
    /// The outbound SA of a CHILD_SA reported with [`Outbound::Pending`] may carry traffic now:
    /// install it (it takes over from the old CHILD_SA's, which may be removed after it). Sent
    /// once the rekey's initiator has switched (its Delete of the old CHILD_SA, or a later
    /// request beyond our window, arrived), when the old CHILD_SA went for another reason
    /// (hard expiry, CHILD_SA_NOT_FOUND), or after
    /// [`OUTBOUND_SWITCH_TIMEOUT`](super::OUTBOUND_SWITCH_TIMEOUT) at the latest. At most once
    /// per CHILD_SA, and always before the old CHILD_SA's [`Event::ChildSaDelete`].
    ChildSaOutboundReady {
        /// The peer configuration.
        peer: PeerId,
        /// The IKE SA the CHILD_SA belongs to now.
        ike_sa: IkeSaId,
        /// Inbound SPI of the CHILD_SA.
        spi_in: u32,
        /// Outbound SPI of the CHILD_SA: the SA to install.
        spi_out: u32,
    },
    /// A CHILD_SA was rekeyed: the new pair (installed by an earlier
    /// [`Event::ChildSaInstall`]) replaces the old pair, which is deleted by a later
    /// [`Event::ChildSaDelete`] once the peer stopped using it (make-before-break). The old
    /// outbound SA carries traffic until the new one does: at once when the new one was
    /// installed with [`Outbound::Now`], at its [`Event::ChildSaOutboundReady`] otherwise.
    ChildSaRekeyed {
        /// The peer configuration.
        peer: PeerId,
        /// Inbound SPI of the old CHILD_SA.
        old_spi_in: u32,
        /// Outbound SPI of the old CHILD_SA.
        old_spi_out: u32,
        /// Inbound SPI of the new CHILD_SA.
        new_spi_in: u32,
        /// Outbound SPI of the new CHILD_SA.
        new_spi_out: u32,
    },
    /// Remove both directions of a CHILD_SA from the kernel.
    ChildSaDelete {
        /// The peer configuration.
        peer: PeerId,
        /// Inbound SPI.
        spi_in: u32,
        /// Outbound SPI.
        spi_out: u32,
    },
    /// Authentication with a peer failed; an operator should look.
    AuthFailed {
        /// The peer configuration.
        peer: PeerId,
        /// What failed.
        reason: AuthFailure,
    },
    /// Allocate an inbound SPI (the kernel owns them) and answer with
    /// [`Endpoint::spi_allocated`](super::Endpoint::spi_allocated).
    AllocateSpi {
        /// The request to answer.
        request: SpiRequestId,
        /// The peer configuration.
        peer: PeerId,
        /// Protocol of the SA (ESP).
        protocol: ProtocolId,
        /// Our address (destination of the inbound SA).
        local: SocketAddr,
        /// The peer's address (source of the inbound SA).
        remote: SocketAddr,
    },
}
