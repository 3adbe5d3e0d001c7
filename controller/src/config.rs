//! The effective configuration of `ovn-ipsecd`, from three layers, later ones winning:
//!
//! 1. the local Open_vSwitch database, as ovn-controller and ovs-monitor-ipsec read it:
//!    `external_ids:system-id` (chassis name), `external_ids:ovn-remote` (Southbound remotes),
//!    `external_ids:ovn-encap-ip` / `ovn-encap-type` (comma lists), and
//!    `other_config:certificate` / `private_key` / `ca_cert`;
//! 2. the TOML file (`/etc/ovn-ipsec/ovn-ipsecd.toml` unless `--config` names another);
//! 3. the command line.
//!
//! Each value remembers where it came from ([`Source`]), which `--print-config` shows. Only the
//! winning value of a setting is validated, so a bad value in a lower layer that a higher one
//! overrides does no harm.

pub mod cli;
pub mod file;
pub mod open_vswitch;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ovsdb::{parse_remotes, Remote, TlsFiles};

pub use cli::Args;
pub use file::{FileConfig, StringOrList, DEFAULT_CONFIG_PATH};
pub use open_vswitch::{read_open_vswitch, OvsReadError, OvsValues, DEFAULT_OVS_DB};

use crate::identity_check::IdentityFiles;
use crate::southbound::SouthboundConfig;

/// Where the control socket is unless configured: where ipsecctl looks by default.
pub const DEFAULT_CONTROL_SOCKET: &str = control_api::protocol::DEFAULT_SOCKET_PATH;

/// The encapsulation types a chassis may announce.
pub const ENCAP_TYPES: [&str; 3] = ["geneve", "stt", "vxlan"];

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built in.
    Default,
    /// A column key of the Open_vSwitch row.
    OpenVswitch {
        /// The database remote it was read from.
        remote: String,
        /// `external_ids:system-id` and the like.
        column: &'static str,
    },
    /// The TOML file.
    File(PathBuf),
    /// A command-line flag.
    CommandLine(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::OpenVswitch { remote, column } => {
                write!(f, "Open_vSwitch {column} ({remote})")
            }
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::CommandLine(flag) => write!(f, "command line {flag}"),
        }
    }
}

