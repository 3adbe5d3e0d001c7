//! Writes what the mixed-mesh phase (`tests/phases/mixed-mesh-guest.sh`) ships into the kernel
//! guest: an `ovs-pki` PKI for every chassis of the mesh, and for each chassis that runs
//! strongSwan or Libreswan the configuration ovs-monitor-ipsec would give that daemon for a
//! full mesh of Geneve tunnels (one tunnel to every other chassis), rendered by the peer
//! harness (`ovn_ipsec_tests::peers`), with pluto's NSS database already built.
//!
//! ```text
//! swan-mesh-config OUT GUEST_ROOT NAME=IP[:strongswan|:libreswan]...
//! ```
//!
//! `OUT` is written on the host; the guest finds the same tree at `GUEST_ROOT`, so the paths
//! inside the configuration (charon's vici socket and log) are `GUEST_ROOT/NAME/…`. A chassis
//! without a suffix runs ovn-ipsecd and only gets its certificate. Layout:
//! - `OUT/pki/NAME-cert.pem`, `NAME-privkey.pem`, `cacert-bundle.pem` (switchca, controllerca);
//! - strongSwan: `OUT/NAME/strongswan.conf`, `OUT/NAME/swanctl/` (swanctl.conf, x509, private,
//!   x509ca), `OUT/NAME/run/`;
//! - Libreswan: `OUT/NAME/ipsec.conf`, `ipsec.secrets`, `nss/`, `ipsec.d/`, `run/`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ovn_ipsec_tests::peers::libreswan::{build_nss_db, render_ipsec_conf};
use ovn_ipsec_tests::peers::process::write_file;
use ovn_ipsec_tests::peers::strongswan::{
    install_swanctl_credentials, render_strongswan_conf, render_swanctl_conf,
};
use ovn_ipsec_tests::peers::{ChassisConfig, PeerError, Pki, RemotePeer};

/// The folders `swanctl --load-all` reads (created empty so that it does not warn).
const SWANCTL_SUBDIRS: &[&str] = &[
    "conf.d", "x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey", "private",
    "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12",
];
/// More chassis than this is a typing mistake, not a mesh this phase can run.
const MAX_CHASSIS: usize = 16;

/// Which IKE daemon a chassis runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    OvnIpsecd,
    StrongSwan,
    Libreswan,
}

#[derive(Debug)]
struct Chassis {
    name: String,
    ip: IpAddr,
    flavour: Flavour,
}

#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("usage: swan-mesh-config OUT GUEST_ROOT NAME=IP[:strongswan|:libreswan]...")]
    Usage,
    #[error("chassis argument {0:?} is not NAME=IP[:strongswan|:libreswan]")]
    BadChassis(String),
    #[error("chassis argument {arg:?}: {ip:?} is not an IP address")]
    BadIp { arg: String, ip: String },
    #[error("chassis argument {arg:?}: unknown daemon {flavour:?} (strongswan or libreswan)")]
    BadFlavour { arg: String, flavour: String },
    #[error("more than {MAX_CHASSIS} chassis")]
    TooMany,
    #[error("chassis {0} named twice")]
    Duplicate(String),
    #[error("creating folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Peer(#[from] PeerError),
}

fn parse_chassis(arg: &str) -> Result<Chassis, ConfigError> {
    let (name, rest) = arg
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| ConfigError::BadChassis(arg.to_string()))?;
    // The flavour suffix comes after the last ':' only when it names a daemon, so IPv6
    // addresses stay whole.
    let (ip, flavour) = match rest.rsplit_once(':') {
        Some((ip, "strongswan")) => (ip, Flavour::StrongSwan),
        Some((ip, "libreswan")) => (ip, Flavour::Libreswan),
        Some((ip, other)) if ip.parse::<IpAddr>().is_ok() && rest.parse::<IpAddr>().is_err() => {
            return Err(ConfigError::BadFlavour {
                arg: arg.to_string(),
                flavour: other.to_string(),
            })
        }
        _ => (rest, Flavour::OvnIpsecd),
    };
    let ip = ip.parse().map_err(|_| ConfigError::BadIp {
        arg: arg.to_string(),
        ip: ip.to_string(),
    })?;
    Ok(Chassis {
        name: name.to_string(),
        ip,
        flavour,
    })
}

fn mkdir(path: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(path).map_err(|source| ConfigError::Folder {
        path: path.to_path_buf(),
        source,
    })
}

/// What ovs-monitor-ipsec derives for `me` from ovn-controller's tunnel ports: one Geneve
/// tunnel to every other chassis of the mesh.
fn chassis_config(me: &Chassis, all: &[Chassis]) -> ChassisConfig {
    ChassisConfig {
        name: me.name.clone(),
        local_ip: me.ip,
        remote_peers: all
            .iter()
            .filter(|c| c.name != me.name)
            .map(|c| RemotePeer::geneve(&c.name, c.ip))
            .collect(),
        force_encaps: false,
    }
}

