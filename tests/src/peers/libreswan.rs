//! One Libreswan pluto per network namespace, configured like ovs-monitor-ipsec's Libreswan
//! flavour (ipsec.conf and an NSS database with its nicknames), driven and observed with
//! `whack`.
//!
//! Debian's libreswan package conflicts with strongSwan's, so it is never installed: the
//! setup script unpacks its .deb into `$OVN_IPSEC_CACHE/libreswan`. pluto execs helpers from
//! `/usr/libexec/ipsec` (addconn) and runs `ipsec _updown` for policies, so inside pluto's own
//! mount namespace a tmpfs hides `/usr/libexec`, the unpacked helpers are bound at
//! `/usr/libexec/ipsec`, and the unpacked `ipsec` script over strongSwan's `/usr/sbin/ipsec`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::netns::Netns;
use super::pki::Pki;
use super::process::{
    log_tail, run_checked, run_with_timeout, write_file, CommandOutput, Daemon, ScratchDir,
};
use super::{
    ChassisConfig, ChildSaStatus, Direction, IkePeer, IkeSaState, IkeSaStatus, InitiateOutcome,
    PeerError,
};

/// ovs-monitor-ipsec's IKE proposal for Libreswan.
pub const IKE_PROPOSAL: &str = "aes_gcm256-sha2_256";
/// ovs-monitor-ipsec's ESP proposal for Libreswan (PFS stays on, Libreswan's default).
pub const ESP_PROPOSAL: &str = "aes_gcm256";
/// The NSS nickname ovs-monitor-ipsec gives the CA certificate.
pub const CA_NICKNAME: &str = "ovs_cert_cacert";
/// The prefix of the NSS nickname of the local certificate and key (`ovs_certkey_<CN>`).
pub const CERTKEY_PREFIX: &str = "ovs_certkey_";
/// pluto's state name for an established Child SA.
pub const CHILD_ESTABLISHED: &str = "STATE_V2_ESTABLISHED_CHILD_SA";
/// How long pluto may take to open its control socket and load the connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `whack --initiate` may take.
const INITIATE_TIMEOUT: Duration = Duration::from_secs(20);
/// The mount and exec steps that start pluto inside its namespace. Arguments: $1 unpacked
/// libexec folder, $2 unpacked `ipsec` script, $3 private run folder, $4 pluto, $5 config,
/// $6 NSS folder, $7 ipsec.d, $8 secrets file. `--config` comes first: options after it win.
const PLUTO_LAUNCH: &str =
    "mkdir -p /usr/libexec && mount -t tmpfs tmpfs /usr/libexec && mkdir /usr/libexec/ipsec \
    && mount --bind \"$1\" /usr/libexec/ipsec \
    && { [ ! -e /usr/sbin/ipsec ] || mount --bind \"$2\" /usr/sbin/ipsec; } \
    && mount --bind \"$3\" /run \
    && exec \"$4\" --config \"$5\" --nofork --stderrlog --rundir \"$3\" --dumpdir \"$3\" \
       --nssdir \"$6\" --ipsecdir \"$7\" --secretsfile \"$8\"";

/// Where the unpacked Libreswan lives: `$OVN_IPSEC_LIBRESWAN` if set, else
/// `$OVN_IPSEC_CACHE/libreswan` (default `~/.cache/ovn-ipsec/libreswan`).
pub fn libreswan_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OVN_IPSEC_LIBRESWAN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("OVN_IPSEC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                        .join(".cache")
                });
            base.join("ovn-ipsec")
        });
    cache.join("libreswan")
}

/// A running pluto in one namespace; stopped (by PID) and its folder removed when dropped.
#[derive(Debug)]
pub struct Libreswan {
    config: ChassisConfig,
    netns: String,
    whack: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    // Field order is drop order: the daemon stops before its folder is removed.
    daemon: Daemon,
    _dir: ScratchDir,
}

