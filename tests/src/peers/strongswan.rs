//! One strongSwan charon per network namespace, configured like ovs-monitor-ipsec's
//! strongSwan flavour, controlled and observed over its vici socket.
//!
//! Several charons run side by side because each has its own `STRONGSWAN_CONF` (vici socket,
//! log file), its own `SWANCTL_DIR`, and a private `/run`: charon's pid file and stroke socket
//! paths are compiled in, so a folder of ours is bind-mounted over `/run` inside the mount
//! namespace `ip netns exec` gives it.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::netns::Netns;
use super::pki::{ChassisCert, Pki};
use super::process::{
    copy_file, log_tail, run_checked, write_file, CommandOutput, Daemon, ScratchDir,
};
use super::vici::{ViciClient, ViciSection};
use super::{
    ChassisConfig, ChildSaStatus, Direction, IkePeer, IkeSaState, IkeSaStatus, InitiateOutcome,
    PeerError,
};

/// Debian's charon binary (package strongswan-charon).
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// swanctl (package strongswan-swanctl).
pub const SWANCTL: &str = "swanctl";
/// ovs-monitor-ipsec's IKE proposal for strongSwan.
pub const IKE_PROPOSAL: &str = "aes256gcm16-sha256-modp2048";
/// ovs-monitor-ipsec's ESP proposal for strongSwan (PFS with MODP-2048).
pub const ESP_PROPOSAL: &str = "aes256gcm16-modp2048";
/// How long charon may take to open its vici socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long charon may take for one initiate (IKE_SA_INIT + IKE_AUTH, or CREATE_CHILD_SA).
const INITIATE_TIMEOUT_MS: &str = "15000";
/// The folders `swanctl --load-all` reads (created empty so it does not warn about them).
const SWANCTL_SUBDIRS: &[&str] = &[
    "conf.d", "x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey", "private",
    "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12",
];

/// A running charon in one namespace; stopped (by PID) and its folder removed when dropped.
#[derive(Debug)]
pub struct StrongSwan {
    config: ChassisConfig,
    netns: String,
    conf: PathBuf,
    swanctl_dir: PathBuf,
    vici: PathBuf,
    log: PathBuf,
    // Field order is drop order: the daemon stops before its folder is removed.
    daemon: Daemon,
    _dir: ScratchDir,
}

impl StrongSwan {
    /// Writes the configuration for `config` (certificates from `pki`), starts charon in `ns`,
    /// and loads the connections with `swanctl --load-all`.
    pub fn start(ns: &Netns, pki: &Pki, config: ChassisConfig) -> Result<StrongSwan, PeerError> {
        if !Path::new(CHARON).exists() {
            return Err(PeerError::ToolMissing {
                tool: CHARON.to_string(),
                hint: "run bash tests/setup/peers.sh (installs strongswan-charon and friends)",
            });
        }
        let cert = pki
            .chassis(&config.name)
            .ok_or_else(|| PeerError::ToolMissing {
                tool: format!("a certificate for chassis {}", config.name),
                hint: "create the Pki with this chassis name",
            })?;

        let dir = ScratchDir::new(&format!("charon-{}", config.name))?;
        let root = dir.path().to_path_buf();
        let swanctl_dir = root.join("swanctl");
        for sub in SWANCTL_SUBDIRS {
            std::fs::create_dir_all(swanctl_dir.join(sub)).map_err(|source| PeerError::File {
                what: "creating folder",
                path: swanctl_dir.join(sub),
                source,
            })?;
        }
        let run = root.join("run");
        std::fs::create_dir_all(&run).map_err(|source| PeerError::File {
            what: "creating folder",
            path: run.clone(),
            source,
        })?;

        let cert_file = install_swanctl_credentials(&swanctl_dir, pki, cert)?;

        let vici = root.join("charon.vici");
        let log = root.join("charon.log");
        let conf = root.join("strongswan.conf");
        write_file(&conf, render_strongswan_conf(&vici, &log).as_bytes())?;
        write_file(
            &swanctl_dir.join("swanctl.conf"),
            render_swanctl_conf(&config, &cert_file).as_bytes(),
        )?;

        let mut cmd = ns.command("sh");
        cmd.args(["-c", "mount --bind \"$1\" /run && exec \"$2\"", "sh"])
            .arg(&run)
            .arg(CHARON)
            .env("STRONGSWAN_CONF", &conf)
            .env("SWANCTL_DIR", &swanctl_dir);
        let label = format!("charon {} in {}", config.name, ns.name());
        let mut daemon = Daemon::spawn(&label, &mut cmd, &root.join("charon.stdout"))?;
        tracing::debug!(chassis = %config.name, netns = ns.name(), pid = daemon.pid(), "charon started");

        super::wait_for(&format!("{label} to answer on vici"), START_TIMEOUT, || {
            daemon.check_running()?;
            Ok(vici.exists()
                && ViciClient::connect(&vici)
                    .and_then(|mut c| c.request("version", &ViciSection::default()))
                    .is_ok())
        })?;

        let charon = StrongSwan {
            config,
            netns: ns.name().to_string(),
            conf,
            swanctl_dir,
            vici,
            log,
            daemon,
            _dir: dir,
        };
        charon.swanctl(&["--load-all"])?;
        charon.check_conns_loaded()?;
        Ok(charon)
    }

