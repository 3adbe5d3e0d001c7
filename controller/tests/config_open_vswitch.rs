//! Zero-configuration start: the effective configuration read from a real ovsdb-server with
//! the Open_vSwitch schema, its row laid out by `ovs-vsctl` as ovn-controller and
//! ovs-monitor-ipsec expect, then overridden by a TOML file and flags; and the `ovn-ipsecd`
//! binary's `--print-config` and start-up identity check on that database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use controller::config::{load, Args, ConfigError, OvsReadError, Source};
use ovn_ipsec_tests::ovsdb_server::TempDir;

const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ovsdb-server serving a fresh Open_vSwitch database on a unix socket; killed by PID on
/// drop.
struct OpenVswitchDb {
    dir: TempDir,
    pid: u32,
}

impl OpenVswitchDb {
    fn start() -> Self {
        for tool in ["ovsdb-server", "ovsdb-tool", "ovs-vsctl"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found && Path::new(VSWITCH_SCHEMA).exists(),
                "{tool} or {VSWITCH_SCHEMA} is missing: install openvswitch-switch \
                 (tests/setup/controller.sh does)"
            );
        }
        let dir = TempDir::new("ovsdb-vswitch");
        let d = dir.path();
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(d.join("conf.db"))
            .arg(VSWITCH_SCHEMA));
        run(Command::new("ovsdb-server")
            .arg(d.join("conf.db"))
            .arg(format!("--remote=punix:{}", d.join("db.sock").display()))
            .arg(format!("--pidfile={}", d.join("ovsdb.pid").display()))
            .arg(format!("--log-file={}", d.join("ovsdb.log").display()))
            .arg(format!("--unixctl={}", d.join("ovsdb.ctl").display()))
            .args(["--detach", "--no-chdir"]));
        let pid = std::fs::read_to_string(d.join("ovsdb.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let db = Self { dir, pid };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !db.dir.path().join("db.sock").exists() {
            assert!(Instant::now() < deadline, "ovsdb-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        db
    }

    fn remote(&self) -> String {
        format!("unix:{}", self.dir.path().join("db.sock").display())
    }

    fn vsctl(&self, args: &[&str]) {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.remote()))
            .args(["--no-wait", "--timeout=5"])
            .args(args));
    }

    /// What ovn-controller's deployment and ovs-monitor-ipsec's setup leave behind.
    fn lay_out_node(&self, chassis: &str, cert: &Path, key: &Path, ca: &Path) {
        self.vsctl(&["init"]);
        self.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={chassis}"),
            "external_ids:ovn-remote=\"ssl:192.0.2.10:6642,ssl:192.0.2.11:6642\"",
            "external_ids:ovn-encap-ip=\"10.0.0.1,fd00::1\"",
            "external_ids:ovn-encap-type=geneve",
            "external_ids:hostname=node1",
            &format!("other_config:certificate={}", cert.display()),
            &format!("other_config:private_key={}", key.display()),
            &format!("other_config:ca_cert={}", ca.display()),
        ]);
    }
}

impl Drop for OpenVswitchDb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .output();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

fn node(chassis: &str) -> OpenVswitchDb {
    let db = OpenVswitchDb::start();
    db.lay_out_node(
        chassis,
        &fixture("chassis-1-cert.pem"),
        &fixture("chassis-1-privkey.pem"),
        &fixture("ca-a-cert.pem"),
    );
    db
}

/// An empty configuration file, so that a file in /etc on the test machine plays no part.
fn empty_config(dir: &TempDir) -> PathBuf {
    let p = dir.path().join("empty.toml");
    std::fs::write(&p, "").unwrap();
    p
}

#[tokio::test]
async fn zero_config_start_reads_the_row_ovn_controller_leaves() {
    let db = node("chassis-1");
    let c = load(Args {
        ovs_db: Some(db.remote()),
        config: Some(empty_config(&db.dir)),
        ..Args::default()
    })
    .await
    .unwrap();

    let ovs = |column| Source::OpenVswitch {
        remote: db.remote(),
        column,
    };
    let name = c.chassis_name.as_ref().unwrap();
    assert_eq!(
        (name.value.as_str(), &name.source),
        ("chassis-1", &ovs("external_ids:system-id"))
    );
    let remotes: Vec<String> = c
        .ovn_remote
        .as_ref()
        .unwrap()
        .value
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(remotes, ["ssl:192.0.2.10:6642", "ssl:192.0.2.11:6642"]);
    let ips: Vec<String> = c
        .encap_ip
        .as_ref()
        .unwrap()
        .value
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ips, ["10.0.0.1", "fd00::1"]);
    assert_eq!(c.encap_type.as_ref().unwrap().value, ["geneve"]);
    let r = c.required().unwrap();
    assert_eq!(r.identity.certificate, fixture("chassis-1-cert.pem"));
    assert_eq!(
        c.ca_cert.as_ref().unwrap().source,
        ovs("other_config:ca_cert")
    );
    assert_eq!(c.ovs_db.source, Source::CommandLine("--ovs-db"));
}

