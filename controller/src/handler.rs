//! The control API of the running daemon: the loop publishes a [`SharedView`] after every
//! step, and [`DaemonHandler`] answers status/peers/sas from it and queues actions back to
//! the loop. The kernel counters of `sas` are read over XFRM netlink when asked
//! ([`counters`]); the same reader refreshes the per-peer metrics every
//! [`counters::COUNTER_POLL_INTERVAL`].

pub mod counters;

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use control_api::protocol::{
    ike_spi_hex, ActionDone, CertificateStatus, ChildSaInfo, CleanupReport, ConnectionState,
    IkeSaInfo, IkeSaState, KernelCounters, PeerError, PeerInfo, PeerPolicy, Role, SaLifetime,
    SaList, SaMode, SouthboundStatus, Status, TrafficSelector, UdpEncapsulation,
};
use ikev2::engine::IkeAlgorithms;
use ikev2::registry::IntegId;
use tokio::sync::mpsc::UnboundedSender;

use crate::control::{ActionError, ControlHandler};
use crate::daemon::Daemon;
use crate::kernel::{ChildKind, SaDirection};
use crate::metrics::{ChildSaState, Metrics, PeerCount};
use crate::peers::{IkeState, Peer};
use counters::{
    publish_totals, reading_key, readings, CounterBook, Readings, StateOwner, StateReading,
    COUNTER_POLL_INTERVAL, COUNTER_READ_TIMEOUT,
};

/// What the loop last published for the control API.
#[derive(Debug, Clone, Default)]
pub struct SharedView {
    /// The node overview.
    pub status: Option<Status>,
    /// Every desired peer.
    pub peers: Vec<PeerInfo>,
    /// Every IKE SA with its CHILD_SAs (kernel counters still zero: filled in when asked).
    pub sas: Vec<IkeSaInfo>,
    /// Which peer each of our reqids belongs to, for the kernel counters.
    pub owners: Vec<StateOwner>,
    /// When the loop published this: ages grow by the time since.
    pub published_at: Option<Instant>,
}

impl SharedView {
    /// Seconds since the loop published (it publishes when it wakes, so an idle loop's view
    /// is older than the request).
    fn staleness_secs(&self) -> u64 {
        self.published_at.map_or(0, |t| t.elapsed().as_secs())
    }
}

/// How long the loop waits after answering a cleanup before it stops, so the control server
/// can write the reply.
const CLEANUP_REPLY_GRACE: Duration = Duration::from_millis(300);

/// How long the control API waits for the loop to carry out a cleanup.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the loop sends the outcome of a cleanup.
#[derive(Debug)]
pub struct CleanupReply(std::sync::mpsc::SyncSender<Result<CleanupReport, String>>);

/// An action the control API asks the loop to carry out.
#[derive(Debug)]
pub enum Command {
    /// Re-read configuration and certificates (as SIGHUP).
    Reload,
    /// Initiate to the chassis now.
    Initiate(String),
    /// Delete the IKE SAs with the chassis (the daemon initiates again later).
    Terminate(String),
    /// Rekey the CHILD_SAs with the chassis now.
    Rekey(String),
    /// Remove every state and policy of ours and stop the daemon (a running one would
    /// program them again).
    Cleanup(CleanupReply),
}

/// The XFRM connection the counters are read on, and what the reading remembers.
struct KernelReader {
    kernel: xfrm::Kernel,
    book: CounterBook,
    published: Vec<String>,
}

impl KernelReader {
    /// Dumps our states, updates the per-peer metrics and returns the per-state readings.
    async fn read(
        &mut self,
        owners: &[StateOwner],
        metrics: &Metrics,
    ) -> Result<Readings, xfrm::Error> {
        let states = self.kernel.dump_states().await?;
        let totals = self.book.update(owners, &states);
        self.published = publish_totals(metrics, &self.published, &totals);
        Ok(readings(&states))
    }
}

/// Where the handler reads kernel counters, when it can.
struct CounterSource {
    reader: Arc<tokio::sync::Mutex<KernelReader>>,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for CounterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterSource").finish_non_exhaustive()
    }
}