    /// The vici socket path (usable from the host: it is a file, not bound to a namespace).
    pub fn vici_socket(&self) -> &Path {
        &self.vici
    }

    /// A fresh connection to this charon's vici socket.
    pub fn vici(&self) -> Result<ViciClient, PeerError> {
        ViciClient::connect(&self.vici)
    }

    /// The charon's PID.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Runs `swanctl ARGS --uri unix://<vici>` with this charon's configuration folder.
    pub fn swanctl(&self, args: &[&str]) -> Result<CommandOutput, PeerError> {
        let mut cmd = Command::new(SWANCTL);
        // swanctl takes --uri only after the command.
        cmd.args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.vici.display()))
            .env("STRONGSWAN_CONF", &self.conf)
            .env("SWANCTL_DIR", &self.swanctl_dir);
        run_checked(&mut cmd)
    }

    /// Checks through vici `get-conns` that every tunnel's connection is loaded.
    fn check_conns_loaded(&self) -> Result<(), PeerError> {
        let reply = self.vici()?.request("get-conns", &ViciSection::default())?;
        let loaded = reply.list("conns");
        for peer in &self.config.remote_peers {
            let name = peer.conn_names().ike;
            if !loaded.contains(&name) {
                return Err(PeerError::ViciCommandFailed {
                    command: "get-conns".to_string(),
                    reason: format!("connection {name} not loaded (loaded: {loaded:?})"),
                });
            }
        }
        Ok(())
    }
}

impl IkePeer for StrongSwan {
    fn label(&self) -> String {
        format!("charon {} in {}", self.config.name, self.netns)
    }

    fn config(&self) -> &ChassisConfig {
        &self.config
    }

    fn initiate(&self, peer: &str, direction: Direction) -> Result<InitiateOutcome, PeerError> {
        let names = self.config.peer(peer)?.conn_names();
        let msg = ViciSection::default()
            .with("ike", &names.ike)
            .with("child", names.child(direction))
            .with("timeout", INITIATE_TIMEOUT_MS)
            .with("init-limits", "no")
            .with("loglevel", "1");
        let (reply, events) = self
            .vici()?
            .request_streaming("initiate", &msg, "control-log")?;
        let log = events
            .iter()
            .map(|e| {
                format!(
                    "[{}] {}",
                    e.str("group").unwrap_or("?"),
                    e.str("msg").unwrap_or("")
                )
            })
            .collect();
        Ok(InitiateOutcome {
            success: reply.str("success") == Some("yes"),
            log,
            error: reply.str("errmsg").map(str::to_string),
        })
    }

    fn terminate(&self, peer: &str) -> Result<(), PeerError> {
        let names = self.config.peer(peer)?.conn_names();
        let msg = ViciSection::default()
            .with("ike", &names.ike)
            .with("timeout", "5000");
        let reply = self.vici()?.request("terminate", &msg)?;
        // charon answers "no matching SAs to terminate found" when there is none: not an error.
        match (reply.str("success"), reply.str("errmsg")) {
            (Some("yes"), _) => Ok(()),
            (_, Some(e)) if e.contains("no matching") => Ok(()),
            (_, e) => Err(PeerError::ViciCommandFailed {
                command: "terminate".to_string(),
                reason: e.unwrap_or("success=no").to_string(),
            }),
        }
    }

    fn ike_sas(&self) -> Result<Vec<IkeSaStatus>, PeerError> {
        let (_, events) =
            self.vici()?
                .request_streaming("list-sas", &ViciSection::default(), "list-sa")?;
        let mut sas = Vec::new();
        for event in &events {
            for (conn, sa) in event.sections() {
                sas.push(ike_sa_from_vici(&self.config, conn, sa));
            }
        }
        Ok(sas)
    }

    fn log(&self) -> String {
        log_tail(&self.log)
    }
}

