//! A monitor that stays in sync with a database across disconnects, cluster fail-over and
//! server restarts.
//!
//! Each connection: check `_Server` that the member is connected to its cluster, fetch the
//! schema, then `monitor_cond_since` with the last transaction id seen (falling back to
//! `monitor_cond`, then `monitor`, for older servers). `found=true` means the reply is a delta
//! to apply; `found=false` (always, on a standalone server) means it is a full snapshot that
//! replaces the cache. When the connection ends the next remote of the shuffled list is tried
//! after an exponential backoff with jitter.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cache::{ChangeSet, TableCache};
use crate::client::{ConnectOptions, Connection, Incoming};
use crate::datum::Uuid;
use crate::error::Error;
use crate::tls::TlsFiles;
use crate::transport::{shuffled, Remote};

/// The id of our monitor of the database itself.
const DB_MONITOR_ID: &str = "db";
/// The id of our monitor of `_Server`.
const SERVER_MONITOR_ID: &str = "_Server";
/// The `_Server.Database` columns we read.
const SERVER_COLUMNS: [&str; 6] = ["name", "model", "connected", "leader", "cid", "index"];
/// A session that lasted this long resets the backoff to its minimum.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// What to monitor and how to reach it.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The servers, tried in random order (e.g. the members of a cluster).
    pub remotes: Vec<Remote>,
    /// TLS files for `ssl:` remotes.
    pub tls: Option<TlsFiles>,
    /// The database, e.g. "OVN_Southbound".
    pub database: String,
    /// Tables and the columns of each to monitor.
    pub tables: Vec<(String, Vec<String>)>,
    /// Connection settings (probe interval, message bound).
    pub connect: ConnectOptions,
    /// First reconnect delay; doubled after each failure.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Seed for the remote order and jitter; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl MonitorConfig {
    /// A configuration with ovn-controller-like defaults (5 s probe, 1 s to 8 s backoff).
    pub fn new(remotes: Vec<Remote>, database: &str, tables: Vec<(String, Vec<String>)>) -> Self {
        Self {
            remotes,
            tls: None,
            database: database.to_string(),
            tables,
            connect: ConnectOptions::default(),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            seed: None,
        }
    }
}

/// What the monitor reports.
#[derive(Debug)]
pub enum Event {
    /// A connection is up and its first snapshot or delta is in the cache.
    Connected {
        /// The remote in use.
        remote: Remote,
        /// Whether the server answered with a delta since our last transaction.
        delta: bool,
    },
    /// The cache changed; read it through [`Monitor::cache`].
    Changed(ChangeSet),
    /// The connection (or an attempt) ended; the monitor will try again.
    Disconnected {
        /// The remote that failed.
        remote: Remote,
        /// Why.
        error: Error,
    },
}

/// The role of the server a monitor is connected to, from `_Server.Database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    /// The leader of a RAFT cluster.
    Leader,
    /// A follower of a RAFT cluster.
    Follower,
    /// A server with a standalone database.
    Standalone,
}

/// The role the session last saw, shared between the monitor's task and its owner.
type SharedRole = Arc<Mutex<Option<MemberRole>>>;