impl Libreswan {
    /// Builds pluto's NSS database and ipsec.conf for `config` (certificates from `pki`),
    /// starts pluto in `ns` and waits until it has loaded every connection.
    pub fn start(ns: &Netns, pki: &Pki, config: ChassisConfig) -> Result<Libreswan, PeerError> {
        let root = libreswan_root();
        let libexec = root.join("usr/libexec/ipsec");
        let pluto = libexec.join("pluto");
        if !pluto.exists() {
            return Err(PeerError::ToolMissing {
                tool: pluto.display().to_string(),
                hint: "run bash tests/setup/peers.sh (unpacks Libreswan into the cache)",
            });
        }
        let cert = pki
            .chassis(&config.name)
            .ok_or_else(|| PeerError::ToolMissing {
                tool: format!("a certificate for chassis {}", config.name),
                hint: "create the Pki with this chassis name",
            })?;

        let dir = ScratchDir::new(&format!("pluto-{}", config.name))?;
        let base = dir.path().to_path_buf();
        let (nss, ipsec_d, run) = (base.join("nss"), base.join("ipsec.d"), base.join("run"));
        for d in [&nss, &ipsec_d, &run] {
            std::fs::create_dir_all(d).map_err(|source| PeerError::File {
                what: "creating folder",
                path: d.clone(),
                source,
            })?;
        }
        build_nss_db(&nss, &base, pki, &config.name, &cert.cert, &cert.key)?;

        let conf = base.join("ipsec.conf");
        let secrets = base.join("ipsec.secrets");
        write_file(&conf, render_ipsec_conf(&config).as_bytes())?;
        // ovs-monitor-ipsec writes only its header here for certificate auth.
        write_file(&secrets, b"# Written by the ovn-ipsec peer harness.\n")?;

        let log = base.join("pluto.log");
        let mut cmd = ns.command("sh");
        cmd.args(["-c", PLUTO_LAUNCH, "sh"])
            .arg(&libexec)
            .arg(root.join("usr/sbin/ipsec"))
            .arg(&run)
            .arg(&pluto)
            .arg(&conf)
            .arg(&nss)
            .arg(&ipsec_d)
            .arg(&secrets)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    root.join("usr/sbin").display()
                ),
            );
        let label = format!("pluto {} in {}", config.name, ns.name());
        let daemon = Daemon::spawn(&label, &mut cmd, &log)?;
        tracing::debug!(chassis = %config.name, netns = ns.name(), pid = daemon.pid(), "pluto started");

        let mut pluto = Libreswan {
            config,
            netns: ns.name().to_string(),
            whack: libexec.join("whack"),
            ctl: run.join("pluto.ctl"),
            log,
            daemon,
            _dir: dir,
        };
        let want = 2 * pluto.config.remote_peers.len();
        super::wait_for(
            &format!("{label} to load {want} connections"),
            START_TIMEOUT,
            || {
                pluto.daemon.check_running()?;
                if !pluto.ctl.exists() {
                    return Ok(false);
                }
                let status = pluto.whack(&["--status"])?;
                Ok(loaded_connections(&status.stdout).is_some_and(|n| n >= want))
            },
        )?;
        Ok(pluto)
    }

    /// The control socket path (`whack --ctlsocket`).
    pub fn ctl_socket(&self) -> &Path {
        &self.ctl
    }

    /// pluto's PID.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Starts every connection without waiting, as ovs-monitor-ipsec does after each
    /// configuration refresh (`ipsec auto --start --asynchronous` for the "in" and the "out"
    /// connection of every tunnel): pluto then initiates to every remote chassis by itself.
    pub fn start_all_like_ovs_monitor_ipsec(&self) -> Result<(), PeerError> {
        for peer in &self.config.remote_peers {
            let names = peer.conn_names();
            for conn in [&names.child_in, &names.child_out] {
                self.whack(&["--name", conn, "--initiate", "--asynchronous"])?;
            }
        }
        Ok(())
    }

    /// Runs `whack --ctlsocket <ctl> ARGS`; fails unless whack exits 0.
    pub fn whack(&self, args: &[&str]) -> Result<CommandOutput, PeerError> {
        run_checked(
            Command::new(&self.whack)
                .arg("--ctlsocket")
                .arg(&self.ctl)
                .args(args),
        )
    }
}

impl IkePeer for Libreswan {
    fn label(&self) -> String {
        format!("pluto {} in {}", self.config.name, self.netns)
    }

    fn config(&self) -> &ChassisConfig {
        &self.config
    }

