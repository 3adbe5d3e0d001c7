//! `ipsecctl` run as a process against the real control server (controller::control) on a
//! temporary socket, with a fixture handler standing in for the daemon's state.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use control_api::protocol::*;
use controller::control::{ActionError, ControlHandler, ControlServer, SocketConfig};

/// The daemon's state as the tests want it shown.
#[derive(Default)]
struct Fixture {
    cleanups: AtomicU32,
}

const PEER: &str = "chassis-b";

/// What the fixture's metrics page holds.
const METRICS_PAGE: &str = "# HELP ovn_ipsec_ready 1 once ready.\n# TYPE ovn_ipsec_ready gauge\n\
                            ovn_ipsec_ready 1\n# EOF\n";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn status() -> Status {
    Status {
        chassis: "chassis-a".into(),
        southbound: SouthboundStatus {
            remote: Some("ssl:192.0.2.100:6642".into()),
            state: ConnectionState::Connected,
            member_role: Some(MemberRole::Leader),
            last_sync_unix: Some(1_800_000_000),
        },
        peers_desired: 2,
        peers_exempt: 1,
        peers_up: 1,
        certificate: Some(CertificateStatus {
            subject: "CN=chassis-a".into(),
            not_after_unix: 1_830_000_000,
        }),
        version: "0.1.0".into(),
    }
}

fn peers() -> Vec<PeerInfo> {
    vec![
        PeerInfo {
            chassis: PEER.into(),
            local_ip: ip(1),
            remote_ip: ip(2),
            encap: "geneve".into(),
            policy: PeerPolicy::Desired,
            exempt_group: None,
            ike_state: IkeSaState::Established,
            role: Some(Role::Initiator),
            suite: Some("AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256".into()),
            age_secs: Some(200),
            next_rekey_secs: Some(7500),
            last_error: None,
            esp_installed: None,
        },
        PeerInfo {
            chassis: "chassis-c".into(),
            local_ip: ip(1),
            remote_ip: ip(3),
            encap: "geneve".into(),
            policy: PeerPolicy::Desired,
            exempt_group: None,
            ike_state: IkeSaState::Failed,
            role: None,
            suite: None,
            age_secs: None,
            next_rekey_secs: None,
            last_error: Some(PeerError {
                message: "AUTHENTICATION_FAILED from peer".into(),
                at_unix: 1_800_000_000,
            }),
            esp_installed: None,
        },
        PeerInfo {
            chassis: "chassis-d".into(),
            local_ip: ip(1),
            remote_ip: ip(4),
            encap: "vxlan".into(),
            policy: PeerPolicy::Exempt,
            exempt_group: Some("rack7".into()),
            ike_state: IkeSaState::None,
            role: None,
            suite: None,
            age_secs: None,
            next_rekey_secs: None,
            last_error: None,
            esp_installed: None,
        },
    ]
}

fn sas() -> SaList {
    let ts = |last| TrafficSelector {
        start_address: ip(last),
        end_address: ip(last),
        ip_protocol: 17,
        start_port: 6081,
        end_port: 6081,
    };
    SaList {
        ike_sas: vec![IkeSaInfo {
            peer: PEER.into(),
            local_ip: ip(1),
            local_port: 500,
            remote_ip: ip(2),
            remote_port: 500,
            spi_i: ike_spi_hex(0x0123_4567_89ab_cdef),
            spi_r: ike_spi_hex(0xfedc_ba98_7654_3210),
            role: Role::Initiator,
            state: IkeSaState::Established,
            encryption: "AES_GCM_16_256".into(),
            integrity: None,
            prf: "PRF_HMAC_SHA2_256".into(),
            dh_group: "ECP_256".into(),
            age_secs: 200,
            rekey_in_secs: Some(7500),
            child_sas: vec![ChildSaInfo {
                spi_in: 0xc000_0001,
                spi_out: 0xc100_0002,
                reqid: 0x4f56_0001,
                mode: SaMode::Transport,
                encapsulation: None,
                local_ts: vec![ts(1)],
                remote_ts: vec![ts(2)],
                encryption: "AES_GCM_16_256".into(),
                integrity: None,
                esn: true,
                inbound: KernelCounters {
                    bytes: 123_456,
                    packets: 789,
                    replay_failures: 3,
                    integrity_failures: 2,
                },
                outbound: KernelCounters {
                    bytes: 654_321,
                    packets: 987,
                    replay_failures: 0,
                    integrity_failures: 0,
                },
                lifetime: SaLifetime {
                    age_secs: 200,
                    soft_secs: Some(3000),
                    hard_secs: Some(3600),
                    soft_bytes: None,
                    hard_bytes: None,
                },
                rekey_in_secs: Some(2800),
                installed: true,
            }],
        }],
    }
}

