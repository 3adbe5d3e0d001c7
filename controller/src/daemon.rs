//! The daemon loop: one task that owns the IKE endpoint, the kernel layer and the peer table,
//! and selects over the UDP sockets, the engine's timer, the Southbound view, XFRM events,
//! control commands and signals.
//!
//! Order of a new peer (architecture decision "No plaintext, ever"): the pair's policies are
//! reconciled into the kernel first, and only once the kernel took them is the peer added to
//! the endpoint (and may initiate). Without an SA those policies drop the tunnel traffic.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ikev2::crypto::{OsRandom, RingProvider};
use ikev2::engine::{Endpoint, EndpointConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{info, info_span, warn};

use crate::cert_watch::{CertWatch, CERT_POLL_INTERVAL};
use crate::config::{self, Args, Config};
use crate::control::{ControlServer, SocketConfig};
use crate::desired::{desired_peers, DesiredPeers, DesiredState};
use crate::handler::{Command, DaemonHandler, SharedView};
use crate::identity_check::LocalIdentity;
use crate::io::{Sockets, MAX_DATAGRAM};
use crate::kernel::{Desired, KernelConfig, KernelSync, ObjectRef, Operation};
use crate::metrics::{Metrics, MetricsServer};
use crate::peers::{peer_config, IkeState, LocalCredentials, Peer, PeerTable};
use crate::southbound::{Snapshot, Southbound, SouthboundEvent};

/// How often the kernel is reconciled without any trigger (level-triggered repair).
pub const PERIODIC_RECONCILE: Duration = Duration::from_secs(30);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration lacks something the daemon needs.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The XFRM netlink connection could not be set up.
    #[error("kernel: {0}")]
    Kernel(#[from] crate::kernel::SyncError),
    /// The UDP sockets could not be set up.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// A signal handler could not be installed.
    #[error("cannot install a signal handler: {0}")]
    Signal(std::io::Error),
    /// The Southbound watcher ended.
    #[error("the Southbound watcher stopped")]
    SouthboundEnded,
}

/// The Southbound connection as the status shows it.
#[derive(Debug, Clone, Default)]
pub struct SouthboundState {
    /// The remote in use.
    pub remote: Option<String>,
    /// Connected now.
    pub connected: bool,
    /// When the view last changed or synced.
    pub last_sync: Option<SystemTime>,
    /// The role of the server connected to, as the loop last read it.
    pub member_role: Option<ovsdb::MemberRole>,
}

/// Everything the loop owns.
pub struct Daemon {
    pub(crate) args: Args,
    pub(crate) chassis: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) kernel: KernelSync,
    pub(crate) peers: PeerTable,
    pub(crate) credentials: LocalCredentials,
    pub(crate) certificate: (String, SystemTime),
    pub(crate) desired: DesiredPeers,
    pub(crate) southbound: SouthboundState,
    pub(crate) shared: Arc<Mutex<SharedView>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) reconcile_due: bool,
    /// A Southbound view has been applied. Until then the kernel is left as it is: after a
    /// restart it holds the previous run's policies and states, which an empty desired set
    /// would remove (dropping traffic, and letting it out in plaintext until the view came).
    // Limitation: a Southbound with no rows at all sends no change, so a previous run's
    // objects stay until the first row appears.
    pub(crate) southbound_applied: bool,
    pub(crate) linger: crate::linger::ChildSaLinger,
    pub(crate) kernel_retry: Option<Instant>,
    pub(crate) next_periodic: Instant,
    pub(crate) cert_watch: CertWatch,
    pub(crate) cert_poll_at: Instant,
    pub(crate) systemd: crate::systemd::Notifier,
}

/// The engine's credentials and the status view of the certificate, from a checked identity.
pub(crate) fn credentials_of(
    chassis: &str,
    identity: LocalIdentity,
) -> (LocalCredentials, (String, SystemTime)) {
    let cert = (
        identity.certificate.subject().to_owned(),
        identity.certificate.not_after(),
    );
    let creds = LocalCredentials::new(
        chassis.to_owned(),
        identity.certificate,
        identity.intermediates,
        identity.private_key,
        identity.trust,
    );
    (creds, cert)
}

