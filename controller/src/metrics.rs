//! Prometheus metrics and the health endpoints, served over HTTP (loopback by default).
//!
//! The daemon holds one [`Metrics`] and calls its methods as things happen; [`MetricsServer`]
//! serves `/metrics` (Prometheus text format 0.0.4), `/healthz` (the process answers) and
//! `/readyz` (synced with the Southbound DB and the kernel programmed, see
//! [`Metrics::set_ready`]). Labels are bounded: by state, reason or kind, and per peer at most,
//! never per SPI.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use control_api::protocol::{ConnectionState, IkeSaState};

#[cfg(test)]
mod tests;

/// Where metrics are served unless configured otherwise: loopback only.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:9476";

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "ovn_ipsec";

/// Scrapers served at once.
pub const MAX_HTTP_CONNECTIONS: usize = 16;

/// A scrape connection is closed after this long, finished or not (slow-loris bound).
pub const HTTP_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Peers counted by [`Metrics::set_peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerCount {
    /// To be protected.
    Desired,
    /// Opted out.
    Exempt,
    /// Protected now.
    Up,
}

/// The state of a CHILD_SA, for [`Metrics::set_child_sas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildSaState {
    /// Being negotiated or installed.
    Installing,
    /// Installed in the kernel.
    Installed,
    /// Being rekeyed.
    Rekeying,
    /// Being deleted.
    Deleting,
}

/// Why a negotiation failed, for [`Metrics::failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// AUTHENTICATION_FAILED, or a certificate or identity we rejected.
    Auth,
    /// NO_PROPOSAL_CHOSEN.
    NoProposal,
    /// The peer did not answer before the retransmissions ran out.
    Timeout,
    /// TS_UNACCEPTABLE.
    TsUnacceptable,
    /// INVALID_KE_PAYLOAD.
    InvalidKe,
}

/// What was rekeyed, for [`Metrics::rekey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RekeyKind {
    /// An IKE SA.
    Ike,
    /// A CHILD_SA.
    Child,
}

/// How a rekey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RekeyResult {
    /// The new SA replaced the old one.
    Success,
    /// It did not.
    Failure,
}

/// Kernel counters of one peer, summed over its states (both directions where noted). The
/// daemon keeps the sums monotonic across rekeys by adding what expired states had counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerKernelCounters {
    /// Bytes received and decrypted.
    pub bytes_in: u64,
    /// Bytes encrypted and sent.
    pub bytes_out: u64,
    /// Packets received and decrypted.
    pub packets_in: u64,
    /// Packets encrypted and sent.
    pub packets_out: u64,
    /// Inbound packets that failed the integrity check.
    pub integrity_failures: u64,
    /// Inbound packets dropped as replays or outside the replay window.
    pub replay_failures: u64,
}

