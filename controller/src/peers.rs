//! The daemon's table of protected peers: each desired (local, remote) encap pair with its
//! stable pair index, its engine peer configuration and the CHILD_SAs negotiated for it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ikev2::auth::{Certificate, Identity, PrivateKey, TrustStore};
use ikev2::engine::timers::Lifetime;
use ikev2::engine::{
    ChildConfig, Credentials, DownReason, Encryption, EspProposal, IkeProposal, IkeSaId, Mode,
    PeerConfig, PeerId, TrafficSelector,
};
use ikev2::registry::{EncrId, EsnId, KeGroup, PrfId};

use crate::desired::{DesiredPeer, PeerKey, Role};
use crate::kernel::{ChildKind, ChildSa, KernelConfig, ProtectedPair, SaDirection};
use crate::retry::InitiateBackoff;
use xfrm::StateId;

/// Name of the CHILD_SA "local any → remote port" (the kernel layer's [`ChildKind::Out`]).
pub const CHILD_OUT: &str = "out";
/// Name of the CHILD_SA "local port → remote any" (the kernel layer's [`ChildKind::In`]).
pub const CHILD_IN: &str = "in";

/// IKE SA lifetime: ovs-monitor-ipsec leaves strongSwan's default (rekey after ~4 h); we use
/// the same order of magnitude, with jitter so the chassis do not all rekey together.
const IKE_LIFETIME: Lifetime = Lifetime {
    soft: Duration::from_secs(4 * 3600),
    hard: Duration::from_secs(4 * 3600 + 600),
    jitter: Duration::from_secs(900),
};

/// CHILD_SA lifetime (strongSwan's default is 1 h with 10 % jitter).
const CHILD_LIFETIME: Lifetime = Lifetime {
    soft: Duration::from_secs(3600),
    hard: Duration::from_secs(3600 + 300),
    jitter: Duration::from_secs(360),
};

/// The CHILD_SA lifetime for `--child-sa-lifetime SECS`: rekey after SECS less up to a tenth,
/// hard expiry half as long again after SECS.
pub fn child_lifetime(secs: u64) -> Lifetime {
    let soft = Duration::from_secs(secs);
    Lifetime {
        soft,
        hard: soft + soft / 2,
        jitter: soft / 10,
    }
}

/// Liveness check after this long without hearing from the peer.
const DPD_INTERVAL: Duration = Duration::from_secs(30);

/// Our identity material, shared by every peer configuration.
#[derive(Clone)]
pub struct LocalCredentials {
    /// This chassis's name: our ID_FQDN.
    pub chassis: String,
    /// Our certificate chain and key.
    pub credentials: Credentials,
    /// The CA every peer's certificate must chain to.
    pub trust: Arc<TrustStore>,
}

impl std::fmt::Debug for LocalCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCredentials")
            .field("chassis", &self.chassis)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl LocalCredentials {
    /// Credentials from the checked local identity.
    pub fn new(
        chassis: String,
        certificate: Certificate,
        intermediates: Vec<Certificate>,
        key: PrivateKey,
        trust: TrustStore,
    ) -> LocalCredentials {
        let mut chain = vec![certificate];
        chain.extend(intermediates);
        LocalCredentials {
            chassis,
            credentials: Credentials {
                chain,
                key: Arc::new(key),
            },
            trust: Arc::new(trust),
        }
    }
}

/// IKE proposals: what ovs-monitor-ipsec configures strongSwan with first, then the same cipher
/// with x25519 and P-256 for peers that prefer them.
pub fn ike_proposals() -> Vec<IkeProposal> {
    let mut first = IkeProposal::aes256gcm16_sha256_modp2048();
    first.ke.extend([KeGroup::CURVE25519, KeGroup::ECP_256]);
    let aes128 = IkeProposal {
        encryption: vec![Encryption {
            id: EncrId::ENCR_AES_GCM_16,
            key_bits: Some(128),
        }],
        prf: vec![PrfId::PRF_HMAC_SHA2_256],
        integrity: vec![],
        ke: vec![KeGroup::CURVE25519, KeGroup::ECP_256, KeGroup::MODP_2048],
    };
    vec![first, aes128]
}

