//! Full handshakes per second in one process: IKE_SA_INIT, IKE_AUTH with RSA-2048 or ECDSA
//! P-256 certificates and one CHILD_SA, both endpoints in the simulated network; next to the
//! bare crypto floor of one handshake measured in the same run (two key exchanges, two
//! signatures, two verifications).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use ikev2::auth::{
    choose_auth_scheme, signed_octets, verify_auth, Certificate, Identity, PrivateKey, RsaPadding,
    TrustStore, OUR_HASH_ALGORITHMS,
};
use ikev2::crypto::{KeMethod, KeyExchange, RingProvider, SeededRandom};
use ikev2::engine::sim::{Chassis, Conditions, Network};
use ikev2::engine::timers::Lifetime;
use ikev2::engine::traffic_selector::{TrafficSelector, IPPROTO_UDP};
use ikev2::engine::{
    ChildConfig, Credentials, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, Mode,
    PeerConfig,
};
use ring::rand::SystemRandom;

const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ikev2/tests/fixtures/pki");
const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PKI}/{name}")).unwrap()
}

fn credentials(cert: &str, key: &str) -> Credentials {
    Credentials {
        chain: vec![Certificate::from_pem(&read(cert)).unwrap()],
        key: Arc::new(PrivateKey::from_pem(&read(key), &SystemRandom::new()).unwrap()),
    }
}

fn lifetime() -> Lifetime {
    Lifetime {
        soft: Duration::from_secs(3600),
        hard: Duration::from_secs(4000),
        jitter: Duration::ZERO,
    }
}

/// `local`'s configuration for `remote`, with one transport CHILD_SA for Geneve whose
/// selectors `geneve_local` puts the Geneve port on our side or theirs.
fn peer(
    local: IpAddr,
    us: &str,
    remote: IpAddr,
    them: &str,
    creds: Credentials,
    geneve_local: bool,
) -> PeerConfig {
    let (l, r) = if geneve_local {
        (
            TrafficSelector::host_port(local, IPPROTO_UDP, 6081),
            TrafficSelector::host_protocol(remote, IPPROTO_UDP),
        )
    } else {
        (
            TrafficSelector::host_protocol(local, IPPROTO_UDP),
            TrafficSelector::host_port(remote, IPPROTO_UDP, 6081),
        )
    };
    PeerConfig {
        name: them.into(),
        local: SocketAddr::new(local, 500),
        remote: SocketAddr::new(remote, 500),
        local_id: Identity::Fqdn(us.into()),
        remote_id: Identity::Fqdn(them.into()),
        credentials: creds,
        trusted_cas: Arc::new(TrustStore::from_pem(&read("ca-bundle.pem")).unwrap()),
        ike_proposals: vec![IkeProposal::aes256gcm16_sha256_modp2048()],
        ike_lifetime: lifetime(),
        reauth_interval: None,
        dpd_interval: None,
        force_udp_encap: false,
        children: vec![ChildConfig {
            name: "geneve".into(),
            esp_proposals: vec![EspProposal::aes256gcm16()],
            local_ts: vec![l],
            remote_ts: vec![r],
            mode: Mode::Transport,
            lifetime: lifetime(),
        }],
    }
}

/// One full handshake; returns the CHILD_SA installs seen (2: one per side).
fn handshake(seed: u64, a_config: &PeerConfig, b_config: &PeerConfig) -> usize {
    let start = Instant::now();
    // 2027-06-01, inside the fixtures' validity.
    let wall = UNIX_EPOCH + Duration::from_secs(1_811_808_000);
    let endpoint = |s: u64, config: &PeerConfig| {
        let mut e = Endpoint::new(
            EndpointConfig::default(),
            Arc::new(RingProvider),
            Box::new(SeededRandom::from_u64(s)),
        );
        e.set_wall_clock(start, wall);
        let id = e.add_peer(config.clone()).unwrap();
        (e, id)
    };
    let (a, peer) = endpoint(seed, a_config);
    let (b, _) = endpoint(seed ^ 0x5555, b_config);
    let conditions = Conditions {
        mtu: 9000,
        ..Conditions::default()
    };
    let mut net = Network::new(start, seed, conditions);
    let a = net.add_node(&[A], Chassis::new(a, 1));
    let b = net.add_node(&[B], Chassis::new(b, 1));
    net.node_mut(a).endpoint.initiate(start, peer).unwrap();
    net.run_for(Duration::from_secs(1), 1000);
    [a, b]
        .iter()
        .map(|&n| {
            net.node(n)
                .events
                .iter()
                .filter(|e| matches!(e, Event::ChildSaInstall { .. }))
                .count()
        })
        .sum()
}

/// The cryptography one handshake cannot avoid, both sides together: two MODP-2048 key
/// pairs and shared secrets, two AUTH signatures, and each checked with its certificate.
fn crypto_floor(a: &Credentials, b: &Credentials) {
    let mut rng = SeededRandom::from_u64(1);
    let ke_a = KeyExchange::generate(KeMethod::Modp2048, &mut rng).unwrap();
    let ke_b = KeyExchange::generate(KeMethod::Modp2048, &mut rng).unwrap();
    ke_a.agree(ke_b.public_value()).unwrap();
    ke_b.agree(ke_a.public_value()).unwrap();
    let octets = signed_octets(&[0x5a; 450], &[0x4e; 32], &[0x4d; 32]);
    let os = SystemRandom::new();
    for signer in [a, b] {
        let scheme = choose_auth_scheme(
            signer.key.key_type(),
            Some(&OUR_HASH_ALGORITHMS),
            RsaPadding::Pkcs1v15,
        )
        .unwrap();
        let auth = signer.key.sign_auth(scheme, &octets, &os).unwrap();
        verify_auth(&signer.chain[0], auth.method, &auth.data, &octets).unwrap();
    }
}

fn bench_pair(c: &mut Criterion, name: &str, a: (&str, &str, &str), b: (&str, &str, &str)) {
    let ca = credentials(a.1, a.2);
    let cb = credentials(b.1, b.2);
    let a_config = peer(A, a.0, B, b.0, ca.clone(), true);
    let b_config = peer(B, b.0, A, a.0, cb.clone(), false);
    assert_eq!(
        handshake(1, &a_config, &b_config),
        2,
        "handshake must complete"
    );

    let mut seed = 0;
    c.bench_function(&format!("engine/handshake/{name}"), |bench| {
        bench.iter(|| {
            seed += 1;
            handshake(seed, &a_config, &b_config)
        })
    });
    c.bench_function(&format!("engine/crypto_floor/{name}"), |bench| {
        bench.iter(|| crypto_floor(&ca, &cb))
    });
}

fn handshakes(c: &mut Criterion) {
    bench_pair(
        c,
        "rsa2048-modp2048",
        ("chassis-1", "chassis-1-cert.pem", "chassis-1-privkey.pem"),
        ("chassis-2", "chassis-2-cert.pem", "chassis-2-privkey.pem"),
    );
    // The fixtures have one P-256 chassis; it plays both ends.
    let ec = (
        "chassis-ec",
        "chassis-ec-cert.pem",
        "chassis-ec-pkcs8-privkey.pem",
    );
    bench_pair(c, "ecdsa-p256-modp2048", ec, ec);
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
