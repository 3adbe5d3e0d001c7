//! IKE_AUTH with the first CHILD_SA between two chassis, told as the exchange happens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::codec::Header;
use crate::engine::config::{DEFAULT_FRAGMENT_SIZE, MIN_FRAGMENT_SIZE};
use crate::engine::event::{AuthFailure, DownReason, EspKeys, Selectors, UdpEncap};
use crate::engine::sim::kernel::check_sender;
use crate::engine::sim::Chassis;
use crate::registry::{EncrId, ExchangeType};

/// 2027-06-01T00:00:00Z: inside the fixtures' validity.
pub(super) fn fixture_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_811_808_000)
}

/// IKE_AUTH with an RSA-2048 certificate and a CERTREQ for two CAs is over 1.2 KB; until
/// fragmentation is implemented, the narratives run on a link that carries any size whole.
const JUMBO_MTU: usize = 9000;

pub(super) struct Mesh {
    pub net: Network<Chassis>,
    pub a: NodeId,
    pub b: NodeId,
    pub a_to_b: PeerId,
    pub b_to_a: PeerId,
}

impl Mesh {
    pub fn with(
        seed: u64,
        conditions: Conditions,
        tweak_a: impl FnOnce(&mut PeerConfig),
        tweak_b: impl FnOnce(&mut PeerConfig),
    ) -> Self {
        let config = EndpointConfig::default();
        Self::with_endpoints(seed, conditions, (config.clone(), config), tweak_a, tweak_b)
    }

    /// Like [`Mesh::with`], with each chassis's endpoint settings.
    pub fn with_endpoints(
        seed: u64,
        conditions: Conditions,
        (config_a, config_b): (EndpointConfig, EndpointConfig),
        tweak_a: impl FnOnce(&mut PeerConfig),
        tweak_b: impl FnOnce(&mut PeerConfig),
    ) -> Self {
        let start = Instant::now();
        let mut a = endpoint_with(seed.wrapping_mul(2), config_a);
        let mut b = endpoint_with(seed.wrapping_mul(2).wrapping_add(1), config_b);
        a.set_wall_clock(start, fixture_time());
        b.set_wall_clock(start, fixture_time());
        let mut ca = geneve_peer(A, "chassis-1", B, "chassis-2");
        let mut cb = geneve_peer(B, "chassis-2", A, "chassis-1");
        tweak_a(&mut ca);
        tweak_b(&mut cb);
        let a_to_b = a.add_peer(ca).unwrap();
        let b_to_a = b.add_peer(cb).unwrap();
        let mut net = Network::new(start, seed, conditions);
        let a = net.add_node(&[A], Chassis::new(a, 0xa000_0000));
        let b = net.add_node(&[B], Chassis::new(b, 0xb000_0000));
        net.set_invariant(make_before_break);
        Mesh {
            net,
            a,
            b,
            a_to_b,
            b_to_a,
        }
    }

    pub fn new(seed: u64) -> Self {
        Self::with(seed, jumbo(), |_| {}, |_| {})
    }

    pub fn initiate_from_a(&mut self) -> IkeSaId {
        let now = self.net.now();
        let peer = self.a_to_b;
        self.net
            .node_mut(self.a)
            .endpoint
            .initiate(now, peer)
            .unwrap()
    }