/// ESP proposals: ovs-monitor-ipsec's `aes256gcm16-modp2048` first, then AES-128-GCM, both
/// with PFS over MODP-2048 for the CREATE_CHILD_SA of the second Geneve child: a charon
/// configured by ovs-monitor-ipsec (`esp=aes256gcm16-modp2048`) and a pluto (PFS on by
/// default) refuse a CREATE_CHILD_SA without a KE payload with NO_PROPOSAL_CHOSEN, leaving the
/// tunnel with one child (seen in tests/daemon/mixed-mesh.sh). MODP-2048 comes first because
/// a KE payload goes with the first group of the first proposal and a group the peer does not
/// list is not retried (INVALID_KE for a CHILD_SA). The IKE_AUTH child ignores the groups.
pub fn esp_proposals() -> Vec<EspProposal> {
    let mut aes256 = EspProposal::aes256gcm16();
    aes256.ke = vec![KeGroup::MODP_2048];
    let mut aes128 = aes256.clone();
    aes128.encryption = vec![Encryption {
        id: EncrId::ENCR_AES_GCM_16,
        key_bits: Some(128),
    }];
    aes128.esn = vec![EsnId::NO_ESN];
    vec![aes256, aes128]
}

/// The engine configuration for one desired peer: two transport-mode CHILD_SAs with the
/// Geneve selectors ovs-monitor-ipsec uses, authenticated as the remote chassis name.
pub fn peer_config(desired: &DesiredPeer, local: &LocalCredentials) -> PeerConfig {
    let proto = desired.protocol.ip_proto();
    let (l, r) = (desired.key.local_ip, desired.key.remote_ip);
    let child = |name: &str, local_ts, remote_ts| ChildConfig {
        name: name.into(),
        esp_proposals: esp_proposals(),
        local_ts: vec![local_ts],
        remote_ts: vec![remote_ts],
        mode: Mode::Transport,
        lifetime: CHILD_LIFETIME,
    };
    PeerConfig {
        name: desired.remote_chassis.clone(),
        local: SocketAddr::new(l, ikev2::engine::config::IKE_PORT),
        remote: SocketAddr::new(r, ikev2::engine::config::IKE_PORT),
        local_id: Identity::chassis(&local.chassis),
        remote_id: Identity::chassis(&desired.remote_chassis),
        credentials: local.credentials.clone(),
        trusted_cas: local.trust.clone(),
        ike_proposals: ike_proposals(),
        ike_lifetime: IKE_LIFETIME,
        reauth_interval: None,
        dpd_interval: Some(DPD_INTERVAL),
        force_udp_encap: desired.force_udp_encap,
        // The same selectors as the kernel layer's policies (`ProtectedPair::selector`): the
        // "out" child selects the peer's encap port, the "in" child ours.
        children: vec![
            child(
                CHILD_OUT,
                TrafficSelector::host_protocol(l, proto),
                TrafficSelector::host_port(r, proto, desired.remote_port),
            ),
            child(
                CHILD_IN,
                TrafficSelector::host_port(l, proto, desired.local_port),
                TrafficSelector::host_protocol(r, proto),
            ),
        ],
    }
}

/// The kernel layer's CHILD_SA kind of an engine CHILD_SA name.
pub fn child_kind(name: &str) -> Option<ChildKind> {
    match name {
        CHILD_OUT => Some(ChildKind::Out),
        CHILD_IN => Some(ChildKind::In),
        _ => None,
    }
}

/// A problem with a peer and when it happened (wall-clock time, as `ipsecctl peers` shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFailure {
    /// What went wrong.
    pub message: String,
    /// When.
    pub at: SystemTime,
}

/// What a failed IKE SA's end is reported as, in `ipsecctl peers` (`None` for ends that are
/// no failure, and for authentication, whose own event says more).
pub fn down_failure_text(reason: DownReason) -> Option<String> {
    let text = match reason {
        DownReason::PeerUnreachable => "peer unreachable: no answer to our requests".to_owned(),
        DownReason::HalfOpenTimeout => "IKE SA not established in time".to_owned(),
        DownReason::NoProposalChosen => "no proposal chosen: no suite in common".to_owned(),
        DownReason::KeyExchangeFailed => "no key exchange group in common".to_owned(),
        DownReason::PeerError(notify) => format!("{notify} from peer"),
        DownReason::AuthFailed
        | DownReason::DeletedByPeer
        | DownReason::Terminated
        | DownReason::Expired
        | DownReason::Rekeyed
        | DownReason::Superseded
        | DownReason::Replaced => return None,
    };
    Some(text)
}

/// Where a peer's IKE SA stands, as the daemon last heard from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeState {
    /// Policies in place, no IKE SA yet (waiting for the peer or the grace period).
    Idle,
    /// IKE_SA_INIT / IKE_AUTH in progress.
    Connecting,
    /// Established.
    Up,
    /// Authentication failed; retried later.
    Failed,
}