/// Runs the daemon until SIGTERM or SIGINT. Policies and SAs stay in the kernel when it stops
/// (a separate cleanup removes them), so traffic keeps flowing through a restart.
pub async fn run(args: Args, config: Config, identity: LocalIdentity) -> Result<(), DaemonError> {
    let required = config.required()?;
    let sb_config = config.southbound_config()?;
    let chassis = required.chassis_name.clone();
    let (credentials, certificate) = credentials_of(&chassis, identity);

    let kernel = KernelSync::start(KernelConfig::default()).await?;
    let mut xfrm_events = match kernel.kernel().subscribe().await {
        Ok(e) => Some(e),
        Err(error) => {
            warn!(%error, "cannot subscribe to XFRM events; relying on periodic reconciles");
            None
        }
    };
    let endpoint_config = EndpointConfig::default();
    let sockets = Sockets::bind(endpoint_config.ike_port, endpoint_config.nat_t_port).await?;
    let mut endpoint = Endpoint::new(
        endpoint_config,
        Arc::new(RingProvider),
        Box::new(OsRandom::new()),
    );
    endpoint.set_wall_clock(Instant::now(), SystemTime::now());

    let metrics = Arc::new(Metrics::new());
    if let Some(listen) = &config.metrics_listen {
        match MetricsServer::bind(listen.value).await {
            Ok(server) => {
                tokio::spawn(server.serve(metrics.clone(), std::future::pending()));
            }
            Err(error) => warn!(address = %listen.value, %error, "metrics endpoint not started"),
        }
    }
    let shared = Arc::new(Mutex::new(SharedView::default()));
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    match ControlServer::bind(&SocketConfig {
        path: config.control_socket.value.clone(),
        group: config.control_group.as_ref().map(|g| g.value.clone()),
    }) {
        Ok(server) => {
            let ownership = kernel.config().ownership();
            let handler =
                DaemonHandler::start(shared.clone(), commands_tx, metrics.clone(), ownership);
            let handler = Arc::new(handler.await);
            tokio::spawn(server.serve(handler, std::future::pending()));
        }
        Err(error) => warn!(%error, "control socket not available"),
    }

    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut sb = Southbound::spawn(&sb_config);

    let mut daemon = Daemon {
        args,
        chassis,
        endpoint,
        kernel,
        peers: PeerTable::default(),
        credentials,
        certificate,
        desired: desired_peers(&Snapshot::default(), ""),
        southbound: SouthboundState::default(),
        shared,
        metrics,
        reconcile_due: true,
        southbound_applied: false,
        linger: Default::default(),
        kernel_retry: None,
        next_periodic: Instant::now() + PERIODIC_RECONCILE,
        cert_watch: CertWatch::new(required.identity.clone()),
        cert_poll_at: Instant::now() + CERT_POLL_INTERVAL,
        systemd: crate::systemd::Notifier::from_env(Instant::now()),
    };
    info!(chassis = %daemon.chassis, "ovn-ipsecd running");

    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        daemon.drain(&sockets).await;
        daemon.southbound.member_role = sb.member_role();
        daemon.publish();
        daemon.notify_systemd();
        let deadline = daemon.next_deadline();
        tokio::select! {
            r = sockets.recv(&mut buf) => match r {
                Ok(rx) => daemon.on_datagram(rx, buf.get(..rx.len).unwrap_or(&[])),
                Err(error) => warn!(%error, "receiving on the IKE sockets failed"),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                daemon.on_deadline().await;
            }
            ev = sb.next() => match ev {
                Some(ev) => {
                    let connected = matches!(ev, SouthboundEvent::Connected { .. });
                    daemon.on_southbound(ev).await;
                    if connected {
                        daemon.take_initial_view(&mut sb).await;
                    }
                }
                None => return Err(DaemonError::SouthboundEnded),
            },
            ev = next_xfrm_event(&mut xfrm_events) => match ev {
                Ok(ev) => {
                    daemon.on_acquire(&ev);
                    if crate::kernel::needs_reconcile(&ev, &daemon.kernel.config().ownership()) {
                        tracing::debug!(event = ?ev, "XFRM change of ours: reconciling");
                        daemon.reconcile_due = true;
                        daemon.rekey_lost_states(&ev);
                    }
                }
                Err(error) => {
                    warn!(%error, "XFRM event subscription failed; relying on periodic reconciles");
                    xfrm_events = None;
                }
            },
            Some(cmd) = commands.recv() => {
                if daemon.on_command(cmd).await.is_break() {
                    return Ok(());
                }
            }
            _ = sigterm.recv() => {
                info!("SIGTERM: stopping; policies and SAs stay in the kernel");
                daemon.systemd.stopping();
                return Ok(());
            }
            _ = sigint.recv() => {
                info!("SIGINT: stopping; policies and SAs stay in the kernel");
                daemon.systemd.stopping();
                return Ok(());
            }
            _ = sighup.recv() => daemon.reload_notifying().await,
        }
    }
}