macro_rules! label_values {
    ($($ty:ty { $($variant:ident => $text:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
    )+};
}

label_values! {
    PeerCount { Desired => "desired", Exempt => "exempt", Up => "up" }
    ChildSaState {
        Installing => "installing", Installed => "installed", Rekeying => "rekeying",
        Deleting => "deleting",
    }
    FailureReason {
        Auth => "auth", NoProposal => "no_proposal", Timeout => "timeout",
        TsUnacceptable => "ts_unacceptable", InvalidKe => "invalid_ke",
    }
    RekeyKind { Ike => "ike", Child => "child" }
    RekeyResult { Success => "success", Failure => "failure" }
}

/// A label value written as its `as_str` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Value(&'static str);

impl EncodeLabelValue for Value {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RekeyLabels {
    kind: Value,
    result: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// Every metric of the daemon. Cheap to update from any task; share it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    peers: Family<StateLabel, Gauge>,
    ike_sas: Family<StateLabel, Gauge>,
    child_sas: Family<StateLabel, Gauge>,
    handshakes: Counter,
    handshake_duration: Histogram,
    handshakes_started: Mutex<HashMap<String, Instant>>,
    failures: Family<ReasonLabel, Counter>,
    rekeys: Family<RekeyLabels, Counter>,
    retransmissions: Counter,
    dead_peers: Counter,
    cookies_sent: Counter,
    southbound_state: Family<StateLabel, Gauge>,
    southbound_reconnects: Counter,
    peer_kernel: Arc<PeerKernelCollector>,
    certificate_expiry: Gauge,
    ready: Gauge,
    ready_flag: AtomicBool,
}

impl Metrics {
    /// All families registered, at zero, with the host's `/proc/net/xfrm_stat` read at
    /// each scrape.
    pub fn new() -> Metrics {
        Metrics::with_xfrm_stat(read_host_xfrm_stat)
    }

    /// Like [`Metrics::new`], with the XFRM counters read by `source` (tests use a fixed
    /// table).
    pub fn with_xfrm_stat(source: fn() -> Option<xfrm::XfrmStat>) -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix(METRIC_PREFIX);

        let peers = Family::<StateLabel, Gauge>::default();
        registry.register(
            "peers",
            "Remote chassis and encap pairs by state: desired (to be protected), exempt \
             (opted out), up (IKE SA and CHILD_SAs established)",
            peers.clone(),
        );
        let ike_sas = Family::<StateLabel, Gauge>::default();
        registry.register("ike_sas", "IKE SAs by state", ike_sas.clone());
        let child_sas = Family::<StateLabel, Gauge>::default();
        registry.register("child_sas", "CHILD_SAs by state", child_sas.clone());

        let handshakes = Counter::default();
        registry.register(
            "handshakes",
            "IKE SAs established (IKE_SA_INIT and IKE_AUTH completed)",
            handshakes.clone(),
        );
        // 5 ms .. about 10 s: loopback handshakes to ones with retransmissions.
        let handshake_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "handshake_duration_seconds",
            "Time from our first IKE_SA_INIT to the completed IKE_AUTH, for IKE SAs this \
             chassis initiated",
            handshake_duration.clone(),
        );
        let failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "failures",
            "Failed negotiations by reason (auth, no_proposal, timeout, ts_unacceptable, \
             invalid_ke)",
            failures.clone(),
        );
        let rekeys = Family::<RekeyLabels, Counter>::default();
        registry.register(
            "rekeys",
            "Rekeys by kind (ike, child) and result",
            rekeys.clone(),
        );
        let retransmissions = Counter::default();
        registry.register(
            "retransmissions",
            "IKE requests sent again for want of a response",
            retransmissions.clone(),
        );
        let dead_peers = Counter::default();
        registry.register(
            "dead_peers",
            "IKE SAs closed because liveness checks went unanswered",
            dead_peers.clone(),
        );
        let cookies_sent = Counter::default();
        registry.register(
            "cookies_sent",
            "COOKIE notifications sent to IKE_SA_INIT requests under load (RFC 7296 2.6)",
            cookies_sent.clone(),
        );
        let southbound_state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "southbound_state",
            "1 for the current state of the Southbound connection, 0 for the others",
            southbound_state.clone(),
        );
        let southbound_reconnects = Counter::default();
        registry.register(
            "southbound_reconnects",
            "Connections to the Southbound DB re-established after a loss",
            southbound_reconnects.clone(),
        );
        let peer_kernel = Arc::new(PeerKernelCollector::default());
        registry.register_collector(Box::new(peer_kernel.clone()));
        registry.register_collector(Box::new(XfrmStatCollector { source }));
        let certificate_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the local certificate, Unix seconds (0 when none is loaded)",
            certificate_expiry.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 once the daemon is synced with the Southbound DB and has programmed the kernel",
            ready.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The daemon's version; always 1", build_info);

        let metrics = Metrics {
            registry: root,
            peers,
            ike_sas,
            child_sas,
            handshakes,
            handshake_duration,
            handshakes_started: Mutex::new(HashMap::new()),
            failures,
            rekeys,
            retransmissions,
            dead_peers,
            cookies_sent,
            southbound_state,
            southbound_reconnects,
            peer_kernel,
            certificate_expiry,
            ready,
            ready_flag: AtomicBool::new(false),
        };
        metrics.init_label_sets();
        metrics
    }

    /// Every bounded label value appears from the start, so rates work from the first
    /// event and dashboards show zeros rather than gaps.
    fn init_label_sets(&self) {
        for p in [PeerCount::Desired, PeerCount::Exempt, PeerCount::Up] {
            let _ = self.peers.get_or_create(&state(p.as_str()));
        }
        for s in IKE_STATES {
            let _ = self.ike_sas.get_or_create(&state(ike_state_str(s)));
        }
        for s in [
            ChildSaState::Installing,
            ChildSaState::Installed,
            ChildSaState::Rekeying,
            ChildSaState::Deleting,
        ] {
            let _ = self.child_sas.get_or_create(&state(s.as_str()));
        }
        for r in [
            FailureReason::Auth,
            FailureReason::NoProposal,
            FailureReason::Timeout,
            FailureReason::TsUnacceptable,
            FailureReason::InvalidKe,
        ] {
            let _ = self.failures.get_or_create(&ReasonLabel {
                reason: Value(r.as_str()),
            });
        }
        for kind in [RekeyKind::Ike, RekeyKind::Child] {
            for result in [RekeyResult::Success, RekeyResult::Failure] {
                let _ = self.rekeys.get_or_create(&rekey_labels(kind, result));
            }
        }
        self.set_southbound_state(ConnectionState::Disconnected);
    }

    /// Sets the number of peers in one count (desired, exempt, up).
    pub fn set_peers(&self, count: PeerCount, n: u32) {
        self.peers
            .get_or_create(&state(count.as_str()))
            .set(i64::from(n));
    }

    /// Sets how many IKE SAs are in a state.
    pub fn set_ike_sas(&self, s: IkeSaState, n: u32) {
        self.ike_sas
            .get_or_create(&state(ike_state_str(s)))
            .set(i64::from(n));
    }

    /// Sets how many CHILD_SAs are in a state.
    pub fn set_child_sas(&self, s: ChildSaState, n: u32) {
        self.child_sas
            .get_or_create(&state(s.as_str()))
            .set(i64::from(n));
    }

    /// Counts an established IKE SA and how long its negotiation took.
    pub fn handshake_completed(&self, duration: Duration) {
        self.handshakes.inc();
        self.handshake_duration.observe(duration.as_secs_f64());
    }

    /// Notes that we sent the first IKE_SA_INIT to `peer` at `at` (for the duration of
    /// [`Metrics::handshake_up`]).
    pub fn handshake_started(&self, peer: &str, at: Instant) {
        if let Ok(mut started) = self.handshakes_started.lock() {
            started.insert(peer.to_owned(), at);
        }
    }

    /// Counts an IKE SA established with `peer`; when we initiated it
    /// ([`Metrics::handshake_started`]) its duration goes into the histogram too.
    pub fn handshake_up(&self, peer: &str, at: Instant) {
        let started = self
            .handshakes_started
            .lock()
            .ok()
            .and_then(|mut s| s.remove(peer));
        match started {
            Some(t) => self.handshake_completed(at.saturating_duration_since(t)),
            None => {
                self.handshakes.inc();
            }
        }
    }

    /// Counts a failed negotiation.
    pub fn failure(&self, reason: FailureReason) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: Value(reason.as_str()),
            })
            .inc();
    }

    /// Counts a finished rekey.
    pub fn rekey(&self, kind: RekeyKind, result: RekeyResult) {
        self.rekeys.get_or_create(&rekey_labels(kind, result)).inc();
    }

    /// Brings the retransmission counter up to `total`, the endpoint's own count
    /// (`ikev2::engine::EndpointStats::retransmissions`); a smaller total changes nothing.
    pub fn retransmissions_total(&self, total: u64) {
        let counted = self.retransmissions.get();
        if total > counted {
            self.retransmissions.inc_by(total - counted);
        }
    }

    /// Counts an IKE SA closed by dead peer detection.
    pub fn dead_peer(&self) {
        self.dead_peers.inc();
    }

    /// Counts a COOKIE notification sent.
    pub fn cookie_sent(&self) {
        self.cookies_sent.inc();
    }

    /// Brings the COOKIE counter up to `total`, the endpoint's own count of COOKIEs sent
    /// (`ikev2::engine::EndpointStats::cookies_sent`); a smaller total changes nothing.
    pub fn cookies_sent_total(&self, total: u64) {
        let counted = self.cookies_sent.get();
        if total > counted {
            self.cookies_sent.inc_by(total - counted);
        }
    }

    /// Sets the Southbound connection's current state.
    pub fn set_southbound_state(&self, current: ConnectionState) {
        for s in [
            ConnectionState::Connected,
            ConnectionState::Connecting,
            ConnectionState::Disconnected,
        ] {
            let value = i64::from(s == current);
            self.southbound_state
                .get_or_create(&state(connection_state_str(s)))
                .set(value);
        }
    }

    /// Counts a re-established Southbound connection.
    pub fn southbound_reconnected(&self) {
        self.southbound_reconnects.inc();
    }

    /// Sets a peer's kernel counters (the chassis name is the label).
    pub fn set_peer_kernel_counters(&self, peer: &str, counters: PeerKernelCounters) {
        self.peer_kernel.set(peer, counters);
    }

    /// Drops a peer's series once it has left the Southbound DB, keeping the label set
    /// bounded by the current peers.
    pub fn remove_peer(&self, peer: &str) {
        self.peer_kernel.remove(peer);
    }

    /// Sets the local certificate's notAfter (Unix seconds).
    pub fn set_certificate_expiry(&self, not_after_unix: i64) {
        self.certificate_expiry.set(not_after_unix);
    }

    /// Marks the daemon ready (synced and programmed) or not; `/readyz` follows it.
    pub fn set_ready(&self, ready: bool) {
        self.ready_flag.store(ready, Ordering::Relaxed);
        self.ready.set(i64::from(ready));
    }

    /// Whether the daemon said it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready_flag.load(Ordering::Relaxed)
    }

    /// The metrics page in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut page = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut page, &self.registry)?;
        Ok(page)
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