/// One protected peer.
#[derive(Debug)]
pub struct Peer {
    /// What the Southbound view asks for.
    pub desired: DesiredPeer,
    /// The stable index its reqids derive from.
    pub index: u32,
    /// Its configuration in the engine, once the policies are in the kernel.
    pub engine_id: Option<PeerId>,
    /// When to initiate (at once for the initiator, after the grace period otherwise).
    pub initiate_at: Option<Instant>,
    /// IKE SA state.
    pub ike: IkeState,
    /// When the current IKE SA came up.
    pub up_since: Option<Instant>,
    /// The engine's current IKE SA with this peer; it changes when the IKE SA is rekeyed or
    /// reauthenticated, and only its going down takes the peer down.
    pub ike_sa: Option<IkeSaId>,
    /// The last problem and when it happened, for status.
    pub last_error: Option<PeerFailure>,
    /// CHILD_SAs (each direction one entry) to keep in the kernel.
    pub child_sas: Vec<ChildSa>,
    /// The states of `child_sas` (direction, SPI) the kernel accepted at the last reconcile
    /// (or already held); the others it refused or was not yet asked to add.
    pub installed: Vec<(SaDirection, u32)>,
    /// Outbound SAs of rekeyed CHILD_SAs not desired yet (RFC 7296 §2.8).
    pub pending_outbound: crate::kernel::PendingOutbound,
    /// When to initiate again after failures.
    pub retry: InitiateBackoff,
    /// A configured CHILD_SA the current IKE SA lacks, for the repair of `child_repair.rs`.
    pub child_missing: Option<crate::child_repair::Missing<IkeSaId>>,
    /// The tracing span of this peer.
    pub span: tracing::Span,
}

impl Peer {
    /// A peer just taken from the desired set: not yet in the engine, no IKE SA.
    pub fn new(desired: DesiredPeer, index: u32, span: tracing::Span) -> Peer {
        Peer {
            desired,
            index,
            engine_id: None,
            initiate_at: None,
            ike: IkeState::Idle,
            up_since: None,
            ike_sa: None,
            last_error: None,
            child_sas: Vec::new(),
            installed: Vec::new(),
            pending_outbound: Default::default(),
            retry: InitiateBackoff::default(),
            child_missing: None,
            span,
        }
    }

    /// Records a failed or lost IKE SA and schedules the next initiation after the backoff
    /// (for a responder never before its grace period); returns the delay.
    pub fn retry_later(&mut self, now: Instant, random: u32) -> Duration {
        let floor = match self.desired.role {
            Role::Initiator => Duration::ZERO,
            Role::Responder { initiate_after } => initiate_after,
        };
        let delay = self.retry.failed(floor, random);
        self.initiate_at = Some(now + delay);
        delay
    }

    /// Remembers `message` as the peer's last problem, which happened at `at`.
    pub fn record_error(&mut self, message: String, at: SystemTime) {
        self.last_error = Some(PeerFailure { message, at });
    }

    /// Whether the kernel holds the state `sa` (one direction of a CHILD_SA).
    pub fn state_installed(&self, sa: &ChildSa) -> bool {
        self.installed.contains(&(sa.dir, sa.spi))
    }

    /// Whether the kernel holds both states of some CHILD_SA of `kind`.
    fn child_installed(&self, kind: ChildKind) -> bool {
        let held = |dir| {
            self.child_sas
                .iter()
                .any(|s| s.child == kind && s.dir == dir && self.state_installed(s))
        };
        held(SaDirection::Inbound) && held(SaDirection::Outbound)
    }

    /// Whether the kernel holds both states of every configured CHILD_SA ("out" and "in").
    pub fn esp_installed(&self) -> bool {
        [ChildKind::Out, ChildKind::In]
            .into_iter()
            .all(|kind| self.child_installed(kind))
    }

    /// The one rule for a peer being up (status, metrics, the systemd status line): its IKE
    /// SA is established and the kernel holds its ESP states; an IKE SA alone carries no
    /// tunnel traffic.
    pub fn is_up(&self) -> bool {
        self.ike == IkeState::Up && self.esp_installed()
    }