/// Reads the counters once for `owners`, bounded by [`COUNTER_READ_TIMEOUT`].
async fn read_counters(
    reader: &tokio::sync::Mutex<KernelReader>,
    owners: &[StateOwner],
    metrics: &Metrics,
) -> Option<Readings> {
    let read = async { reader.lock().await.read(owners, metrics).await };
    match tokio::time::timeout(COUNTER_READ_TIMEOUT, read).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the kernel counters of our states");
            None
        }
        Err(_) => {
            tracing::warn!("reading the kernel counters of our states timed out");
            None
        }
    }
}

/// The [`ControlHandler`] of the daemon.
#[derive(Debug)]
pub struct DaemonHandler {
    view: Arc<Mutex<SharedView>>,
    commands: UnboundedSender<Command>,
    counters: Option<CounterSource>,
    metrics: Option<Arc<Metrics>>,
}

impl DaemonHandler {
    /// A handler reading `view` and queueing actions on `commands`, without kernel counters.
    pub fn new(view: Arc<Mutex<SharedView>>, commands: UnboundedSender<Command>) -> Self {
        DaemonHandler {
            view,
            commands,
            counters: None,
            metrics: None,
        }
    }

    /// A handler that also reads the kernel counters of the states `ownership` covers (on
    /// its own XFRM socket, in the calling thread's network namespace) and a task that puts
    /// them into `metrics` every [`COUNTER_POLL_INTERVAL`]. Must be called within the
    /// runtime; without an XFRM socket the counters stay zero (and a warning says so).
    pub async fn start(
        view: Arc<Mutex<SharedView>>,
        commands: UnboundedSender<Command>,
        metrics: Arc<Metrics>,
        ownership: xfrm::Ownership,
    ) -> Self {
        let mut handler = DaemonHandler::new(view.clone(), commands);
        handler.metrics = Some(metrics.clone());
        let kernel = match xfrm::Kernel::connect(ownership).await {
            Ok(k) => k,
            Err(error) => {
                tracing::warn!(%error, "no XFRM socket for counters: SA counters stay 0");
                return handler;
            }
        };
        let reader = Arc::new(tokio::sync::Mutex::new(KernelReader {
            kernel,
            book: CounterBook::default(),
            published: Vec::new(),
        }));
        let poll = (reader.clone(), metrics.clone());
        tokio::spawn(async move {
            let (reader, metrics) = poll;
            let mut tick = tokio::time::interval(COUNTER_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let owners = lock_view(&view).owners.clone();
                let _ = read_counters(&reader, &owners, &metrics).await;
            }
        });
        handler.counters = Some(CounterSource {
            reader,
            metrics,
            runtime: tokio::runtime::Handle::current(),
        });
        handler
    }

    fn read(&self) -> SharedView {
        lock_view(&self.view).clone()
    }

    /// The kernel's readings of our states now (called on a blocking thread, see
    /// [`ControlHandler`]); `None` without a counter source or when the read failed.
    fn kernel_readings(&self, owners: &[StateOwner]) -> Option<Readings> {
        let source = self.counters.as_ref()?;
        source
            .runtime
            .block_on(read_counters(&source.reader, owners, &source.metrics))
    }

    fn queue_for(&self, peer: &str, cmd: Command) -> Result<ActionDone, ActionError> {
        if !self.read().peers.iter().any(|p| p.chassis == peer) {
            return Err(ActionError::UnknownPeer { peer: peer.into() });
        }
        self.commands.send(cmd).map_err(|_| ActionError::Failed {
            message: "the daemon loop is stopping".into(),
        })?;
        Ok(ActionDone {
            message: format!("queued for {peer}"),
        })
    }
}

impl ControlHandler for DaemonHandler {
    fn status(&self) -> Status {
        self.read().status.unwrap_or_else(|| Status {
            chassis: String::new(),
            southbound: SouthboundStatus {
                remote: None,
                state: ConnectionState::Connecting,
                member_role: None,
                last_sync_unix: None,
            },
            peers_desired: 0,
            peers_exempt: 0,
            peers_up: 0,
            certificate: None,
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let view = self.read();
        let stale = view.staleness_secs();
        let mut peers = view.peers;
        for p in &mut peers {
            p.age_secs = p.age_secs.map(|a| a.saturating_add(stale));
        }
        peers
    }

    fn sas(&self) -> SaList {
        let view = self.read();
        let stale = view.staleness_secs();
        let mut ike_sas = view.sas;
        for ike in &mut ike_sas {
            ike.age_secs = ike.age_secs.saturating_add(stale);
            for child in &mut ike.child_sas {
                child.lifetime.age_secs = child.lifetime.age_secs.saturating_add(stale);
            }
        }
        if let Some(readings) = self.kernel_readings(&view.owners) {
            fill_from_kernel(&mut ike_sas, &readings, unix(SystemTime::now()));
        }
        SaList { ike_sas }
    }

    fn initiate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        self.queue_for(peer, Command::Initiate(peer.into()))
    }

    fn terminate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        self.queue_for(peer, Command::Terminate(peer.into()))
    }