    /// The one IKE SA chassis `node` holds; panics unless there is exactly one.
    pub fn only_ike_sa(&self, node: NodeId) -> IkeSaId {
        let ids: Vec<IkeSaId> = self.net.node(node).endpoint.ike_sas().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0]
    }

    /// The peer chassis `node` has configured: the other chassis.
    fn peer_of(&self, node: NodeId) -> PeerId {
        if node == self.a {
            self.a_to_b
        } else {
            self.b_to_a
        }
    }

    /// Chassis `node` asks now to rekey its CHILD_SA `spi_in` with the other chassis.
    pub fn rekey_child_on(&mut self, node: NodeId, spi_in: u32) {
        let (now, peer) = (self.net.now(), self.peer_of(node));
        let endpoint = &mut self.net.node_mut(node).endpoint;
        endpoint.rekey_child(now, peer, spi_in).unwrap();
    }

    /// Chassis `node` asks now to rekey its IKE SA with the other chassis.
    pub fn rekey_ike_on(&mut self, node: NodeId) {
        let (now, peer) = (self.net.now(), self.peer_of(node));
        self.net
            .node_mut(node)
            .endpoint
            .rekey_ike(now, peer)
            .unwrap();
    }

    /// Chassis `node` asks now to reauthenticate with the other chassis.
    pub fn reauthenticate_on(&mut self, node: NodeId) {
        let (now, peer) = (self.net.now(), self.peer_of(node));
        let endpoint = &mut self.net.node_mut(node).endpoint;
        endpoint.reauthenticate(now, peer).unwrap();
    }

    pub fn run(&mut self, d: Duration) {
        self.net.run_for(d, STEPS);
    }

    pub fn events(&mut self, node: NodeId) -> Vec<Event> {
        self.net.node_mut(node).take_events()
    }

    /// Appends what each chassis reported since its events were last taken: a's to `ea`, b's
    /// to `eb`.
    pub fn collect_events(&mut self, ea: &mut Vec<Event>, eb: &mut Vec<Event>) {
        ea.extend(self.events(self.a));
        eb.extend(self.events(self.b));
    }

    /// The CHILD_SAs each chassis installed since its events were last taken: (a's, b's).
    pub fn installs_on_both(&mut self) -> (Vec<Installed>, Vec<Installed>) {
        (
            installs(&self.events(self.a)),
            installs(&self.events(self.b)),
        )
    }
}

/// RFC 7296 §2.8, checked after every step of every narrative: neither chassis sends on an SA
/// the other cannot decrypt while it has one the other can.
fn make_before_break(nodes: &[&Chassis]) -> Result<(), String> {
    let [a, b] = nodes else {
        return Ok(());
    };
    check_sender(&a.kernel, &b.kernel).map_err(|e| format!("a: {e}"))?;
    check_sender(&b.kernel, &a.kernel).map_err(|e| format!("b: {e}"))
}

impl Mesh {
    /// The violations of [`make_before_break`] so far.
    pub fn violations(&self) -> &[(Duration, String)] {
        self.net.violations()
    }
}

impl Drop for Mesh {
    /// Every narrative on a mesh ends with the make-before-break invariant held throughout.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(
                self.violations().is_empty(),
                "make-before-break violated: {:?}",
                self.violations()
            );
        }
    }
}

pub(super) fn jumbo() -> Conditions {
    Conditions {
        mtu: JUMBO_MTU,
        ..Conditions::default()
    }
}

/// The ChildSaInstall fields a test compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Installed {
    pub name: String,
    pub spi_in: u32,
    pub spi_out: u32,
    keys: EspKeys,
    selectors: Selectors,
    mode: Mode,
    udp_encap: Option<UdpEncap>,
    encryption: EncrId,
}

pub(super) fn installs(events: &[Event]) -> Vec<Installed> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaInstall {
                name,
                spi_in,
                spi_out,
                keys,
                selectors,
                mode,
                udp_encap,
                algorithms,
                ..
            } => Some(Installed {
                name: name.clone(),
                spi_in: *spi_in,
                spi_out: *spi_out,
                keys: (**keys).clone(),
                selectors: selectors.clone(),
                mode: *mode,
                udp_encap: *udp_encap,
                encryption: algorithms.encryption,
            }),
            _ => None,
        })
        .collect()
}

/// The key exchange group of each CHILD_SA installed in `events`, `None` where it had no PFS.
pub(super) fn child_pfs(events: &[Event]) -> Vec<Option<crate::registry::KeGroup>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaInstall { algorithms, .. } => Some(algorithms.pfs),
            _ => None,
        })
        .collect()
}

pub(super) fn ups(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::IkeSaUp { .. }))
        .count()
}

/// Both ends of one CHILD_SA match: SPIs crossed, keys crossed, selectors mirrored.
fn assert_child_pair(a: &Installed, b: &Installed) {
    assert_eq!(a.spi_in, b.spi_out);
    assert_eq!(a.spi_out, b.spi_in);
    assert_eq!(a.keys.encr_in, b.keys.encr_out);
    assert_eq!(a.keys.encr_out, b.keys.encr_in);
    assert_ne!(a.keys.encr_in, a.keys.encr_out);
    assert_eq!(a.selectors.local, b.selectors.remote);
    assert_eq!(a.selectors.remote, b.selectors.local);
    assert_eq!(a.mode, b.mode);
    assert_eq!(a.encryption, b.encryption);
}

