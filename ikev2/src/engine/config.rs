//! What an [`Endpoint`](super::Endpoint) is told about itself and about each peer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::proposal::{EspProposal, IkeProposal};
use super::timers::{Lifetime, LifetimeError};
use super::traffic_selector::TrafficSelector;
use crate::auth::{Certificate, Identity, PrivateKey, TrustStore};

/// The IKE port (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;

/// The NAT-T port, where IKE messages carry the non-ESP marker (RFC 3948 §2.2, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;

/// Default ceiling of IKE SAs that have not completed IKE_AUTH (RFC 7296 §2.6).
pub const DEFAULT_MAX_HALF_OPEN: usize = 1024;

/// Default number of half-open IKE SAs from which IKE_SA_INIT requests must carry a valid
/// COOKIE (RFC 7296 §2.6): a whole mesh restarting at once stays below it on a node with a few
/// hundred peers, a flood of spoofed requests does not.
pub const DEFAULT_COOKIE_THRESHOLD: usize = 256;

/// Default ceiling of IKE SAs one endpoint holds.
pub const DEFAULT_MAX_IKE_SAS: usize = 65_536;

/// Default size above which messages are sent as RFC 7383 fragments (strongSwan's default).
pub const DEFAULT_FRAGMENT_SIZE: usize = 1280;

/// Smallest fragment size accepted: IPv4's minimum reassembly buffer (RFC 7383 §2.5.1).
pub const MIN_FRAGMENT_SIZE: usize = 576;

/// Most CHILD_SA configurations of one peer (ovs-monitor-ipsec uses two per tunnel).
pub const MAX_CHILDREN_PER_PEER: usize = 16;

/// Most proposals of one kind in a peer configuration.
pub const MAX_CONFIGURED_PROPOSALS: usize = 16;

/// Settings of the endpoint as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Port IKE is received on before NAT-T (normally [`IKE_PORT`]).
    pub ike_port: u16,
    /// Port of NAT-T, where datagrams carry the non-ESP marker (normally [`NAT_T_PORT`]).
    pub nat_t_port: u16,
    /// From this many half-open IKE SAs on, IKE_SA_INIT requests are answered statelessly with
    /// a COOKIE unless they echo a valid one (RFC 7296 §2.6); 0 demands COOKIEs always.
    pub cookie_threshold: usize,
    /// Half-open IKE SAs kept before new IKE_SA_INIT requests are dropped, even with a valid
    /// COOKIE.
    pub max_half_open: usize,
    /// IKE SAs kept in total.
    pub max_ike_sas: usize,
    /// Announce IKEV2_FRAGMENTATION_SUPPORTED and fragment messages for peers that announce
    /// it too (RFC 7383). Received fragments are reassembled either way.
    pub fragmentation: bool,
    /// Encrypted messages whose datagram would exceed this many octets are fragmented so each
    /// fragment's datagram fits (at least [`MIN_FRAGMENT_SIZE`]).
    pub fragment_size: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            ike_port: IKE_PORT,
            nat_t_port: NAT_T_PORT,
            cookie_threshold: DEFAULT_COOKIE_THRESHOLD,
            max_half_open: DEFAULT_MAX_HALF_OPEN,
            max_ike_sas: DEFAULT_MAX_IKE_SAS,
            fragmentation: true,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
        }
    }
}

/// Transport or tunnel mode of a CHILD_SA (RFC 7296 §1.3.1, USE_TRANSPORT_MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ESP protects the payload of packets between the two hosts; what OVN uses for Geneve.
    Transport,
    /// ESP encapsulates whole packets.
    Tunnel,
}

/// One CHILD_SA a peer configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    /// A name for logs and events (e.g. `"in"` and `"out"` for a Geneve tunnel).
    pub name: String,
    /// ESP proposals in our order of preference.
    pub esp_proposals: Vec<EspProposal>,
    /// Our end of the traffic (TSi when we initiate).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's end of the traffic (TSr when we initiate).
    pub remote_ts: Vec<TrafficSelector>,
    /// Transport or tunnel.
    pub mode: Mode,
    /// Rekey and expiry of the CHILD_SA.
    pub lifetime: Lifetime,
}

