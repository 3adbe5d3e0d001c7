//! Certificates made the way an OVN operator makes them for ovs-monitor-ipsec: `ovs-pki init`
//! (two CAs, switchca and controllerca, RSA-2048) and `ovs-pki -u req+sign NAME switch` per
//! chassis, so CN = SAN dNSName = the chassis name.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::process::{run_checked, write_file};
use super::PeerError;

/// The `ovs-pki` program (package openvswitch-common).
const OVS_PKI: &str = "ovs-pki";

/// The chassis names [`Pki::shared`] makes certificates for.
pub const SHARED_CHASSIS: &[&str] = &["ch1", "ch2", "ch3"];

/// A chassis's certificate and private key (PEM files).
#[derive(Debug, Clone)]
pub struct ChassisCert {
    /// The chassis name: CN and SAN dNSName of the certificate.
    pub name: String,
    /// `<name>-cert.pem`, signed by switchca.
    pub cert: PathBuf,
    /// `<name>-privkey.pem` (RSA-2048).
    pub key: PathBuf,
}

/// An `ovs-pki` folder with its CAs and the chassis certificates made so far.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    chassis: Vec<ChassisCert>,
}

impl Pki {
    /// Makes a fresh PKI in `dir` (emptied first) with a certificate for each of `chassis`.
    /// Takes about a second for two chassis.
    pub fn create(dir: &Path, chassis: &[&str]) -> Result<Pki, PeerError> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(|source| PeerError::File {
            what: "creating folder",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut pki = Pki {
            dir: dir.to_path_buf(),
            chassis: Vec::new(),
        };

        let pki_dir = format!("--dir={}", pki.dir.join("pki").display());
        pki.ovs_pki(&[&pki_dir, "init"])?;

        // The bundle an operator points `other_config:ca_cert` at: switchca (which signs the
        // chassis certificates) first, then controllerca.
        let mut bundle = fs::read(pki.switch_ca()).map_err(|source| PeerError::File {
            what: "reading",
            path: pki.switch_ca(),
            source,
        })?;
        bundle.extend(
            fs::read(pki.controller_ca()).map_err(|source| PeerError::File {
                what: "reading",
                path: pki.controller_ca(),
                source,
            })?,
        );
        write_file(&pki.ca_bundle(), &bundle)?;

        for name in chassis {
            pki.add_chassis(name)?;
        }
        Ok(pki)
    }

    /// A PKI made earlier by [`Pki::create`] (e.g. on the host, used from inside the qemu
    /// guest through the share), with the given chassis certificates; nothing is run.
    pub fn open(dir: &Path, chassis: &[&str]) -> Pki {
        let chassis = chassis
            .iter()
            .map(|name| ChassisCert {
                name: (*name).to_string(),
                cert: dir.join(format!("{name}-cert.pem")),
                key: dir.join(format!("{name}-privkey.pem")),
            })
            .collect();
        Pki {
            dir: dir.to_path_buf(),
            chassis,
        }
    }

    /// One PKI per test binary, made in `dir` on first use, with certificates for
    /// [`SHARED_CHASSIS`]. Making it once saves ~1 s per test.
    pub fn shared(dir: &Path) -> Result<&'static Pki, String> {
        static SHARED: OnceLock<Result<Pki, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Pki::create(dir, SHARED_CHASSIS).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Signs a certificate for one more chassis (`ovs-pki -u req+sign NAME switch`).
    pub fn add_chassis(&mut self, name: &str) -> Result<ChassisCert, PeerError> {
        let pki_dir = format!("--dir={}", self.dir.join("pki").display());
        self.ovs_pki(&[&pki_dir, "-u", "req+sign", name, "switch"])?;
        let cert = ChassisCert {
            name: name.to_string(),
            cert: self.dir.join(format!("{name}-cert.pem")),
            key: self.dir.join(format!("{name}-privkey.pem")),
        };
        self.chassis.push(cert.clone());
        Ok(cert)
    }

    /// The certificate of `name`, if it was made.
    pub fn chassis(&self, name: &str) -> Option<&ChassisCert> {
        self.chassis.iter().find(|c| c.name == name)
    }

    /// The switch CA's certificate (issuer of every chassis certificate).
    pub fn switch_ca(&self) -> PathBuf {
        self.dir.join("pki/switchca/cacert.pem")
    }

    /// The controller CA's certificate (not an issuer of chassis certificates; in the bundle
    /// because operators use the bundle `ovs-pki` hands them).
    pub fn controller_ca(&self) -> PathBuf {
        self.dir.join("pki/controllerca/cacert.pem")
    }

    /// Both CA certificates in one PEM file, switchca first.
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.join("cacert-bundle.pem")
    }

    fn ovs_pki(&self, args: &[&str]) -> Result<(), PeerError> {
        let mut cmd = Command::new(OVS_PKI);
        // `req+sign` writes NAME-req.pem, NAME-cert.pem and NAME-privkey.pem to the current
        // folder; `--force` is not used, so an existing name is an error rather than replaced.
        cmd.args(args).current_dir(&self.dir);
        match run_checked(&mut cmd) {
            Err(PeerError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(PeerError::ToolMissing {
                    tool: OVS_PKI.to_string(),
                    hint: "apt-get install openvswitch-common, or run bash tests/setup/peers.sh",
                })
            }
            other => other.map(|_| ()),
        }
    }
}