#[test]
fn handshake_brings_up_the_ike_sa_and_both_geneve_child_sas() {
    let mut mesh = Mesh::new(1);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!((ups(&ea), ups(&eb)), (1, 1), "{ea:?}\n{eb:?}");
    let (ia, ib) = (installs(&ea), installs(&eb));
    assert_eq!((ia.len(), ib.len()), (2, 2));
    // IKE_AUTH carried a's "in" child, which b matched with its "out" child exactly; then
    // CREATE_CHILD_SA made a's "out" child, b's "in".
    assert_eq!((ia[0].name.as_str(), ib[0].name.as_str()), ("in", "out"));
    assert_eq!((ia[1].name.as_str(), ib[1].name.as_str()), ("out", "in"));
    assert_child_pair(&ia[0], &ib[0]);
    assert_child_pair(&ia[1], &ib[1]);
    assert_ne!(ia[0].keys.encr_in, ia[1].keys.encr_in);

    assert_eq!(
        ia[0].selectors.local,
        vec![TrafficSelector::host_port(A, IPPROTO_UDP, GENEVE_PORT)]
    );
    assert_eq!(
        ia[0].selectors.remote,
        vec![TrafficSelector::host_protocol(B, IPPROTO_UDP)]
    );
    assert_eq!(
        ia[1].selectors.remote,
        vec![TrafficSelector::host_port(B, IPPROTO_UDP, GENEVE_PORT)]
    );
    for child in ia.iter().chain(&ib) {
        assert_eq!(child.mode, Mode::Transport);
        assert_eq!(child.udp_encap, None);
        assert_eq!(child.encryption, EncrId::ENCR_AES_GCM_16);
        // 32-byte AES-256 key and 4-byte salt per direction (RFC 4106 §8.1).
        assert_eq!(child.keys.encr_in.len(), 36);
        assert!(child.keys.integ_in.is_empty());
    }
    // Inbound SPIs came from each side's kernel.
    assert_eq!((ia[0].spi_in, ia[1].spi_in), (0xa000_0000, 0xa000_0001));
    assert_eq!((ib[0].spi_in, ib[1].spi_in), (0xb000_0000, 0xb000_0001));

    let sa = mesh.net.node(mesh.a).endpoint.ike_sas().next().unwrap();
    let info = mesh.net.node(mesh.a).endpoint.ike_sa_info(sa).unwrap();
    assert_eq!(info.state, "established");
    // IKE_SA_INIT, IKE_AUTH and CREATE_CHILD_SA, one request and one response each.
    // IKE_SA_INIT, IKE_AUTH and CREATE_CHILD_SA, one request and one response each; IKE_AUTH
    // with an RSA-2048 certificate is over 1280 octets, so both halves went in fragments.
    let auth: Vec<usize> = mesh
        .net
        .deliveries()
        .iter()
        .filter(|d| {
            Header::decode(&d.datagram.bytes)
                .is_ok_and(|h| h.exchange_type == ExchangeType::IKE_AUTH)
        })
        .map(|d| d.datagram.bytes.len())
        .collect();
    assert!(auth.len() >= 4, "{auth:?}");
    assert!(
        auth.iter().all(|&len| len <= DEFAULT_FRAGMENT_SIZE),
        "{auth:?}"
    );
    assert!(
        auth.iter().sum::<usize>() > 2 * DEFAULT_FRAGMENT_SIZE,
        "{auth:?}"
    );
    assert_eq!(mesh.net.stats().delivered, 4 + auth.len() as u64);
}

#[test]
fn pfs_child_sa_uses_a_fresh_key_exchange() {
    let pfs = |p: &mut PeerConfig| {
        for child in &mut p.children {
            child.esp_proposals[0].ke = vec![crate::registry::KeGroup::ECP_256];
        }
    };
    let mut mesh = Mesh::with(12, jumbo(), pfs, pfs);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    // The IKE_AUTH child has no PFS (its keys come from the IKE SA); the second has.
    assert_eq!(
        child_pfs(&ea),
        vec![None, Some(crate::registry::KeGroup::ECP_256)]
    );
    assert_eq!(child_pfs(&eb), child_pfs(&ea));
    let (ia, ib) = (installs(&ea), installs(&eb));
    assert_child_pair(&ia[1], &ib[1]);
}

