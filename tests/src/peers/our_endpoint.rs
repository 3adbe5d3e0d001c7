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
    ChildConfig, Credentials, DownReason, Endpoint, EndpointConfig, EspProposal, Event,
    IkeProposal, IkeSaId, Mode, PeerConfig, PeerId, TrafficSelector, IKE_PORT, NAT_T_PORT,
};
use ikev2::registry::KeGroup;

use super::{wait_for, ChassisConfig, IkePeer, Netns, PeerError, Pki, GENEVE_PORT};

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

/// `events` one a line with the time each was seen: what a failing test prints.
pub fn dump(events: &[Recorded]) -> String {
    events
        .iter()
        .map(|r| format!("{:>10.3?} {:?}", r.at, r.event))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many of `events` satisfy `f`.
pub fn count(events: &[Recorded], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|r| f(&r.event)).count()
}

/// The IKE SA rekeys among `events`, in order: (the replaced IKE SA, the new one).
pub fn ike_sa_rekeys(events: &[Recorded]) -> Vec<(IkeSaId, IkeSaId)> {
    events
        .iter()
        .filter_map(|r| match r.event {
            Event::IkeSaRekeyed {
                old_ike_sa,
                new_ike_sa,
                ..
            } => Some((old_ike_sa, new_ike_sa)),
            _ => None,
        })
        .collect()
}

/// The IKE SAs that went down among `events`, in order, with why.
pub fn ike_sa_downs(events: &[Recorded]) -> Vec<(IkeSaId, DownReason)> {
    events
        .iter()
        .filter_map(|r| match r.event {
            Event::IkeSaDown { ike_sa, reason, .. } => Some((ike_sa, reason)),
            _ => None,
        })
        .collect()
}

/// What the driver thread is fed besides the engine's own timers.
enum Input {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    Initiate(PeerId),
    RekeyIke(PeerId),
    Reauthenticate(PeerId),
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
    /// Starts our engine for chassis `config` in `ns`, with its certificate from `pki`,
    /// answering `AllocateSpi` with made-up SPIs and installing nothing (the host kernel).
    pub fn start(ns: &Netns, pki: &Pki, config: ChassisConfig) -> Result<OurEndpoint, PeerError> {
        Self::start_with(ns, pki, config, false)
    }

    /// Like [`start`](Self::start), but SPIs are allocated and CHILD_SAs installed (states and
    /// policies) in the namespace's kernel with the `xfrm` crate: for a kernel with ESP.
    pub fn start_installing(
        ns: &Netns,
        pki: &Pki,
        config: ChassisConfig,
    ) -> Result<OurEndpoint, PeerError> {
        Self::start_with(ns, pki, config, true)
    }

    fn start_with(
        ns: &Netns,
        pki: &Pki,
        config: ChassisConfig,
        install: bool,
    ) -> Result<OurEndpoint, PeerError> {
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
        let kernel = if install {
            let kernel = ns
                .run_in(KernelSas::open)?
                .map_err(|e| engine_error("xfrm netlink", e))?;
            Some(kernel)
        } else {
            None
        };
        let (ike, nat_t) = sockets.map_err(|source| PeerError::File {
            what: "binding UDP 500/4500 in",
            path: ns.name().into(),
            source,
        })?;
        if install {
            esp_in_udp(&nat_t).map_err(|source| PeerError::File {
                what: "setting UDP_ENCAP on port 4500 in",
                path: ns.name().into(),
                source,
            })?;
        }

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
            drive(endpoint, ike, nat_t, rx, recorded, started, kernel);
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

    /// Rekeys the IKE SA with the remote chassis `peer` (RFC 7296 §2.18).
    pub fn rekey_ike(&self, peer: &str) -> Result<(), PeerError> {
        let id = self.peer_id(peer)?;
        self.inputs
            .send(Input::RekeyIke(id))
            .map_err(|e| engine_error(peer, e))
    }

    /// Reauthenticates with the remote chassis `peer` (RFC 7296 §2.8.3): a new IKE SA, then
    /// the old one deleted.
    pub fn reauthenticate(&self, peer: &str) -> Result<(), PeerError> {
        let id = self.peer_id(peer)?;
        self.inputs
            .send(Input::Reauthenticate(id))
            .map_err(|e| engine_error(peer, e))
    }

    /// Every event the engine emitted so far.
    pub fn events(&self) -> Vec<Recorded> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Initiates to `peer` and waits up to `timeout` for the IKE SA at both ends, then a
    /// second more so that the CREATE_CHILD_SA of the tunnel's second child (refused on a
    /// host without ESP) is over; returns our IKE SA. For tests: panics on a failure.
    pub fn first_ike_sa_with(&self, peer: &dyn IkePeer, timeout: Duration) -> IkeSaId {
        let them = &peer.config().name;
        self.initiate(them).unwrap_or_else(|e| panic!("{e}"));
        let up = self
            .wait_for_ike_sa_up(them, timeout)
            .unwrap_or_else(|e| panic!("{e}\n{} log:\n{}", peer.label(), peer.log()));
        peer.wait_for_ike_sa(&self.config.name, timeout)
            .unwrap_or_else(|e| panic!("{e}\n{}", peer.log()));
        std::thread::sleep(Duration::from_secs(1));
        let Event::IkeSaUp { ike_sa, .. } = up.event else {
            panic!("wait_for_ike_sa_up returned {:?}", up.event)
        };
        ike_sa
    }

    /// After a reauthentication (RFC 7296 §2.8.3) of `old`, waits up to `timeout` for the
    /// second IKE SA to come up and `old` to go. For tests: on a timeout it panics with our
    /// events and `peer`'s log.
    pub fn wait_for_reauthentication(&self, peer: &dyn IkePeer, old: IkeSaId, timeout: Duration) {
        wait_for("a second IKE SA and the first gone", timeout, || {
            let events = self.events();
            let ups = count(&events, |e| matches!(e, Event::IkeSaUp { .. }));
            Ok(ups == 2 && ike_sa_downs(&events).iter().any(|(id, _)| *id == old))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nour events:\n{}\n{} log:\n{}",
                dump(&self.events()),
                peer.label(),
                peer.log()
            )
        });
    }