/// Maps one `list-sa` entry to our status type. The peer is the remote chassis whose
/// connection this is.
fn ike_sa_from_vici(config: &ChassisConfig, conn: &str, sa: &ViciSection) -> IkeSaStatus {
    let peer = config
        .remote_peers
        .iter()
        .find(|p| p.conn_names().ike == conn)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| conn.to_string());
    let state = match sa.str("state") {
        Some("ESTABLISHED") => IkeSaState::Established,
        Some("CONNECTING") => IkeSaState::Connecting,
        other => IkeSaState::Other(other.unwrap_or("").to_string()),
    };
    let proposal = sa.str("encr-alg").map(|encr| {
        format!(
            "{encr}-{}/{}/{}",
            sa.str("encr-keysize").unwrap_or("?"),
            sa.str("prf-alg").unwrap_or("?"),
            sa.str("dh-group").unwrap_or("?")
        )
    });
    let child_sas = sa
        .section("child-sas")
        .map(|children| {
            children
                .sections()
                .map(|(_, c)| ChildSaStatus {
                    name: c.str("name").unwrap_or("").to_string(),
                    state: c.str("state").unwrap_or("").to_string(),
                    mode: c.str("mode").map(str::to_string),
                    spi_in: c.str("spi-in").map(str::to_string),
                    spi_out: c.str("spi-out").map(str::to_string),
                    local_ts: c.list("local-ts").to_vec(),
                    remote_ts: c.list("remote-ts").to_vec(),
                })
                .collect()
        })
        .unwrap_or_default();
    IkeSaStatus {
        peer,
        remote_id: sa.str("remote-id").map(str::to_string),
        state,
        initiator: Some(sa.str("initiator") == Some("yes")),
        proposal,
        udp_encap: Some(sa.str("nat-any") == Some("yes")),
        child_sas,
    }
}

/// Copies `cert` (a chassis's certificate and key) and `pki`'s two CAs into `swanctl_dir`'s
/// `x509/`, `private/` and `x509ca/` folders, where charon loads them from; returns the
/// certificate's file name, for [`render_swanctl_conf`].
pub fn install_swanctl_credentials(
    swanctl_dir: &Path,
    pki: &Pki,
    cert: &ChassisCert,
) -> Result<String, PeerError> {
    // ovs-monitor-ipsec: `leftcert=<certificate>`, `: RSA <private_key>`, `ca … cacert=`.
    // charon reads one certificate per PEM file, so the bundle's two CAs go in two files.
    let cert_file = format!("{}-cert.pem", cert.name);
    copy_file(&cert.cert, &swanctl_dir.join("x509").join(&cert_file))?;
    copy_file(
        &cert.key,
        &swanctl_dir
            .join("private")
            .join(format!("{}-privkey.pem", cert.name)),
    )?;
    copy_file(&pki.switch_ca(), &swanctl_dir.join("x509ca/switchca.pem"))?;
    copy_file(
        &pki.controller_ca(),
        &swanctl_dir.join("x509ca/controllerca.pem"),
    )?;
    Ok(cert_file)
}

/// charon's `strongswan.conf`: ovs-monitor-ipsec's settings (its `strongswan.d/ovs.conf`),
/// plus what keeps instances apart: the vici socket and a log file of our own.
pub fn render_strongswan_conf(vici: &Path, log: &Path) -> String {
    format!(
        "# Written by the ovn-ipsec peer harness.\n\
         charon {{\n\
         \x20   load_modular = yes\n\
         \x20   plugins {{\n\
         \x20       include /etc/strongswan.d/charon/*.conf\n\
         \x20       # As ovs-monitor-ipsec sets them:\n\
         \x20       kernel-netlink {{\n\
         \x20           set_proto_port_transport_sa = yes\n\
         \x20           xfrm_ack_expires = 10\n\
         \x20       }}\n\
         \x20       gcm {{\n\
         \x20           load = yes\n\
         \x20       }}\n\
         \x20       vici {{\n\
         \x20           socket = unix://{vici}\n\
         \x20       }}\n\
         \x20   }}\n\
         \x20   filelog {{\n\
         \x20       harness {{\n\
         \x20           path = {log}\n\
         \x20           time_format = %H:%M:%S\n\
         \x20           default = 1\n\
         \x20           ike = 2\n\
         \x20           knl = 2\n\
         \x20           flush_line = yes\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        vici = vici.display(),
        log = log.display(),
    )
}

