//! The TOML configuration file: the middle layer. Every key is optional; an unknown key is an
//! error that names it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// Where the daemon looks for its configuration file when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ovn-ipsec/ovn-ipsecd.toml";

/// Largest configuration file read.
pub const MAX_CONFIG_FILE_LEN: u64 = 64 * 1024;

/// A string or a list of strings: `encap_ip = "10.0.0.1,10.0.0.2"` and
/// `encap_ip = ["10.0.0.1", "10.0.0.2"]` mean the same.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string, comma-separated as in the Open_vSwitch database.
    One(String),
    /// A TOML array.
    List(Vec<String>),
}

impl StringOrList {
    /// The items, split at commas and trimmed, empty ones dropped.
    pub fn items(&self) -> Vec<String> {
        let parts: Vec<&str> = match self {
            StringOrList::One(s) => s.split(',').collect(),
            StringOrList::List(l) => l.iter().flat_map(|s| s.split(',')).collect(),
        };
        parts
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The keys of `ovn-ipsecd.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The local Open_vSwitch database remote.
    pub ovs_db: Option<String>,
    /// This chassis' name.
    pub chassis_name: Option<String>,
    /// The Southbound remotes.
    pub ovn_remote: Option<StringOrList>,
    /// Our encap IPs.
    pub encap_ip: Option<StringOrList>,
    /// Our encap types.
    pub encap_type: Option<StringOrList>,
    /// Our certificate.
    pub certificate: Option<PathBuf>,
    /// Our private key.
    pub private_key: Option<PathBuf>,
    /// The CA certificate(s).
    pub ca_cert: Option<PathBuf>,
    /// The control socket.
    pub control_socket: Option<PathBuf>,
    /// The group that may also use the control socket.
    pub control_group: Option<String>,
    /// The Prometheus listen address.
    pub metrics_listen: Option<String>,
}

impl FileConfig {
    /// Parses TOML text read from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Reads and parses the file at `path`. With `must_exist` false a missing file yields
    /// `Ok(None)`.
    pub fn read(path: &Path, must_exist: bool) -> Result<Option<Self>, ConfigError> {
        let read_err = |source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let mut text = String::new();
        file.take(MAX_CONFIG_FILE_LEN.saturating_add(1))
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_FILE_LEN {
            return Err(ConfigError::FileTooLarge {
                path: path.to_owned(),
                max: MAX_CONFIG_FILE_LEN,
            });
        }
        Self::parse(path, &text).map(Some)
    }
}