    /// Waits up to `timeout` for the `n`-th IKE SA rekey, checks that it replaced `old`, then
    /// for `old` to go down as rekeyed; returns the new IKE SA. For tests: on a timeout or
    /// another replaced IKE SA it panics with our events and `peer`'s log.
    pub fn wait_for_ike_sa_rekey(
        &self,
        peer: &dyn IkePeer,
        n: usize,
        old: IkeSaId,
        timeout: Duration,
    ) -> IkeSaId {
        let fail = |e: PeerError| -> ! {
            panic!(
                "{e}\nour events:\n{}\n{} log:\n{}",
                dump(&self.events()),
                peer.label(),
                peer.log()
            )
        };
        wait_for(&format!("IKE SA rekey {n}"), timeout, || {
            Ok(ike_sa_rekeys(&self.events()).len() >= n)
        })
        .unwrap_or_else(|e| fail(e));
        let rekeys = ike_sa_rekeys(&self.events());
        let Some(&(replaced, new)) = n.checked_sub(1).and_then(|i| rekeys.get(i)) else {
            panic!("no IKE SA rekey {n}:\n{}", dump(&self.events()))
        };
        assert_eq!(replaced, old, "{}", dump(&self.events()));
        wait_for("the replaced IKE SA to go", timeout, || {
            Ok(ike_sa_downs(&self.events()).contains(&(old, DownReason::Rekeyed)))
        })
        .unwrap_or_else(|e| fail(e));
        new
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
    kernel: Option<KernelSas>,
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
                    // The engine retransmits; say why the first try was lost.
                    eprintln!(
                        "our endpoint: sending to {} failed: {error}",
                        transmit.remote
                    );
                }
            }
            while let Some(event) = endpoint.poll_event() {
                progressed = true;
                match (&event, &kernel) {
                    (Event::AllocateSpi { request, .. }, None) => {
                        let spi = next_spi;
                        next_spi = next_spi.wrapping_add(1);
                        let _ = endpoint.spi_allocated(Instant::now(), *request, spi);
                    }
                    (
                        Event::AllocateSpi {
                            request,
                            local,
                            remote,
                            ..
                        },
                        Some(kernel),
                    ) => match kernel.alloc_spi(local.ip(), remote.ip()) {
                        Ok(spi) => {
                            let _ = endpoint.spi_allocated(Instant::now(), *request, spi);
                        }
                        Err(error) => tracing::warn!(%error, "allocating an SPI"),
                    },
                    (Event::ChildSaInstall { .. }, Some(kernel)) => {
                        if let Err(error) = kernel.install(&event, &endpoint) {
                            tracing::warn!(%error, "installing a CHILD_SA");
                            if let Ok(mut recorded) = events.lock() {
                                recorded.push(Recorded {
                                    at: started.elapsed(),
                                    event: event.clone(),
                                });
                            }
                            eprintln!("installing a CHILD_SA failed: {error}");
                        }
                    }
                    _ => {}
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
            Ok(Input::RekeyIke(peer)) => {
                if let Err(error) = endpoint.rekey_ike(Instant::now(), peer) {
                    tracing::warn!(%error, "IKE SA rekey refused");
                }
            }
            Ok(Input::Reauthenticate(peer)) => {
                if let Err(error) = endpoint.reauthenticate(Instant::now(), peer) {
                    tracing::warn!(%error, "reauthentication refused");
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

/// `UDP_ENCAP_ESPINUDP` (linux/udp.h): RFC 3948 ESP-in-UDP with the non-ESP marker.
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

/// Makes the kernel take ESP-in-UDP arriving on the NAT-T socket for XFRM and hand only
/// non-ESP-marked (IKE) datagrams to the socket, as charon and pluto do on port 4500.
fn esp_in_udp(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = UDP_ENCAP_ESPINUDP;
    // SAFETY: setsockopt(2) on a socket we own, with a c_int option value and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_UDP,
            libc::UDP_ENCAP,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// reqid of the "out" child's states and policies; "in" uses the next one.
// Limitation: one reqid per child name, so one IKE SA per namespace; a rekeyed CHILD_SA
// would replace the policies of the old one, and `ChildSaDelete` removes nothing (the
// namespace goes away with the test).
const REQID_OUT: u32 = 0x0a01;

/// Our CHILD_SAs in a namespace's kernel, through the `xfrm` crate (netlink opened inside the
/// namespace; a current-thread runtime drives it from the driver thread).
struct KernelSas {
    runtime: tokio::runtime::Runtime,
    kernel: xfrm::Kernel,
}

impl KernelSas {
    fn open() -> Result<KernelSas, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let ownership = xfrm::Ownership::reqids(REQID_OUT..=REQID_OUT + 1);
        let kernel = runtime
            .block_on(xfrm::Kernel::connect(ownership))
            .map_err(|e| e.to_string())?;
        Ok(KernelSas { runtime, kernel })
    }

    fn alloc_spi(&self, local: IpAddr, remote: IpAddr) -> Result<u32, xfrm::Error> {
        let request = xfrm::SpiRequest {
            src: remote,
            dst: local,
            reqid: REQID_OUT,
            mode: xfrm::Mode::Transport,
            mark: None,
            range: xfrm::SpiRange::full(),
        };
        self.runtime.block_on(self.kernel.alloc_spi(request))
    }

    /// Both states of a `ChildSaInstall` and the out/in policies for its selectors.
    fn install(&self, event: &Event, endpoint: &Endpoint) -> Result<(), String> {
        let Event::ChildSaInstall {
            ike_sa,
            name,
            spi_in,
            spi_out,
            keys,
            selectors,
            udp_encap,
            ..
        } = event
        else {
            return Ok(());
        };
        let info = endpoint.ike_sa_info(*ike_sa).ok_or("the IKE SA is gone")?;
        let (local, remote) = (info.local.ip(), info.remote.ip());
        let reqid = if name == "out" {
            REQID_OUT
        } else {
            REQID_OUT + 1
        };
        let (ours, theirs) = match (selectors.local.first(), selectors.remote.first()) {
            (Some(l), Some(r)) => (l, r),
            _ => return Err("no selectors".into()),
        };
        let port =
            |ts: &TrafficSelector| (ts.start_port() == ts.end_port()).then_some(ts.start_port());
        let proto = Some(ours.ip_protocol()).filter(|p| *p != 0);
        let out_sel = xfrm::Selector {
            src: xfrm::Prefix::host(local),
            dst: xfrm::Prefix::host(remote),
            proto,
            sport: port(ours),
            dport: port(theirs),
        };
        let in_sel = xfrm::Selector {
            src: xfrm::Prefix::host(remote),
            dst: xfrm::Prefix::host(local),
            proto,
            sport: port(theirs),
            dport: port(ours),
        };
        let encap = udp_encap.map(|e| xfrm::Encap {
            sport: e.local_port,
            dport: e.remote_port,
            original_address: None,
        });
        let state = |src, dst, spi, key: &[u8], sel, encap: Option<xfrm::Encap>| {
            let id = xfrm::StateId {
                src,
                dst,
                spi,
                mark: None,
            };
            let algorithm = xfrm::Algorithm::aes_gcm_256(key).map_err(|e| e.to_string())?;
            let mut state = xfrm::State::new(id, reqid, xfrm::Mode::Transport, algorithm);
            state.selector = Some(sel);
            state.esn = false;
            state.replay_window = 32;
            state.encap = encap;
            Ok::<_, String>(state)
        };
        let inbound = state(
            remote,
            local,
            *spi_in,
            keys.encr_in.as_bytes(),
            in_sel,
            encap.map(|e| xfrm::Encap {
                sport: e.dport,
                dport: e.sport,
                original_address: None,
            }),
        )?;
        let outbound = state(
            local,
            remote,
            *spi_out,
            keys.encr_out.as_bytes(),
            out_sel,
            encap,
        )?;
        let template = vec![xfrm::Template::transport(reqid)];
        let policies = [
            xfrm::Policy::allow(
                xfrm::PolicyId::new(out_sel, xfrm::Direction::Out),
                1000,
                template.clone(),
            ),
            xfrm::Policy::allow(
                xfrm::PolicyId::new(in_sel, xfrm::Direction::In),
                1000,
                template,
            ),
        ];
        self.runtime.block_on(async {
            self.kernel
                .update_state(&inbound)
                .await
                .map_err(|e| format!("inbound state: {e}"))?;
            self.kernel
                .add_state(&outbound)
                .await
                .map_err(|e| format!("outbound state: {e}"))?;
            for policy in &policies {
                self.kernel
                    .update_policy(policy)
                    .await
                    .map_err(|e| format!("policy: {e}"))?;
            }
            Ok(())
        })
    }
}