    fn initiate(&self, peer: &str, direction: Direction) -> Result<InitiateOutcome, PeerError> {
        let names = self.config.peer(peer)?.conn_names();
        let mut cmd = Command::new(&self.whack);
        cmd.arg("--ctlsocket").arg(&self.ctl).args([
            "--name",
            names.child(direction),
            "--initiate",
        ]);
        let out = run_with_timeout(&mut cmd, INITIATE_TIMEOUT)?;
        let log: Vec<String> = out.combined().lines().map(str::to_string).collect();

        // whack relays pluto's progress and exits 0 even when the peer rejected the Child SA,
        // so success is read from pluto's states: an established Child SA of this connection.
        let conn = names.child(direction);
        let child_up = self
            .ike_sas()?
            .iter()
            .flat_map(|sa| &sa.child_sas)
            .any(|c| c.name == conn && c.state == CHILD_ESTABLISHED);
        let error = if !out.success {
            Some(format!("whack {}", out.status))
        } else if !child_up {
            Some(format!("no established Child SA for {conn}"))
        } else {
            None
        };
        Ok(InitiateOutcome {
            success: out.success && child_up,
            log,
            error,
        })
    }

    fn terminate(&self, peer: &str) -> Result<(), PeerError> {
        let names = self.config.peer(peer)?.conn_names();
        for conn in [&names.child_in, &names.child_out] {
            self.whack(&["--name", conn, "--terminate"])?;
        }
        Ok(())
    }

    fn ike_sas(&self) -> Result<Vec<IkeSaStatus>, PeerError> {
        let out = self.whack(&["--showstates"])?;
        Ok(ike_sas_from_showstates(&self.config, &out.stdout))
    }

    fn log(&self) -> String {
        log_tail(&self.log)
    }
}

/// Builds the NSS database the way ovs-monitor-ipsec does: the CA file imported as
/// `ovs_cert_cacert` with trust `CT,,` (NSS takes the bundle's first certificate, switchca),
/// and the chassis certificate with its key, through a PKCS#12 file with an empty password,
/// as `ovs_certkey_<CN>`.
pub fn build_nss_db(
    nss: &Path,
    scratch: &Path,
    pki: &Pki,
    name: &str,
    cert: &Path,
    key: &Path,
) -> Result<(), PeerError> {
    let db = format!("sql:{}", nss.display());
    let nickname = format!("{CERTKEY_PREFIX}{name}");
    let p12 = scratch.join(format!("{nickname}.p12"));
    let tool = |program: &str, hint: &'static str, args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(program);
        cmd.args(args);
        match run_checked(&mut cmd) {
            Err(PeerError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(PeerError::ToolMissing {
                    tool: program.to_string(),
                    hint,
                })
            }
            other => other.map(|_| ()),
        }
    };
    const NSS_HINT: &str = "apt-get install libnss3-tools, or run bash tests/setup/peers.sh";
    let os = |s: &str| std::ffi::OsString::from(s);
    tool(
        "certutil",
        NSS_HINT,
        &[&os("-N"), &os("-d"), &os(&db), &os("--empty-password")],
    )?;
    tool(
        "certutil",
        NSS_HINT,
        &[
            &os("-A"),
            &os("-a"),
            &os("-i"),
            pki.ca_bundle().as_os_str(),
            &os("-d"),
            &os(&db),
            &os("-n"),
            &os(CA_NICKNAME),
            &os("-t"),
            &os("CT,,"),
        ],
    )?;
    tool(
        "openssl",
        "apt-get install openssl",
        &[
            &os("pkcs12"),
            &os("-export"),
            &os("-in"),
            cert.as_os_str(),
            &os("-inkey"),
            key.as_os_str(),
            &os("-out"),
            p12.as_os_str(),
            &os("-name"),
            &os(&nickname),
            &os("-passout"),
            &os("pass:"),
        ],
    )?;
    tool(
        "pk12util",
        NSS_HINT,
        &[
            &os("-i"),
            p12.as_os_str(),
            &os("-d"),
            &os(&db),
            &os("-W"),
            &os(""),
        ],
    )
}