const IKE_STATES: [IkeSaState; 6] = [
    IkeSaState::None,
    IkeSaState::Connecting,
    IkeSaState::Established,
    IkeSaState::Rekeying,
    IkeSaState::Deleting,
    IkeSaState::Failed,
];

fn ike_state_str(s: IkeSaState) -> &'static str {
    match s {
        IkeSaState::None => "none",
        IkeSaState::Connecting => "connecting",
        IkeSaState::Established => "established",
        IkeSaState::Rekeying => "rekeying",
        IkeSaState::Deleting => "deleting",
        IkeSaState::Failed => "failed",
    }
}

fn connection_state_str(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnected => "disconnected",
    }
}

fn state(s: &'static str) -> StateLabel {
    StateLabel { state: Value(s) }
}

fn rekey_labels(kind: RekeyKind, result: RekeyResult) -> RekeyLabels {
    RekeyLabels {
        kind: Value(kind.as_str()),
        result: Value(result.as_str()),
    }
}

/// Per-peer kernel counters, set as absolute values by the daemon and written as counters.
#[derive(Debug, Default)]
struct PeerKernelCollector {
    peers: Mutex<BTreeMap<String, PeerKernelCounters>>,
}

impl PeerKernelCollector {
    fn set(&self, peer: &str, counters: PeerKernelCounters) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.insert(peer.to_owned(), counters);
        }
    }

    fn remove(&self, peer: &str) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.remove(peer);
        }
    }
}