/// A running monitor. Dropping it stops the task.
#[derive(Debug)]
pub struct Monitor {
    events: mpsc::UnboundedReceiver<Event>,
    cache: Arc<RwLock<TableCache>>,
    role: SharedRole,
    task: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Monitor {
    /// Starts monitoring on the current tokio runtime.
    pub fn spawn(config: MonitorConfig) -> Self {
        let cache = Arc::new(RwLock::new(TableCache::new(&config.tables)));
        // Limitation: events queue without bound; a consumer that stops reading grows memory.
        let (tx, events) = mpsc::unbounded_channel();
        let role = SharedRole::default();
        let task = tokio::spawn(run(config, cache.clone(), role.clone(), tx));
        Self {
            events,
            cache,
            role,
            task,
        }
    }

    /// The role of the server connected to now, as its `_Server` database says (it follows
    /// elections); `None` while disconnected, and with servers that have no `_Server` or a
    /// model other than standalone and clustered.
    pub fn member_role(&self) -> Option<MemberRole> {
        *self
            .role
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next event; `None` only if the task ended.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The cache as of now (it may already include changes of events not yet read). Do not hold
    /// the guard across an `.await`: updates wait for it.
    pub fn cache(&self) -> RwLockReadGuard<'_, TableCache> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A shared handle to the cache.
    pub fn cache_handle(&self) -> Arc<RwLock<TableCache>> {
        self.cache.clone()
    }
}

async fn run(
    config: MonitorConfig,
    cache: Arc<RwLock<TableCache>>,
    role: SharedRole,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut rng = match config.seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    };
    let mut backoff = config.backoff_min;
    let mut last_txn: Option<Uuid> = None;
    let mut progress = ClusterProgress::default();
    loop {
        for remote in shuffled(&config.remotes, &mut rng) {
            let started = Instant::now();
            let error = session(
                &config,
                &remote,
                &cache,
                &role,
                &mut last_txn,
                &mut progress,
                &events,
            )
            .await;
            set_role(&role, None);
            if events.is_closed() {
                return;
            }
            warn!(%remote, %error, "OVSDB connection lost");
            let _ = events.send(Event::Disconnected {
                remote: remote.clone(),
                error,
            });
            if started.elapsed() >= STABLE_SESSION {
                backoff = config.backoff_min;
            }
            let (wait, next) = backoff_step(backoff, config.backoff_max, &mut rng);
            tokio::time::sleep(wait).await;
            backoff = next;
        }
    }
}

/// The wait before the next attempt and the backoff after it: jitter in [backoff/2, backoff] so
/// that many chassis do not reconnect in step, then doubling up to `max`.
fn backoff_step(backoff: Duration, max: Duration, rng: &mut impl Rng) -> (Duration, Duration) {
    let wait = backoff.mul_f64(rng.gen_range(0.5..=1.0));
    (wait, backoff.saturating_mul(2).min(max))
}

fn set_role(shared: &SharedRole, role: Option<MemberRole>) {
    *shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = role;
}

/// Runs one connection until it fails; returns why.
async fn session(
    config: &MonitorConfig,
    remote: &Remote,
    cache: &Arc<RwLock<TableCache>>,
    role: &SharedRole,
    last_txn: &mut Option<Uuid>,
    progress: &mut ClusterProgress,
    events: &mpsc::UnboundedSender<Event>,
) -> Error {
    let tls = match (remote, &config.tls) {
        (Remote::Ssl { .. }, Some(files)) => match files.load() {
            Ok(c) => Some(c),
            Err(e) => return e,
        },
        _ => None,
    };
    let (conn, mut incoming) = match Connection::open(remote, tls.as_ref(), &config.connect).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let result = sync(
        config,
        remote,
        &conn,
        &mut incoming,
        cache,
        role,
        last_txn,
        progress,
        events,
    )
    .await;
    match result {
        Ok(never) => match never {},
        Err(e) => {
            if !matches!(e, Error::ConnectionLost(_)) {
                return e;
            }
            // The connection's task ended; its reason is the last item of `incoming`.
            while let Some(item) = incoming.recv().await {
                if let Err(reason) = item {
                    return reason;
                }
            }
            e
        }
    }
}

enum Never {}

#[allow(clippy::too_many_arguments)]
async fn sync(
    config: &MonitorConfig,
    remote: &Remote,
    conn: &Connection,
    incoming: &mut mpsc::UnboundedReceiver<Incoming>,
    cache: &Arc<RwLock<TableCache>>,
    role: &SharedRole,
    last_txn: &mut Option<Uuid>,
    progress: &mut ClusterProgress,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<Never, Error> {
    let db = config.database.as_str();
    let mut server = ServerCheck::start(conn, db, progress).await?;
    set_role(role, server.role());
    let schema = conn.get_schema(db).await?;
    write(cache).set_schema(schema);

    let requests = monitor_requests(&config.tables);
    let (mode, changes, delta) = start_db_monitor(conn, db, &requests, cache, last_txn).await?;
    info!(%remote, delta, rows = changes.changes.len(), "OVSDB monitor in sync");
    let _ = events.send(Event::Connected {
        remote: remote.clone(),
        delta,
    });
    let _ = events.send(Event::Changed(changes));

    loop {
        let (method, params) = match incoming.recv().await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e),
            None => return Err(Error::Closed),
        };
        let params = params.as_array().map(Vec::as_slice).unwrap_or_default();
        let monitor_id = params.first().and_then(Value::as_str);
        if monitor_id == Some(SERVER_MONITOR_ID) {
            server.apply(&method, params, progress)?;
            set_role(role, server.role());
            continue;
        }
        if monitor_id != Some(DB_MONITOR_ID) {
            return Err(Error::Malformed {
                what: "update notification",
                reason: format!("{method} for unknown monitor {:?}", params.first()),
            });
        }
        let applied = match (mode, method.as_str(), params) {
            (Mode::Since, "update3", [_, txn, updates]) => {
                let r = write(cache).apply_updates2(updates);
                if r.is_ok() {
                    *last_txn = txn.as_str().and_then(Uuid::parse);
                }
                r
            }
            (Mode::Cond, "update2", [_, updates]) => write(cache).apply_updates2(updates),
            (Mode::Plain, "update", [_, updates]) => write(cache).apply_updates1(updates),
            _ => {
                return Err(Error::Malformed {
                    what: "update notification",
                    reason: format!("{method} with {} parameters in {mode:?} mode", params.len()),
                })
            }
        };
        match applied {
            Ok(changes) => {
                let _ = events.send(Event::Changed(changes));
            }
            Err(e) => {
                // The cache may be half-updated: forget the transaction id so that the next
                // connection fetches a full snapshot.
                *last_txn = None;
                return Err(e);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Since,
    Cond,
    Plain,
}

fn write(cache: &RwLock<TableCache>) -> std::sync::RwLockWriteGuard<'_, TableCache> {
    cache
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// Limitation: no monitor conditions (`where`); every row of each monitored table is fetched.
fn monitor_requests(tables: &[(String, Vec<String>)]) -> Value {
    let obj: Map<String, Value> = tables
        .iter()
        .map(|(t, cols)| (t.clone(), json!([{ "columns": cols }])))
        .collect();
    Value::Object(obj)
}

fn is_unknown_method(e: &Error) -> bool {
    matches!(e, Error::Rpc { error, .. } if error.starts_with("unknown method"))
}

async fn start_db_monitor(
    conn: &Connection,
    db: &str,
    requests: &Value,
    cache: &Arc<RwLock<TableCache>>,
    last_txn: &mut Option<Uuid>,
) -> Result<(Mode, ChangeSet, bool), Error> {
    let since = last_txn.clone().unwrap_or_else(Uuid::zero);
    let params = json!([db, DB_MONITOR_ID, requests, since.as_str()]);
    match conn.call("monitor_cond_since", params).await {
        Ok(reply) => {
            let malformed = || Error::Malformed {
                what: "monitor_cond_since reply",
                reason: "not [found, last-txn-id, updates]".into(),
            };
            let Value::Array(parts) = reply else {
                return Err(malformed());
            };
            let mut parts = parts.into_iter();
            let (Some(Value::Bool(found)), Some(Value::String(txn)), Some(updates), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed());
            };
            let how = if found {
                Apply::Delta2
            } else {
                Apply::Replace2
            };
            let changes = apply_off_thread(cache, how, updates)
                .await
                .inspect_err(|_| *last_txn = None)?;
            *last_txn = Uuid::parse(&txn);
            return Ok((Mode::Since, changes, found));
        }
        Err(e) if is_unknown_method(&e) => debug!("no monitor_cond_since; trying monitor_cond"),
        Err(e) => return Err(e),
    }
    *last_txn = None;
    let params = json!([db, DB_MONITOR_ID, requests]);
    match conn.call("monitor_cond", params).await {
        Ok(updates) => {
            let changes = apply_off_thread(cache, Apply::Replace2, updates).await?;
            return Ok((Mode::Cond, changes, false));
        }
        Err(e) if is_unknown_method(&e) => debug!("no monitor_cond; trying monitor"),
        Err(e) => return Err(e),
    }
    let params = json!([db, DB_MONITOR_ID, requests]);
    let updates = conn.call("monitor", params).await?;
    let changes = apply_off_thread(cache, Apply::Replace1, updates).await?;
    Ok((Mode::Plain, changes, false))
}

/// How a monitor reply is applied to the cache.
#[derive(Debug, Clone, Copy)]
enum Apply {
    /// `found=true`: a delta in `<table-updates2>`.
    Delta2,
    /// A full snapshot in `<table-updates2>`.
    Replace2,
    /// A full snapshot in RFC 7047 `<table-updates>`.
    Replace1,
}

/// Applies a monitor reply (which may be the whole database) on the blocking pool, so that
/// the connection's task keeps answering the server's echo even on a single-threaded runtime.
async fn apply_off_thread(
    cache: &Arc<RwLock<TableCache>>,
    how: Apply,
    updates: Value,
) -> Result<ChangeSet, Error> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = write(&cache);
        match how {
            Apply::Delta2 => c.apply_updates2(&updates),
            Apply::Replace2 => c.replace_with_updates2(&updates),
            Apply::Replace1 => c.replace_with_updates1(&updates),
        }
    })
    .await
    .map_err(|e| Error::TaskFailed(e.to_string()))?
}