/// The `swanctl.conf` equivalent of the `ipsec.conf` ovs-monitor-ipsec writes for strongSwan
/// (its `pki_ca` template: `left=%any right=<ip> leftid=<name> rightid=<peer>
/// leftcert=<cert>`, under `conn %default` with `keyexchange=ikev2 type=transport
/// auto=route keyingtries=%forever`). stroke merges the two `conn`s of a tunnel into one IKE
/// configuration with two children; here that is written out directly. Lifetimes are
/// ipsec.conf's defaults (ikelifetime=3h with reauth=yes, lifetime=1h, margintime=9m).
// Limitation: ovs-monitor-ipsec drives charon through ipsec.conf and the stroke plugin; this
// harness loads the same settings through swanctl/vici, which strongSwan maps to the same
// peer and child configurations (the `stroke`-only defaults are spelled out above).
pub fn render_swanctl_conf(config: &ChassisConfig, cert_file: &str) -> String {
    let mut s = String::from("# Written by the ovn-ipsec peer harness.\nconnections {\n");
    for peer in &config.remote_peers {
        let names = peer.conn_names();
        let port = peer.dst_port;
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "    {ike} {{\n\
             \x20       version = 2\n\
             \x20       remote_addrs = {remote}\n\
             \x20       proposals = {IKE_PROPOSAL}\n\
             \x20       keyingtries = 0\n\
             \x20       unique = replace\n\
             \x20       encap = {encap}\n\
             \x20       rekey_time = 0\n\
             \x20       reauth_time = 171m\n\
             \x20       over_time = 9m\n\
             \x20       rand_time = 9m\n\
             \x20       local {{\n\
             \x20           auth = pubkey\n\
             \x20           id = {local_id}\n\
             \x20           certs = {cert_file}\n\
             \x20       }}\n\
             \x20       remote {{\n\
             \x20           auth = pubkey\n\
             \x20           id = {remote_id}\n\
             \x20       }}\n\
             \x20       children {{\n\
             {child_in}\
             {child_out}\
             \x20       }}\n\
             \x20   }}\n",
            ike = names.ike,
            encap = if config.force_encaps { "yes" } else { "no" },
            remote = addr(peer.ip),
            local_id = config.name,
            remote_id = peer.name,
            child_in = child(&names.child_in, &format!("udp/{port}"), "udp"),
            child_out = child(&names.child_out, "udp", &format!("udp/{port}")),
        );
    }
    s.push_str("}\n");
    s
}

fn child(name: &str, local: &str, remote: &str) -> String {
    format!(
        "            {name} {{\n\
         \x20               mode = transport\n\
         \x20               local_ts = dynamic[{local}]\n\
         \x20               remote_ts = dynamic[{remote}]\n\
         \x20               esp_proposals = {ESP_PROPOSAL}\n\
         \x20               start_action = trap\n\
         \x20               rekey_time = 51m\n\
         \x20               life_time = 60m\n\
         \x20               rand_time = 9m\n\
         \x20           }}\n"
    )
}

fn addr(ip: IpAddr) -> String {
    ip.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::RemotePeer;

    fn config() -> ChassisConfig {
        ChassisConfig {
            name: "ch1".into(),
            local_ip: "10.77.0.1".parse().unwrap(),
            remote_peers: vec![RemotePeer::geneve("ch2", "10.77.0.2".parse().unwrap())],
            force_encaps: false,
        }
    }

    #[test]
    fn swanctl_conf_has_ovs_monitor_ipsec_proposals_identities_and_geneve_children() {
        let conf = render_swanctl_conf(&config(), "ch1-cert.pem");
        for line in [
            "ovn-ch2-0 {",
            "remote_addrs = 10.77.0.2",
            "proposals = aes256gcm16-sha256-modp2048",
            "id = ch1",
            "id = ch2",
            "certs = ch1-cert.pem",
            "ovn-ch2-0-in-1 {",
            "local_ts = dynamic[udp/6081]",
            "ovn-ch2-0-out-1 {",
            "remote_ts = dynamic[udp/6081]",
            "esp_proposals = aes256gcm16-modp2048",
            "mode = transport",
            "start_action = trap",
            "encap = no",
        ] {
            assert!(conf.contains(line), "missing {line:?} in\n{conf}");
        }
        assert_eq!(
            conf.matches('{').count(),
            conf.matches('}').count(),
            "{conf}"
        );
    }

    #[test]
    fn list_sa_entry_maps_to_peer_state_and_children() {
        let child = ViciSection::default()
            .with("name", "ovn-ch2-0-out-1")
            .with("state", "INSTALLED")
            .with("mode", "TRANSPORT");
        let mut sa = ViciSection::default()
            .with("state", "ESTABLISHED")
            .with("remote-id", "ch2")
            .with("initiator", "yes")
            .with("encr-alg", "AES_GCM_16")
            .with("encr-keysize", "256")
            .with("prf-alg", "PRF_HMAC_SHA2_256")
            .with("dh-group", "MODP_2048");
        let children = ViciSection {
            entries: vec![(
                "ovn-ch2-0-out-1-1".into(),
                crate::peers::vici::ViciValue::Section(child),
            )],
        };
        sa.entries.push((
            "child-sas".into(),
            crate::peers::vici::ViciValue::Section(children),
        ));
        let status = ike_sa_from_vici(&config(), "ovn-ch2-0", &sa);
        assert_eq!(status.peer, "ch2");
        assert_eq!(status.state, IkeSaState::Established);
        assert_eq!(
            status.proposal.as_deref(),
            Some("AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048")
        );
        assert_eq!(status.child_sas.len(), 1);
        assert_eq!(status.child_sas[0].mode.as_deref(), Some("TRANSPORT"));
    }
}