/// The ipsec.conf ovs-monitor-ipsec writes for Libreswan: its `conn %default` and, per Geneve
/// tunnel, the `pki_ca` template twice ("in" and "out"), with the IPv6 family lines first for
/// an IPv6 tunnel.
pub fn render_ipsec_conf(config: &ChassisConfig) -> String {
    let mut s = format!(
        "# Written by the ovn-ipsec peer harness.\n\
         config setup\n\
         \x20   uniqueids=yes\n\
         \n\
         conn %default\n\
         \x20   keyingtries=%forever\n\
         \x20   type=transport\n\
         \x20   auto=route\n\
         \x20   ike={IKE_PROPOSAL}\n\
         \x20   esp={ESP_PROPOSAL}\n\
         \x20   ikev2=insist\n\
         \n"
    );
    for peer in &config.remote_peers {
        let names = peer.conn_names();
        let port = peer.dst_port;
        let family = if peer.ip.is_ipv6() {
            "    hostaddrfamily=ipv6\n    clientaddrfamily=ipv6\n"
        } else {
            ""
        };
        for (conn, left_pp, right_pp) in [
            (&names.child_in, format!("udp/{port}"), "udp".to_string()),
            (&names.child_out, "udp".to_string(), format!("udp/{port}")),
        ] {
            // Writing to a String cannot fail.
            let _ = write!(
                s,
                "conn {conn}\n\
                 {family}\
                 \x20   left={local}\n\
                 \x20   right={remote}\n\
                 \x20   leftid=@{local_name}\n\
                 \x20   rightid=@{remote_name}\n\
                 \x20   leftcert=\"{CERTKEY_PREFIX}{local_name}\"\n\
                 \x20   leftrsasigkey=%cert\n\
                 \x20   rightca=%same\n\
                 \x20   leftprotoport={left_pp}\n\
                 \x20   rightprotoport={right_pp}\n\
                 {encap}\
                 \n",
                encap = if config.force_encaps {
                    "    encapsulation=yes\n"
                } else {
                    ""
                },
                local = addr(config.local_ip),
                remote = addr(peer.ip),
                local_name = config.name,
                remote_name = peer.name,
            );
        }
    }
    s
}

fn addr(ip: IpAddr) -> String {
    ip.to_string()
}