/// How far a cluster has got, as seen through any member: a member behind it is stale.
#[derive(Debug, Default)]
struct ClusterProgress {
    /// The cluster id (`_Server.Database.cid`); a new one (a recreated cluster) starts over.
    cid: Option<Uuid>,
    /// The highest RAFT index seen.
    index: i64,
}

/// Watches `_Server.Database` so that a member that loses its cluster is left.
/// Watches `_Server.Database` so that a member that loses its cluster is left.
struct ServerCheck {
    db: String,
    cache: Option<TableCache>,
}

impl ServerCheck {
    async fn start(
        conn: &Connection,
        db: &str,
        progress: &mut ClusterProgress,
    ) -> Result<Self, Error> {
        let tables = vec![(
            "Database".to_string(),
            SERVER_COLUMNS.iter().map(|c| c.to_string()).collect(),
        )];
        let schema = match conn.get_schema("_Server").await {
            Ok(s) => s,
            // Limitation: servers older than OVS 2.9 have no _Server; nothing is checked there.
            Err(Error::Rpc { .. }) => {
                return Ok(Self {
                    db: db.into(),
                    cache: None,
                })
            }
            Err(e) => return Err(e),
        };
        let mut cache = TableCache::new(&tables);
        cache.set_schema(schema);
        let params = json!(["_Server", SERVER_MONITOR_ID, monitor_requests(&tables)]);
        let updates = conn.call("monitor_cond", params).await?;
        cache.replace_with_updates2(&updates)?;
        let check = Self {
            db: db.into(),
            cache: Some(cache),
        };
        check.verify(progress)?;
        Ok(check)
    }