/// One effective value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its layer.
    pub source: Source,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile {
        /// Its path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration file is larger than [`file::MAX_CONFIG_FILE_LEN`].
    #[error("configuration file {path} is larger than {max} bytes")]
    FileTooLarge {
        /// Its path.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The configuration file is not valid TOML, has an unknown key or a value of the wrong
    /// type; toml's message names the key and line.
    #[error("configuration file {path}: {message}")]
    ParseFile {
        /// Its path.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The Open_vSwitch database named explicitly could not be read.
    #[error("cannot read the Open_vSwitch database ({source_of_remote}): {error}")]
    OpenVswitch {
        /// Where the remote was configured.
        source_of_remote: Source,
        /// What failed.
        error: Box<OvsReadError>,
    },
    /// A value is not valid for its setting.
    #[error("{key} from {origin}: '{value}' {reason}")]
    Invalid {
        /// The setting (TOML key).
        key: &'static str,
        /// Where the value came from.
        origin: Source,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Required settings are not set anywhere.
    #[error("missing configuration: {}", describe_missing(.0))]
    Missing(Vec<&'static str>),
}

/// For each missing key, the three places it can be set.
fn describe_missing(keys: &[&'static str]) -> String {
    keys.iter()
        .map(|k| format!("{k} ({})", where_to_set(k)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The Open_vSwitch column of a setting, if it has one.
fn ovs_column(key: &str) -> Option<&'static str> {
    Some(match key {
        "chassis_name" => "external_ids:system-id",
        "ovn_remote" => "external_ids:ovn-remote",
        "encap_ip" => "external_ids:ovn-encap-ip",
        "encap_type" => "external_ids:ovn-encap-type",
        "certificate" => "other_config:certificate",
        "private_key" => "other_config:private_key",
        "ca_cert" => "other_config:ca_cert",
        _ => return None,
    })
}

/// "Open_vSwitch X, K in the TOML file, or --k".
fn where_to_set(key: &str) -> String {
    let flag = format!("--{}", key.replace('_', "-"));
    match ovs_column(key) {
        Some(col) => format!("Open_vSwitch {col}, {key} in the TOML file, or {flag}"),
        None => format!("{key} in the TOML file, or {flag}"),
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Open_vSwitch database the first layer was read from.
    pub ovs_db: Setting<String>,
    /// The TOML file, if one was read.
    pub config_file: Option<PathBuf>,
    /// This chassis' name: the identity we prove and the Chassis row we are.
    pub chassis_name: Option<Setting<String>>,
    /// The Southbound remotes.
    pub ovn_remote: Option<Setting<Vec<Remote>>>,
    /// Our encap IPs (informational: the Southbound Encap rows are what peers use).
    pub encap_ip: Option<Setting<Vec<IpAddr>>>,
    /// Our encap types.
    pub encap_type: Option<Setting<Vec<String>>>,
    /// Our certificate.
    pub certificate: Option<Setting<PathBuf>>,
    /// Our private key.
    pub private_key: Option<Setting<PathBuf>>,
    /// The CA certificate(s).
    pub ca_cert: Option<Setting<PathBuf>>,
    /// The control socket for ipsecctl.
    pub control_socket: Setting<PathBuf>,
    /// A group (name or number) whose members may also use the control socket; unset keeps
    /// it root-only.
    pub control_group: Option<Setting<String>>,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_listen: Option<Setting<SocketAddr>>,
    /// What the operator may want to know about how this came about (a layer that was
    /// absent, a database that could not be read).
    pub notes: Vec<String>,
}

/// What every layer said, before merging.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Where the Open_vSwitch layer was read from, and what it held (`None`: not read).
    pub ovs: Option<OvsValues>,
    /// The TOML file's path and contents.
    pub file: Option<(PathBuf, FileConfig)>,
    /// The command line.
    pub cli: Args,
    /// Notes gathered while reading the layers.
    pub notes: Vec<String>,
}

/// Picks one column map of the Open_vSwitch row.
type ColumnOf = fn(&OvsValues) -> &BTreeMap<String, String>;

/// Candidates of one setting, lowest layer first; the last one wins.
struct Candidates<T>(Vec<(T, Source)>);

impl<T> Candidates<T> {
    fn new() -> Self {
        Self(Vec::new())
    }

    fn add(&mut self, v: Option<T>, source: impl FnOnce() -> Source) {
        if let Some(v) = v {
            self.0.push((v, source()));
        }
    }

    fn winner(self) -> Option<(T, Source)> {
        self.0.into_iter().last()
    }
}

/// Splits an OVS comma list (`ovn-encap-ip=10.0.0.1,10.0.0.2`).
fn comma_list(s: &str) -> Vec<String> {
    StringOrList::One(s.to_owned()).items()
}

fn non_empty_list(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

impl Layers {
    // Limitation: the chassis-specific keys ovn-controller also reads when several of it run
    // on one host (`external_ids:ovn-remote-<system-id>` and the like) are not read.
    fn ovs_value(&self, map: ColumnOf, key: &str) -> Option<String> {
        self.ovs
            .as_ref()
            .and_then(|o| map(o).get(key))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn ovs_source(&self, column: &'static str) -> Source {
        Source::OpenVswitch {
            remote: self
                .ovs
                .as_ref()
                .map(|o| o.remote.clone())
                .unwrap_or_default(),
            column,
        }
    }

    fn file_source(&self) -> Source {
        Source::File(
            self.file
                .as_ref()
                .map(|(p, _)| p.clone())
                .unwrap_or_default(),
        )
    }

    fn file(&self) -> Option<&FileConfig> {
        self.file.as_ref().map(|(_, f)| f)
    }

    /// A scalar string setting from the three layers.
    fn string(
        &self,
        ovs: Option<(ColumnOf, &str, &'static str)>,
        file: Option<String>,
        cli: Option<String>,
        flag: &'static str,
    ) -> Option<(String, Source)> {
        let mut c = Candidates::new();
        if let Some((map, key, column)) = ovs {
            c.add(self.ovs_value(map, key), || self.ovs_source(column));
        }
        c.add(file.filter(|s| !s.trim().is_empty()), || self.file_source());
        c.add(cli, || Source::CommandLine(flag));
        c.winner()
    }

    /// A list setting from the three layers.
    fn list(
        &self,
        ovs_key: &str,
        column: &'static str,
        file: Option<&StringOrList>,
        cli: &[String],
        flag: &'static str,
    ) -> Option<(Vec<String>, Source)> {
        let mut c = Candidates::new();
        c.add(
            self.ovs_value(|o| &o.external_ids, ovs_key)
                .map(|v| comma_list(&v))
                .and_then(non_empty_list),
            || self.ovs_source(column),
        );
        c.add(
            file.map(StringOrList::items).and_then(non_empty_list),
            || self.file_source(),
        );
        c.add(
            non_empty_list(cli.iter().flat_map(|s| comma_list(s)).collect()),
            || Source::CommandLine(flag),
        );
        c.winner()
    }

    /// Merges the layers into the effective configuration, validating each winning value.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let ext: ColumnOf = |o| &o.external_ids;
        let other: ColumnOf = |o| &o.other_config;
        let f = self.file().cloned().unwrap_or_default();
        let cli = &self.cli;

        let chassis_name = self
            .string(
                Some((ext, "system-id", "external_ids:system-id")),
                f.chassis_name.clone(),
                cli.chassis_name.clone(),
                "--chassis-name",
            )
            .map(|(value, source)| validate_chassis_name(value, source))
            .transpose()?;

        let ovn_remote = self
            .list(
                "ovn-remote",
                "external_ids:ovn-remote",
                f.ovn_remote.as_ref(),
                cli.ovn_remote.as_slice(),
                "--ovn-remote",
            )
            .map(|(value, source)| {
                let joined = value.join(",");
                parse_remotes(&joined)
                    .map(|value| Setting {
                        value,
                        source: source.clone(),
                    })
                    .map_err(|e| invalid("ovn_remote", source, &joined, e.to_string()))
            })
            .transpose()?;

        let encap_ip = self
            .list(
                "ovn-encap-ip",
                "external_ids:ovn-encap-ip",
                f.encap_ip.as_ref(),
                &cli.encap_ip,
                "--encap-ip",
            )
            .map(|(value, source)| {
                let ips = value
                    .iter()
                    .map(|s| {
                        s.parse::<IpAddr>().map_err(|_| {
                            invalid("encap_ip", source.clone(), s, "is not an IP address".into())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, ConfigError>(Setting { value: ips, source })
            })
            .transpose()?;

        let encap_type = self
            .list(
                "ovn-encap-type",
                "external_ids:ovn-encap-type",
                f.encap_type.as_ref(),
                &cli.encap_type,
                "--encap-type",
            )
            .map(|(value, source)| {
                if let Some(bad) = value.iter().find(|t| !ENCAP_TYPES.contains(&t.as_str())) {
                    return Err(invalid(
                        "encap_type",
                        source,
                        bad,
                        format!("is not one of {}", ENCAP_TYPES.join(", ")),
                    ));
                }
                Ok(Setting { value, source })
            })
            .transpose()?;

        let path = |ovs_key: &str,
                    column: &'static str,
                    file: Option<PathBuf>,
                    cli: Option<PathBuf>,
                    flag: &'static str| {
            self.string(
                Some((other, ovs_key, column)),
                file.map(|p| p.to_string_lossy().into_owned()),
                cli.map(|p| p.to_string_lossy().into_owned()),
                flag,
            )
            .map(|(value, source)| Setting {
                value: PathBuf::from(value),
                source,
            })
        };
        let certificate = path(
            "certificate",
            "other_config:certificate",
            f.certificate.clone(),
            cli.certificate.clone(),
            "--certificate",
        );
        let private_key = path(
            "private_key",
            "other_config:private_key",
            f.private_key.clone(),
            cli.private_key.clone(),
            "--private-key",
        );
        let ca_cert = path(
            "ca_cert",
            "other_config:ca_cert",
            f.ca_cert.clone(),
            cli.ca_cert.clone(),
            "--ca-cert",
        );

        let ovs_db = self.ovs_db_setting();
        let control_socket = self
            .string(
                None,
                f.control_socket.map(|p| p.to_string_lossy().into_owned()),
                cli.control_socket
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                "--control-socket",
            )
            .map(|(v, source)| Setting {
                value: PathBuf::from(v),
                source,
            })
            .unwrap_or(Setting {
                value: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                source: Source::Default,
            });
        let control_group = self
            .string(
                None,
                f.control_group.clone(),
                cli.control_group.clone(),
                "--control-group",
            )
            .map(|(value, source)| Setting { value, source });
        let metrics_listen = self
            .string(
                None,
                f.metrics_listen.clone(),
                cli.metrics_listen.clone(),
                "--metrics-listen",
            )
            .map(|(v, source)| {
                v.parse::<SocketAddr>()
                    .map(|value| Setting {
                        value,
                        source: source.clone(),
                    })
                    .map_err(|_| {
                        invalid(
                            "metrics_listen",
                            source,
                            &v,
                            "is not ADDRESS:PORT (e.g. 127.0.0.1:9476 or [::1]:9476)".into(),
                        )
                    })
            })
            .transpose()?;

        Ok(Config {
            ovs_db,
            config_file: self.file.as_ref().map(|(p, _)| p.clone()),
            chassis_name,
            ovn_remote,
            encap_ip,
            encap_type,
            certificate,
            private_key,
            ca_cert,
            control_socket,
            control_group,
            metrics_listen,
            notes: self.notes.clone(),
        })
    }

    /// The Open_vSwitch database remote: the command line, the file, or the default.
    fn ovs_db_setting(&self) -> Setting<String> {
        ovs_db_setting(&self.cli, self.file.as_ref())
    }
}

fn ovs_db_setting(cli: &Args, file: Option<&(PathBuf, FileConfig)>) -> Setting<String> {
    if let Some(v) = &cli.ovs_db {
        return Setting {
            value: v.clone(),
            source: Source::CommandLine("--ovs-db"),
        };
    }
    if let Some((path, Some(v))) = file.map(|(p, f)| (p, f.ovs_db.clone())) {
        return Setting {
            value: v,
            source: Source::File(path.clone()),
        };
    }
    Setting {
        value: DEFAULT_OVS_DB.to_owned(),
        source: Source::Default,
    }
}

fn invalid(key: &'static str, source: Source, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        origin: source,
        value: value.to_owned(),
        reason,
    }
}

/// A chassis name is what peers prove as ID_FQDN: printable ASCII without spaces.
fn validate_chassis_name(value: String, source: Source) -> Result<Setting<String>, ConfigError> {
    if value.len() > ikev2::auth::MAX_FQDN_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "chassis_name",
            source,
            &value,
            "is not a name a certificate can carry (printable ASCII, at most 255 octets)".into(),
        ));
    }
    Ok(Setting { value, source })
}

/// Reads every layer and merges them: the TOML file (a missing default file is no error),
/// then the Open_vSwitch database the command line or file names, or the default one.
///
/// An unreachable default database is only noted, so that a host configured entirely by file
/// and flags needs no OVS; one named explicitly must be readable.
pub async fn load(cli: Args) -> Result<Config, ConfigError> {
    let mut notes = Vec::new();
    let (file_path, must_exist) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let file = match FileConfig::read(&file_path, must_exist)? {
        Some(f) => Some((file_path, f)),
        None => {
            notes.push(format!("no configuration file at {}", file_path.display()));
            None
        }
    };

    let db = ovs_db_setting(&cli, file.as_ref());
    let ovs = match read_open_vswitch(&db.value).await {
        Ok(v) => Some(v),
        Err(error) if db.source == Source::Default => {
            notes.push(format!("Open_vSwitch database not read: {error}"));
            None
        }
        Err(error) => {
            return Err(ConfigError::OpenVswitch {
                source_of_remote: db.source,
                error: Box::new(error),
            })
        }
    };

    let layers = Layers {
        ovs,
        file,
        cli,
        notes,
    };
    layers.resolve()
}

/// The settings the daemon cannot run without, once present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// This chassis' name.
    pub chassis_name: String,
    /// The Southbound remotes.
    pub ovn_remote: Vec<Remote>,
    /// Our certificate, key and CA.
    pub identity: IdentityFiles,
}

impl Config {
    /// The required settings that are not set anywhere, by TOML key.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.chassis_name.is_none() {
            m.push("chassis_name");
        }
        if self.ovn_remote.is_none() {
            m.push("ovn_remote");
        }
        if self.certificate.is_none() {
            m.push("certificate");
        }
        if self.private_key.is_none() {
            m.push("private_key");
        }
        if self.ca_cert.is_none() {
            m.push("ca_cert");
        }
        m
    }

    /// The required settings, or [`ConfigError::Missing`] naming each one absent and where it
    /// can be set.
    pub fn required(&self) -> Result<Required, ConfigError> {
        match (
            &self.chassis_name,
            &self.ovn_remote,
            &self.certificate,
            &self.private_key,
            &self.ca_cert,
        ) {
            (Some(name), Some(remote), Some(cert), Some(key), Some(ca)) => Ok(Required {
                chassis_name: name.value.clone(),
                ovn_remote: remote.value.clone(),
                identity: IdentityFiles {
                    certificate: cert.value.clone(),
                    private_key: key.value.clone(),
                    ca_cert: ca.value.clone(),
                },
            }),
            _ => Err(ConfigError::Missing(self.missing())),
        }
    }

    /// The Southbound connection settings: the remotes, and our certificate, key and CA for
    /// `ssl:` remotes (ovn-controller uses the same files).
    pub fn southbound_config(&self) -> Result<SouthboundConfig, ConfigError> {
        let r = self.required()?;
        let mut sb = SouthboundConfig::new(r.ovn_remote.clone());
        if r.ovn_remote.iter().any(|x| matches!(x, Remote::Ssl { .. })) {
            sb.tls = Some(TlsFiles {
                private_key: r.identity.private_key,
                certificate: r.identity.certificate,
                ca_cert: r.identity.ca_cert,
            });
        }
        Ok(sb)
    }

    /// The effective configuration as TOML that could serve as a configuration file, each
    /// line commented with where the value came from; unset keys are commented out with the
    /// places they can be set.
    pub fn render(&self) -> String {
        let mut out = String::from("# ovn-ipsecd effective configuration\n");
        for note in &self.notes {
            out.push_str(&format!("# note: {note}\n"));
        }
        line(&mut out, "ovs_db", Some(&self.ovs_db), |v| quote(v));
        line(&mut out, "chassis_name", self.chassis_name.as_ref(), |v| {
            quote(v)
        });
        line(&mut out, "ovn_remote", self.ovn_remote.as_ref(), |v| {
            quote(
                &v.iter()
                    .map(Remote::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        });
        line(&mut out, "encap_ip", self.encap_ip.as_ref(), |v| {
            list(v.iter().map(IpAddr::to_string))
        });
        line(&mut out, "encap_type", self.encap_type.as_ref(), |v| {
            list(v.iter().cloned())
        });
        line(&mut out, "certificate", self.certificate.as_ref(), |v| {
            path(v)
        });
        line(&mut out, "private_key", self.private_key.as_ref(), |v| {
            path(v)
        });
        line(&mut out, "ca_cert", self.ca_cert.as_ref(), |v| path(v));
        line(
            &mut out,
            "control_socket",
            Some(&self.control_socket),
            |v| path(v),
        );
        line(
            &mut out,
            "control_group",
            self.control_group.as_ref(),
            |v| quote(v),
        );
        line(
            &mut out,
            "metrics_listen",
            self.metrics_listen.as_ref(),
            |v| quote(&v.to_string()),
        );
        out
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!(
        "[{}]",
        items.map(|s| quote(&s)).collect::<Vec<_>>().join(", ")
    )
}

fn line<T>(out: &mut String, key: &str, s: Option<&Setting<T>>, fmt: impl Fn(&T) -> String) {
    match s {
        Some(s) => out.push_str(&format!("{key} = {}  # {}\n", fmt(&s.value), s.source)),
        None => out.push_str(&format!("# {key}: unset ({})\n", where_to_set(key))),
    }
}

#[cfg(test)]
mod tests;