    fn rekey(&self, peer: &str) -> Result<ActionDone, ActionError> {
        let view = self.read();
        if !view.peers.iter().any(|p| p.chassis == peer) {
            return Err(ActionError::UnknownPeer { peer: peer.into() });
        }
        let established = view.sas.iter().any(|sa| {
            sa.peer == peer && sa.state == IkeSaState::Established && !sa.child_sas.is_empty()
        });
        if !established {
            return Err(ActionError::Failed {
                message: format!("no established IKE SA with CHILD_SAs with {peer} to rekey"),
            });
        }
        self.queue_for(peer, Command::Rekey(peer.into()))?;
        Ok(ActionDone {
            message: format!("rekey of the CHILD_SAs and the IKE SA with {peer} started"),
        })
    }

    fn reload(&self) -> Result<ActionDone, ActionError> {
        self.commands
            .send(Command::Reload)
            .map_err(|_| ActionError::Failed {
                message: "the daemon loop is stopping".into(),
            })?;
        Ok(ActionDone {
            message: "reload queued".into(),
        })
    }

    fn metrics(&self) -> Result<String, ActionError> {
        let Some(metrics) = &self.metrics else {
            return Err(ActionError::Failed {
                message: "this daemon keeps no metrics".into(),
            });
        };
        // The per-peer kernel counters are read now, so the page is as current as `sas`.
        let _ = self.kernel_readings(&self.read().owners);
        metrics.encode().map_err(|_| ActionError::Failed {
            message: "encoding the metrics page failed".into(),
        })
    }

    fn cleanup(&self) -> Result<CleanupReport, ActionError> {
        let failed = |message: String| ActionError::Failed { message };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.commands
            .send(Command::Cleanup(CleanupReply(tx)))
            .map_err(|_| failed("the daemon loop is stopping".into()))?;
        match rx.recv_timeout(CLEANUP_TIMEOUT) {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(message)) => Err(failed(message)),
            Err(_) => Err(failed(
                "the daemon did not finish the cleanup in time".into(),
            )),
        }
    }
}

fn lock_view(view: &Mutex<SharedView>) -> std::sync::MutexGuard<'_, SharedView> {
    view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn kernel_counters(r: &StateReading) -> KernelCounters {
    let c = r.counters;
    KernelCounters {
        bytes: c.bytes,
        packets: c.packets,
        replay_failures: u64::from(c.replay).saturating_add(u64::from(c.replay_window)),
        integrity_failures: u64::from(c.integrity_failed),
    }
}

/// Puts the kernel's counters, lifetimes and age of each CHILD_SA's two states into the list;
/// a state the kernel does not have (deleted since the loop published) keeps zeros.
fn fill_from_kernel(ike_sas: &mut [IkeSaInfo], readings: &Readings, now_unix: u64) {
    for ike in ike_sas {
        let (local, remote) = (ike.local_ip, ike.remote_ip);
        for child in &mut ike.child_sas {
            let inbound = readings.get(&reading_key(remote, local, child.spi_in));
            let outbound = readings.get(&reading_key(local, remote, child.spi_out));
            if let Some(r) = outbound {
                child.outbound = kernel_counters(r);
            }
            let Some(r) = inbound else {
                continue;
            };
            child.inbound = kernel_counters(r);
            if r.add_time > 0 {
                child.lifetime.age_secs = now_unix.saturating_sub(r.add_time);
            }
            let (soft, hard) = (r.lifetimes.soft, r.lifetimes.hard);
            child.lifetime.soft_secs = soft.add_seconds;
            child.lifetime.hard_secs = hard.add_seconds;
            child.lifetime.soft_bytes = soft.bytes;
            child.lifetime.hard_bytes = hard.bytes;
        }
    }
}