    fn apply(
        &mut self,
        method: &str,
        params: &[Value],
        progress: &mut ClusterProgress,
    ) -> Result<(), Error> {
        let Some(cache) = self.cache.as_mut() else {
            return Ok(());
        };
        match (method, params) {
            ("update2", [_, updates]) => {
                cache.apply_updates2(updates)?;
            }
            _ => {
                return Err(Error::Malformed {
                    what: "_Server update",
                    reason: format!("{method} with {} parameters", params.len()),
                })
            }
        }
        self.verify(progress)
    }

    /// The role of our database on this server (`None` without `_Server`).
    fn role(&self) -> Option<MemberRole> {
        let row = self
            .cache
            .as_ref()?
            .table("Database")
            .map(|(_, r)| r)
            .find(|r| r.str("name") == Some(self.db.as_str()))?;
        match (row.str("model"), row.bool("leader")) {
            (Some("standalone"), _) => Some(MemberRole::Standalone),
            (Some("clustered"), Some(true)) => Some(MemberRole::Leader),
            (Some("clustered"), Some(false)) => Some(MemberRole::Follower),
            _ => None,
        }
    }

    fn verify(&self, progress: &mut ClusterProgress) -> Result<(), Error> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let row = cache
            .table("Database")
            .map(|(_, r)| r)
            .find(|r| r.str("name") == Some(self.db.as_str()))
            .ok_or_else(|| Error::NoSuchDatabase(self.db.clone()))?;
        if row.str("model") == Some("clustered") && row.bool("connected") != Some(true) {
            return Err(Error::NotConnectedToCluster(self.db.clone()));
        }
        let cid = row.uuids("cid").into_iter().next();
        // `index` is an optional integer, empty on standalone databases.
        let Some(index) = row.integer("index") else {
            return Ok(());
        };
        if cid.is_some() && cid != progress.cid {
            progress.cid = cid;
            progress.index = index;
            return Ok(());
        }
        if index < progress.index {
            return Err(Error::StaleMember {
                db: self.db.clone(),
                index,
                seen: progress.index,
            });
        }
        progress.index = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let mut rng = StdRng::seed_from_u64(42);
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(8));
        let mut backoff = min;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (wait, next) = backoff_step(backoff, max, &mut rng);
            assert!(
                wait >= backoff / 2 && wait <= backoff,
                "{wait:?} for {backoff:?}"
            );
            waits.push(wait);
            backoff = next;
        }
        assert_eq!(backoff, max);
        assert!(waits
            .windows(2)
            .any(|w| w[0].as_secs_f64() / w[1].as_secs_f64() != 0.5));
    }

    #[test]
    fn only_an_unknown_method_error_triggers_the_fallback() {
        let rpc = |e: &str| Error::Rpc {
            method: "monitor_cond_since".into(),
            error: e.into(),
        };
        assert!(is_unknown_method(&rpc("unknown method")));
        assert!(is_unknown_method(&rpc(
            "unknown method: monitor_cond_since"
        )));
        assert!(!is_unknown_method(&rpc("syntax error")));
        assert!(!is_unknown_method(&Error::Closed));
    }
}
