//! Narratives of exchanges between endpoints in the simulated network, and robustness of one
//! endpoint against arbitrary input.

mod child_choice;
mod collisions;
mod commands;
mod cookie;
mod credentials_update;
mod crossed_with_charon;
mod fragments;
mod ike_auth;
mod ike_rekey;
mod ike_sa_init;
mod informational;
mod outbound_switch;
mod properties;
mod reauth;
mod rekey;
mod replay;
mod robustness;
mod unique;
mod unknown_spi;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sim::{Conditions, Network, NodeId};
use super::timers::Lifetime;
use super::traffic_selector::{TrafficSelector, IPPROTO_UDP};
use super::{
    ChildConfig, Credentials, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, IkeSaId,
    Mode, PeerConfig, PeerId, Transmit,
};
use crate::auth::{Certificate, Identity, PrivateKey, TrustStore};
use crate::crypto::{RingProvider, SeededRandom};

pub(super) const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub(super) const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
pub(super) const GENEVE_PORT: u16 = 6081;
pub(super) const STEPS: usize = 100_000;

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/pki/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parsing RSA keys is slow in debug builds, so each chassis's credentials are parsed once.
fn credentials(chassis: &str) -> Credentials {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Credentials>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    cache
        .entry(chassis.to_string())
        .or_insert_with(|| parse_credentials(chassis))
        .clone()
}

fn trust_store() -> Arc<TrustStore> {
    use std::sync::OnceLock;
    static STORE: OnceLock<Arc<TrustStore>> = OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(TrustStore::from_pem(&fixture("ca-bundle.pem")).unwrap()))
        .clone()
}

