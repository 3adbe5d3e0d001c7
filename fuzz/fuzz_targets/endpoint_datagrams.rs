//! A sequence of arbitrary datagrams, with time passing between them, fed to two endpoints
//! that are in the middle of a real handshake: a responder that has answered a real
//! IKE_SA_INIT and an initiator waiting for that answer. Nothing may panic, and each endpoint
//! keeps at most one IKE SA with its one peer.
//!
//! Input layout, repeated: one control octet (bit 0: which endpoint, bit 1: port 500 or
//! 4500, bits 2-7: milliseconds × 64 to advance), a two-octet length, that many octets.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use ikev2::auth::{Certificate, Identity, PrivateKey, TrustStore};
use ikev2::crypto::{RingProvider, SeededRandom};
use ikev2::engine::timers::Lifetime;
use ikev2::engine::traffic_selector::{TrafficSelector, IPPROTO_UDP};
use ikev2::engine::{
    ChildConfig, Credentials, Endpoint, EndpointConfig, EspProposal, IkeProposal, Mode, PeerConfig,
    PeerId,
};
use ikev2::registry::KeGroup;
use libfuzzer_sys::fuzz_target;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn pki(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../ikev2/tests/fixtures/pki/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).expect("PKI fixture")
}

/// Parsing RSA keys is slow; both configurations are made once.
fn configs() -> &'static (PeerConfig, PeerConfig) {
    static CONFIGS: OnceLock<(PeerConfig, PeerConfig)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let trust = Arc::new(TrustStore::from_pem(&pki("ca-bundle.pem")).unwrap());
        let config = |local: IpAddr, us: &str, remote: IpAddr, them: &str| {
            let lifetime = Lifetime {
                soft: Duration::from_secs(3600),
                hard: Duration::from_secs(4000),
                jitter: Duration::from_secs(60),
            };
            PeerConfig {
                name: them.into(),
                local: SocketAddr::new(local, 500),
                remote: SocketAddr::new(remote, 500),
                local_id: Identity::Fqdn(us.into()),
                remote_id: Identity::Fqdn(them.into()),
                credentials: Credentials {
                    chain: vec![Certificate::from_pem(&pki(&format!("{us}-cert.pem"))).unwrap()],
                    key: Arc::new(
                        PrivateKey::from_pem(
                            &pki(&format!("{us}-privkey.pem")),
                            &ring::rand::SystemRandom::new(),
                        )
                        .unwrap(),
                    ),
                },
                trusted_cas: trust.clone(),
                ike_proposals: vec![IkeProposal {
                    ke: vec![KeGroup::CURVE25519],
                    ..IkeProposal::aes256gcm16_sha256_modp2048()
                }],
                ike_lifetime: lifetime,
                reauth_interval: None,
                dpd_interval: Some(Duration::from_secs(30)),
                force_udp_encap: false,
                children: vec![ChildConfig {
                    name: "geneve".into(),
                    esp_proposals: vec![EspProposal::aes256gcm16()],
                    local_ts: vec![TrafficSelector::host_protocol(local, IPPROTO_UDP)],
                    remote_ts: vec![TrafficSelector::host_protocol(remote, IPPROTO_UDP)],
                    mode: Mode::Transport,
                    lifetime,
                }],
            }
        };
        (
            config(A, "chassis-1", B, "chassis-2"),
            config(B, "chassis-2", A, "chassis-1"),
        )
    })
}

fn endpoint(seed: u64, config: &PeerConfig, start: Instant) -> (Endpoint, PeerId) {
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        Arc::new(RingProvider),
        Box::new(SeededRandom::from_u64(seed)),
    );
    // 2027-06-01, inside the fixtures' validity.
    e.set_wall_clock(start, UNIX_EPOCH + Duration::from_secs(1_811_808_000));
    let peer = e.add_peer(config.clone()).unwrap();
    (e, peer)
}

fn drain(e: &mut Endpoint, now: Instant) {
    while e.poll_transmit().is_some() {}
    while let Some(event) = e.poll_event() {
        if let ikev2::engine::Event::AllocateSpi { request, .. } = event {
            let _ = e.spi_allocated(now, request, 0xc000_0001);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (a_config, b_config) = configs();
    let start = Instant::now();
    let (mut a, peer) = endpoint(1, a_config, start);
    let (mut b, _) = endpoint(2, b_config, start);

    // A real start: a's IKE_SA_INIT request reaches b, b answers; a waits for the answer.
    a.initiate(start, peer).unwrap();
    if let Some(request) = a.poll_transmit() {
        b.handle_datagram(start, request.remote, request.local, &request.bytes);
    }
    drain(&mut b, start);

    let mut now = start;
    let mut rest = data;
    while let [control, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(control >> 2) * 64);
        let port = if control & 2 == 0 { 500 } else { 4500 };
        let (target, local, remote) = if control & 1 == 0 {
            (&mut a, A, B)
        } else {
            (&mut b, B, A)
        };
        target.handle_datagram(
            now,
            SocketAddr::new(local, port),
            SocketAddr::new(remote, port),
            datagram,
        );
        target.handle_timeout(now);
        drain(target, now);
        assert!(target.ike_sas().count() <= 1);
    }
});