impl ControlHandler for Fixture {
    fn status(&self) -> Status {
        status()
    }
    fn peers(&self) -> Vec<PeerInfo> {
        peers()
    }
    fn sas(&self) -> SaList {
        sas()
    }
    fn initiate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        known(peer, "initiating")
    }
    fn terminate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        known(peer, "terminating")
    }
    fn rekey(&self, peer: &str) -> Result<ActionDone, ActionError> {
        known(peer, "rekeying")
    }
    fn reload(&self) -> Result<ActionDone, ActionError> {
        Err(ActionError::Failed {
            message: "certificate /etc/ovn-ipsec/cert.pem: file not found".into(),
        })
    }
    fn metrics(&self) -> Result<String, ActionError> {
        Ok(METRICS_PAGE.into())
    }
    fn cleanup(&self) -> Result<CleanupReport, ActionError> {
        self.cleanups.fetch_add(1, Ordering::SeqCst);
        Ok(CleanupReport {
            states_removed: 4,
            policies_removed: 6,
        })
    }
}

fn known(peer: &str, what: &str) -> Result<ActionDone, ActionError> {
    if peer == PEER {
        Ok(ActionDone {
            message: format!("{what} {peer}"),
        })
    } else {
        Err(ActionError::UnknownPeer { peer: peer.into() })
    }
}

/// A running control server on a temporary socket; stops when dropped.
struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    handler: Arc<Fixture>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _runtime: tokio::runtime::Runtime,
}

fn daemon_with(group: Option<&str>) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    // Traversable by every user, so that the socket's own mode is what is tested.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("control.sock");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = SocketConfig {
        path: socket.clone(),
        group: group.map(str::to_owned),
    };
    let server = runtime
        .block_on(async { ControlServer::bind(&config) })
        .unwrap();
    let handler = Arc::new(Fixture::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let h: Arc<dyn ControlHandler> = handler.clone();
    runtime.spawn(server.serve(h, async {
        let _ = stopped.await;
    }));
    Daemon {
        dir,
        socket,
        handler,
        _stop: stop,
        _runtime: runtime,
    }
}

fn daemon() -> Daemon {
    daemon_with(None)
}

fn ipsecctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn status_table_shows_chassis_southbound_peers_and_certificate() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "chassis               chassis-a",
        "southbound            connected",
        "southbound remote     ssl:192.0.2.100:6642",
        "southbound member     leader",
        "southbound last sync  2027-01-15T08:00:00Z",
        "peers                 1 up / 2 desired, 1 exempt",
        "certificate           CN=chassis-a",
        "certificate expires   2027-12-28T13:20:00Z",
        "version               0.1.0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn status_json_is_the_protocol_status() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parsed: Status = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed, status());
}

#[test]
fn peers_table_lists_each_pair_with_state_role_suite_and_last_error() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["peers"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("CHASSIS    LOCAL      REMOTE     ENCAP   POLICY        IKE SA"));
    let b: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        b,
        [
            "chassis-b",
            "192.0.2.1",
            "192.0.2.2",
            "geneve",
            "desired",
            "established",
            "initiator",
            "AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256",
            "3m20s",
            "2h05m",
            "-"
        ]
    );
    assert!(lines[2].contains("failed"));
    assert!(lines[2].ends_with("2027-01-15T08:00:00Z AUTHENTICATION_FAILED from peer"));
    let d: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        d,
        [
            "chassis-d",
            "192.0.2.1",
            "192.0.2.4",
            "vxlan",
            "exempt:rack7",
            "none",
            "-",
            "-",
            "-",
            "-",
            "-"
        ]
    );
}

#[test]
fn peers_json_has_every_pair() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["peers", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let parsed: PeerList = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.peers, peers());
}

#[test]
fn sas_table_shows_spis_selectors_algorithms_and_kernel_counters() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["sas"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "IKE SA chassis-b  192.0.2.1[500] -> 192.0.2.2[500]  established  initiator  \
             SPIi 0123456789abcdef  SPIr fedcba9876543210\n  \
             AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256  age 3m20s  rekey in 2h05m\n"
        ),
        "{text}"
    );
    let child: Vec<&str> = text.lines().nth(3).unwrap().split_whitespace().collect();
    assert_eq!(
        child,
        [
            "c0000001",
            "c1000002",
            "1331036161",
            "transport",
            "-",
            "192.0.2.1[udp/6081]",
            "192.0.2.2[udp/6081]",
            "AES_GCM_16_256/ESN",
            "123456",
            "789",
            "654321",
            "987",
            "3",
            "2",
            "3m20s",
            "46m40s",
            "50m00s",
            "1h00m"
        ]
    );
}

#[test]
fn sas_json_round_trips_to_the_daemons_list() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["sas", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let parsed: SaList = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed, sas());
    // SPIs of IKE SAs travel as hex strings, CHILD_SA SPIs as numbers.
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["ike_sas"][0]["spi_i"], "0123456789abcdef");
    assert_eq!(
        value["ike_sas"][0]["child_sas"][0]["spi_in"],
        0xc000_0001u32
    );
}

