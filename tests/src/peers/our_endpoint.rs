//! Our IKEv2 engine (`ikev2::engine::Endpoint`) as a peer in the harness: a small test-only
//! driver with std UDP sockets on ports 500 and 4500 bound inside a namespace, a thread that
//! feeds the engine datagrams and timeouts, and a record of every event it emitted.
//!
//! The host kernel has no ESP, so the driver answers `AllocateSpi` with made-up SPIs and
//! installs nothing: `ChildSaInstall` events are only recorded.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ikev2::auth::{Certificate, Identity, PrivateKey, TrustStore};
use ikev2::crypto::{OsRandom, RingProvider};
use ikev2::engine::timers::Lifetime;
use ikev2::engine::traffic_selector::IPPROTO_UDP;
use ikev2::engine::{
    ChildConfig, Credentials, Endpoint, EndpointConfig, EspProposal, Event, IkeProposal, Mode,
    PeerConfig, PeerId, TrafficSelector, IKE_PORT, NAT_T_PORT,
};
use ikev2::registry::KeGroup;

use super::{wait_for, ChassisConfig, Netns, PeerError, Pki, GENEVE_PORT};

/// Largest UDP payload read from a socket (IKE messages are fragmented well below this).
const MAX_DATAGRAM: usize = 65_535;

/// Longest the driver thread sleeps without looking at commands or the stop flag.
const MAX_IDLE: Duration = Duration::from_millis(50);

/// Fake inbound SPIs handed to the engine start here (the kernel would allocate them).
const FIRST_FAKE_SPI: u32 = 0xc000_0001;

/// One event the engine emitted, with when the driver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Time since the driver started.
    pub at: Duration,
    /// The event.
    pub event: Event,
}

/// What the driver thread is fed besides the engine's own timers.
enum Input {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    Initiate(PeerId),
    Stop,
}