/// Our certificate chain and the key of its end-entity certificate.
#[derive(Clone)]
pub struct Credentials {
    /// End-entity certificate first, then intermediates towards the CA.
    pub chain: Vec<Certificate>,
    /// The private key of `chain[0]`.
    pub key: Arc<PrivateKey>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key prints redacted through its own Debug; the chain by subject only.
        f.debug_struct("Credentials")
            .field(
                "chain",
                &self
                    .chain
                    .iter()
                    .map(Certificate::subject)
                    .collect::<Vec<_>>(),
            )
            .field("key", &self.key)
            .finish()
    }
}

/// Everything needed to bring up and keep an IKE SA with one peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// A name for logs and events (e.g. the remote chassis name).
    pub name: String,
    /// Our address and IKE port towards this peer.
    pub local: SocketAddr,
    /// The peer's address and IKE port.
    pub remote: SocketAddr,
    /// Our identity in IDi/IDr.
    pub local_id: Identity,
    /// The identity the peer must prove with its certificate.
    pub remote_id: Identity,
    /// Our certificate chain and private key.
    pub credentials: Credentials,
    /// CAs the peer's certificate must chain to.
    pub trusted_cas: Arc<TrustStore>,
    /// IKE SA proposals in our order of preference.
    pub ike_proposals: Vec<IkeProposal>,
    /// Rekey and expiry of the IKE SA.
    pub ike_lifetime: Lifetime,
    /// Reauthenticate (a new IKE SA from scratch) this often; `None` never.
    pub reauth_interval: Option<Duration>,
    /// Send a liveness check after this long without hearing from the peer; `None` never.
    pub dpd_interval: Option<Duration>,
    /// Use UDP encapsulation even without a NAT (strongSwan's `forceencaps`).
    pub force_udp_encap: bool,
    /// The CHILD_SAs to set up with this peer.
    pub children: Vec<ChildConfig>,
}

/// Why a configuration cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A peer has no IKE proposal, or a proposal lacks a mandatory transform type.
    #[error("peer {peer}: IKE proposal {index} is unusable: {reason}")]
    BadIkeProposal {
        /// Peer name.
        peer: String,
        /// Index of the proposal (0 when there is none).
        index: usize,
        /// What is missing.
        reason: &'static str,
    },
    /// A CHILD_SA has no ESP proposal, or one lacks a cipher.
    #[error("peer {peer}, child {child}: ESP proposal {index} is unusable: {reason}")]
    BadEspProposal {
        /// Peer name.
        peer: String,
        /// CHILD_SA name.
        child: String,
        /// Index of the proposal.
        index: usize,
        /// What is missing.
        reason: &'static str,
    },
    /// A CHILD_SA has no traffic selector on one side.
    #[error("peer {peer}, child {child}: no {side} traffic selector")]
    NoTrafficSelector {
        /// Peer name.
        peer: String,
        /// CHILD_SA name.
        child: String,
        /// `"local"` or `"remote"`.
        side: &'static str,
    },
    /// A lifetime is inconsistent.
    #[error("peer {peer}: {what} lifetime: {source}")]
    Lifetime {
        /// Peer name.
        peer: String,
        /// `"IKE SA"` or the CHILD_SA name.
        what: String,
        /// The inconsistency.
        source: LifetimeError,
    },
    /// Local and remote addresses are of different families.
    #[error("peer {peer}: local {local} and remote {remote} are of different address families")]
    MixedFamilies {
        /// Peer name.
        peer: String,
        /// Local address.
        local: SocketAddr,
        /// Remote address.
        remote: SocketAddr,
    },
    /// Some list is longer than the engine accepts.
    #[error("peer {peer}: more than {max} {what}")]
    TooMany {
        /// Peer name.
        peer: String,
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// No CHILD_SA is configured.
    #[error("peer {peer}: no CHILD_SA configured")]
    NoChildren {
        /// Peer name.
        peer: String,
    },
    /// No certificate to authenticate with.
    #[error("peer {peer}: no certificate in the credentials")]
    NoCertificate {
        /// Peer name.
        peer: String,
    },
    /// A DPD interval of zero would send liveness checks in a loop.
    #[error("peer {peer}: DPD interval must not be zero")]
    ZeroDpdInterval {
        /// Peer name.
        peer: String,
    },
}