#[test]
fn second_child_sa_refused_by_the_responder_leaves_the_first() {
    // a's "out" child only offers AES-128-GCM, which b does not take.
    let mut mesh = Mesh::with(
        13,
        jumbo(),
        |a| {
            a.children[1].esp_proposals[0].encryption[0].key_bits = Some(128);
        },
        |_| {},
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_eq!(ia[0].name, "in");
    assert_child_pair(&ia[0], &ib[0]);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
}

#[test]
fn forced_encapsulation_makes_udp_encapsulated_child_sas_on_port_4500() {
    let mut mesh = Mesh::with(2, jumbo(), |a| a.force_udp_encap = true, |_| {});
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_child_pair(&ia[0], &ib[0]);
    assert_child_pair(&ia[1], &ib[1]);
    let encap = Some(UdpEncap {
        local_port: 4500,
        remote_port: 4500,
    });
    for child in ia.iter().chain(&ib) {
        assert_eq!(child.udp_encap, encap);
    }
    // IKE_AUTH went over the NAT-T port with the non-ESP marker.
    let auth = &mesh.net.deliveries()[2].datagram;
    assert_eq!(auth.dst.port(), 4500);
    assert_eq!(auth.bytes[..4], [0, 0, 0, 0]);
}

#[test]
fn wrong_peer_identity_fails_authentication_on_both_sides() {
    // b expects chassis-3 at a's address; a presents chassis-1.
    let mut mesh = Mesh::with(
        3,
        jumbo(),
        |_| {},
        |b| b.remote_id = crate::auth::Identity::Fqdn("chassis-3".into()),
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert!(eb.iter().any(|e| matches!(
        e,
        Event::AuthFailed {
            reason: AuthFailure::WrongIdentity(_),
            ..
        }
    )));
    assert!(ea.contains(&Event::AuthFailed {
        peer: mesh.a_to_b,
        reason: AuthFailure::RejectedByPeer,
    }));
    assert_eq!((ups(&ea), ups(&eb)), (0, 0));
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 0);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 0);
}

#[test]
fn certificate_from_an_untrusted_ca_fails_authentication() {
    // b trusts only CA B; chassis-1's certificate is from CA A.
    let ca_b = TrustStore::from_pem(&super::fixture("ca-b-cert.pem")).unwrap();
    let mut mesh = Mesh::with(4, jumbo(), |_| {}, move |b| b.trusted_cas = Arc::new(ca_b));
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let eb = mesh.events(mesh.b);
    assert!(
        eb.iter().any(|e| matches!(
            e,
            Event::AuthFailed {
                reason: AuthFailure::PeerNotAuthenticated(_),
                ..
            }
        )),
        "{eb:?}"
    );
    assert_eq!(ups(&eb), 0);
}

#[test]
fn unacceptable_selectors_keep_the_ike_sa_without_a_child_sa() {
    // b only protects TCP, a only UDP: nothing is left after narrowing.
    const TCP: u8 = 6;
    let mut mesh = Mesh::with(
        5,
        jumbo(),
        |_| {},
        |b| {
            for child in &mut b.children {
                for ts in child.local_ts.iter_mut().chain(child.remote_ts.iter_mut()) {
                    *ts = TrafficSelector::host_protocol(ts.start_addr(), TCP);
                }
            }
        },
    );
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!((ups(&ea), ups(&eb)), (1, 1));
    assert!(installs(&ea).is_empty());
    assert!(installs(&eb).is_empty());
}

#[test]
fn lost_ike_auth_response_is_answered_again_from_the_cache() {
    let mut mesh = Mesh::new(6);
    mesh.net.set_filter(drop_first(|d| {
        Header::decode(&d.bytes)
            .is_ok_and(|h| h.exchange_type == ExchangeType::IKE_AUTH && h.flags.is_response())
    }));
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));

    let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    // b installed each child once; a got the cached response after retransmitting.
    let (ia, ib) = (installs(&ea), installs(&eb));
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_child_pair(&ia[0], &ib[0]);
    assert_child_pair(&ia[1], &ib[1]);
    assert_eq!(mesh.net.stats().filtered, 1);
}