#[tokio::test]
async fn file_and_flags_override_the_database() {
    let db = node("chassis-1");
    let file = db.dir.path().join("ovn-ipsecd.toml");
    std::fs::write(
        &file,
        format!(
            "ovs_db = \"{}\"\nchassis_name = \"from-file\"\nencap_ip = [\"192.0.2.1\"]\n",
            db.remote()
        ),
    )
    .unwrap();
    let c = load(Args {
        config: Some(file.clone()),
        ovn_remote: Some("tcp:127.0.0.1:6642".into()),
        ..Args::default()
    })
    .await
    .unwrap();
    assert_eq!(c.ovs_db.source, Source::File(file.clone()));
    assert_eq!(c.chassis_name.unwrap().source, Source::File(file.clone()));
    assert_eq!(c.encap_ip.unwrap().source, Source::File(file));
    assert_eq!(
        c.ovn_remote.unwrap().source,
        Source::CommandLine("--ovn-remote")
    );
    assert!(matches!(
        c.certificate.unwrap().source,
        Source::OpenVswitch { .. }
    ));
}

#[tokio::test]
async fn database_without_its_row_is_reported() {
    let db = OpenVswitchDb::start();
    let e = load(Args {
        ovs_db: Some(db.remote()),
        config: Some(empty_config(&db.dir)),
        ..Args::default()
    })
    .await
    .unwrap_err();
    match &e {
        ConfigError::OpenVswitch { error, .. } => {
            assert!(matches!(**error, OvsReadError::NoRow { .. }), "{e}")
        }
        other => panic!("{other}"),
    }
}

fn ovn_ipsecd(db: &OpenVswitchDb, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ovn-ipsecd"))
        .arg(format!("--ovs-db={}", db.remote()))
        .arg(format!("--config={}", empty_config(&db.dir).display()))
        .args(extra)
        .output()
        .unwrap()
}

/// Starts ovn-ipsecd in a new network namespace, waits until its loop runs, sends SIGTERM and
/// returns its stderr and exit status.
fn ovn_ipsecd_until_running(db: &OpenVswitchDb) -> (String, std::process::ExitStatus) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_ovn-ipsecd"))
        .arg(format!("--ovs-db={}", db.remote()))
        .arg(format!("--config={}", empty_config(&db.dir).display()))
        .arg(format!(
            "--control-socket={}",
            db.dir.path().join("ctl.sock").display()
        ))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("ovn-ipsecd running") {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&line);
        log.push('\n');
    }
    (log, status)
}

#[test]
fn print_config_shows_values_and_their_sources() {
    let db = node("chassis-1");
    let out = ovn_ipsecd(&db, &["--print-config", "--metrics-listen=[::1]:9476"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = db.remote();
    for expected in [
        format!("chassis_name = \"chassis-1\"  # Open_vSwitch external_ids:system-id ({remote})"),
        format!(
            "ovn_remote = \"ssl:192.0.2.10:6642,ssl:192.0.2.11:6642\"  # Open_vSwitch \
             external_ids:ovn-remote ({remote})"
        ),
        "encap_ip = [\"10.0.0.1\", \"fd00::1\"]".to_string(),
        format!("ovs_db = \"{remote}\"  # command line --ovs-db"),
        "metrics_listen = \"[::1]:9476\"  # command line --metrics-listen".to_string(),
        "control_socket = \"/run/ovn-ipsec/control.sock\"  # default".to_string(),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn start_checks_that_the_certificate_names_this_chassis() {
    // The row names chassis-1 and its certificate: the check passes and the daemon runs (in a
    // network namespace of its own, so its IKE ports and XFRM objects stay off the host) until
    // SIGTERM, which it answers with exit status 0.
    let good = node("chassis-1");
    let (stderr, status) = ovn_ipsecd_until_running(&good);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("identity of chassis 'chassis-1' are valid"),
        "{stderr}"
    );

    // Another system-id with chassis-1's certificate: refused, naming both.
    let bad = node("chassis-2");
    let out = ovn_ipsecd(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "certificate {} names chassis 'chassis-1' but this chassis is 'chassis-2'",
            fixture("chassis-1-cert.pem").display()
        )),
        "{stderr}"
    );
}