fn parse_credentials(chassis: &str) -> Credentials {
    let cert = Certificate::from_pem(&fixture(&format!("{chassis}-cert.pem"))).unwrap();
    let key = PrivateKey::from_pem(
        &fixture(&format!("{chassis}-privkey.pem")),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    Credentials {
        chain: vec![cert],
        key: Arc::new(key),
    }
}

fn hour() -> Lifetime {
    Lifetime {
        soft: Duration::from_secs(3600),
        hard: Duration::from_secs(4000),
        jitter: Duration::from_secs(300),
    }
}

/// What ovs-monitor-ipsec configures for a Geneve tunnel from `local` (chassis `us`) to
/// `remote` (chassis `them`): strongSwan's proposals, transport mode, "in" and "out" children.
pub(super) fn geneve_peer(local: IpAddr, us: &str, remote: IpAddr, them: &str) -> PeerConfig {
    let child = |name: &str, local_ts, remote_ts| ChildConfig {
        name: name.into(),
        esp_proposals: vec![EspProposal::aes256gcm16()],
        local_ts: vec![local_ts],
        remote_ts: vec![remote_ts],
        mode: Mode::Transport,
        lifetime: hour(),
    };
    PeerConfig {
        name: them.into(),
        local: SocketAddr::new(local, 500),
        remote: SocketAddr::new(remote, 500),
        local_id: Identity::Fqdn(us.into()),
        remote_id: Identity::Fqdn(them.into()),
        credentials: credentials(us),
        trusted_cas: trust_store(),
        ike_proposals: vec![IkeProposal::aes256gcm16_sha256_modp2048()],
        ike_lifetime: hour(),
        reauth_interval: None,
        dpd_interval: Some(Duration::from_secs(30)),
        force_udp_encap: false,
        children: vec![
            child(
                "in",
                TrafficSelector::host_port(local, IPPROTO_UDP, GENEVE_PORT),
                TrafficSelector::host_protocol(remote, IPPROTO_UDP),
            ),
            child(
                "out",
                TrafficSelector::host_protocol(local, IPPROTO_UDP),
                TrafficSelector::host_port(remote, IPPROTO_UDP, GENEVE_PORT),
            ),
        ],
    }
}

pub(super) fn endpoint(seed: u64) -> Endpoint {
    endpoint_with(seed, EndpointConfig::default())
}

pub(super) fn endpoint_with(seed: u64, config: EndpointConfig) -> Endpoint {
    Endpoint::new(
        config,
        Arc::new(RingProvider),
        Box::new(SeededRandom::from_u64(seed)),
    )
}

/// Two chassis, `a` at [`A`] and `b` at [`B`], each configured for the other.
pub(super) struct Pair {
    pub net: Network<Endpoint>,
    pub a: NodeId,
    pub b: NodeId,
    /// `a`'s configuration for `b`.
    pub a_to_b: PeerId,
    /// `b`'s configuration for `a`.
    pub b_to_a: PeerId,
}

impl Pair {
    pub fn new(seed: u64, conditions: Conditions) -> Self {
        Self::with(seed, conditions, |_| {}, |_| {})
    }

    /// A pair whose peer configurations are first changed by `tweak_a` and `tweak_b`.
    pub fn with(
        seed: u64,
        conditions: Conditions,
        tweak_a: impl FnOnce(&mut PeerConfig),
        tweak_b: impl FnOnce(&mut PeerConfig),
    ) -> Self {
        let config = EndpointConfig::default();
        Self::with_endpoints(seed, conditions, (config.clone(), config), tweak_a, tweak_b)
    }

    /// Like [`Pair::with`], with each endpoint's settings.
    pub fn with_endpoints(
        seed: u64,
        conditions: Conditions,
        (config_a, config_b): (EndpointConfig, EndpointConfig),
        tweak_a: impl FnOnce(&mut PeerConfig),
        tweak_b: impl FnOnce(&mut PeerConfig),
    ) -> Self {
        let mut a = endpoint_with(seed.wrapping_mul(2), config_a);
        let mut b = endpoint_with(seed.wrapping_mul(2).wrapping_add(1), config_b);
        let mut ca = geneve_peer(A, "chassis-1", B, "chassis-2");
        let mut cb = geneve_peer(B, "chassis-2", A, "chassis-1");
        tweak_a(&mut ca);
        tweak_b(&mut cb);
        let a_to_b = a.add_peer(ca).unwrap();
        let b_to_a = b.add_peer(cb).unwrap();
        let mut net = Network::new(Instant::now(), seed, conditions);
        let a = net.add_node(&[A], a);
        let b = net.add_node(&[B], b);
        Pair {
            net,
            a,
            b,
            a_to_b,
            b_to_a,
        }
    }

    pub fn a(&mut self) -> &mut Endpoint {
        self.net.node_mut(self.a)
    }

    pub fn b(&mut self) -> &mut Endpoint {
        self.net.node_mut(self.b)
    }

    /// `a` initiates to `b`.
    pub fn initiate_from_a(&mut self) -> IkeSaId {
        let now = self.net.now();
        let peer = self.a_to_b;
        self.a().initiate(now, peer).unwrap()
    }

    pub fn run(&mut self, d: Duration) {
        self.net.run_for(d, STEPS);
    }

    /// The only IKE SA of `node`, if it has exactly one.
    pub fn only_ike_sa(&self, node: NodeId) -> Option<IkeSaId> {
        let ids: Vec<IkeSaId> = self.net.node(node).ike_sas().collect();
        match ids.as_slice() {
            [id] => Some(*id),
            _ => None,
        }
    }
}

/// A filter for `Network::set_filter` that loses the first datagram `lost` picks and lets
/// every other one through: one lost transmission, for the retransmission tests.
pub(super) fn drop_first(
    mut lost: impl FnMut(&crate::engine::sim::Datagram) -> bool + 'static,
) -> impl FnMut(&crate::engine::sim::Datagram) -> bool + 'static {
    let mut dropped = false;
    move |d| {
        let drop = !dropped && lost(d);
        dropped |= drop;
        drop
    }
}

/// Drains `endpoint`'s events.
pub(super) fn events(endpoint: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| endpoint.poll_event()).collect()
}