#[test]
fn ike_auth_is_fragmented_to_fit_a_small_mtu() {
    let config = EndpointConfig {
        fragment_size: MIN_FRAGMENT_SIZE,
        ..EndpointConfig::default()
    };
    let conditions = Conditions {
        mtu: MIN_FRAGMENT_SIZE,
        jitter: Duration::from_millis(20),
        ..Conditions::default()
    };
    let mut mesh = Mesh::with_endpoints(14, conditions, (config.clone(), config), |_| {}, |_| {});
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(5));

    assert_eq!(mesh.net.stats().too_big, 0);
    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (2, 2));
    assert_child_pair(&ia[0], &ib[0]);
}

#[test]
fn peer_without_fragmentation_gets_whole_messages_that_a_small_mtu_drops() {
    // b does not announce IKEV2_FRAGMENTATION_SUPPORTED, so a sends IKE_AUTH whole (RFC 7383
    // §2.3), and a path that drops IP fragments loses it.
    let b_config = EndpointConfig {
        fragmentation: false,
        ..EndpointConfig::default()
    };
    let conditions = Conditions {
        mtu: 1000,
        ..Conditions::default()
    };
    let mut mesh = Mesh::with_endpoints(
        7,
        conditions,
        (EndpointConfig::default(), b_config),
        |_| {},
        |_| {},
    );
    let sa = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(120));
    assert!(mesh.net.stats().too_big > 0);
    let ea = mesh.events(mesh.a);
    assert!(ea.contains(&Event::IkeSaDown {
        peer: mesh.a_to_b,
        ike_sa: sa,
        reason: DownReason::PeerUnreachable,
    }));
}

#[test]
fn hard_lifetime_deletes_the_child_sa_and_the_ike_sa_when_rekeys_go_unanswered() {
    // Rekeys start 10 s before the hard lifetime and the network then loses everything, so
    // the retransmissions (47.5 s) do not run out before the hard lifetime.
    let late = |p: &mut PeerConfig| {
        let lifetime = crate::engine::timers::Lifetime {
            soft: Duration::from_secs(3990),
            hard: Duration::from_secs(4000),
            jitter: Duration::ZERO,
        };
        p.ike_lifetime = lifetime;
        p.dpd_interval = None;
        for child in &mut p.children {
            child.lifetime = lifetime;
        }
    };
    let mut mesh = Mesh::with(8, jumbo(), late, late);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let ia = installs(&mesh.events(mesh.a));
    mesh.events(mesh.b);

    mesh.net.set_filter(|_| true);
    mesh.run(Duration::from_secs(4001));
    let ea = mesh.events(mesh.a);
    assert!(ea.contains(&Event::ChildSaDelete {
        peer: mesh.a_to_b,
        spi_in: ia[0].spi_in,
        spi_out: ia[0].spi_out,
    }));
    assert!(ea.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::Expired,
            ..
        }
    )));
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 0);
}

#[test]
fn removing_the_peer_deletes_its_child_sas() {
    let mut mesh = Mesh::new(9);
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    mesh.events(mesh.b);

    let now = mesh.net.now();
    let peer = mesh.b_to_a;
    let chassis = mesh.net.node_mut(mesh.b);
    chassis.endpoint.remove_peer(now, peer).unwrap();
    let eb: Vec<Event> = std::iter::from_fn(|| chassis.endpoint.poll_event()).collect();
    assert!(matches!(
        eb.as_slice(),
        [
            Event::ChildSaDelete { .. },
            Event::ChildSaDelete { .. },
            Event::IkeSaDown {
                reason: DownReason::Terminated,
                ..
            }
        ]
    ));
}

