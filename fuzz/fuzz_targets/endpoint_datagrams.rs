//! A sequence of datagrams, with time passing between them, fed to two endpoints that are in
//! the middle of a real handshake: a responder that has answered a real IKE_SA_INIT and an
//! initiator waiting for that answer. The datagrams are either arbitrary octets or real
//! messages of the same handshake (captured once from two endpoints with the same seeds, so
//! their keys match) with one field made wrong: exchange type, Message ID, SPIs, flags, Next
//! Payload, Length, one octet, or cut short. Nothing may panic, and each endpoint holds at
//! most one established IKE SA (a newer one replaces the older) and at most one half-open IKE
//! SA per datagram it was given.
//!
//! Input layout, repeated: one control octet (bit 0: which endpoint, or for a real message
//! whether it goes to the endpoint it was not meant for; bit 1: port 500 or 4500;
//! bit 2: real message or arbitrary octets, bits 3-7: milliseconds × 256 to advance), then
//! for arbitrary octets a two-octet length and that many octets, for a real message three
//! octets (which captured message, which mutation, its argument) and four more of argument.
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

fn drain(e: &mut Endpoint, now: Instant, who: usize) {
    while e.poll_transmit().is_some() {}
    answer_spis(e, now, who);
}

thread_local! {
    /// The next inbound SPI each endpoint (a, b) is handed; reset for every input so that a
    /// run is reproducible and a's and b's SPIs follow the captured run's.
    static NEXT_SPI: std::cell::Cell<[u32; 2]> = const { std::cell::Cell::new(FIRST_SPIS) };
}
const FIRST_SPIS: [u32; 2] = [0xa000_0001, 0xb000_0001];

/// Answers every SPI request of endpoint `who` (0 = a, 1 = b) like a kernel would: with an
/// SPI no other CHILD_SA of it has.
fn answer_spis(e: &mut Endpoint, now: Instant, who: usize) {
    while let Some(event) = e.poll_event() {
        if let ikev2::engine::Event::AllocateSpi { request, .. } = event {
            let spi = NEXT_SPI.with(|n| {
                let mut next = n.get();
                let spi = next[who];
                next[who] = spi.wrapping_add(1).max(1);
                n.set(next);
                spi
            });
            let _ = e.spi_allocated(now, request, spi);
        }
    }
}

/// A real datagram of the handshake between the two endpoints, and whether it went to `b`.
struct Captured {
    to_b: bool,
    bytes: Vec<u8>,
}

/// The messages of a whole life of the IKE SA between `a` and `b` as the fuzz target starts
/// them (same seeds): IKE_SA_INIT, IKE_AUTH in fragments, a liveness check, a CHILD_SA rekey,
/// the Delete. Made once.
fn captured() -> &'static [Captured] {
    static CAPTURED: OnceLock<Vec<Captured>> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let (a_config, b_config) = configs();
        let start = Instant::now();
        let (mut a, peer) = endpoint(1, a_config, start);
        let (mut b, b_peer) = endpoint(2, b_config, start);
        let mut log = Vec::new();
        a.initiate(start, peer).unwrap();

        let mut pump = |a: &mut Endpoint, b: &mut Endpoint, now: Instant| {
            for _ in 0..64 {
                answer_spis(a, now, 0);
                answer_spis(b, now, 1);
                let mut quiet = true;
                while let Some(t) = a.poll_transmit() {
                    quiet = false;
                    b.handle_datagram(now, t.remote, t.local, &t.bytes);
                    log.push(Captured {
                        to_b: true,
                        bytes: t.bytes,
                    });
                }
                while let Some(t) = b.poll_transmit() {
                    quiet = false;
                    a.handle_datagram(now, t.remote, t.local, &t.bytes);
                    log.push(Captured {
                        to_b: false,
                        bytes: t.bytes,
                    });
                }
                if quiet {
                    break;
                }
            }
        };
        pump(&mut a, &mut b, start);

        // DPD after 30 s of silence.
        let later = start + Duration::from_secs(31);
        a.handle_timeout(later);
        pump(&mut a, &mut b, later);

        // A rekey of b's CHILD_SA (every SPI answer is the same one), started by b.
        let _ = b.rekey_child(later, b_peer, 0xc000_0001);
        b.handle_timeout(later);
        pump(&mut a, &mut b, later);

        let _ = a.terminate(later, peer);
        pump(&mut a, &mut b, later);
        log
    })
}

