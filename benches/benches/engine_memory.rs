//! Heap bytes per established IKE SA with two CHILD_SAs (the Geneve "in" and "out" pair that
//! ovs-monitor-ipsec configures), measured with a counting global allocator: one hub endpoint
//! sets up IKE SAs with `PEERS` other endpoints in process, half of them initiated by the hub
//! and half by the peer, RSA-2048 certificates, MODP-2048. Target: at most 8 KiB per IKE SA.
//!
//! The hub's bytes are what dropping it frees: once with its peer configurations only, once
//! with every IKE SA established; the difference over `PEERS` is the cost of one IKE SA with
//! its CHILD_SAs. Configurations, credentials and trust store are shared (`Arc`) with the test
//! and so not counted in either.
//!
//! Run: `cargo bench -p ovn-ipsec-benches --bench engine_memory` (prints the numbers; exits
//! non-zero above the target).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use ikev2::auth::{Certificate, Identity, PrivateKey, TrustStore};
use ikev2::crypto::{RingProvider, SeededRandom};
use ikev2::engine::timers::Lifetime;
use ikev2::engine::traffic_selector::{TrafficSelector, IPPROTO_UDP};
use ikev2::engine::{
    ChildConfig, Credentials, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, Mode,
    PeerConfig, PeerId,
};
use ring::rand::SystemRandom;

/// Counts the bytes currently allocated, process-wide.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// IKE SAs the hub holds at the end.
const PEERS: u32 = 200;

/// The target of bytes per IKE SA with two CHILD_SAs.
const TARGET: isize = 8 * 1024;

const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ikev2/tests/fixtures/pki");
const HUB: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PKI}/{name}")).unwrap()
}

fn credentials(chassis: &str) -> Credentials {
    Credentials {
        chain: vec![Certificate::from_pem(&read(&format!("{chassis}-cert.pem"))).unwrap()],
        key: Arc::new(
            PrivateKey::from_pem(
                &read(&format!("{chassis}-privkey.pem")),
                &SystemRandom::new(),
            )
            .unwrap(),
        ),
    }
}

fn hour() -> Lifetime {
    Lifetime {
        soft: Duration::from_secs(3600),
        hard: Duration::from_secs(4000),
        jitter: Duration::from_secs(300),
    }
}

/// ovs-monitor-ipsec's Geneve tunnel from `local` (chassis `us`) to `remote`: two transport
/// CHILD_SAs, "in" and "out".
fn geneve(
    local: IpAddr,
    us: &str,
    remote: IpAddr,
    them: &str,
    creds: &Credentials,
    trust: &Arc<TrustStore>,
) -> PeerConfig {
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
        credentials: creds.clone(),
        trusted_cas: trust.clone(),
        ike_proposals: vec![IkeProposal::aes256gcm16_sha256_modp2048()],
        ike_lifetime: hour(),
        reauth_interval: None,
        dpd_interval: Some(Duration::from_secs(30)),
        force_udp_encap: false,
        children: vec![
            child(
                "in",
                TrafficSelector::host_port(local, IPPROTO_UDP, 6081),
                TrafficSelector::host_protocol(remote, IPPROTO_UDP),
            ),
            child(
                "out",
                TrafficSelector::host_protocol(local, IPPROTO_UDP),
                TrafficSelector::host_port(remote, IPPROTO_UDP, 6081),
            ),
        ],
    }
}

fn peer_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i))
}

fn new_endpoint(seed: u64, start: Instant) -> Endpoint {
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        Arc::new(RingProvider),
        Box::new(SeededRandom::from_u64(seed)),
    );
    // 2027-06-01, inside the fixtures' validity.
    e.set_wall_clock(start, UNIX_EPOCH + Duration::from_secs(1_811_808_000));
    e
}

/// Answers SPI requests and drops the other events; returns the CHILD_SA installs seen.
fn drain_events(e: &mut Endpoint, now: Instant, next_spi: &mut u32) -> usize {
    let mut installs = 0;
    while let Some(event) = e.poll_event() {
        match event {
            Event::AllocateSpi { request, .. } => {
                *next_spi += 1;
                e.spi_allocated(now, request, *next_spi).unwrap();
            }
            Event::ChildSaInstall { .. } => installs += 1,
            _ => {}
        }
    }
    installs
}

struct Hub {
    endpoint: Endpoint,
    peers: Vec<PeerId>,
}