/// The `N` of whack's `Total IPsec connections: loaded N, active M` status line.
fn loaded_connections(status: &str) -> Option<usize> {
    status.lines().find_map(|line| {
        let rest = line.split_once("Total IPsec connections: loaded ")?.1;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// One line of `whack --showstates`: `000 #1: "conn":4500 STATE_V2_ESTABLISHED_IKE_SA (…); …`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShowState {
    serial: u64,
    conn: String,
    state: String,
}

fn parse_showstate(line: &str) -> Option<ShowState> {
    // An optional three-digit reply code comes first.
    let line = line.trim_start();
    let line = match line.split_once(' ') {
        Some((code, rest)) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => line,
    };
    let rest = line.strip_prefix('#')?;
    let (serial, rest) = rest.split_once(": \"")?;
    let (conn, rest) = rest.split_once('"')?;
    // After the connection name: an optional `:port` (or `[n]` instance), then the state.
    let state = rest.split_whitespace().find(|w| w.starts_with("STATE_"))?;
    Some(ShowState {
        serial: serial.parse().ok()?,
        conn: conn.to_string(),
        state: state.to_string(),
    })
}

/// Groups pluto's states into IKE SAs per remote chassis, with the Child SA states of the same
/// chassis under its IKE SA (pluto lists them as separate states of a connection).
// Limitation: `--showstates` names no authenticated identity, role or algorithms, so for
// pluto `remote_id`, `initiator` and `proposal` stay `None` (the peer is known from the
// connection name).
fn ike_sas_from_showstates(config: &ChassisConfig, text: &str) -> Vec<IkeSaStatus> {
    let states: Vec<ShowState> = text.lines().filter_map(parse_showstate).collect();
    let peer_of = |conn: &str| {
        config
            .remote_peers
            .iter()
            .find(|p| {
                let n = p.conn_names();
                n.child_in == conn || n.child_out == conn
            })
            .map(|p| p.name.clone())
            .unwrap_or_else(|| conn.to_string())
    };
    let is_child = |s: &ShowState| {
        s.state.contains("CHILD") || s.state.ends_with("_IPSEC_R") || s.state.ends_with("_IPSEC_I")
    };

    let mut sas: Vec<IkeSaStatus> = Vec::new();
    for st in states.iter().filter(|s| !is_child(s)) {
        let state = if st.state == "STATE_V2_ESTABLISHED_IKE_SA" {
            IkeSaState::Established
        } else if st.state.starts_with("STATE_V2_PARENT_") || st.state.starts_with("STATE_V2_IKE_")
        {
            IkeSaState::Connecting
        } else {
            IkeSaState::Other(st.state.clone())
        };
        sas.push(IkeSaStatus {
            peer: peer_of(&st.conn),
            remote_id: None,
            state,
            initiator: None,
            proposal: None,
            udp_encap: None,
            child_sas: Vec::new(),
        });
    }
    for st in states.iter().filter(|s| is_child(s)) {
        let child = ChildSaStatus {
            name: st.conn.clone(),
            state: st.state.clone(),
            mode: None,
            spi_in: None,
            spi_out: None,
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
        };
        let peer = peer_of(&st.conn);
        match sas.iter_mut().find(|sa| sa.peer == peer) {
            Some(sa) => sa.child_sas.push(child),
            None => {
                tracing::debug!(serial = st.serial, conn = %st.conn, "child state without IKE SA")
            }
        }
    }
    sas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::RemotePeer;

    fn config(remote: &str) -> ChassisConfig {
        ChassisConfig {
            name: "ch2".into(),
            local_ip: if remote.contains(':') {
                "fd77::2"
            } else {
                "10.77.0.2"
            }
            .parse()
            .unwrap(),
            remote_peers: vec![RemotePeer::geneve("ch1", remote.parse().unwrap())],
            force_encaps: remote.contains(':'),
        }
    }

    #[test]
    fn ipsec_conf_has_ovs_monitor_ipsec_default_section_and_both_geneve_conns() {
        let conf = render_ipsec_conf(&config("10.77.0.1"));
        for line in [
            "ike=aes_gcm256-sha2_256",
            "esp=aes_gcm256",
            "ikev2=insist",
            "type=transport",
            "auto=route",
            "conn ovn-ch1-0-in-1",
            "conn ovn-ch1-0-out-1",
            "left=10.77.0.2",
            "right=10.77.0.1",
            "leftid=@ch2",
            "rightid=@ch1",
            "leftcert=\"ovs_certkey_ch2\"",
            "rightca=%same",
            "leftprotoport=udp/6081",
            "rightprotoport=udp/6081",
        ] {
            assert!(conf.contains(line), "missing {line:?} in\n{conf}");
        }
        assert!(!conf.contains("hostaddrfamily"));
        assert!(!conf.contains("encapsulation"));
    }

    #[test]
    fn ipsec_conf_for_an_ipv6_tunnel_sets_both_address_families() {
        let conf = render_ipsec_conf(&config("fd77::1"));
        assert_eq!(conf.matches("hostaddrfamily=ipv6").count(), 2, "{conf}");
        assert!(conf.contains("right=fd77::1"));
        assert_eq!(conf.matches("encapsulation=yes").count(), 2, "{conf}");
    }

    #[test]
    fn showstates_groups_child_states_under_the_peers_ike_sa() {
        let text = "000 #3: \"ovn-ch1-0-out-1\":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 28119s; newest; idle;\n\
                    000 #4: \"ovn-ch1-0-in-1\":500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); newest;\n\
                    000 #5: \"other\" STATE_V2_PARENT_I1 (sent IKE_SA_INIT request);\n\
                    garbage line\n";
        let sas = ike_sas_from_showstates(&config("10.77.0.1"), text);
        assert_eq!(sas.len(), 2);
        assert_eq!(sas[0].peer, "ch1");
        assert_eq!(sas[0].state, IkeSaState::Established);
        assert_eq!(sas[0].child_sas.len(), 1);
        assert_eq!(sas[0].child_sas[0].name, "ovn-ch1-0-in-1");
        assert_eq!(sas[1].state, IkeSaState::Connecting);
    }

    #[test]
    fn status_line_gives_the_number_of_loaded_connections() {
        assert_eq!(
            loaded_connections("000 Total IPsec connections: loaded 2, active 0\n"),
            Some(2)
        );
        assert_eq!(loaded_connections("000 nothing\n"), None);
    }
}