#[test]
fn actions_on_a_known_peer_print_the_daemons_message() {
    let d = daemon();
    for (cmd, word) in [
        ("initiate", "initiating"),
        ("terminate", "terminating"),
        ("rekey", "rekeying"),
    ] {
        let out = ipsecctl(&d.socket, &[cmd, PEER]);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{word} {PEER}\n"));
    }
}

#[test]
fn action_on_an_unknown_peer_exits_1_with_the_daemons_error() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["rekey", "chassis-z"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "ipsecctl rekey: unknown_peer: no peer named \"chassis-z\"\n"
    );
}

#[test]
fn failed_reload_exits_1_and_says_why() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("failed: certificate /etc/ovn-ipsec/cert.pem: file not found"));
}

#[test]
fn cleanup_without_confirmation_exits_2_and_never_asks_the_daemon() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["cleanup"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refusing without --yes-remove-all"));
    assert_eq!(d.handler.cleanups.load(Ordering::SeqCst), 0);
}

#[test]
fn confirmed_cleanup_reports_what_was_removed() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["cleanup", "--yes-remove-all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "removed 4 states and 6 policies\n");
    assert_eq!(d.handler.cleanups.load(Ordering::SeqCst), 1);
    let out = ipsecctl(&d.socket, &["cleanup", "--yes-remove-all", "--json"]);
    let report: CleanupReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.policies_removed, 6);
}

#[test]
fn missing_socket_exits_3_saying_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let out = ipsecctl(&socket, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        format!(
            "ipsecctl status: ovn-ipsecd is not running: no control socket at {}\n",
            socket.display()
        )
    );
}

#[test]
fn stale_socket_without_listener_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let out = ipsecctl(&socket, &["peers"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("nothing listens on"),
        "{}",
        stderr(&out)
    );
}

/// Runs ipsecctl as `nobody` (setpriv), from a copy any user can execute.
fn ipsecctl_as_nobody(d: &Daemon, groups: &str, args: &[&str]) -> Option<Output> {
    if unsafe_getuid() != 0 {
        eprintln!("skipped: needs root to run ipsecctl as another user");
        return None;
    }
    let exe = d.dir.path().join("ipsecctl");
    std::fs::copy(env!("CARGO_BIN_EXE_ipsecctl"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            &format!("--groups={groups}"),
        ])
        .arg(&exe)
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .output()
        .expect("setpriv (util-linux) must be installed to test socket permissions");
    Some(out)
}

fn unsafe_getuid() -> u32 {
    // The effective uid as the kernel sees it, from /proc (no libc needed in this test).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn root_only_socket_denies_another_user_with_exit_4() {
    let d = daemon();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let Some(out) = ipsecctl_as_nobody(&d, "65534", &["status"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "ipsecctl status: permission denied on {}: run as root or as a member of the \
             control group\n",
            d.socket.display()
        )
    );
}

#[test]
fn group_socket_lets_a_member_of_the_group_in() {
    let d = daemon_with(Some("4242"));
    let Some(out) = ipsecctl_as_nobody(&d, "4242", &["status", "--json"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let parsed: Status = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.chassis, "chassis-a");
    // And a user outside the group is still kept out.
    let out = ipsecctl_as_nobody(&d, "65534", &["status"]).unwrap();
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn daemon_of_another_protocol_version_exits_5() {
    // A server that speaks version 2: it answers any line with its version and an error.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        (&stream)
            .write_all(
                b"{\"version\":2,\"error\":{\"code\":\"version_mismatch\",\"message\":\"v2\"}}\n",
            )
            .unwrap();
        line
    });
    let out = ipsecctl(&socket, &["status"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("ipsecctl speaks version 1, ovn-ipsecd speaks version 2"));
    let sent = server.join().unwrap();
    assert!(
        sent.starts_with(r#"{"version":1,"request":{"kind":"status"}}"#),
        "{sent}"
    );
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("3  ovn-ipsecd is not running"));
    assert!(text.contains("5  protocol version mismatch"));
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let script = stdout(&out);
    assert!(script.contains("_ipsecctl()") && script.contains("--yes-remove-all"));

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let main = std::fs::read_to_string(dir.path().join("ipsecctl.1")).unwrap();
    assert!(main.contains(".TH ipsecctl 1"), "{main}");
    let sas = std::fs::read_to_string(dir.path().join("ipsecctl-sas.1")).unwrap();
    assert!(sas.contains("CHILD_SA"));
    assert!(!dir.path().join("ipsecctl-man.1").exists());
}

#[test]
fn metrics_prints_the_daemons_page_as_it_is_and_as_json() {
    let d = daemon();
    let out = ipsecctl(&d.socket, &["metrics"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), METRICS_PAGE);
    let out = ipsecctl(&d.socket, &["metrics", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page: MetricsPage = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(page.text, METRICS_PAGE);
}