fn hub(configs: &[PeerConfig], start: Instant) -> Hub {
    let mut endpoint = new_endpoint(1, start);
    let peers = configs
        .iter()
        .map(|c| endpoint.add_peer(c.clone()).unwrap())
        .collect();
    Hub { endpoint, peers }
}

/// Which IKE SAs the hub initiates: the `i`-th peer's when `hub_initiates(i)`.
struct Split {
    name: &'static str,
    hub_initiates: fn(u32) -> bool,
}

fn main() {
    let splits = [
        Split {
            name: "half initiated by the hub, half by the peers",
            hub_initiates: |i| i % 2 == 0,
        },
        Split {
            name: "all initiated by the hub",
            hub_initiates: |_| true,
        },
        Split {
            name: "all initiated by the peers",
            hub_initiates: |_| false,
        },
    ];
    let mut worst = 0;
    for split in &splits {
        let per_sa = measure(split);
        println!(
            "engine_memory: {per_sa} bytes per established IKE SA with 2 CHILD_SAs, {} \
             (target {TARGET})",
            split.name
        );
        worst = worst.max(per_sa);
    }
    if worst > TARGET {
        eprintln!("engine_memory: above the target");
        std::process::exit(1);
    }
}

/// Bytes per established IKE SA of the hub for `split`.
fn measure(split: &Split) -> isize {
    let start = Instant::now();
    let hub_creds = credentials("chassis-1");
    let peer_creds = credentials("chassis-2");
    let trust = Arc::new(TrustStore::from_pem(&read("ca-bundle.pem")).unwrap());
    let hub_configs: Vec<PeerConfig> = (0..PEERS)
        .map(|i| {
            geneve(
                HUB,
                "chassis-1",
                peer_ip(i),
                "chassis-2",
                &hub_creds,
                &trust,
            )
        })
        .collect();
    let peer_configs: Vec<PeerConfig> = (0..PEERS)
        .map(|i| {
            geneve(
                peer_ip(i),
                "chassis-2",
                HUB,
                "chassis-1",
                &peer_creds,
                &trust,
            )
        })
        .collect();

    // The hub with its configurations only.
    let before = live();
    let empty = hub(&hub_configs, start);
    let configured = live() - before;
    drop(empty);

    // The hub with every IKE SA up.
    let mut hub = hub(&hub_configs, start);
    let mut peers: Vec<(Endpoint, PeerId)> = peer_configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut e = new_endpoint(100 + i as u64, start);
            let id = e.add_peer(c.clone()).unwrap();
            (e, id)
        })
        .collect();
    for (i, (peer, id)) in peers.iter_mut().enumerate() {
        if (split.hub_initiates)(i as u32) {
            hub.endpoint.initiate(start, hub.peers[i]).unwrap();
        } else {
            peer.initiate(start, *id).unwrap();
        }
    }
    let mut hub_spi = 0x1000_0000;
    let mut peer_spi = 0x2000_0000;
    let mut hub_installs = 0;
    for _ in 0..64 {
        let mut quiet = true;
        hub_installs += drain_events(&mut hub.endpoint, start, &mut hub_spi);
        while let Some(t) = hub.endpoint.poll_transmit() {
            quiet = false;
            let Some(i) = (0..PEERS).position(|i| peer_ip(i) == t.remote.ip()) else {
                continue;
            };
            peers[i]
                .0
                .handle_datagram(start, t.remote, t.local, &t.bytes);
        }
        for (peer, _) in &mut peers {
            drain_events(peer, start, &mut peer_spi);
            while let Some(t) = peer.poll_transmit() {
                quiet = false;
                hub.endpoint
                    .handle_datagram(start, t.remote, t.local, &t.bytes);
            }
        }
        if quiet {
            break;
        }
    }
    hub_installs += drain_events(&mut hub.endpoint, start, &mut hub_spi);
    let established = hub
        .endpoint
        .ike_sas()
        .filter(|&id| hub.endpoint.ike_sa_info(id).unwrap().state == "established")
        .count();
    assert_eq!(established, PEERS as usize, "every IKE SA is up");
    assert_eq!(hub_installs, 2 * PEERS as usize, "two CHILD_SAs each");

    let before = live();
    drop(hub);
    let full = before - live();
    let per_sa = (full - configured) / PEERS as isize;
    println!(
        "engine_memory: hub with {PEERS} peer configurations: {configured} bytes; with {PEERS} \
         established IKE SAs (2 CHILD_SAs each): {full} bytes"
    );
    drop(peers);
    per_sa
}
