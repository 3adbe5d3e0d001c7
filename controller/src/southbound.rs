//! The Southbound view: what the OVN Southbound database says about IPsec and about every
//! chassis and its encaps, as typed snapshots and the differences between them.
//!
//! [`Southbound::spawn`] monitors only the columns it needs of SB_Global, Chassis and Encap.
//! After each Southbound transaction [`Southbound::next`] yields the new [`Snapshot`] and a
//! [`SnapshotDiff`] naming the chassis that appeared, vanished or changed. Snapshots are
//! updated incrementally from the rows each transaction touched; a full resynchronisation
//! (reconnect without a delta) rebuilds it, and what vanished meanwhile shows as removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ovsdb::{
    ChangeKind, ChangeSet, Event, Monitor, MonitorConfig, Remote, Row, TableCache, TlsFiles, Uuid,
};

/// The Southbound database name.
pub const DATABASE: &str = "OVN_Southbound";

const SB_GLOBAL: &str = "SB_Global";
const CHASSIS: &str = "Chassis";
const ENCAP: &str = "Encap";

/// Where the Southbound database is and how to reach it.
#[derive(Debug, Clone)]
pub struct SouthboundConfig {
    /// `ovn-remote`: one or more `ssl:`/`tcp:`/`unix:` remotes, tried in random order.
    pub remotes: Vec<Remote>,
    /// TLS files for `ssl:` remotes (the chassis key and certificate, the CA bundle).
    pub tls: Option<TlsFiles>,
    /// Probe the server after this long without traffic (`None`: never).
    pub probe_interval: Option<Duration>,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Seed for remote order and jitter (tests); `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl SouthboundConfig {
    /// Defaults like ovn-controller's: 5 s probe, 1 s to 8 s backoff, no TLS.
    pub fn new(remotes: Vec<Remote>) -> Self {
        let m = MonitorConfig::new(vec![], DATABASE, vec![]);
        Self {
            remotes,
            tls: None,
            probe_interval: m.connect.probe_interval,
            backoff_min: m.backoff_min,
            backoff_max: m.backoff_max,
            seed: None,
        }
    }

    fn monitor_config(&self) -> MonitorConfig {
        let mut m = MonitorConfig::new(self.remotes.clone(), DATABASE, monitored_columns());
        m.tls = self.tls.clone();
        m.connect.probe_interval = self.probe_interval;
        m.backoff_min = self.backoff_min;
        m.backoff_max = self.backoff_max;
        m.seed = self.seed;
        m
    }
}

/// The columns the view needs, and no others.
fn monitored_columns() -> Vec<(String, Vec<String>)> {
    let t = |name: &str, cols: &[&str]| {
        (
            name.to_string(),
            cols.iter().map(|c| c.to_string()).collect(),
        )
    };
    vec![
        t(SB_GLOBAL, &["ipsec", "options"]),
        t(
            CHASSIS,
            &[
                "name",
                "hostname",
                "encaps",
                "other_config",
                "external_ids",
                "transport_zones",
            ],
        ),
        t(ENCAP, &["type", "ip", "options", "chassis_name"]),
    ]
}

/// An encapsulation protocol of an OVN tunnel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EncapType {
    /// Geneve (UDP 6081 unless `dst_port` says otherwise).
    Geneve,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// STT (TCP 7471).
    Stt,
    /// A type this build does not know (the schema's enum may grow).
    Other(String),
}

impl EncapType {
    fn parse(s: &str) -> Self {
        match s {
            "geneve" => Self::Geneve,
            "vxlan" => Self::Vxlan,
            "stt" => Self::Stt,
            other => Self::Other(other.to_string()),
        }
    }
}

/// One tunnel endpoint of a chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encap {
    /// The encapsulation.
    pub encap_type: EncapType,
    /// The tunnel IP as written in the database.
    pub ip: String,
    /// Encap options (`csum`, `dst_port`, ...).
    pub options: BTreeMap<String, String>,
    /// The chassis name recorded on the encap.
    pub chassis_name: String,
}

impl Encap {
    /// The tunnel IP, if it is a valid address.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        self.ip.parse().ok()
    }

    /// The `dst_port` option, if set and valid.
    pub fn dst_port(&self) -> Option<u16> {
        self.options.get("dst_port")?.parse().ok()
    }

    /// The `csum` option, if set.
    pub fn csum(&self) -> Option<bool> {
        self.options.get("csum").map(|v| v == "true")
    }
}

/// One chassis as the Southbound describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chassis {
    /// The chassis name (`external_ids:system-id` of its Open_vSwitch).
    pub name: String,
    /// Its host name.
    pub hostname: String,
    /// Its encaps, ordered by (type, ip).
    pub encaps: Vec<Encap>,
    /// `other_config` (e.g. `is-interconn`, `ovn-cms-options`).
    pub other_config: BTreeMap<String, String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
    /// Transport zones it belongs to.
    pub transport_zones: BTreeSet<String>,
}

/// Everything the view knows at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `SB_Global.ipsec` (false when there is no SB_Global row yet).
    pub ipsec: bool,
    /// `SB_Global.options` (`ipsec_encapsulation`, `ipsec_forceencaps`, ...).
    pub options: BTreeMap<String, String>,
    /// Every chassis by name.
    pub chassis: BTreeMap<String, Arc<Chassis>>,
}

impl Snapshot {
    /// `options:ipsec_encapsulation=true`: ESP in UDP to port 4500 for every tunnel.
    pub fn ipsec_encapsulation(&self) -> bool {
        self.options
            .get("ipsec_encapsulation")
            .is_some_and(|v| v == "true")
    }

    /// `options:ipsec_forceencaps=true`: force UDP encapsulation even without NAT.
    pub fn ipsec_forceencaps(&self) -> bool {
        self.options
            .get("ipsec_forceencaps")
            .is_some_and(|v| v == "true")
    }

    /// The chassis owning an encap with this IP ((type, ip) is unique across encaps).
    pub fn chassis_by_encap_ip(&self, ip: &str) -> Option<&Arc<Chassis>> {
        self.chassis
            .values()
            .find(|c| c.encaps.iter().any(|e| e.ip == ip))
    }

    /// Builds a snapshot from the whole cache.
    pub fn from_cache(cache: &TableCache) -> Self {
        let mut s = Snapshot::default();
        s.read_global(cache);
        for (_, row) in cache.table(CHASSIS) {
            let ch = chassis_from_row(cache, row);
            s.chassis.insert(ch.name.clone(), Arc::new(ch));
        }
        s
    }

    fn read_global(&mut self, cache: &TableCache) {
        // SB_Global has at most one row (maxRows 1).
        let row = cache.table(SB_GLOBAL).next().map(|(_, r)| r);
        self.ipsec = row.and_then(|r| r.bool("ipsec")).unwrap_or(false);
        self.options = row.map(|r| r.string_map("options")).unwrap_or_default();
    }

    /// What changed from `self` to `newer`.
    pub fn diff(&self, newer: &Snapshot) -> SnapshotDiff {
        let mut d = SnapshotDiff {
            global_changed: self.ipsec != newer.ipsec || self.options != newer.options,
            ..SnapshotDiff::default()
        };
        for (name, old) in &self.chassis {
            match newer.chassis.get(name) {
                None => {
                    d.removed.insert(name.clone());
                }
                Some(new) if new != old => {
                    d.changed.insert(name.clone());
                }
                Some(_) => {}
            }
        }
        for name in newer.chassis.keys() {
            if !self.chassis.contains_key(name) {
                d.added.insert(name.clone());
            }
        }
        d
    }
}

fn chassis_from_row(cache: &TableCache, row: &Row) -> Chassis {
    let mut encaps: Vec<Encap> = row
        .uuids("encaps")
        .iter()
        // An encap reference the cache cannot resolve is skipped (the server never sends one).
        .filter_map(|u| cache.row(ENCAP, u))
        .map(|e| Encap {
            encap_type: EncapType::parse(e.str("type").unwrap_or_default()),
            ip: e.str("ip").unwrap_or_default().to_string(),
            options: e.string_map("options"),
            chassis_name: e.str("chassis_name").unwrap_or_default().to_string(),
        })
        .collect();
    encaps.sort_by(|a, b| (&a.encap_type, &a.ip).cmp(&(&b.encap_type, &b.ip)));
    Chassis {
        name: row.str("name").unwrap_or_default().to_string(),
        hostname: row.str("hostname").unwrap_or_default().to_string(),
        encaps,
        other_config: row.string_map("other_config"),
        external_ids: row.string_map("external_ids"),
        transport_zones: row.strings("transport_zones"),
    }
}

/// What one step changed, by chassis name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// `SB_Global.ipsec` or `SB_Global.options` changed.
    pub global_changed: bool,
    /// Chassis that appeared.
    pub added: BTreeSet<String>,
    /// Chassis that vanished (with their encaps).
    pub removed: BTreeSet<String>,
    /// Chassis whose columns or encaps changed.
    pub changed: BTreeSet<String>,
}

impl SnapshotDiff {
    /// Nothing the view shows changed.
    pub fn is_empty(&self) -> bool {
        !self.global_changed
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// What the Southbound view reports.
#[derive(Debug, Clone)]
pub enum SouthboundEvent {
    /// Connected and in sync with `remote`; `delta` when only what changed was fetched.
    Connected {
        /// The remote in use, as text.
        remote: String,
        /// Whether the server sent a delta since our last transaction.
        delta: bool,
    },
    /// The connection to `remote` ended; the watcher retries on its own.
    Disconnected {
        /// The remote that failed.
        remote: String,
        /// Why, as text.
        error: String,
    },
    /// The view changed.
    Changed {
        /// The view now.
        snapshot: Arc<Snapshot>,
        /// What changed from the previous one.
        diff: SnapshotDiff,
    },
}

/// The running Southbound watcher. Dropping it stops monitoring.
#[derive(Debug)]
pub struct Southbound {
    monitor: Monitor,
    view: View,
}

impl Southbound {
    /// Starts watching on the current tokio runtime.
    pub fn spawn(config: &SouthboundConfig) -> Self {
        Self {
            monitor: Monitor::spawn(config.monitor_config()),
            view: View::default(),
        }
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.view.snapshot.clone()
    }

    /// The RAFT role (or standalone) of the Southbound server connected to now.
    pub fn member_role(&self) -> Option<ovsdb::MemberRole> {
        self.monitor.member_role()
    }

    /// The next event; transactions that change nothing the view shows are skipped.
    pub async fn next(&mut self) -> Option<SouthboundEvent> {
        loop {
            match self.monitor.next_event().await? {
                Event::Connected { remote, delta } => {
                    return Some(SouthboundEvent::Connected {
                        remote: remote.to_string(),
                        delta,
                    })
                }
                Event::Disconnected { remote, error } => {
                    return Some(SouthboundEvent::Disconnected {
                        remote: remote.to_string(),
                        error: error.to_string(),
                    })
                }
                Event::Changed(cs) => {
                    let handle = self.monitor.cache_handle();
                    let cache = handle
                        .read()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let diff = self.view.apply(&cache, &cs);
                    drop(cache);
                    if !diff.is_empty() {
                        return Some(SouthboundEvent::Changed {
                            snapshot: self.view.snapshot.clone(),
                            diff,
                        });
                    }
                }
            }
        }
    }
}

/// The snapshot and the indexes that let it follow a change set without a full rebuild.
#[derive(Debug, Default)]
pub struct View {
    snapshot: Arc<Snapshot>,
    /// Chassis row to name, to find what a delete removed.
    names: HashMap<Uuid, String>,
    /// Encap row to the chassis row that references it.
    owners: HashMap<Uuid, Uuid>,
    /// Chassis row to the encap rows it references.
    encaps_of: HashMap<Uuid, Vec<Uuid>>,
}

impl View {
    /// The current snapshot.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Brings the snapshot up to date with `cache`, looking only at the rows `cs` names
    /// (everything when `cs` replaced the cache); returns what changed.
    pub fn apply(&mut self, cache: &TableCache, cs: &ChangeSet) -> SnapshotDiff {
        if cs.replaced {
            let fresh = Snapshot::from_cache(cache);
            let diff = self.snapshot.diff(&fresh);
            self.names.clear();
            self.owners.clear();
            self.encaps_of.clear();
            for (uuid, row) in cache.table(CHASSIS) {
                self.index(uuid, row);
            }
            self.snapshot = Arc::new(fresh);
            return diff;
        }

        let mut global = false;
        let mut touched: BTreeSet<Uuid> = BTreeSet::new();
        for change in &cs.changes {
            match change.table.as_str() {
                SB_GLOBAL => global = true,
                CHASSIS => {
                    touched.insert(change.uuid.clone());
                }
                ENCAP => {
                    if let Some(owner) = self.owners.get(&change.uuid) {
                        touched.insert(owner.clone());
                    }
                    if change.kind == ChangeKind::Delete {
                        self.owners.remove(&change.uuid);
                    }
                }
                _ => {}
            }
        }

        // Changed in place unless a consumer still holds the previous snapshot; the touched
        // chassis' old entries are kept aside for the diff.
        let next = Arc::make_mut(&mut self.snapshot);
        let mut diff = SnapshotDiff::default();
        if global {
            let before = (next.ipsec, std::mem::take(&mut next.options));
            next.read_global(cache);
            diff.global_changed = before != (next.ipsec, next.options.clone());
        }
        // First take every touched chassis out, then put back what still exists: a chassis may
        // take over a name another one gave up in the same transaction.
        let mut old: BTreeMap<String, Option<Arc<Chassis>>> = BTreeMap::new();
        for uuid in &touched {
            if let Some(old_name) = self.names.remove(uuid) {
                let entry = next.chassis.remove(&old_name);
                old.insert(old_name, entry);
            }
            for e in self.encaps_of.remove(uuid).unwrap_or_default() {
                if self.owners.get(&e) == Some(uuid) {
                    self.owners.remove(&e);
                }
            }
        }
        for uuid in &touched {
            if let Some(row) = cache.row(CHASSIS, uuid) {
                let ch = chassis_from_row(cache, row);
                let name = ch.name.clone();
                if let Some(prev) = next.chassis.insert(name.clone(), Arc::new(ch)) {
                    // Two rows claiming one name; keep what was there before for the diff.
                    old.entry(name.clone()).or_insert(Some(prev));
                }
                old.entry(name).or_insert(None);
                index_row(
                    &mut self.names,
                    &mut self.owners,
                    &mut self.encaps_of,
                    uuid,
                    row,
                );
            }
        }
        for (name, before) in old {
            match (before, next.chassis.get(&name)) {
                (None, Some(_)) => {
                    diff.added.insert(name);
                }
                (Some(_), None) => {
                    diff.removed.insert(name);
                }
                (Some(b), Some(a)) if b != *a => {
                    diff.changed.insert(name);
                }
                _ => {}
            }
        }
        diff
    }

    fn index(&mut self, uuid: &Uuid, row: &Row) {
        index_row(
            &mut self.names,
            &mut self.owners,
            &mut self.encaps_of,
            uuid,
            row,
        );
    }
}

/// Records a chassis row's name and encaps in the view's indexes.
fn index_row(
    names: &mut HashMap<Uuid, String>,
    owners: &mut HashMap<Uuid, Uuid>,
    encaps_of: &mut HashMap<Uuid, Vec<Uuid>>,
    uuid: &Uuid,
    row: &Row,
) {
    names.insert(
        uuid.clone(),
        row.str("name").unwrap_or_default().to_string(),
    );
    let encaps = row.uuids("encaps");
    for e in &encaps {
        owners.insert(e.clone(), uuid.clone());
    }
    encaps_of.insert(uuid.clone(), encaps);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovsdb::DatabaseSchema;
    use serde_json::{json, Value};

    fn schema() -> DatabaseSchema {
        let map = json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"});
        let set = json!({"key": "string", "min": 0, "max": "unlimited"});
        DatabaseSchema::from_json(&json!({"name": "OVN_Southbound", "tables": {
            "SB_Global": {"columns": {"ipsec": {"type": "boolean"}, "options": {"type": map}}},
            "Chassis": {"columns": {
                "name": {"type": "string"}, "hostname": {"type": "string"},
                "encaps": {"type": {"key": {"type": "uuid"}, "min": 1, "max": "unlimited"}},
                "other_config": {"type": map}, "external_ids": {"type": map},
                "transport_zones": {"type": set}}},
            "Encap": {"columns": {"type": {"type": "string"}, "ip": {"type": "string"},
                "options": {"type": map}, "chassis_name": {"type": "string"}}}
        }}))
        .unwrap()
    }

    fn u(n: u32) -> String {
        format!("{n:08x}-0000-4000-8000-000000000000")
    }

    /// Applies each update to a cache and the view, checking the incremental snapshot against
    /// a full rebuild after every step.
    fn run(steps: &[Value]) -> Vec<SnapshotDiff> {
        let mut cache = TableCache::new(&monitored_columns());
        cache.set_schema(schema());
        let mut view = View::default();
        let mut diffs = Vec::new();
        for step in steps {
            let cs = cache.apply_updates2(step).unwrap();
            diffs.push(view.apply(&cache, &cs));
            assert_eq!(
                **view.snapshot(),
                Snapshot::from_cache(&cache),
                "after {step}"
            );
        }
        diffs
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn incremental_view_matches_a_full_rebuild_through_renames_moves_and_deletes() {
        let (c1, c2, e1, e2, e3, g) = (u(1), u(2), u(11), u(12), u(13), u(99));
        let diffs = run(&[
            json!({"Encap": {&e1: {"insert": {"type": "geneve", "ip": "192.0.2.1", "chassis_name": "a"}},
                             &e2: {"insert": {"type": "geneve", "ip": "192.0.2.2", "chassis_name": "b"}}},
                   "Chassis": {&c1: {"insert": {"name": "a", "encaps": ["uuid", &e1]}},
                               &c2: {"insert": {"name": "b", "encaps": ["uuid", &e2]}}}}),
            json!({"Encap": {&e1: {"modify": {"ip": "198.51.100.1"}}}}),
            // a and b swap names in one transaction.
            json!({"Chassis": {&c1: {"modify": {"name": "b"}}, &c2: {"modify": {"name": "a"}}}}),
            // An encap is added to c1, another deleted.
            json!({"Encap": {&e3: {"insert": {"type": "vxlan", "ip": "198.51.100.1"}},
                             &e1: {"delete": null}},
                   "Chassis": {&c1: {"modify": {"encaps": ["set", [["uuid", &e1], ["uuid", &e3]]]}}}}),
            json!({"SB_Global": {&g: {"insert": {"ipsec": true}}}}),
            json!({"Chassis": {&c2: {"delete": null}}, "Encap": {&e2: {"delete": null}}}),
        ]);
        assert_eq!(diffs[0].added, set(&["a", "b"]));
        assert_eq!(diffs[1].changed, set(&["a"]));
        assert_eq!(diffs[2].changed, set(&["a", "b"]));
        assert_eq!(diffs[3].changed, set(&["b"]));
        assert!(diffs[4].global_changed && diffs[4].changed.is_empty());
        assert_eq!(diffs[5].removed, set(&["a"]));
    }

    #[test]
    fn replacing_snapshot_reports_vanished_chassis_as_removed() {
        let mut cache = TableCache::new(&monitored_columns());
        cache.set_schema(schema());
        let mut view = View::default();
        let cs = cache
            .replace_with_updates2(&json!({"Chassis": {u(1): {"initial": {"name": "a"}}}}))
            .unwrap();
        assert_eq!(view.apply(&cache, &cs).added, set(&["a"]));
        let cs = cache
            .replace_with_updates2(&json!({"Chassis": {u(2): {"initial": {"name": "b"}}}}))
            .unwrap();
        let diff = view.apply(&cache, &cs);
        assert_eq!((diff.added, diff.removed), (set(&["b"]), set(&["a"])));
    }
}