impl PeerConfig {
    /// Checks the configuration is usable: proposals complete, selectors present, lifetimes
    /// consistent, counts within the engine's limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let peer = || self.name.clone();

        if self.local.is_ipv4() != self.remote.is_ipv4() {
            return Err(ConfigError::MixedFamilies {
                peer: peer(),
                local: self.local,
                remote: self.remote,
            });
        }
        if self.credentials.chain.is_empty() {
            return Err(ConfigError::NoCertificate { peer: peer() });
        }
        if self.dpd_interval == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDpdInterval { peer: peer() });
        }

        if self.ike_proposals.is_empty() {
            return Err(ConfigError::BadIkeProposal {
                peer: peer(),
                index: 0,
                reason: "no IKE proposal",
            });
        }
        if self.ike_proposals.len() > MAX_CONFIGURED_PROPOSALS {
            return Err(ConfigError::TooMany {
                peer: peer(),
                what: "IKE proposals",
                max: MAX_CONFIGURED_PROPOSALS,
            });
        }
        for (index, p) in self.ike_proposals.iter().enumerate() {
            let reason = if p.encryption.is_empty() {
                Some("no encryption algorithm")
            } else if p.prf.is_empty() {
                Some("no PRF")
            } else if p.ke.is_empty() {
                Some("no key exchange group")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::BadIkeProposal {
                    peer: peer(),
                    index,
                    reason,
                });
            }
        }
        self.ike_lifetime
            .validate()
            .map_err(|source| ConfigError::Lifetime {
                peer: peer(),
                what: "IKE SA".into(),
                source,
            })?;

        // Limitation: childless IKE SAs (RFC 6023) are not supported; IKE_AUTH carries the first
        // CHILD_SA.
        if self.children.is_empty() {
            return Err(ConfigError::NoChildren { peer: peer() });
        }
        if self.children.len() > MAX_CHILDREN_PER_PEER {
            return Err(ConfigError::TooMany {
                peer: peer(),
                what: "CHILD_SAs",
                max: MAX_CHILDREN_PER_PEER,
            });
        }
        for child in &self.children {
            self.validate_child(child)?;
        }
        Ok(())
    }

    fn validate_child(&self, child: &ChildConfig) -> Result<(), ConfigError> {
        let peer = || self.name.clone();
        if child.esp_proposals.is_empty() {
            return Err(ConfigError::BadEspProposal {
                peer: peer(),
                child: child.name.clone(),
                index: 0,
                reason: "no ESP proposal",
            });
        }
        if child.esp_proposals.len() > MAX_CONFIGURED_PROPOSALS {
            return Err(ConfigError::TooMany {
                peer: peer(),
                what: "ESP proposals",
                max: MAX_CONFIGURED_PROPOSALS,
            });
        }
        if let Some(index) = child
            .esp_proposals
            .iter()
            .position(|p| p.encryption.is_empty())
        {
            return Err(ConfigError::BadEspProposal {
                peer: peer(),
                child: child.name.clone(),
                index,
                reason: "no encryption algorithm",
            });
        }
        for (side, ts) in [("local", &child.local_ts), ("remote", &child.remote_ts)] {
            if ts.is_empty() {
                return Err(ConfigError::NoTrafficSelector {
                    peer: peer(),
                    child: child.name.clone(),
                    side,
                });
            }
        }
        child
            .lifetime
            .validate()
            .map_err(|source| ConfigError::Lifetime {
                peer: peer(),
                what: child.name.clone(),
                source,
            })
    }
}
