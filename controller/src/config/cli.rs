//! The command line of `ovn-ipsecd`: the last and strongest configuration layer.

use std::path::PathBuf;

use clap::Parser;

/// `ovn-ipsecd [OPTIONS]`. Every option overrides the TOML file and the Open_vSwitch database.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "ovn-ipsecd",
    version,
    about = "Keeps every OVN tunnel of this chassis encrypted with IPsec"
)]
pub struct Args {
    /// The TOML configuration file (default /etc/ovn-ipsec/ovn-ipsecd.toml, which may be
    /// absent; a file named here must exist).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The local Open_vSwitch database (default unix:/var/run/openvswitch/db.sock).
    #[arg(long, value_name = "REMOTE")]
    pub ovs_db: Option<String>,
    /// This chassis' name (default: Open_vSwitch external_ids:system-id).
    #[arg(long, value_name = "NAME")]
    pub chassis_name: Option<String>,
    /// The Southbound remotes, comma-separated (default: external_ids:ovn-remote).
    #[arg(long, value_name = "REMOTES")]
    pub ovn_remote: Option<String>,
    /// Our encap IPs, comma-separated or repeated (default: external_ids:ovn-encap-ip).
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub encap_ip: Vec<String>,
    /// Our encap types, comma-separated or repeated (default: external_ids:ovn-encap-type).
    #[arg(long, value_name = "TYPE", value_delimiter = ',')]
    pub encap_type: Vec<String>,
    /// Our certificate, PEM (default: other_config:certificate).
    #[arg(long, value_name = "PATH")]
    pub certificate: Option<PathBuf>,
    /// Our private key, PEM (default: other_config:private_key).
    #[arg(long, value_name = "PATH")]
    pub private_key: Option<PathBuf>,
    /// The CA certificate(s) peers must chain to, PEM (default: other_config:ca_cert).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// The control socket ipsecctl talks to.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// A group (name or number) whose members may also use the control socket (mode 0660);
    /// by default it is root-only (0600).
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<String>,
    /// Serve Prometheus metrics on this address (default: not served).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// CHILD_SA lifetime in seconds: rekey after this long (less up to a tenth, at random),
    /// the kernel deletes a state that was not rekeyed half as long again later (default
    /// 3600). Short values are for tests of rekeying.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub child_sa_lifetime: Option<u64>,
    /// Print the effective configuration, with where each value came from, and exit.
    #[arg(long)]
    pub print_config: bool,
}