/// `bytes` with one field made wrong by mutation `op` and its argument `arg`.
fn mutate(bytes: &[u8], op: u8, arg: [u8; 5]) -> Vec<u8> {
    let mut m = bytes.to_vec();
    let word = u32::from_be_bytes([arg[1], arg[2], arg[3], arg[4]]);
    match op % 12 {
        // Exchange Type.
        1 => m[18] = arg[0],
        // Message ID.
        2 => m[20..24].copy_from_slice(&word.to_be_bytes()),
        // Flags (I, V, R and the reserved bits).
        3 => m[19] ^= arg[0],
        // SPIi and SPIr swapped.
        4 => {
            let (i, r) = m.split_at_mut(8);
            i.swap_with_slice(&mut r[..8]);
        }
        // SPIr zero, as in a first IKE_SA_INIT.
        5 => m[8..16].fill(0),
        // Another SPIi.
        6 => m[4..8].copy_from_slice(&word.to_be_bytes()),
        // Next Payload.
        7 => m[16] = arg[0],
        // Cut short.
        8 => m.truncate(usize::from(u16::from_be_bytes([arg[1], arg[2]])) % (m.len() + 1)),
        // One octet anywhere.
        9 => {
            let at = usize::from(u16::from_be_bytes([arg[1], arg[2]])) % m.len();
            m[at] ^= arg[0] | 1;
        }
        // Length field.
        10 => m[24..28].copy_from_slice(&word.to_be_bytes()),
        // The next Message ID.
        11 => {
            let mid = u32::from_be_bytes([m[20], m[21], m[22], m[23]]).wrapping_add(1);
            m[20..24].copy_from_slice(&mid.to_be_bytes());
        }
        // As it was: a replay.
        _ => {}
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let captured = captured();
    NEXT_SPI.with(|n| n.set(FIRST_SPIS));
    let (a_config, b_config) = configs();
    let start = Instant::now();
    let (mut a, peer) = endpoint(1, a_config, start);
    let (mut b, _) = endpoint(2, b_config, start);

    // A real start: a's IKE_SA_INIT request reaches b, b answers; a waits for the answer.
    a.initiate(start, peer).unwrap();
    if let Some(request) = a.poll_transmit() {
        b.handle_datagram(start, request.remote, request.local, &request.bytes);
    }
    drain(&mut b, start, 1);

    let mut now = start;
    let mut rest = data;
    let mut given = [0usize; 2];
    while let [control, tail @ ..] = rest {
        let mut which = usize::from(control & 1);
        let datagram = if control & 4 == 0 {
            let [hi, lo, tail @ ..] = tail else { break };
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
            let (datagram, next) = tail.split_at(len);
            rest = next;
            datagram.to_vec()
        } else {
            let [index, op, a0, a1, a2, a3, a4, next @ ..] = tail else {
                break;
            };
            rest = next;
            let Some(real) = captured.get(usize::from(*index) % captured.len().max(1)) else {
                continue;
            };
            // Bit 0 sends it to the endpoint it was not meant for.
            which ^= usize::from(real.to_b);
            mutate(&real.bytes, *op, [*a0, *a1, *a2, *a3, *a4])
        };
        now += Duration::from_millis(u64::from(control >> 3) * 256);
        let port = if control & 2 == 0 { 500 } else { 4500 };
        let datagram = if port == 4500 && control & 4 != 0 {
            // A real message on the NAT-T port comes with the non-ESP marker.
            [&[0u8; 4][..], &datagram].concat()
        } else {
            datagram
        };
        let (target, local, remote) = if which == 0 {
            (&mut a, A, B)
        } else {
            (&mut b, B, A)
        };
        target.handle_datagram(
            now,
            SocketAddr::new(local, port),
            SocketAddr::new(remote, port),
            &datagram,
        );
        target.handle_timeout(now);
        drain(target, now, which);
        given[which] += 1;

        let established = target
            .ike_sas()
            .filter(|&id| {
                target
                    .ike_sa_info(id)
                    .is_some_and(|i| i.state == "established")
            })
            .count();
        assert!(established <= 1, "{established} established IKE SAs");
        assert!(target.ike_sas().count() <= 1 + given[which]);
    }
});