/// The negotiated IKE suite as `ipsecctl peers` shows it: encryption, integrity (absent with
/// AEAD), PRF and key exchange group, joined by `/`.
pub fn suite_name(a: &IkeAlgorithms) -> String {
    let mut parts = vec![encryption_name(a.encryption, a.key_bits)];
    if a.integrity != IntegId::NONE {
        parts.push(a.integrity.to_string());
    }
    parts.push(a.prf.to_string());
    parts.push(a.ke.to_string());
    parts.join("/")
}

/// An encryption transform as the tables write it: the IANA name without `ENCR_`, with the
/// key length (`AES_GCM_16_256`).
fn encryption_name(id: ikev2::registry::EncrId, key_bits: Option<u16>) -> String {
    let name = id.to_string();
    let name = name.trim_start_matches("ENCR_");
    match key_bits {
        Some(bits) => format!("{name}_{bits}"),
        None => name.to_owned(),
    }
}

/// An installed ESP transform, in the same words as [`encryption_name`].
fn esp_name(a: crate::kernel::AeadAlgorithm) -> &'static str {
    use crate::kernel::AeadAlgorithm;
    match a {
        AeadAlgorithm::AesGcm128 => "AES_GCM_16_128",
        AeadAlgorithm::AesGcm256 => "AES_GCM_16_256",
        AeadAlgorithm::ChaCha20Poly1305 => "CHACHA20_POLY1305",
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ike_state(p: &Peer) -> IkeSaState {
    match p.ike {
        IkeState::Idle => IkeSaState::None,
        IkeState::Connecting => IkeSaState::Connecting,
        IkeState::Up => IkeSaState::Established,
        IkeState::Failed => IkeSaState::Failed,
    }
}

fn host_ts(ip: IpAddr, proto: u8, port: Option<u16>) -> TrafficSelector {
    TrafficSelector {
        start_address: ip,
        end_address: ip,
        ip_protocol: proto,
        start_port: port.unwrap_or(0),
        end_port: port.unwrap_or(u16::MAX),
    }
}

impl Daemon {
    /// Publishes the state for the control API and the metrics.
    pub(crate) fn publish(&self) {
        let now = Instant::now();
        let up = self.peers.up_count();
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let status = Status {
            chassis: self.chassis.clone(),
            southbound: SouthboundStatus {
                remote: self.southbound.remote.clone(),
                state: if self.southbound.connected {
                    ConnectionState::Connected
                } else {
                    ConnectionState::Disconnected
                },
                member_role: None,
                last_sync_unix: self.southbound.last_sync.map(unix),
            },
            peers_desired: to_u32(self.desired.peers.len()),
            // Only opted-out chassis; those with no tunnel at all (disjoint transport zones, no
            // common encap type …) are neither desired nor exempt.
            peers_exempt: to_u32(
                self.desired
                    .excluded
                    .iter()
                    .filter(|e| matches!(e, crate::desired::Exclusion::Exempt { .. }))
                    .count(),
            ),
            peers_up: to_u32(up),
            certificate: Some(CertificateStatus {
                subject: self.certificate.0.clone(),
                not_after_unix: i64::try_from(unix(self.certificate.1)).unwrap_or(i64::MAX),
            }),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        self.metrics
            .set_peers(PeerCount::Desired, status.peers_desired);
        self.metrics
            .set_peers(PeerCount::Exempt, status.peers_exempt);
        self.metrics.set_peers(PeerCount::Up, status.peers_up);
        let connecting = self
            .peers
            .peers
            .values()
            .filter(|p| p.ike == IkeState::Connecting)
            .count();
        self.metrics
            .set_ike_sas(IkeSaState::Established, status.peers_up);
        self.metrics
            .set_ike_sas(IkeSaState::Connecting, to_u32(connecting));
        // Each CHILD_SA is two kernel states, one per direction.
        self.metrics.set_child_sas(
            ChildSaState::Installed,
            to_u32(self.peers.child_sas().len() / 2),
        );
        self.metrics.set_southbound_state(status.southbound.state);
        let stats = self.endpoint.stats();
        self.metrics.cookies_sent_total(stats.cookies_sent);
        self.metrics.retransmissions_total(stats.retransmissions);

        let age = |p: &Peer| {
            p.up_since
                .map(|t| now.saturating_duration_since(t).as_secs())
        };
        // The suite of each peer's established IKE SA.
        let suites: std::collections::HashMap<ikev2::engine::PeerId, String> = self
            .endpoint
            .ike_sas()
            .filter_map(|id| self.endpoint.ike_sa_info(id))
            .filter(|info| info.state == "established")
            .filter_map(|info| Some((info.peer, suite_name(&info.algorithms?))))
            .collect();
        let owners = self
            .peers
            .peers
            .values()
            .flat_map(|p| {
                [ChildKind::Out, ChildKind::In]
                    .into_iter()
                    .filter_map(|kind| self.kernel.config().reqid(p.index, kind).ok())
                    .map(|reqid| StateOwner {
                        reqid,
                        chassis: p.desired.remote_chassis.clone(),
                        local_ip: p.desired.key.local_ip,
                    })
            })
            .collect();
        // Limitation: exempt chassis are counted in the status but not listed as peers.
        let peers = self
            .peers
            .peers
            .values()
            .map(|p| PeerInfo {
                chassis: p.desired.remote_chassis.clone(),
                local_ip: p.desired.key.local_ip,
                remote_ip: p.desired.key.remote_ip,
                encap: format!("{:?}", p.desired.encap_type).to_lowercase(),
                policy: PeerPolicy::Desired,
                ike_state: ike_state(p),
                role: Some(match p.desired.role {
                    crate::desired::Role::Initiator => Role::Initiator,
                    crate::desired::Role::Responder { .. } => Role::Responder,
                }),
                suite: p.engine_id.and_then(|id| suites.get(&id).cloned()),
                age_secs: age(p),
                next_rekey_secs: None,
                last_error: p.last_error.as_ref().map(|m| PeerError {
                    message: m.clone(),
                    at_unix: unix(SystemTime::now()),
                }),
            })
            .collect();

        let mut sas = Vec::new();
        for id in self.endpoint.ike_sas() {
            let Some(info) = self.endpoint.ike_sa_info(id) else {
                continue;
            };
            let Some(peer) = self
                .peers
                .peers
                .values()
                .find(|p| p.engine_id == Some(info.peer))
            else {
                continue;
            };
            let established = info.state == "established";
            let mut child_sas = Vec::new();
            if established {
                for kind in [ChildKind::Out, ChildKind::In] {
                    child_sas.extend(self.child_info(peer, kind, age(peer).unwrap_or(0)));
                }
            }
            sas.push(IkeSaInfo {
                peer: peer.desired.remote_chassis.clone(),
                local_ip: info.local.ip(),
                local_port: info.local.port(),
                remote_ip: info.remote.ip(),
                remote_port: info.remote.port(),
                spi_i: ike_spi_hex(info.spi_i),
                spi_r: ike_spi_hex(info.spi_r),
                role: match info.role {
                    ikev2::engine::Role::Initiator => Role::Initiator,
                    ikev2::engine::Role::Responder => Role::Responder,
                },
                state: if established {
                    IkeSaState::Established
                } else {
                    IkeSaState::Connecting
                },
                encryption: info
                    .algorithms
                    .map(|a| encryption_name(a.encryption, a.key_bits))
                    .unwrap_or_default(),
                integrity: info
                    .algorithms
                    .filter(|a| a.integrity != IntegId::NONE)
                    .map(|a| a.integrity.to_string()),
                prf: info
                    .algorithms
                    .map(|a| a.prf.to_string())
                    .unwrap_or_default(),
                dh_group: info
                    .algorithms
                    .map(|a| a.ke.to_string())
                    .unwrap_or_default(),
                age_secs: age(peer).unwrap_or(0),
                rekey_in_secs: None,
                child_sas,
            });
        }

        self.metrics.set_certificate_expiry(
            status
                .certificate
                .as_ref()
                .map(|c| c.not_after_unix)
                .unwrap_or(0),
        );
        // Ready: the Southbound view arrived and the last reconcile left nothing to retry.
        self.metrics.set_ready(
            self.southbound.connected
                && self.southbound.last_sync.is_some()
                && self.kernel_retry.is_none()
                && !self.reconcile_due,
        );

        let mut view = self
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *view = SharedView {
            status: Some(status),
            peers,
            sas,
            owners,
            published_at: Some(now),
        };
    }

    /// `ipsecctl cleanup --yes-remove-all`: removes every state and policy of ours, answers,
    /// and stops the daemon (`Break`), since the loop would otherwise program them again at
    /// its next reconcile. When the kernel refuses, the daemon answers the error and runs on.
    pub(crate) async fn cleanup_and_stop(&mut self, reply: CleanupReply) -> ControlFlow<()> {
        tracing::warn!("cleanup asked for: removing every state and policy of ours and stopping");
        match self.kernel.remove_all().await {
            Ok(report) => {
                let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                let _ = reply.0.send(Ok(CleanupReport {
                    states_removed: to_u32(report.states),
                    policies_removed: to_u32(report.policies),
                }));
                // Limitation: peers are not sent an IKE Delete; they notice by DPD.
                tracing::info!(
                    states = report.states,
                    policies = report.policies,
                    "cleanup done; stopping: tunnel traffic of this chassis is now unprotected"
                );
                tokio::time::sleep(CLEANUP_REPLY_GRACE).await;
                ControlFlow::Break(())
            }
            Err(error) => {
                tracing::warn!(%error, "cleanup failed; running on");
                let _ = reply.0.send(Err(format!("cleanup failed: {error}")));
                self.reconcile_due = true;
                ControlFlow::Continue(())
            }
        }
    }

    /// `ipsecctl rekey`: asks the engine to rekey the newest CHILD_SA of each kind with the
    /// chassis now.
    pub(crate) fn rekey_peer(&mut self, chassis: &str, now: Instant) {
        for peer in self.peers.peers.values() {
            if peer.desired.remote_chassis != chassis {
                continue;
            }
            let Some(id) = peer.engine_id else {
                continue;
            };
            let _span = peer.span.enter();
            for kind in [ChildKind::Out, ChildKind::In] {
                let newest = peer
                    .child_sas
                    .iter()
                    .rev()
                    .find(|s| s.child == kind && s.dir == SaDirection::Inbound);
                let Some(sa) = newest else {
                    continue;
                };
                match self.endpoint.rekey_child(now, id, sa.spi) {
                    Ok(()) => tracing::info!(
                        spi_in = format_args!("{:08x}", sa.spi),
                        "rekey of the CHILD_SA asked for by the operator"
                    ),
                    Err(error) => tracing::warn!(%error, "cannot rekey the CHILD_SA"),
                }
            }
            // RFC 7296 §2.18; queued behind the CHILD_SA rekeys in the peer's window.
            match self.endpoint.rekey_ike(now, id) {
                Ok(()) => tracing::info!("rekey of the IKE SA asked for by the operator"),
                Err(error) => tracing::warn!(%error, "cannot rekey the IKE SA"),
            }
        }
    }

    /// The newest CHILD_SA of one kind, from its two directions.
    fn child_info(&self, p: &Peer, kind: ChildKind, age_secs: u64) -> Option<ChildSaInfo> {
        let newest = |dir| {
            p.child_sas
                .iter()
                .rev()
                .find(|s| s.child == kind && s.dir == dir)
        };
        let (inbound, outbound) = (
            newest(SaDirection::Inbound)?,
            newest(SaDirection::Outbound)?,
        );
        let reqid = self.kernel.config().reqid(p.index, kind).ok()?;
        let proto = p.desired.protocol.ip_proto();
        let port = p.desired.remote_port;
        let (l, r) = (p.desired.key.local_ip, p.desired.key.remote_ip);
        let (local_ts, remote_ts) = match kind {
            ChildKind::Out => (host_ts(l, proto, None), host_ts(r, proto, Some(port))),
            ChildKind::In => (host_ts(l, proto, Some(port)), host_ts(r, proto, None)),
        };
        Some(ChildSaInfo {
            spi_in: inbound.spi,
            spi_out: outbound.spi,
            reqid,
            mode: SaMode::Transport,
            encapsulation: inbound.encap.map(|e| UdpEncapsulation {
                source_port: e.local_port,
                destination_port: e.remote_port,
            }),
            local_ts: vec![local_ts],
            remote_ts: vec![remote_ts],
            encryption: esp_name(inbound.algorithm).to_owned(),
            integrity: None,
            esn: inbound.esn,
            // Counters come from the kernel when the list is asked for (`fill_from_kernel`).
            inbound: KernelCounters::default(),
            outbound: KernelCounters::default(),
            lifetime: SaLifetime {
                age_secs,
                soft_secs: inbound.lifetimes.soft.add_seconds,
                hard_secs: inbound.lifetimes.hard.add_seconds,
                soft_bytes: None,
                hard_bytes: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikev2::registry::{EncrId, KeGroup, PrfId};
    use xfrm::{Lifetimes, Limits, StateCounters};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ike_sa(child_sas: Vec<ChildSaInfo>) -> IkeSaInfo {
        IkeSaInfo {
            peer: "chassis-2".into(),
            local_ip: ip("10.0.0.1"),
            local_port: 500,
            remote_ip: ip("10.0.0.2"),
            remote_port: 500,
            spi_i: ike_spi_hex(1),
            spi_r: ike_spi_hex(2),
            role: Role::Initiator,
            state: IkeSaState::Established,
            encryption: String::new(),
            integrity: None,
            prf: String::new(),
            dh_group: String::new(),
            age_secs: 0,
            rekey_in_secs: None,
            child_sas,
        }
    }

    fn child(spi_in: u32, spi_out: u32) -> ChildSaInfo {
        ChildSaInfo {
            spi_in,
            spi_out,
            reqid: 1,
            mode: SaMode::Transport,
            encapsulation: None,
            local_ts: vec![],
            remote_ts: vec![],
            encryption: String::new(),
            integrity: None,
            esn: false,
            inbound: KernelCounters::default(),
            outbound: KernelCounters::default(),
            lifetime: SaLifetime {
                age_secs: 7,
                soft_secs: None,
                hard_secs: None,
                soft_bytes: None,
                hard_bytes: None,
            },
        }
    }

    fn reading(bytes: u64, packets: u64, add_time: u64) -> StateReading {
        StateReading {
            counters: StateCounters {
                bytes,
                packets,
                replay_window: 1,
                replay: 2,
                integrity_failed: 3,
            },
            lifetimes: Lifetimes {
                soft: Limits {
                    add_seconds: Some(3600),
                    ..Limits::default()
                },
                hard: Limits {
                    add_seconds: Some(3900),
                    bytes: Some(1 << 40),
                    ..Limits::default()
                },
            },
            add_time,
        }
    }

    #[test]
    fn kernel_readings_fill_each_direction_by_addresses_and_spi() {
        let mut list = vec![ike_sa(vec![child(0x11, 0x22), child(0x33, 0x44)])];
        let mut r = Readings::new();
        r.insert(
            reading_key(ip("10.0.0.2"), ip("10.0.0.1"), 0x11),
            reading(100, 2, 1000),
        );
        r.insert(
            reading_key(ip("10.0.0.1"), ip("10.0.0.2"), 0x22),
            reading(300, 4, 1000),
        );
        // The inbound SPI under the wrong direction is not taken.
        r.insert(
            reading_key(ip("10.0.0.1"), ip("10.0.0.2"), 0x33),
            reading(9, 9, 1000),
        );
        fill_from_kernel(&mut list, &r, 1060);

        let c = &list[0].child_sas[0];
        assert_eq!((c.inbound.bytes, c.inbound.packets), (100, 2));
        assert_eq!((c.outbound.bytes, c.outbound.packets), (300, 4));
        assert_eq!(c.inbound.replay_failures, 3);
        assert_eq!(c.inbound.integrity_failures, 3);
        assert_eq!(c.lifetime.age_secs, 60);
        assert_eq!(c.lifetime.soft_secs, Some(3600));
        assert_eq!(c.lifetime.hard_bytes, Some(1 << 40));

        let missing = &list[0].child_sas[1];
        assert_eq!(missing.inbound, KernelCounters::default());
        assert_eq!(missing.outbound, KernelCounters::default());
        assert_eq!(missing.lifetime.age_secs, 7);
    }

    #[test]
    fn suite_names_the_aead_cipher_with_its_key_length_and_leaves_out_integrity() {
        let a = IkeAlgorithms {
            encryption: EncrId::ENCR_AES_GCM_16,
            key_bits: Some(256),
            prf: PrfId::PRF_HMAC_SHA2_256,
            integrity: IntegId::NONE,
            ke: KeGroup::ECP_256,
        };
        assert_eq!(suite_name(&a), "AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256");
    }
}