#[test]
fn spi_answers_arriving_later_still_complete_the_handshake() {
    let mut mesh = Mesh::new(11);
    mesh.net.node_mut(mesh.a).allocate_spis = false;
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    // a waits for its kernel: nothing after IKE_SA_INIT.
    assert_eq!(mesh.net.stats().delivered, 2);
    let ea = mesh.events(mesh.a);
    let Some(Event::AllocateSpi { request, .. }) = ea.first() else {
        panic!("{ea:?}");
    };
    let now = mesh.net.now();
    mesh.net
        .node_mut(mesh.a)
        .endpoint
        .spi_allocated(now, *request, 0xa0a0_0001)
        .unwrap();
    mesh.run(Duration::from_secs(2));

    let (ia, ib) = mesh.installs_on_both();
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_eq!(ia[0].spi_in, 0xa0a0_0001);
    assert_child_pair(&ia[0], &ib[0]);
}

/// Whether two ChildSaInstall events are the two ends of one CHILD_SA.
pub(super) fn installed_pairs_match(a: &Event, b: &Event) -> bool {
    match (
        installs(std::slice::from_ref(a)).pop(),
        installs(std::slice::from_ref(b)).pop(),
    ) {
        (Some(a), Some(b)) => {
            a.spi_in == b.spi_out
                && a.spi_out == b.spi_in
                && a.keys.encr_in == b.keys.encr_out
                && a.keys.encr_out == b.keys.encr_in
                && a.selectors.local == b.selectors.remote
                && a.selectors.remote == b.selectors.local
        }
        _ => false,
    }
}

#[test]
fn crossed_initiation_ends_with_exactly_one_ike_sa_and_matching_child_sas() {
    for seed in 30..40 {
        let conditions = Conditions {
            jitter: Duration::from_millis(15),
            ..jumbo()
        };
        let mut mesh = Mesh::with(seed, conditions, |_| {}, |_| {});
        let now = mesh.net.now();
        let (pa, pb) = (mesh.a_to_b, mesh.b_to_a);
        mesh.net
            .node_mut(mesh.a)
            .endpoint
            .initiate(now, pa)
            .unwrap();
        mesh.net
            .node_mut(mesh.b)
            .endpoint
            .initiate(now, pb)
            .unwrap();
        mesh.run(Duration::from_secs(5));

        let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
        assert_eq!(
            mesh.net.node(mesh.a).endpoint.ike_sas().count(),
            1,
            "{ea:?}"
        );
        assert_eq!(
            mesh.net.node(mesh.b).endpoint.ike_sas().count(),
            1,
            "{eb:?}"
        );
        let (ia, ib) = (installs(&ea), installs(&eb));
        assert_eq!((ia.len(), ib.len()), (2, 2));
        assert_child_pair(&ia[0], &ib[0]);
        assert_child_pair(&ia[1], &ib[1]);
        // a (192.0.2.1) has the lower address, so b gave its attempt up.
        assert!(eb.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::Superseded,
                ..
            }
        )));
        assert_eq!(ups(&ea), 1);
    }
}

/// Libreswan 4.10 answers NO_PROPOSAL_CHOSEN to an IKE_AUTH CHILD_SA proposal that carries a
/// Key Exchange transform, so with PFS configured (ESP `aes256gcm16-modp2048`, as strongSwan
/// has it) the IKE_AUTH offer leaves the group out (RFC 7296 §1.2); CREATE_CHILD_SA keeps it.
#[test]
fn ike_auth_child_proposals_carry_no_key_exchange_transform_even_with_pfs() {
    use crate::codec::{PayloadBody, TransformId};
    use crate::crypto::{AeadCipher, RingProvider};
    use crate::protection::{open, Opened};
    use crate::registry::{EncrId, KeGroup};

    let pfs = |p: &mut PeerConfig| {
        for child in &mut p.children {
            child.esp_proposals[0].ke = vec![KeGroup::MODP_2048];
        }
    };
    // Unfragmented, so that each request opens as one message.
    let config = EndpointConfig {
        fragmentation: false,
        ..EndpointConfig::default()
    };
    let mut mesh = Mesh::with_endpoints(13, jumbo(), (config.clone(), config), pfs, pfs);
    let id = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));

    let keys = mesh
        .net
        .node(mesh.a)
        .endpoint
        .ike_sa_keys(id)
        .unwrap()
        .clone();
    let cipher = AeadCipher::from_transform(EncrId::ENCR_AES_GCM_16, Some(256)).unwrap();
    let ke_offered = |exchange: ExchangeType| -> Vec<bool> {
        mesh.net
            .deliveries()
            .iter()
            .filter(|d| d.datagram.dst.ip() == B)
            .filter_map(|d| {
                let bytes = datagram_ike(&d.datagram.bytes);
                let header = Header::decode(bytes).ok()?;
                (header.exchange_type == exchange && !header.flags.is_response()).then_some(bytes)
            })
            .filter_map(
                |bytes| match open(&RingProvider, bytes, cipher, keys.sk_ei.as_bytes()) {
                    Ok(Opened::Message(m)) => Some(m.payloads),
                    _ => None,
                },
            )
            .filter_map(|payloads| {
                payloads.into_iter().find_map(|p| match p.body {
                    PayloadBody::Sa(sa) => Some(sa.proposals.iter().any(|p| {
                        p.transforms
                            .iter()
                            .any(|t| matches!(t.id, TransformId::Ke(_)))
                    })),
                    _ => None,
                })
            })
            .collect()
    };
    assert_eq!(ke_offered(ExchangeType::IKE_AUTH), vec![false]);
    assert_eq!(ke_offered(ExchangeType::CREATE_CHILD_SA), vec![true]);
    let installs = installs(&mesh.events(mesh.a));
    assert_eq!(installs.len(), 2, "both children still come up");
}