/// Picks the inbound and outbound values of one counter.
type PickDirectional = fn(&PeerKernelCounters) -> (u64, u64);

/// Picks one counter.
type PickOne = fn(&PeerKernelCounters) -> u64;

impl Collector for PeerKernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A poisoned lock means a panic elsewhere; omit the series rather than fail the page.
        let Ok(peers) = self.peers.lock() else {
            return Ok(());
        };
        let directional: [(&str, &str, PickDirectional); 2] = [
            (
                "peer_bytes",
                "ESP payload bytes protected by the kernel, per peer and direction",
                |c| (c.bytes_in, c.bytes_out),
            ),
            (
                "peer_packets",
                "ESP packets protected by the kernel, per peer and direction",
                |c| (c.packets_in, c.packets_out),
            ),
        ];
        for (name, help, pick) in directional {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (peer, c) in peers.iter() {
                let (inbound, outbound) = pick(c);
                for (dir, v) in [("in", inbound), ("out", outbound)] {
                    let labels = [("peer", peer.as_str()), ("direction", dir)];
                    ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let per_peer: [(&str, &str, PickOne); 2] = [
            (
                "peer_integrity_failures",
                "Inbound ESP packets from the peer that failed the integrity check",
                |c| c.integrity_failures,
            ),
            (
                "peer_replay_failures",
                "Inbound ESP packets from the peer dropped as replays or outside the window",
                |c| c.replay_failures,
            ),
        ];
        for (name, help, pick) in per_peer {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (peer, c) in peers.iter() {
                ConstCounter::new(pick(c))
                    .encode(family.encode_family(&[("peer", peer.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// The host's `/proc/net/xfrm_stat`, read at each scrape.
#[derive(Debug)]
struct XfrmStatCollector {
    source: fn() -> Option<xfrm::XfrmStat>,
}

impl Collector for XfrmStatCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Limitation: a kernel without CONFIG_XFRM_STATISTICS has no such file; the family is
        // then absent from the page rather than reported as an error.
        let Some(stat) = (self.source)() else {
            return Ok(());
        };
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "xfrm_stat",
            "The host's XFRM error counters from /proc/net/xfrm_stat, by kernel name",
            None,
            counter.metric_type(),
        )?;
        for (name, value) in &stat.0 {
            // Kernel names are identifiers; anything else would not be a counter of ours.
            if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                continue;
            }
            let labels = [("counter", name.as_str())];
            ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn read_host_xfrm_stat() -> Option<xfrm::XfrmStat> {
    match xfrm::XfrmStat::read() {
        Ok(stat) => Some(stat),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read /proc/net/xfrm_stat");
            None
        }
    }
}

/// The HTTP endpoint of the metrics and health checks.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Listens on `address` (see [`DEFAULT_METRICS_ADDRESS`]).
    pub async fn bind(address: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(address).await?;
        tracing::info!(address = %listener.local_addr()?, "metrics listening");
        Ok(MetricsServer { listener })
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes until `shutdown` completes.
    pub async fn serve(self, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let stream = tokio::select! {
                () = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(route(&metrics, &req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Ok(Err(e)) = tokio::time::timeout(HTTP_CONNECTION_TIMEOUT, conn).await {
                    tracing::debug!(error = %e, "metrics connection failed");
                }
                drop(permit);
            });
        }
    }
}

/// Answers one HTTP request.
fn route(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/metrics" => match metrics.encode() {
            Ok(page) => reply(StatusCode::OK, PROMETHEUS_TEXT, page),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
        },
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if metrics.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn cookies_sent_follows_the_endpoint_total_and_never_goes_back() {
        let m = Metrics::with_xfrm_stat(|| None);
        m.cookies_sent_total(5);
        m.cookies_sent_total(3);
        m.cookies_sent_total(7);
        let text = m.encode().unwrap();
        assert!(text.contains("ovn_ipsec_cookies_sent_total 7"), "{text}");
    }
}
