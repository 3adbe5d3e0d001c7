//! The control API of the running daemon: the loop publishes a [`SharedView`] after every
//! step, and [`DaemonHandler`] answers status/peers/sas from it and queues actions back to
//! the loop. The kernel counters of `sas` are read over XFRM netlink when asked
//! ([`counters`]); the same reader refreshes the per-peer metrics every
//! [`counters::COUNTER_POLL_INTERVAL`].

pub mod counters;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use control_api::protocol::{
    ike_spi_hex, ActionDone, CertificateStatus, ChildSaInfo, CleanupReport, ConnectionState,
    IkeSaInfo, IkeSaState, KernelCounters, MemberRole, PeerError, PeerInfo, PeerPolicy, Role,
    SaLifetime, SaList, SaMode, SouthboundStatus, Status, TrafficSelector, UdpEncapsulation,
};
use ikev2::engine::{ChildSaTimes, IkeAlgorithms, IkeSaId};
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
    /// Every desired peer, then every exempt one.
    pub peers: Vec<PeerInfo>,
    /// Every IKE SA with its CHILD_SAs (kernel counters still zero: filled in when asked).
    pub sas: Vec<IkeSaInfo>,
    /// Which peer each of our reqids belongs to, for the kernel counters.
    pub owners: Vec<StateOwner>,
    /// When the loop published this: ages grow by the time since.
    pub published_at: Option<Instant>,
    /// When each established IKE SA was first published as established (the loop publishes
    /// after every step, so this is when it came up, rekeyed or reauthenticated).
    pub established_at: BTreeMap<IkeSaId, Instant>,
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
        check_protected(&self.read(), peer)?;
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
            p.next_rekey_secs = p.next_rekey_secs.map(|r| r.saturating_sub(stale));
        }
        peers
    }

    fn sas(&self) -> SaList {
        let view = self.read();
        let stale = view.staleness_secs();
        let mut ike_sas = view.sas;
        for ike in &mut ike_sas {
            ike.age_secs = ike.age_secs.saturating_add(stale);
            ike.rekey_in_secs = ike.rekey_in_secs.map(|r| r.saturating_sub(stale));
            for child in &mut ike.child_sas {
                child.lifetime.age_secs = child.lifetime.age_secs.saturating_add(stale);
                child.rekey_in_secs = child.rekey_in_secs.map(|r| r.saturating_sub(stale));
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
        check_protected(&view, peer)?;
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

/// Refuses an action on a chassis that is no desired peer: unknown, or exempt (which has no
/// IKE SA to start, delete or rekey).
fn check_protected(view: &SharedView, chassis: &str) -> Result<(), ActionError> {
    let mut listed = view.peers.iter().filter(|p| p.chassis == chassis);
    if listed.clone().any(|p| p.policy == PeerPolicy::Desired) {
        return Ok(());
    }
    match listed.next() {
        Some(p) => Err(ActionError::Failed {
            message: format!(
                "{chassis} is exempt from IPsec (exempt group {}): it has no IKE SA",
                p.exempt_group.as_deref().unwrap_or("?")
            ),
        }),
        None => Err(ActionError::UnknownPeer {
            peer: chassis.into(),
        }),
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
            // The kernel's word is the last: a state it does not hold is not installed,
            // whatever the last reconcile said, and has no lifetimes to show.
            let (Some(r), true) = (inbound, outbound.is_some()) else {
                child.installed = false;
                child.lifetime = SaLifetime {
                    age_secs: 0,
                    soft_secs: None,
                    hard_secs: None,
                    soft_bytes: None,
                    hard_bytes: None,
                };
                if let Some(r) = inbound {
                    child.inbound = kernel_counters(r);
                }
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
                state: match (self.southbound.connected, &self.southbound.remote) {
                    (true, _) => ConnectionState::Connected,
                    // Never connected yet: the first attempts are still being made.
                    (false, None) => ConnectionState::Connecting,
                    (false, Some(_)) => ConnectionState::Disconnected,
                },
                member_role: self.southbound.member_role.map(|r| match r {
                    ovsdb::MemberRole::Leader => MemberRole::Leader,
                    ovsdb::MemberRole::Follower => MemberRole::Follower,
                    ovsdb::MemberRole::Standalone => MemberRole::Standalone,
                }),
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
        let in_state = |state| self.peers.peers.values().filter(|p| p.ike == state).count();
        let connecting = in_state(IkeState::Connecting);
        // An established IKE SA whose ESP states the kernel refused counts here, not as up.
        self.metrics
            .set_ike_sas(IkeSaState::Established, to_u32(in_state(IkeState::Up)));
        self.metrics
            .set_ike_sas(IkeSaState::Connecting, to_u32(connecting));
        // Only what the kernel holds; each CHILD_SA is two kernel states, one per direction.
        self.metrics.set_child_sas(
            ChildSaState::Installed,
            to_u32(self.peers.installed_child_sas()),
        );
        self.metrics.set_southbound_state(status.southbound.state);
        let stats = self.endpoint.stats();
        self.metrics.cookies_sent_total(stats.cookies_sent);
        self.metrics.retransmissions_total(stats.retransmissions);

        let previous = lock_view(&self.shared).established_at.clone();
        let established_at = established_times(
            &previous,
            self.endpoint.ike_sas().filter(|&id| {
                self.endpoint
                    .ike_sa_info(id)
                    .is_some_and(|info| info.state == "established")
            }),
            now,
        );
        let since = |t: Instant| now.saturating_duration_since(t).as_secs();
        // A peer's age is its current IKE SA's (its first one's until the map has it).
        let age = |p: &Peer| {
            p.ike_sa
                .and_then(|id| established_at.get(&id).copied())
                .or(p.up_since)
                .map(since)
        };
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
        // The engine's view of each peer's current IKE SA (a reauthentication's new one once
        // it took over).
        let current = |p: &Peer| {
            p.ike_sa
                .and_then(|id| self.endpoint.ike_sa_info(id))
                .filter(|info| info.state == "established")
        };
        let mut peers: Vec<PeerInfo> = self
            .peers
            .peers
            .values()
            .map(|p| {
                let info = current(p);
                PeerInfo {
                    chassis: p.desired.remote_chassis.clone(),
                    local_ip: p.desired.key.local_ip,
                    remote_ip: p.desired.key.remote_ip,
                    encap: encap_name(&p.desired.encap_type),
                    policy: PeerPolicy::Desired,
                    exempt_group: None,
                    ike_state: ike_state(p),
                    // Who started the current IKE SA (after the pair's rule, the grace period or a
                    // crossing), not who the rule says starts first.
                    role: info.as_ref().map(|i| role_of(i.role)),
                    suite: info
                        .as_ref()
                        .and_then(|i| i.algorithms.as_ref().map(suite_name)),
                    age_secs: age(p),
                    next_rekey_secs: info.as_ref().and_then(|i| ike_rekey_in(i, now)),
                    last_error: p.last_error.as_ref().map(|e| PeerError {
                        message: e.message.clone(),
                        at_unix: unix(e.at),
                    }),
                    esp_installed: (p.ike == IkeState::Up).then(|| p.esp_installed()),
                }
            })
            .collect();
        // Limitation: an exempt chassis with no usable encap pair is counted but not listed.
        peers.extend(self.desired.exempt.iter().map(exempt_info));

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
            // One not yet established shows 0.
            let age_secs = established_at.get(&id).copied().map_or(0, since);
            let child_sas = info
                .child_sas
                .iter()
                .filter_map(|times| {
                    let reqid = |kind| self.kernel.config().reqid(peer.index, kind).ok();
                    child_sa_info(peer, reqid, times, now, age_secs)
                })
                .collect();
            sas.push(IkeSaInfo {
                peer: peer.desired.remote_chassis.clone(),
                local_ip: info.local.ip(),
                local_port: info.local.port(),
                remote_ip: info.remote.ip(),
                remote_port: info.remote.port(),
                spi_i: ike_spi_hex(info.spi_i),
                spi_r: ike_spi_hex(info.spi_r),
                role: role_of(info.role),
                state: match (established, info.winding_down) {
                    (true, false) => IkeSaState::Established,
                    (true, true) => IkeSaState::Deleting,
                    (false, _) => IkeSaState::Connecting,
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
                age_secs,
                rekey_in_secs: ike_rekey_in(&info, now),
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
            established_at,
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
}

/// One CHILD_SA of the engine's IKE SA with `p`, from the two kernel states the daemon
/// installed for it (`None` until both are), with the reqid of its kind.
fn child_sa_info(
    p: &Peer,
    reqid: impl Fn(ChildKind) -> Option<u32>,
    times: &ChildSaTimes,
    now: Instant,
    age_secs: u64,
) -> Option<ChildSaInfo> {
    let state = |dir, spi| p.child_sas.iter().find(|s| s.dir == dir && s.spi == spi);
    let inbound = state(SaDirection::Inbound, times.spi_in)?;
    let outbound = state(SaDirection::Outbound, times.spi_out)?;
    let kind = inbound.child;
    let reqid = reqid(kind)?;
    // The kernel refused (or was not yet asked for) one of its states: no lifetimes to show.
    let installed = p.state_installed(inbound) && p.state_installed(outbound);
    // The outbound state's selector: its source is our end, its destination the peer's.
    let selector = outbound
        .selector
        .unwrap_or_else(|| p.pair().selector(kind, SaDirection::Outbound));
    let (local_ts, remote_ts) = selector_ts(&selector);
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
        // Only AEAD transforms are installed.
        integrity: None,
        esn: inbound.esn,
        // Counters come from the kernel when the list is asked for (`fill_from_kernel`).
        inbound: KernelCounters::default(),
        outbound: KernelCounters::default(),
        lifetime: if installed {
            SaLifetime {
                age_secs,
                soft_secs: inbound.lifetimes.soft.add_seconds,
                hard_secs: inbound.lifetimes.hard.add_seconds,
                soft_bytes: inbound.lifetimes.soft.bytes,
                hard_bytes: inbound.lifetimes.hard.bytes,
            }
        } else {
            SaLifetime {
                age_secs: 0,
                soft_secs: None,
                hard_secs: None,
                soft_bytes: None,
                hard_bytes: None,
            }
        },
        rekey_in_secs: times.rekey_at.map(|at| secs_until(at, now)),
        installed,
    })
}

/// When each of the `established` IKE SAs came up: as `previous` says, or `now` for one new
/// since.
fn established_times<K: Ord + Copy>(
    previous: &BTreeMap<K, Instant>,
    established: impl Iterator<Item = K>,
    now: Instant,
) -> BTreeMap<K, Instant> {
    established
        .map(|id| (id, previous.get(&id).copied().unwrap_or(now)))
        .collect()
}

/// Our role in an IKE SA, in the control protocol's words.
fn role_of(r: ikev2::engine::Role) -> Role {
    match r {
        ikev2::engine::Role::Initiator => Role::Initiator,
        ikev2::engine::Role::Responder => Role::Responder,
    }
}

/// Seconds from `now` until `at` (0 when it has passed).
fn secs_until(at: Instant, now: Instant) -> u64 {
    at.saturating_duration_since(now).as_secs()
}

/// Seconds until the IKE SA is next replaced: its rekey or, when earlier, its
/// reauthentication; `None` when neither is scheduled.
fn ike_rekey_in(info: &ikev2::engine::IkeSaInfo, now: Instant) -> Option<u64> {
    next_replacement_in(info.rekey_at, info.reauth_at, now)
}

/// Seconds from `now` until the earlier of a rekey and a reauthentication deadline.
fn next_replacement_in(
    rekey_at: Option<Instant>,
    reauth_at: Option<Instant>,
    now: Instant,
) -> Option<u64> {
    let next = match (rekey_at, reauth_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }?;
    Some(secs_until(next, now))
}

/// An encap type as `ipsecctl peers` writes it (`geneve`, `vxlan`).
fn encap_name(t: &crate::southbound::EncapType) -> String {
    use crate::southbound::EncapType;
    match t {
        EncapType::Geneve => "geneve".into(),
        EncapType::Vxlan => "vxlan".into(),
        EncapType::Stt => "stt".into(),
        EncapType::Other(name) => name.clone(),
    }
}

/// An opted-out encap pair as `ipsecctl peers` lists it: no IKE SA, the group that exempted it.
fn exempt_info(e: &crate::desired::ExemptPeer) -> PeerInfo {
    PeerInfo {
        chassis: e.remote_chassis.clone(),
        local_ip: e.key.local_ip,
        remote_ip: e.key.remote_ip,
        encap: encap_name(&e.encap_type),
        policy: PeerPolicy::Exempt,
        exempt_group: Some(e.group.clone()),
        ike_state: IkeSaState::None,
        role: None,
        suite: None,
        age_secs: None,
        next_rekey_secs: None,
        last_error: None,
        esp_installed: None,
    }
}

/// A kernel selector as the traffic selectors of our end and the peer's.
fn selector_ts(s: &xfrm::Selector) -> (TrafficSelector, TrafficSelector) {
    let ts = |prefix: xfrm::Prefix, port: Option<u16>| {
        let (start_address, end_address) = prefix_range(prefix);
        TrafficSelector {
            start_address,
            end_address,
            ip_protocol: s.proto.unwrap_or(0),
            start_port: port.unwrap_or(0),
            end_port: port.unwrap_or(u16::MAX),
        }
    };
    (ts(s.src, s.sport), ts(s.dst, s.dport))
}

/// The first and last address of a prefix.
fn prefix_range(p: xfrm::Prefix) -> (IpAddr, IpAddr) {
    match p.addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let host = u32::MAX.checked_shr(u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::V4((bits & !host).into()),
                IpAddr::V4((bits | host).into()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let host = u128::MAX.checked_shr(u32::from(p.len)).unwrap_or(0);
            (
                IpAddr::V6((bits & !host).into()),
                IpAddr::V6((bits | host).into()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelConfig;
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
            rekey_in_secs: None,
            installed: true,
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
        assert!(c.installed);
        // Neither state in the kernel: marked so, with no lifetimes.
        assert!(!missing.installed);
        assert_eq!(missing.lifetime.age_secs, 0);
        assert_eq!(missing.lifetime.soft_secs, None);
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

    /// A peer at 10.0.0.1 -> 10.0.0.2 whose tunnel packets arrive on 6081 here and go to
    /// 7000 there, with the kernel states `states` (kind, direction, SPI).
    fn peer_with(states: &[(ChildKind, SaDirection, u32)]) -> Peer {
        let key = crate::desired::PeerKey {
            local_ip: ip("10.0.0.1"),
            remote_ip: ip("10.0.0.2"),
        };
        let mut desired = crate::desired::DesiredPeer::geneve(
            key,
            "chassis-2".into(),
            crate::desired::Role::Initiator,
        );
        desired.remote_port = 7000;
        let mut p = Peer::new(desired, 3, tracing::Span::none());
        for &(child, dir, spi) in states {
            p.child_sas.push(crate::kernel::ChildSa {
                pair: 3,
                child,
                dir,
                spi,
                algorithm: crate::kernel::AeadAlgorithm::AesGcm256,
                key: xfrm::Key::new(&[7; 36]),
                selector: None,
                encap: Some(crate::kernel::UdpEncap {
                    local_port: 4500,
                    remote_port: 4501,
                }),
                lifetimes: Lifetimes {
                    soft: Limits {
                        add_seconds: Some(3300),
                        ..Limits::default()
                    },
                    hard: Limits {
                        add_seconds: Some(3600),
                        bytes: Some(1 << 30),
                        ..Limits::default()
                    },
                },
                replay_window: 32,
                esn: true,
            });
        }
        // A reconcile the kernel refused nothing of.
        p.note_reconcile(&KernelConfig::default(), &[], UNIX_EPOCH);
        p
    }

    /// Every configured CHILD_SA with both states: "out" 0x11/0x22, "in" 0x33/0x44.
    fn full_peer() -> Peer {
        use ChildKind::{In, Out};
        use SaDirection::{Inbound, Outbound};
        peer_with(&[
            (Out, Inbound, 0x11),
            (Out, Outbound, 0x22),
            (In, Inbound, 0x33),
            (In, Outbound, 0x44),
        ])
    }

    /// The kernel's answer when it lacks the AEAD, as a reconcile reports it.
    const NO_AEAD: &str = "kernel lacks the algorithm rfc4106(gcm(aes)) (module gcm): kernel says \"Requested AEAD algorithm not found\"";

    /// A reconcile of `p` in which the kernel refused the states with the SPIs `spis`, at
    /// unix time 1_800_000_000.
    fn refuse(p: &mut Peer, spis: &[u32]) {
        let config = KernelConfig::default();
        let pair = p.pair();
        let refused: Vec<_> = p
            .child_sas
            .iter()
            .filter(|s| spis.contains(&s.spi))
            .map(|s| (s.state_id(&pair, &config), NO_AEAD.to_owned()))
            .collect();
        p.note_reconcile(
            &config,
            &refused,
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        );
    }

    #[test]
    fn peer_is_up_only_with_its_ike_sa_and_every_child_sa_state_in_the_kernel() {
        let mut p = full_peer();
        assert!(!p.is_up(), "no IKE SA yet");
        p.ike = IkeState::Up;
        assert!(p.esp_installed());
        assert!(p.is_up());
        assert_eq!(p.last_error, None);

        // One direction of one CHILD_SA refused is enough to be down.
        refuse(&mut p, &[0x44]);
        assert!(!p.esp_installed());
        assert!(!p.is_up());

        // The next reconcile got it in.
        refuse(&mut p, &[]);
        assert!(p.is_up());

        // A configured CHILD_SA missing altogether (only "out" negotiated).
        let mut half = peer_with(&[
            (ChildKind::Out, SaDirection::Inbound, 0x11),
            (ChildKind::Out, SaDirection::Outbound, 0x22),
        ]);
        half.ike = IkeState::Up;
        assert!(!half.is_up());
    }

    #[test]
    fn refused_states_leave_the_kernels_answer_as_last_error_and_count_nothing_installed() {
        let mut p = full_peer();
        p.ike = IkeState::Up;
        refuse(&mut p, &[0x11, 0x22, 0x33, 0x44]);
        let e = p.last_error.clone().unwrap();
        assert!(
            e.message.contains("Requested AEAD algorithm not found"),
            "{e:?}"
        );
        assert!(e.message.contains("ESP state"), "{e:?}");
        assert_eq!(unix(e.at), 1_800_000_000);

        let mut table = crate::peers::PeerTable::default();
        table.peers.insert(p.desired.key, p);
        assert_eq!(table.up_count(), 0);
        assert_eq!(table.installed_child_sas(), 0);

        let mut ok = full_peer();
        ok.ike = IkeState::Up;
        let key = crate::desired::PeerKey {
            local_ip: ip("10.0.0.1"),
            remote_ip: ip("10.0.0.3"),
        };
        table.peers.insert(key, ok);
        assert_eq!(table.up_count(), 1);
        assert_eq!(table.installed_child_sas(), 2);
    }

    #[test]
    fn child_sa_the_kernel_refused_is_listed_as_not_installed_without_lifetimes() {
        let mut p = full_peer();
        refuse(&mut p, &[0x33]);
        let now = Instant::now();
        let times = ChildSaTimes {
            spi_in: 0x33,
            spi_out: 0x44,
            rekey_at: Some(now + Duration::from_secs(1234)),
            expire_at: now + Duration::from_secs(2000),
        };
        let c = child_sa_info(&p, reqid_of, &times, now, 9).unwrap();
        assert!(!c.installed);
        assert_eq!(c.lifetime.age_secs, 0);
        assert_eq!((c.lifetime.soft_secs, c.lifetime.hard_secs), (None, None));

        let out = ChildSaTimes {
            spi_in: 0x11,
            spi_out: 0x22,
            ..times
        };
        let c = child_sa_info(&p, reqid_of, &out, now, 9).unwrap();
        assert!(c.installed);
        assert_eq!(c.lifetime.age_secs, 9);
    }

    fn reqid_of(kind: ChildKind) -> Option<u32> {
        Some(match kind {
            ChildKind::Out => 0x100,
            ChildKind::In => 0x101,
        })
    }

    #[test]
    fn child_sa_is_built_from_the_states_with_the_engines_spis_and_its_rekey_deadline() {
        use ChildKind::{In, Out};
        use SaDirection::{Inbound, Outbound};
        let p = peer_with(&[
            (Out, Inbound, 0x11),
            (Out, Outbound, 0x22),
            (In, Inbound, 0x33),
            (In, Outbound, 0x44),
            // An older "in" CHILD_SA still installed: not the one the engine names.
            (In, Inbound, 0x55),
        ]);
        let now = Instant::now();
        let times = ChildSaTimes {
            spi_in: 0x33,
            spi_out: 0x44,
            rekey_at: Some(now + Duration::from_secs(1234)),
            expire_at: now + Duration::from_secs(2000),
        };
        let c = child_sa_info(&p, reqid_of, &times, now, 9).unwrap();
        assert_eq!((c.spi_in, c.spi_out, c.reqid), (0x33, 0x44, 0x101));
        assert_eq!(c.rekey_in_secs, Some(1234));
        assert_eq!(c.encryption, "AES_GCM_16_256");
        assert!(c.esn);
        assert_eq!(
            c.encapsulation,
            Some(UdpEncapsulation {
                source_port: 4500,
                destination_port: 4501
            })
        );
        // The "in" CHILD_SA: our tunnel port (6081) to any port of the peer.
        let host = |a: &str, proto, ports: (u16, u16)| TrafficSelector {
            start_address: ip(a),
            end_address: ip(a),
            ip_protocol: proto,
            start_port: ports.0,
            end_port: ports.1,
        };
        assert_eq!(c.local_ts, vec![host("10.0.0.1", 17, (6081, 6081))]);
        assert_eq!(c.remote_ts, vec![host("10.0.0.2", 17, (0, u16::MAX))]);
        assert_eq!(
            (
                c.lifetime.soft_secs,
                c.lifetime.hard_secs,
                c.lifetime.hard_bytes
            ),
            (Some(3300), Some(3600), Some(1 << 30))
        );

        // The "out" one goes to the peer's port (7000).
        let out = ChildSaTimes {
            spi_in: 0x11,
            spi_out: 0x22,
            rekey_at: None,
            ..times
        };
        let c = child_sa_info(&p, reqid_of, &out, now, 9).unwrap();
        assert_eq!(c.reqid, 0x100);
        assert_eq!(c.rekey_in_secs, None);
        assert_eq!(c.remote_ts, vec![host("10.0.0.2", 17, (7000, 7000))]);

        // Not listed before both of its states are installed.
        let half = ChildSaTimes {
            spi_in: 0x55,
            spi_out: 0x66,
            ..times
        };
        assert_eq!(child_sa_info(&p, reqid_of, &half, now, 9), None);
    }

    #[test]
    fn next_replacement_is_the_earlier_of_rekey_and_reauthentication() {
        let now = Instant::now();
        let at = |s| Some(now + Duration::from_secs(s));
        assert_eq!(next_replacement_in(at(300), at(200), now), Some(200));
        assert_eq!(next_replacement_in(at(300), None, now), Some(300));
        assert_eq!(next_replacement_in(None, at(50), now), Some(50));
        assert_eq!(next_replacement_in(None, None, now), None);
        // A deadline already passed (the rekey is about to start) is 0, not an underflow.
        let past = now.checked_sub(Duration::from_secs(5));
        assert_eq!(next_replacement_in(past, None, now), past.map(|_| 0));
    }

    #[test]
    fn established_times_keep_the_first_sighting_and_forget_ike_sas_gone() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(60);
        let first = established_times(&BTreeMap::new(), [1u64, 2].into_iter(), t0);
        assert_eq!(first, BTreeMap::from([(1, t0), (2, t0)]));
        // IKE SA 2 was rekeyed into 3: 1 keeps its time, 3 starts now, 2 is forgotten.
        let later = established_times(&first, [1u64, 3].into_iter(), t1);
        assert_eq!(later, BTreeMap::from([(1, t0), (3, t1)]));
    }

    #[test]
    fn prefixes_become_address_ranges() {
        let range = |a: &str, len| {
            let (s, e) = prefix_range(xfrm::Prefix { addr: ip(a), len });
            (s.to_string(), e.to_string())
        };
        assert_eq!(
            range("10.1.2.3", 32),
            ("10.1.2.3".into(), "10.1.2.3".into())
        );
        assert_eq!(
            range("10.1.2.3", 24),
            ("10.1.2.0".into(), "10.1.2.255".into())
        );
        assert_eq!(
            range("10.1.2.3", 0),
            ("0.0.0.0".into(), "255.255.255.255".into())
        );
        assert_eq!(
            range("fd00::1:2", 112),
            ("fd00::1:0".into(), "fd00::1:ffff".into())
        );
        assert_eq!(range("fd00::1", 128), ("fd00::1".into(), "fd00::1".into()));
    }

    fn exempt_peer() -> crate::desired::ExemptPeer {
        crate::desired::ExemptPeer {
            key: crate::desired::PeerKey {
                local_ip: ip("10.0.0.1"),
                remote_ip: ip("10.0.0.4"),
            },
            remote_chassis: "chassis-4".into(),
            encap_type: crate::southbound::EncapType::Vxlan,
            group: "rack7".into(),
        }
    }

    #[test]
    fn exempt_pair_is_listed_with_its_group_and_no_ike_sa() {
        let p = exempt_info(&exempt_peer());
        assert_eq!(p.chassis, "chassis-4");
        assert_eq!((p.local_ip, p.remote_ip), (ip("10.0.0.1"), ip("10.0.0.4")));
        assert_eq!(p.encap, "vxlan");
        assert_eq!(p.policy, PeerPolicy::Exempt);
        assert_eq!(p.exempt_group.as_deref(), Some("rack7"));
        assert_eq!(p.ike_state, IkeSaState::None);
        assert_eq!((p.role, p.suite, p.age_secs), (None, None, None));
        assert_eq!((p.next_rekey_secs, p.last_error), (None, None));
    }

    fn desired_info(chassis: &str, age: u64, rekey: u64) -> PeerInfo {
        PeerInfo {
            policy: PeerPolicy::Desired,
            exempt_group: None,
            chassis: chassis.into(),
            ike_state: IkeSaState::Established,
            role: Some(Role::Initiator),
            age_secs: Some(age),
            next_rekey_secs: Some(rekey),
            last_error: Some(PeerError {
                message: "peer unreachable: no answer to our requests".into(),
                at_unix: 1_800_000_000,
            }),
            ..exempt_info(&exempt_peer())
        }
    }

    fn handler_with(
        view: SharedView,
    ) -> (DaemonHandler, tokio::sync::mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (DaemonHandler::new(Arc::new(Mutex::new(view)), tx), rx)
    }

    #[test]
    fn actions_on_an_exempt_chassis_are_refused_naming_its_group() {
        let view = SharedView {
            peers: vec![
                desired_info("chassis-2", 5, 100),
                exempt_info(&exempt_peer()),
            ],
            ..SharedView::default()
        };
        let (h, mut rx) = handler_with(view);
        for result in [
            h.initiate("chassis-4"),
            h.terminate("chassis-4"),
            h.rekey("chassis-4"),
        ] {
            match result {
                Err(ActionError::Failed { message }) => {
                    assert!(
                        message.contains("exempt") && message.contains("rack7"),
                        "{message}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(rx.try_recv().is_err(), "nothing queued");
        assert!(matches!(
            h.initiate("chassis-9"),
            Err(ActionError::UnknownPeer { .. })
        ));
        assert!(h.initiate("chassis-2").is_ok());
        assert!(matches!(rx.try_recv(), Ok(Command::Initiate(c)) if c == "chassis-2"));
    }

    #[test]
    fn replies_age_the_view_by_the_time_since_it_was_published() {
        let published = Instant::now().checked_sub(Duration::from_secs(10)).unwrap();
        let mut child = child(0x11, 0x22);
        child.rekey_in_secs = Some(500);
        let mut ike = ike_sa(vec![child]);
        ike.age_secs = 20;
        ike.rekey_in_secs = Some(1000);
        let view = SharedView {
            peers: vec![
                desired_info("chassis-2", 20, 1000),
                exempt_info(&exempt_peer()),
            ],
            sas: vec![ike],
            published_at: Some(published),
            ..SharedView::default()
        };
        let (h, _rx) = handler_with(view);
        // At least the 10 s since publishing passed; a slow run may add a second.
        let peers = h.peers();
        let p = &peers[0];
        assert!(matches!(p.age_secs, Some(30 | 31)), "{p:?}");
        assert!(matches!(p.next_rekey_secs, Some(990 | 989)), "{p:?}");
        // The time of the last error is when it happened, not when it is asked for.
        assert_eq!(
            p.last_error.as_ref().map(|e| e.at_unix),
            Some(1_800_000_000)
        );
        assert_eq!(peers[1].policy, PeerPolicy::Exempt);
        assert_eq!(peers[1].next_rekey_secs, None);

        let sas = h.sas();
        let ike = &sas.ike_sas[0];
        assert!(matches!(ike.age_secs, 30 | 31), "{ike:?}");
        assert!(matches!(ike.rekey_in_secs, Some(990 | 989)), "{ike:?}");
        let c = &ike.child_sas[0];
        assert!(matches!(c.rekey_in_secs, Some(490 | 489)), "{c:?}");
        assert!(matches!(c.lifetime.age_secs, 17 | 18), "{c:?}");
    }
}