async fn next_xfrm_event(events: &mut Option<xfrm::Events>) -> Result<xfrm::Event, xfrm::Error> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    /// Drains the engine: events first (kernel installs happen before the IKE message that
    /// completes the exchange leaves), then a reconcile if one is due, then transmits; until
    /// the engine has nothing more.
    async fn drain(&mut self, sockets: &Sockets) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.endpoint.poll_event() {
                self.on_engine_event(event).await;
                progressed = true;
            }
            self.apply_child_sa_deletes(Instant::now());
            progressed |= self.repair_missing_children(Instant::now());
            if self.reconcile_due {
                self.reconcile().await;
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                sockets.send(&t).await;
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn next_deadline(&mut self) -> Instant {
        let mut deadline = self.next_periodic;
        let candidates = [
            self.endpoint.poll_timeout(),
            self.kernel_retry,
            Some(self.cert_poll_at),
            self.systemd.deadline(),
            self.next_linger_deadline(),
            self.next_child_repair(),
            self.peers
                .peers
                .values()
                .filter(|p| p.engine_id.is_some())
                .filter_map(|p| p.initiate_at)
                .min(),
        ];
        for c in candidates.into_iter().flatten() {
            deadline = deadline.min(c);
        }
        deadline
    }

    fn on_datagram(&mut self, rx: crate::io::Received, bytes: &[u8]) {
        // Limitation: the destination address is not read on receive (IP_PKTINFO is only set
        // on send), so our address is taken from the peer table by the sender's address; a
        // peer whose packets arrive from another address (behind a NAT) is not matched.
        let Some(local_ip) = self.peers.local_ip_for(rx.remote.ip()) else {
            tracing::debug!(remote = %rx.remote, "datagram from an address that is no peer");
            return;
        };
        let local = std::net::SocketAddr::new(local_ip, rx.local_port);
        self.endpoint
            .handle_datagram(Instant::now(), local, rx.remote, bytes);
    }

    async fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        if self.kernel_retry.is_some_and(|t| t <= now) || self.next_periodic <= now {
            self.kernel_retry = None;
            self.next_periodic = now + PERIODIC_RECONCILE;
            self.reconcile_due = true;
        }
        self.poll_certificates(now);
        self.initiate_due(now);
    }

    fn initiate_due(&mut self, now: Instant) {
        for peer in self.peers.peers.values_mut() {
            let (Some(id), Some(at)) = (peer.engine_id, peer.initiate_at) else {
                continue;
            };
            if at > now {
                continue;
            }
            peer.initiate_at = None;
            let _span = peer.span.clone().entered();
            match self.endpoint.initiate(now, id) {
                Ok(_) => {
                    self.metrics
                        .handshake_started(&peer.desired.remote_chassis, now);
                    info!("initiating IKE SA");
                    peer.ike = IkeState::Connecting;
                }
                Err(ikev2::engine::CommandError::AlreadyActive { .. }) => {}
                Err(error) => {
                    let delay = peer.retry_later(now, crate::retry::random_sample());
                    warn!(%error, retry_in = ?delay, "cannot initiate; retrying");
                }
            }
        }
    }

    pub(crate) async fn on_southbound(&mut self, ev: SouthboundEvent) {
        match ev {
            SouthboundEvent::Connected { remote, delta } => {
                info!(%remote, delta, "Southbound connected");
                if self.southbound.remote.is_some() {
                    self.metrics.southbound_reconnected();
                }
                self.southbound.remote = Some(remote);
                self.southbound.connected = true;
                self.southbound.last_sync = Some(SystemTime::now());
            }
            SouthboundEvent::Disconnected { remote, error } => {
                // Nothing is torn down: existing SAs keep forwarding and rekeying.
                warn!(%remote, %error, "Southbound unreachable; keeping every SA");
                self.southbound.connected = false;
            }
            SouthboundEvent::Changed { snapshot, .. } => {
                self.southbound.last_sync = Some(SystemTime::now());
                self.apply_snapshot(&snapshot).await;
            }
        }
    }

    /// Follows the Southbound view: removed or changed peers leave the endpoint (with an IKE
    /// Delete) and the kernel; new ones get their policies first and join the endpoint after.
    pub(crate) async fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        let desired = desired_peers(snapshot, &self.chassis);
        if desired.state != self.desired.state {
            info!(state = ?desired.state, peers = desired.peers.len(), "desired state changed");
        }
        let now = Instant::now();
        let gone: Vec<_> = self
            .peers
            .peers
            .iter()
            .filter(|(k, p)| desired.peers.get(*k) != Some(&p.desired))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            if let Some(peer) = self.peers.peers.remove(&key) {
                let _span = peer.span.enter();
                info!("peer removed from the desired set: deleting its SAs and policies");
                if let Some(id) = peer.engine_id {
                    if let Err(error) = self.endpoint.remove_peer(now, id) {
                        warn!(%error, "engine did not know the peer");
                    }
                }
            }
        }
        for (key, want) in &desired.peers {
            if self.peers.peers.contains_key(key) {
                continue;
            }
            let index = self.peers.free_index();
            let span = info_span!("peer", chassis = %want.remote_chassis, local = %key.local_ip, remote = %key.remote_ip);
            span.in_scope(|| info!(index, role = ?want.role, "new peer: programming its policies"));
            self.peers
                .peers
                .insert(*key, Peer::new(want.clone(), index, span));
        }
        if desired.state != DesiredState::Protecting && !desired.excluded.is_empty() {
            tracing::debug!(excluded = desired.excluded.len(), "exclusions");
        }
        self.desired = desired;
        self.southbound_applied = true;
        self.reconcile_due = true;
    }

    /// Makes the kernel match the peer table; once the policies are in, peers waiting for them
    /// join the endpoint.
    pub(crate) async fn reconcile(&mut self) {
        self.reconcile_due = false;
        if !self.southbound_applied {
            tracing::debug!("no Southbound view yet: leaving the kernel as it is");
            return;
        }
        let desired = Desired {
            pairs: self.peers.peers.values().map(Peer::pair).collect(),
            child_sas: self.peers.child_sas(),
        };
        let policies_ok = match self.kernel.reconcile(&desired).await {
            Ok(report) => {
                for f in &report.failures {
                    warn!(operation = ?f.operation, object = ?f.object, error = %f.error, "kernel refused a change");
                }
                for p in &report.problems {
                    warn!(problem = %p, "cannot program");
                }
                if report.applied() > 0 {
                    tracing::debug!(
                        states_added = report.states_added,
                        states_deleted = report.states_deleted,
                        policies_added = report.policies_added,
                        policies_deleted = report.policies_deleted,
                        "reconciled"
                    );
                }
                self.kernel_retry = report.retry_after.map(|d| Instant::now() + d);
                // What the kernel refused is not installed, and the peer says why.
                let refused: Vec<(xfrm::StateId, String)> = report
                    .failures
                    .iter()
                    .filter_map(|f| match (f.operation, f.object) {
                        (Operation::Add | Operation::Update, ObjectRef::State(id)) => {
                            Some((id, f.error.to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                self.peers.note_reconcile(
                    self.kernel.config(),
                    &refused,
                    std::time::SystemTime::now(),
                );
                !report
                    .failures
                    .iter()
                    .any(|f| matches!(f.object, ObjectRef::Policy(_)))
            }
            Err(error) => {
                warn!(%error, "reconcile failed");
                self.kernel_retry = self.kernel.retry_after().map(|d| Instant::now() + d);
                false
            }
        };
        if policies_ok {
            self.add_pending_peers();
        }
    }

    fn add_pending_peers(&mut self) {
        let now = Instant::now();
        for peer in self.peers.peers.values_mut() {
            if peer.engine_id.is_some() {
                continue;
            }
            let _span = peer.span.enter();
            let mut config = peer_config(&peer.desired, &self.credentials);
            if let Some(secs) = self.args.child_sa_lifetime {
                let lifetime = crate::peers::child_lifetime(secs);
                config
                    .children
                    .iter_mut()
                    .for_each(|c| c.lifetime = lifetime);
            }
            match self.endpoint.add_peer(config) {
                Ok(id) => {
                    peer.engine_id = Some(id);
                    peer.initiate_at = Some(Peer::first_initiation(peer.desired.role, now));
                    info!("policies in place; peer added to the IKE endpoint");
                }
                Err(error) => {
                    warn!(%error, "peer configuration refused");
                    peer.last_error = Some(crate::peers::PeerFailure {
                        message: error.to_string(),
                        at: SystemTime::now(),
                    });
                }
            }
        }
    }

    /// SIGHUP: re-reads the configuration layers and our certificate and key, which every peer
    /// uses from its next IKE SA on; changes of chassis name or Southbound remotes need a
    /// restart.
    pub(crate) async fn reload(&mut self) {
        info!("SIGHUP: reloading configuration and certificates");
        let config = match config::load(self.args.clone()).await {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, "reload: configuration not usable; keeping the running one");
                return;
            }
        };
        let required = match config.required() {
            Ok(r) => r,
            Err(error) => {
                warn!(%error, "reload: configuration incomplete; keeping the running one");
                return;
            }
        };
        if required.chassis_name != self.chassis {
            warn!(new = %required.chassis_name, running = %self.chassis, "reload: the chassis name changed; restart the daemon to use it");
            return;
        }
        // The watcher follows the files just loaded (their paths may have changed).
        self.cert_watch.rebase(required.identity.clone());
        self.load_identity(&required.identity);
        self.endpoint
            .set_wall_clock(Instant::now(), SystemTime::now());
    }

    /// Carries out a control command; `Break` when the daemon is to stop (after cleanup).
    async fn on_command(&mut self, cmd: Command) -> std::ops::ControlFlow<()> {
        let now = Instant::now();
        match cmd {
            Command::Reload => self.reload_notifying().await,
            Command::Initiate(name) => {
                for peer in self.peers.peers.values_mut() {
                    if peer.desired.remote_chassis == name && peer.engine_id.is_some() {
                        peer.initiate_at = Some(now);
                    }
                }
                self.initiate_due(now);
            }
            Command::Rekey(name) => self.rekey_peer(&name, now),
            Command::Terminate(name) => {
                for peer in self.peers.peers.values_mut() {
                    if peer.desired.remote_chassis != name {
                        continue;
                    }
                    if let Some(id) = peer.engine_id {
                        if let Err(error) = self.endpoint.terminate(now, id) {
                            warn!(%error, chassis = %name, "terminate");
                        }
                    }
                }
            }
            Command::Cleanup(reply) => return self.cleanup_and_stop(reply).await,
        }
        std::ops::ControlFlow::Continue(())
    }
}