/// Our engine running in a namespace for one chassis, configured like ovs-monitor-ipsec
/// configures a tunnel (one peer per remote chassis, children "in" and "out").
pub struct OurEndpoint {
    config: ChassisConfig,
    peers: Vec<(String, PeerId)>,
    inputs: Sender<Input>,
    events: Arc<Mutex<Vec<Recorded>>>,
    started: Instant,
    driver: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// The peer configuration ovs-monitor-ipsec would write for the tunnel from `local` (chassis
/// `us`) to `remote` (chassis `them`): strongSwan's `aes256gcm16-sha256-modp2048`, ESP
/// `aes256gcm16-modp2048` (PFS in CREATE_CHILD_SA, as both daemons do), transport children
/// "in" (Geneve port on our side) and "out", FQDN identities = chassis names.
pub fn ovs_monitor_ipsec_peer(
    us: &str,
    local: IpAddr,
    them: &str,
    remote: IpAddr,
    credentials: Credentials,
    trusted_cas: Arc<TrustStore>,
) -> PeerConfig {
    // ipsec.conf defaults: IKE SA 3 h (margin 9 min), CHILD_SA 1 h (margin 9 min).
    let ike_lifetime = Lifetime {
        soft: Duration::from_secs(3 * 3600 - 540),
        hard: Duration::from_secs(3 * 3600),
        jitter: Duration::from_secs(540),
    };
    let child_lifetime = Lifetime {
        soft: Duration::from_secs(3600 - 540),
        hard: Duration::from_secs(3600),
        jitter: Duration::from_secs(540),
    };
    let mut esp = EspProposal::aes256gcm16();
    esp.ke = vec![KeGroup::MODP_2048];
    let child = |name: &str, local_ts, remote_ts| ChildConfig {
        name: name.into(),
        esp_proposals: vec![esp.clone()],
        local_ts: vec![local_ts],
        remote_ts: vec![remote_ts],
        mode: Mode::Transport,
        lifetime: child_lifetime,
    };
    PeerConfig {
        name: them.into(),
        local: SocketAddr::new(local, IKE_PORT),
        remote: SocketAddr::new(remote, IKE_PORT),
        local_id: Identity::Fqdn(us.into()),
        remote_id: Identity::Fqdn(them.into()),
        credentials,
        trusted_cas,
        ike_proposals: vec![IkeProposal::aes256gcm16_sha256_modp2048()],
        ike_lifetime,
        reauth_interval: None,
        dpd_interval: None,
        force_udp_encap: false,
        children: vec![
            child(
                "out",
                TrafficSelector::host_protocol(local, IPPROTO_UDP),
                TrafficSelector::host_port(remote, IPPROTO_UDP, GENEVE_PORT),
            ),
            child(
                "in",
                TrafficSelector::host_port(local, IPPROTO_UDP, GENEVE_PORT),
                TrafficSelector::host_protocol(remote, IPPROTO_UDP),
            ),
        ],
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, PeerError> {
    std::fs::read(path).map_err(|source| PeerError::File {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })
}

fn engine_error(what: &str, error: impl std::fmt::Display) -> PeerError {
    PeerError::File {
        what: "configuring our endpoint",
        path: what.into(),
        source: std::io::Error::other(error.to_string()),
    }
}

impl OurEndpoint {
    /// Starts our engine for chassis `config` in `ns`, with its certificate from `pki`.
    pub fn start(ns: &Netns, pki: &Pki, config: ChassisConfig) -> Result<OurEndpoint, PeerError> {
        let cert = pki
            .chassis(&config.name)
            .ok_or_else(|| engine_error(&config.name, "no certificate in the PKI"))?;
        let chain = Certificate::all_from_pem(&read(&cert.cert)?)
            .map_err(|e| engine_error("certificate", e))?;
        let key = PrivateKey::from_pem(&read(&cert.key)?, &ring::rand::SystemRandom::new())
            .map_err(|e| engine_error("private key", e))?;
        let trust = Arc::new(
            TrustStore::from_pem(&read(&pki.ca_bundle())?)
                .map_err(|e| engine_error("CA bundle", e))?,
        );
        let credentials = Credentials {
            chain,
            key: Arc::new(key),
        };

        let started = Instant::now();
        let mut endpoint = Endpoint::new(
            EndpointConfig::default(),
            Arc::new(RingProvider),
            Box::new(OsRandom::new()),
        );
        endpoint.set_wall_clock(started, SystemTime::now());
        let mut peers = Vec::new();
        for remote in &config.remote_peers {
            let peer = ovs_monitor_ipsec_peer(
                &config.name,
                config.local_ip,
                &remote.name,
                remote.ip,
                credentials.clone(),
                trust.clone(),
            );
            // ovs-monitor-ipsec's forceencaps=yes / encapsulation=yes.
            let peer = PeerConfig {
                force_udp_encap: config.force_encaps,
                ..peer
            };
            let id = endpoint
                .add_peer(peer)
                .map_err(|e| engine_error(&remote.name, e))?;
            peers.push((remote.name.clone(), id));
        }

        let ip = config.local_ip;
        let sockets = ns.run_in(move || -> std::io::Result<(UdpSocket, UdpSocket)> {
            Ok((
                UdpSocket::bind(SocketAddr::new(ip, IKE_PORT))?,
                UdpSocket::bind(SocketAddr::new(ip, NAT_T_PORT))?,
            ))
        })?;
        let (ike, nat_t) = sockets.map_err(|source| PeerError::File {
            what: "binding UDP 500/4500 in",
            path: ns.name().into(),
            source,
        })?;

        let (inputs, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for socket in [&ike, &nat_t] {
            let reader = socket
                .try_clone()
                .and_then(|r| r.set_read_timeout(Some(MAX_IDLE)).map(|()| r))
                .map_err(|source| PeerError::File {
                    what: "cloning socket in",
                    path: ns.name().into(),
                    source,
                })?;
            let tx = inputs.clone();
            let stop = stop.clone();
            readers.push(std::thread::spawn(move || read_loop(reader, tx, &stop)));
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorded = events.clone();
        let driver = std::thread::spawn(move || {
            drive(endpoint, ike, nat_t, rx, recorded, started);
        });
        Ok(OurEndpoint {
            config,
            peers,
            inputs,
            events,
            started,
            driver: Some(driver),
            readers,
            stop,
        })
    }

    /// The chassis configuration this endpoint runs.
    pub fn config(&self) -> &ChassisConfig {
        &self.config
    }

    fn peer_id(&self, name: &str) -> Result<PeerId, PeerError> {
        self.peers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or_else(|| engine_error(name, "no such remote chassis"))
    }

    /// Starts IKE_SA_INIT towards the remote chassis `peer` (IKE_AUTH with child "out" and a
    /// CREATE_CHILD_SA for "in" follow by themselves).
    pub fn initiate(&self, peer: &str) -> Result<(), PeerError> {
        let id = self.peer_id(peer)?;
        self.inputs
            .send(Input::Initiate(id))
            .map_err(|e| engine_error(peer, e))
    }

    /// Every event the engine emitted so far.
    pub fn events(&self) -> Vec<Recorded> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The first `IkeSaUp` for `peer`, waiting up to `timeout`.
    pub fn wait_for_ike_sa_up(&self, peer: &str, timeout: Duration) -> Result<Recorded, PeerError> {
        let id = self.peer_id(peer)?;
        let up = |r: &Recorded| matches!(r.event, Event::IkeSaUp { peer: p, .. } if p == id);
        wait_for(
            &format!("our endpoint to bring up an IKE SA with {peer}"),
            timeout,
            || Ok(self.events().iter().any(up)),
        )?;
        self.events()
            .into_iter()
            .find(up)
            .ok_or_else(|| engine_error(peer, "IkeSaUp vanished"))
    }

    /// Time since the endpoint started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for OurEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.inputs.send(Input::Stop);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

fn read_loop(socket: UdpSocket, inputs: Sender<Input>, stop: &AtomicBool) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let (len, remote) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let bytes = buffer.get(..len).unwrap_or_default().to_vec();
        let input = Input::Datagram {
            local,
            remote,
            bytes,
        };
        if inputs.send(input).is_err() {
            return;
        }
    }
}

fn drive(
    mut endpoint: Endpoint,
    ike: UdpSocket,
    nat_t: UdpSocket,
    inputs: Receiver<Input>,
    events: Arc<Mutex<Vec<Recorded>>>,
    started: Instant,
) {
    let mut next_spi = FIRST_FAKE_SPI;
    loop {
        // Drain output.
        loop {
            let mut progressed = false;
            while let Some(transmit) = endpoint.poll_transmit() {
                progressed = true;
                let socket = if transmit.local.port() == NAT_T_PORT {
                    &nat_t
                } else {
                    &ike
                };
                if let Err(error) = socket.send_to(&transmit.bytes, transmit.remote) {
                    tracing::warn!(%error, remote = %transmit.remote, "send failed");
                }
            }
            while let Some(event) = endpoint.poll_event() {
                progressed = true;
                if let Event::AllocateSpi { request, .. } = &event {
                    let spi = next_spi;
                    next_spi = next_spi.wrapping_add(1);
                    let _ = endpoint.spi_allocated(Instant::now(), *request, spi);
                }
                if let Ok(mut recorded) = events.lock() {
                    recorded.push(Recorded {
                        at: started.elapsed(),
                        event,
                    });
                }
            }
            if !progressed {
                break;
            }
        }

        let now = Instant::now();
        let wait = endpoint
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        match inputs.recv_timeout(wait) {
            Ok(Input::Datagram {
                local,
                remote,
                bytes,
            }) => endpoint.handle_datagram(Instant::now(), local, remote, &bytes),
            Ok(Input::Initiate(peer)) => {
                if let Err(error) = endpoint.initiate(Instant::now(), peer) {
                    tracing::warn!(%error, "initiate refused");
                }
            }
            Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if endpoint.poll_timeout().is_some_and(|t| t <= now) {
            endpoint.handle_timeout(now);
        }
    }
}