    /// Takes the outcome of a reconcile that reached the kernel: the states it refused
    /// (`refused`, by kernel id, with the kernel's answer) are not installed and their refusal
    /// becomes the peer's last error, stamped `at`; every other desired state is installed.
    pub fn note_reconcile(
        &mut self,
        config: &KernelConfig,
        refused: &[(StateId, String)],
        at: SystemTime,
    ) {
        // Limitation: a state the plan could not build at all (a `PlanError`, e.g. a pair index
        // beyond the reqid range) is never sent to the kernel yet counts as installed here;
        // `ipsecctl sas` still marks it not installed, from the kernel's own readings.
        let pair = self.pair();
        let mut installed = Vec::with_capacity(self.child_sas.len());
        let mut first_refusal = None;
        for sa in &self.child_sas {
            let id = sa.state_id(&pair, config);
            match refused.iter().find(|(r, _)| *r == id) {
                Some((_, why)) => {
                    first_refusal.get_or_insert_with(|| {
                        let dir = match sa.dir {
                            SaDirection::Inbound => "inbound",
                            SaDirection::Outbound => "outbound",
                        };
                        format!("kernel refused the {dir} ESP state {:08x}: {why}", sa.spi)
                    });
                }
                None => installed.push((sa.dir, sa.spi)),
            }
        }
        self.installed = installed;
        if let Some(message) = first_refusal {
            self.record_error(message, at);
        }
    }

    /// The kernel layer's view of this pair.
    pub fn pair(&self) -> ProtectedPair {
        self.desired.protected_pair(self.index)
    }

    /// When to first initiate, from the role.
    pub fn first_initiation(role: Role, now: Instant) -> Instant {
        match role {
            Role::Initiator => now,
            Role::Responder { initiate_after } => now + initiate_after,
        }
    }
}

/// Every protected peer, by endpoints, with index allocation.
#[derive(Debug, Default)]
pub struct PeerTable {
    /// The peers.
    pub peers: BTreeMap<PeerKey, Peer>,
}

impl PeerTable {
    /// How many peers are up by [`Peer::is_up`] (for the status line, the control API and
    /// the metrics).
    pub fn up_count(&self) -> usize {
        self.peers.values().filter(|p| p.is_up()).count()
    }

    /// How many CHILD_SAs the kernel holds: installed states, two per CHILD_SA.
    pub fn installed_child_sas(&self) -> usize {
        let states: usize = self
            .peers
            .values()
            .map(|p| p.child_sas.iter().filter(|s| p.state_installed(s)).count())
            .sum();
        states / 2
    }

    /// Takes the kernel's refusals of one reconcile that reached it (see
    /// [`Peer::note_reconcile`]).
    pub fn note_reconcile(
        &mut self,
        config: &KernelConfig,
        refused: &[(StateId, String)],
        at: SystemTime,
    ) {
        for p in self.peers.values_mut() {
            p.note_reconcile(config, refused, at);
        }
    }

    /// The smallest index no peer uses.
    // Limitation: indices are handed out in order of appearance, so a restart with a
    // different Southbound order renumbers pairs and adopted states are replaced, not kept.
    pub fn free_index(&self) -> u32 {
        let mut used: Vec<u32> = self.peers.values().map(|p| p.index).collect();
        used.sort_unstable();
        let mut next = 0u32;
        for i in used {
            if i == next {
                next = next.saturating_add(1);
            } else if i > next {
                break;
            }
        }
        next
    }

    /// The peer an engine peer id belongs to.
    pub fn by_engine_id(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.values_mut().find(|p| p.engine_id == Some(id))
    }

    /// Our encap IP towards `remote` (the sockets are bound to the wildcard address).
    pub fn local_ip_for(&self, remote: IpAddr) -> Option<IpAddr> {
        self.peers
            .keys()
            .find(|k| k.remote_ip == remote)
            .map(|k| k.local_ip)
    }

    /// Every CHILD_SA of every peer.
    pub fn child_sas(&self) -> Vec<ChildSa> {
        self.peers
            .values()
            .flat_map(|p| p.child_sas.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_proposals_ask_for_pfs_with_modp2048_as_ovs_monitor_ipsec_peers_require() {
        let proposals = esp_proposals();
        assert!(!proposals.is_empty());
        for p in &proposals {
            assert_eq!(p.ke.first(), Some(&KeGroup::MODP_2048), "{p:?}");
        }
    }

    #[test]
    fn failed_ike_sas_are_recorded_with_their_cause_and_orderly_ends_are_not() {
        use ikev2::registry::NotifyType;
        assert_eq!(
            down_failure_text(DownReason::PeerError(NotifyType::TS_UNACCEPTABLE)).as_deref(),
            Some("TS_UNACCEPTABLE from peer")
        );
        assert!(down_failure_text(DownReason::PeerUnreachable)
            .is_some_and(|t| t.contains("unreachable")));
        for orderly in [
            DownReason::Terminated,
            DownReason::DeletedByPeer,
            DownReason::Rekeyed,
            DownReason::Replaced,
            DownReason::Superseded,
            DownReason::Expired,
            // Its own event carries the detail.
            DownReason::AuthFailed,
        ] {
            assert_eq!(down_failure_text(orderly), None, "{orderly:?}");
        }
    }
}
