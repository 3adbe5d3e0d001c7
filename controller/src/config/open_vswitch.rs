//! The local Open_vSwitch database: the first configuration layer, laid out as ovn-controller
//! and ovs-monitor-ipsec read it. One `transact` with a `select` of the Open_vSwitch row.

use std::collections::BTreeMap;
use std::time::Duration;

use ovsdb::{ConnectOptions, Connection, Remote};
use serde_json::{json, Value};

/// The local Open_vSwitch database where OVS puts it.
pub const DEFAULT_OVS_DB: &str = "unix:/var/run/openvswitch/db.sock";

/// How long connecting and reading may take.
pub const OVS_DB_TIMEOUT: Duration = Duration::from_secs(5);

/// Most map entries read from one column.
pub const MAX_MAP_ENTRIES: usize = 4096;

const DATABASE: &str = "Open_vSwitch";
const TABLE: &str = "Open_vSwitch";

/// The two columns of the Open_vSwitch row that hold our settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OvsValues {
    /// The remote they were read from, as text.
    pub remote: String,
    /// `external_ids`: `system-id`, `ovn-remote`, `ovn-encap-ip`, `ovn-encap-type`.
    pub external_ids: BTreeMap<String, String>,
    /// `other_config`: `certificate`, `private_key`, `ca_cert`.
    pub other_config: BTreeMap<String, String>,
}

/// Why the Open_vSwitch database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OvsReadError {
    /// The remote is not `unix:`/`tcp:`/`ssl:` as OVS writes them.
    #[error("bad remote '{remote}': {source}")]
    BadRemote {
        /// The remote as given.
        remote: String,
        /// The parser's reason.
        source: ovsdb::Error,
    },
    /// `ssl:` needs certificates that this database is where we find them.
    #[error("ssl: remotes are not supported for the local Open_vSwitch database ({remote})")]
    SslUnsupported {
        /// The remote as given.
        remote: String,
    },
    /// Connecting or the transaction failed.
    #[error("{remote}: {source}")]
    Ovsdb {
        /// The remote.
        remote: String,
        /// The client's error.
        source: ovsdb::Error,
    },
    /// No answer within [`OVS_DB_TIMEOUT`].
    #[error("{remote}: no answer within {timeout:?}")]
    Timeout {
        /// The remote.
        remote: String,
        /// The limit.
        timeout: Duration,
    },
    /// The reply is not what RFC 7047 `select` returns for this schema.
    #[error("{remote}: unexpected reply: {reason}")]
    Malformed {
        /// The remote.
        remote: String,
        /// What was wrong.
        reason: String,
    },
    /// The table is empty (OVS has not initialised the database).
    #[error("{remote}: the Open_vSwitch table has no row")]
    NoRow {
        /// The remote.
        remote: String,
    },
}

/// Reads `external_ids` and `other_config` of the Open_vSwitch row at `remote`.
pub async fn read_open_vswitch(remote: &str) -> Result<OvsValues, OvsReadError> {
    let parsed: Remote = remote.parse().map_err(|source| OvsReadError::BadRemote {
        remote: remote.to_owned(),
        source,
    })?;
    if matches!(parsed, Remote::Ssl { .. }) {
        return Err(OvsReadError::SslUnsupported {
            remote: remote.to_owned(),
        });
    }
    let work = select_row(&parsed, remote);
    tokio::time::timeout(OVS_DB_TIMEOUT, work)
        .await
        .map_err(|_| OvsReadError::Timeout {
            remote: remote.to_owned(),
            timeout: OVS_DB_TIMEOUT,
        })?
}

async fn select_row(parsed: &Remote, remote: &str) -> Result<OvsValues, OvsReadError> {
    let ovsdb_err = |source| OvsReadError::Ovsdb {
        remote: remote.to_owned(),
        source,
    };
    let options = ConnectOptions {
        probe_interval: None,
        ..ConnectOptions::default()
    };
    let (conn, _notifications) = Connection::open(parsed, None, &options)
        .await
        .map_err(ovsdb_err)?;
    let select = json!({
        "op": "select",
        "table": TABLE,
        "where": [],
        "columns": ["external_ids", "other_config"],
    });
    let results = conn
        .transact(DATABASE, vec![select])
        .await
        .map_err(ovsdb_err)?;
    parse_select_reply(remote, &results)
}

/// Takes the row out of a `select` reply (RFC 7047 §5.2.2).
pub fn parse_select_reply(remote: &str, results: &[Value]) -> Result<OvsValues, OvsReadError> {
    let malformed = |reason: &str| OvsReadError::Malformed {
        remote: remote.to_owned(),
        reason: reason.to_owned(),
    };
    let rows = results
        .first()
        .and_then(|r| r.get("rows"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no rows in the select result"))?;
    // maxRows is 1 in the schema; a second row would be ignored by OVS too.
    let row = rows.first().ok_or_else(|| OvsReadError::NoRow {
        remote: remote.to_owned(),
    })?;
    let column = |name: &str| -> Result<BTreeMap<String, String>, OvsReadError> {
        match row.get(name) {
            None => Ok(BTreeMap::new()),
            Some(v) => string_map(v).map_err(|reason| malformed(&format!("{name}: {reason}"))),
        }
    };
    Ok(OvsValues {
        remote: remote.to_owned(),
        external_ids: column("external_ids")?,
        other_config: column("other_config")?,
    })
}

/// An OVSDB `["map", [[k, v], ...]]` of strings.
fn string_map(v: &Value) -> Result<BTreeMap<String, String>, &'static str> {
    let pairs = match v.as_array().map(Vec::as_slice) {
        Some([tag, pairs]) if tag == "map" => pairs.as_array().ok_or("map body is not an array")?,
        _ => return Err("not a map"),
    };
    if pairs.len() > MAX_MAP_ENTRIES {
        return Err("too many entries");
    }
    let mut out = BTreeMap::new();
    for pair in pairs {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err("an entry is not a pair of strings"),
        }
    }
    Ok(out)
}
