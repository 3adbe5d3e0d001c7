//! Certificate rotation: `ovn-ipsecd` runs in a network namespace of its own
//! against a real ovsdb-server, its certificate, key and CA in a directory of the test's; the
//! test replaces the files the way operators and tools do (rename over, write in place) and
//! reads the daemon's status and log. A certificate for another chassis and a key that does
//! not belong to the certificate are refused and the running ones stay, as is a CA file cut
//! short; a valid new pair is taken by every peer in the engine, with no restart; SIGHUP
//! loads the files as well.
//!
//! Needs root, `ip` (iproute2), ovsdb-server/ovn-sbctl (ovn-central, ovn-common) and `openssl`
//! (openvswitch-common depends on it), which makes a throw-away PKI.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{run, southbound, Daemon, Netns};
use ovn_ipsec_tests::ovsdb_server::{require_tools, TempDir};

const LOCAL: &str = "10.98.0.1";
const REMOTE: &str = "10.98.0.2";

/// A CA and end-entity certificates from it (EC P-256, so that making them is quick).
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        req_with_new_key(
            &p("ca-key.pem"),
            &[
                "-x509",
                "-out",
                &p("ca.pem"),
                "-days",
                "90",
                "-subj",
                "/O=ovn-ipsec test/CN=rotation test CA",
                "-addext",
                "basicConstraints=critical,CA:true",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `chassis` (CN and SAN) with organisation `generation`, and its new
    /// key: (certificate, key).
    fn issue(&self, chassis: &str, generation: &str) -> (PathBuf, PathBuf) {
        let name = format!("{chassis}-{generation}");
        let p = |suffix: &str| self.dir.join(format!("{name}{suffix}"));
        let (cert, key, req, ext) = (p("-cert.pem"), p("-key.pem"), p(".csr"), p(".ext"));
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:false\nsubjectAltName=DNS:{chassis}\n"),
        )
        .unwrap();
        let s = |p: &Path| p.display().to_string();
        req_with_new_key(
            &s(&key),
            &[
                "-new",
                "-out",
                &s(&req),
                "-subj",
                &format!("/O={generation}/CN={chassis}"),
            ],
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &s(&req),
                "-CA",
                &s(&self.ca()),
                "-CAkey",
                &s(&self.dir.join("ca-key.pem")),
                "-CAcreateserial",
                "-days",
                "90",
                "-extfile",
                &s(&ext),
                "-out",
                &s(&cert),
            ],
        );
        (cert, key)
    }
}

/// Runs `openssl req` with a new unencrypted EC P-256 key (quick to make), written to `key`,
/// and `args` (what to make of it: a self-signed CA or a request).
fn req_with_new_key(key: &str, args: &[&str]) {
    let mut all = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
    ];
    all.extend_from_slice(args);
    run("openssl", &all);
}

/// Puts `from`'s contents at `to` by writing a temporary file and renaming it over `to`.
fn replace_by_rename(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn subject(daemon: &Daemon) -> Option<String> {
    daemon.status()?.certificate.map(|c| c.subject)
}

#[test]
fn replaced_certificate_files_are_checked_then_taken_by_every_peer_with_or_without_sighup() {
    require_tools();
    let dir = TempDir::new("cert-rotation");
    let d = dir.path();
    let pki = Pki::new(d);
    let (gen1_cert, gen1_key) = pki.issue("chassis-1", "gen1");
    let (gen2_cert, gen2_key) = pki.issue("chassis-1", "gen2");
    let (other_cert, _) = pki.issue("chassis-2", "gen1");
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::copy(&gen1_cert, &cert).unwrap();
    std::fs::copy(&gen1_key, &key).unwrap();
    std::fs::copy(pki.ca(), d.join("ca.pem")).unwrap();

    let sb = southbound(&[("chassis-1", LOCAL), ("chassis-2", REMOTE)]);
    let ns = Netns::new("cert-rotation");
    ns.add_local(&format!("{LOCAL}/32"));
    let daemon = Daemon::start(&ns, &sb, d, "chassis-1");
    daemon.wait_until("the first certificate in the status", |d| {
        subject(d).is_some_and(|s| s.contains("gen1"))
    });
    daemon.wait_until("the peer chassis-2", |d| {
        d.status().is_some_and(|s| s.peers_desired == 1)
    });
    daemon.wait_until("the peer in the engine", |d| {
        d.log_lines_with(&["peer added to the IKE endpoint"]) == 1
    });

    // Another chassis's certificate, valid from the same CA: refused, naming both chassis.
    replace_by_rename(&other_cert, &cert);
    daemon.wait_until("the refusal of chassis-2's certificate", |d| {
        d.log_lines_with(&["refused", "names chassis", "chassis-2", "chassis-1"]) == 1
    });
    assert!(subject(&daemon).unwrap().contains("gen1"));

    // The new certificate written in place while the key is still the old one: refused as a
    // key that does not belong to it.
    std::fs::copy(&gen2_cert, &cert).unwrap();
    daemon.wait_until("the refusal of the mismatched key", |d| {
        d.log_lines_with(&["refused", "does not belong to certificate"]) == 1
    });
    assert!(subject(&daemon).unwrap().contains("gen1"));

    // Its key too: taken, by the peer in the engine as well.
    replace_by_rename(&gen2_key, &key);
    daemon.wait_until("the new certificate in the status", |d| {
        subject(d).is_some_and(|s| s.contains("gen2"))
    });
    assert_eq!(
        daemon.log_lines_with(&["certificate and key in use", "peers=1"]),
        1,
        "{}",
        daemon.log()
    );

    // A CA file cut short (as by a writer that stopped half-way): refused, naming the file.
    let ca = d.join("ca.pem");
    let whole = std::fs::read(&ca).unwrap();
    std::fs::write(&ca, &whole[..whole.len() / 2]).unwrap();
    daemon.wait_until("the refusal of the truncated CA file", |d| {
        d.log_lines_with(&["refused", "CA certificate", &ca.display().to_string()]) == 1
    });
    assert!(subject(&daemon).unwrap().contains("gen2"));
    replace_by_rename(&pki.ca(), &ca);
    daemon.wait_until("the repaired CA file taken", |d| {
        d.log_lines_with(&["certificate and key in use"]) == 2
    });

    // SIGHUP loads them too.
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("the reload on SIGHUP", |d| {
        d.log_lines_with(&["SIGHUP"]) == 1 && d.log_lines_with(&["certificate and key in use"]) == 3
    });

    // Each refusal and each acceptance was reported once, not at every look.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(daemon.log_lines_with(&["refused"]), 3, "{}", daemon.log());
    assert_eq!(daemon.log_lines_with(&["certificate and key in use"]), 3);
    assert!(subject(&daemon).unwrap().contains("gen2"));
}