/// The IKE message of a datagram, without the non-ESP marker on port 4500.
fn datagram_ike(bytes: &[u8]) -> &[u8] {
    match bytes.strip_prefix(&[0u8; 4]) {
        Some(rest) => rest,
        None => bytes,
    }
}

/// strongSwan's charon moves IKE to port 4500 for IKE_AUTH even without a NAT (it does so
/// whenever MOBIKE may be used); that is no reason to put ESP in UDP (RFC 7296 §2.23: only
/// behind a NAT, or when forced). Found against charon 5.9.8: our responder's CHILD_SA came
/// out UDP-encapsulated while charon's (no NAT detected) was plain ESP.
#[test]
fn peer_floating_ike_to_port_4500_without_a_nat_gets_plain_esp_child_sas() {
    let start = Instant::now();
    let (mut a, mut b) = (endpoint(21), endpoint(22));
    a.set_wall_clock(start, fixture_time());
    b.set_wall_clock(start, fixture_time());
    let to_b = a
        .add_peer(geneve_peer(A, "chassis-1", B, "chassis-2"))
        .unwrap();
    b.add_peer(geneve_peer(B, "chassis-2", A, "chassis-1"))
        .unwrap();
    a.initiate(start, to_b).unwrap();

    let (mut encap_a, mut encap_b) = (Vec::new(), Vec::new());
    let mut next_spi = 0x100u32;
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            let is_init = Header::decode(&t.bytes)
                .is_ok_and(|h| h.exchange_type == ExchangeType::IKE_SA_INIT);
            if is_init {
                b.handle_datagram(start, t.remote, t.local, &t.bytes);
            } else {
                // What charon does after IKE_SA_INIT: port 4500, non-ESP marker, no NAT.
                let mut floated = vec![0u8; 4];
                floated.extend_from_slice(&t.bytes);
                b.handle_datagram(
                    start,
                    SocketAddr::new(B, 4500),
                    SocketAddr::new(A, 4500),
                    &floated,
                );
            }
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            a.handle_datagram(start, t.remote, t.local, &t.bytes);
        }
        for (e, encap) in [(&mut a, &mut encap_a), (&mut b, &mut encap_b)] {
            while let Some(event) = e.poll_event() {
                moved = true;
                match event {
                    Event::AllocateSpi { request, .. } => {
                        next_spi += 1;
                        e.spi_allocated(start, request, next_spi).unwrap();
                    }
                    Event::ChildSaInstall { udp_encap, .. } => encap.push(udp_encap),
                    _ => {}
                }
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(encap_a, vec![None, None]);
    assert_eq!(
        encap_b,
        vec![None, None],
        "plain ESP, though IKE moved to 4500"
    );
    // IKE itself did follow the peer to port 4500.
    let id = b.ike_sas().next().unwrap();
    assert_eq!(b.ike_sa_info(id).unwrap().remote.port(), 4500);
}