fn write_strongswan(
    dir: &Path,
    guest_dir: &Path,
    pki: &Pki,
    config: &ChassisConfig,
) -> Result<(), ConfigError> {
    let swanctl = dir.join("swanctl");
    for sub in SWANCTL_SUBDIRS {
        mkdir(&swanctl.join(sub))?;
    }
    mkdir(&dir.join("run"))?;
    let cert = pki
        .chassis(&config.name)
        .ok_or_else(|| ConfigError::BadChassis(config.name.clone()))?;
    let cert_file = install_swanctl_credentials(&swanctl, pki, cert)?;
    write_file(
        &dir.join("strongswan.conf"),
        render_strongswan_conf(
            &guest_dir.join("charon.vici"),
            &guest_dir.join("charon.log"),
        )
        .as_bytes(),
    )?;
    write_file(
        &swanctl.join("swanctl.conf"),
        render_swanctl_conf(config, &cert_file).as_bytes(),
    )?;
    Ok(())
}

fn write_libreswan(dir: &Path, pki: &Pki, config: &ChassisConfig) -> Result<(), ConfigError> {
    for sub in ["nss", "ipsec.d", "run"] {
        mkdir(&dir.join(sub))?;
    }
    let cert = pki
        .chassis(&config.name)
        .ok_or_else(|| ConfigError::BadChassis(config.name.clone()))?;
    build_nss_db(
        &dir.join("nss"),
        dir,
        pki,
        &config.name,
        &cert.cert,
        &cert.key,
    )?;
    write_file(
        &dir.join("ipsec.conf"),
        render_ipsec_conf(config).as_bytes(),
    )?;
    // ovs-monitor-ipsec writes only its header here for certificate auth.
    write_file(
        &dir.join("ipsec.secrets"),
        b"# Written by swan-mesh-config.\n",
    )?;
    Ok(())
}

fn run(args: &[String]) -> Result<(), ConfigError> {
    let [out, guest_root, chassis_args @ ..] = args else {
        return Err(ConfigError::Usage);
    };
    if chassis_args.is_empty() {
        return Err(ConfigError::Usage);
    }
    if chassis_args.len() > MAX_CHASSIS {
        return Err(ConfigError::TooMany);
    }
    let all = chassis_args
        .iter()
        .map(|a| parse_chassis(a))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in all.iter().enumerate() {
        if all.iter().skip(i + 1).any(|d| d.name == c.name) {
            return Err(ConfigError::Duplicate(c.name.clone()));
        }
    }
    let out = Path::new(out);
    let guest_root = Path::new(guest_root);
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let pki = Pki::create(&out.join("pki"), &names)?;
    for c in &all {
        let config = chassis_config(c, &all);
        let dir = out.join(&c.name);
        match c.flavour {
            Flavour::OvnIpsecd => {}
            Flavour::StrongSwan => {
                mkdir(&dir)?;
                write_strongswan(&dir, &guest_root.join(&c.name), &pki, &config)?;
            }
            Flavour::Libreswan => {
                mkdir(&dir)?;
                write_libreswan(&dir, &pki, &config)?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swan-mesh-config: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_argument_names_its_daemon_after_the_address() {
        let c = parse_chassis("chassis-2=10.0.0.2:strongswan").unwrap();
        assert_eq!(
            (c.name.as_str(), c.ip, c.flavour),
            (
                "chassis-2",
                "10.0.0.2".parse().unwrap(),
                Flavour::StrongSwan
            )
        );
        let c = parse_chassis("chassis-1=10.0.0.1").unwrap();
        assert_eq!(c.flavour, Flavour::OvnIpsecd);
        let c = parse_chassis("c6=fd00::6:libreswan").unwrap();
        assert_eq!(
            (c.ip, c.flavour),
            ("fd00::6".parse().unwrap(), Flavour::Libreswan)
        );
        assert_eq!(
            parse_chassis("c6=fd00::6").unwrap().ip,
            "fd00::6".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn malformed_chassis_arguments_say_what_is_wrong() {
        assert!(matches!(
            parse_chassis("nameless"),
            Err(ConfigError::BadChassis(_))
        ));
        assert!(matches!(
            parse_chassis("=10.0.0.1"),
            Err(ConfigError::BadChassis(_))
        ));
        assert!(matches!(
            parse_chassis("c=10.0.0:strongswan"),
            Err(ConfigError::BadIp { .. })
        ));
        assert!(matches!(
            parse_chassis("c=10.0.0.1:racoon"),
            Err(ConfigError::BadFlavour { .. })
        ));
    }

    #[test]
    fn every_chassis_gets_a_tunnel_to_every_other_one() {
        let all: Vec<Chassis> = [
            "a=10.0.0.1",
            "b=10.0.0.2:strongswan",
            "c=10.0.0.3:libreswan",
        ]
        .iter()
        .map(|a| parse_chassis(a).unwrap())
        .collect();
        let config = chassis_config(&all[1], &all);
        let peers: Vec<&str> = config
            .remote_peers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(peers, ["a", "c"]);
        assert_eq!(config.local_ip, all[1].ip);
    }
}
