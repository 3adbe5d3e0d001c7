//! The Southbound view against a real standalone ovsdb-server over unix, tcp and ssl: each
//! Southbound transaction gives one event whose diff names exactly what changed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use controller::southbound::{
    EncapType, Snapshot, SnapshotDiff, Southbound, SouthboundConfig, SouthboundEvent,
};
use ovn_ipsec_tests::ovsdb_server::{OvsdbServer, Pki};
use ovsdb::{parse_remotes, TlsFiles};

const WAIT: Duration = Duration::from_secs(10);

fn config(remotes: &str) -> SouthboundConfig {
    let mut c = SouthboundConfig::new(parse_remotes(remotes).unwrap());
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.seed = Some(3);
    c
}

async fn connected(sb: &mut Southbound) {
    let work = async {
        loop {
            match sb.next().await.unwrap() {
                SouthboundEvent::Connected { .. } => return,
                SouthboundEvent::Disconnected { error, .. } => eprintln!("disconnected: {error}"),
                SouthboundEvent::Changed { .. } => {}
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("never connected");
}

async fn next_change(sb: &mut Southbound) -> (Arc<Snapshot>, SnapshotDiff) {
    let work = async {
        loop {
            match sb.next().await.unwrap() {
                SouthboundEvent::Changed { snapshot, diff } => return (snapshot, diff),
                other => eprintln!("event: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("no change arrived")
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The scenario every transport must pass.
async fn view_follows_each_change(server: &OvsdbServer, mut sb: Southbound) {
    connected(&mut sb).await;
    assert!(sb.snapshot().chassis.is_empty());

    server.sbctl(&["chassis-add", "ch1", "geneve,vxlan", "192.0.2.1"]);
    let (snap, diff) = next_change(&mut sb).await;
    assert_eq!(diff.added, names(&["ch1"]));
    assert!(diff.removed.is_empty() && diff.changed.is_empty());
    let ch1 = &snap.chassis["ch1"];
    let kinds: Vec<_> = ch1
        .encaps
        .iter()
        .map(|e| (e.encap_type.clone(), e.ip.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EncapType::Geneve, "192.0.2.1"),
            (EncapType::Vxlan, "192.0.2.1")
        ]
    );
    assert!(ch1.encaps.iter().all(|e| e.chassis_name == "ch1"));

    server.sbctl(&["chassis-add", "ch2", "geneve", "192.0.2.2"]);
    let (_, diff) = next_change(&mut sb).await;
    assert_eq!(diff.added, names(&["ch2"]));

    let encap = server.sbctl(&["--bare", "--columns=_uuid", "find", "Encap", "ip=192.0.2.2"]);
    server.sbctl(&[
        "set",
        "Encap",
        encap.trim(),
        "ip=198.51.100.2",
        "options:dst_port=6082",
    ]);
    let (snap, diff) = next_change(&mut sb).await;
    assert_eq!(
        diff.changed,
        names(&["ch2"]),
        "an encap change is a change of its chassis"
    );
    let e = &snap.chassis["ch2"].encaps[0];
    assert_eq!(e.ip_addr(), Some("198.51.100.2".parse().unwrap()));
    assert_eq!(e.dst_port(), Some(6082));
    assert_eq!(
        snap.chassis_by_encap_ip("198.51.100.2").unwrap().name,
        "ch2"
    );
    assert!(snap.chassis_by_encap_ip("192.0.2.2").is_none());

    server.sbctl(&[
        "set",
        "Chassis",
        "ch1",
        "other_config:a=1",
        "other_config:b=2",
        "hostname=h1",
    ]);
    let (snap, diff) = next_change(&mut sb).await;
    assert_eq!(diff.changed, names(&["ch1"]));
    assert_eq!(snap.chassis["ch1"].other_config.len(), 2);
    assert_eq!(snap.chassis["ch1"].hostname, "h1");
    server.sbctl(&["remove", "Chassis", "ch1", "other_config", "a"]);
    let (snap, _) = next_change(&mut sb).await;
    let keys: Vec<_> = snap.chassis["ch1"].other_config.keys().cloned().collect();
    assert_eq!(keys, vec!["b".to_string()]);

    server.sbctl(&[
        "set",
        "SB_Global",
        ".",
        "ipsec=true",
        "options:ipsec_encapsulation=true",
    ]);
    let (snap, diff) = next_change(&mut sb).await;
    assert!(diff.global_changed && diff.changed.is_empty());
    assert!(snap.ipsec && snap.ipsec_encapsulation() && !snap.ipsec_forceencaps());
    server.sbctl(&["set", "SB_Global", ".", "ipsec=false"]);
    let (snap, diff) = next_change(&mut sb).await;
    assert!(diff.global_changed && !snap.ipsec);

    server.sbctl(&["chassis-del", "ch1"]);
    let (snap, diff) = next_change(&mut sb).await;
    assert_eq!(diff.removed, names(&["ch1"]));
    assert!(diff.added.is_empty() && diff.changed.is_empty());
    assert!(
        snap.chassis_by_encap_ip("192.0.2.1").is_none(),
        "its encaps vanish with it"
    );
    assert_eq!(
        snap.chassis.keys().cloned().collect::<Vec<_>>(),
        vec!["ch2".to_string()]
    );
}

#[tokio::test]
async fn view_over_unix_follows_each_change() {
    let server = OvsdbServer::standalone();
    let sb = Southbound::spawn(&config(&server.unix_remote()));
    view_follows_each_change(&server, sb).await;
}

#[tokio::test]
async fn view_over_tcp_follows_each_change() {
    let server = OvsdbServer::standalone();
    let sb = Southbound::spawn(&config(&server.tcp_remote()));
    view_follows_each_change(&server, sb).await;
}

#[tokio::test]
async fn view_over_ssl_follows_each_change() {
    let pki = Pki::new();
    let server = OvsdbServer::standalone_tls(&pki);
    let mut cfg = config(&server.ssl_remote());
    cfg.tls = Some(TlsFiles {
        private_key: pki.key("ch1"),
        certificate: pki.cert("ch1"),
        ca_cert: pki.ca_bundle(),
    });
    view_follows_each_change(&server, Southbound::spawn(&cfg)).await;
}

#[tokio::test]
async fn view_of_a_populated_database_arrives_as_one_change() {
    let server = OvsdbServer::standalone();
    server.sbctl(&["chassis-add", "a", "geneve", "192.0.2.1"]);
    server.sbctl(&["chassis-add", "b", "geneve", "192.0.2.2"]);
    server.sbctl(&["set", "SB_Global", ".", "ipsec=true"]);
    let mut sb = Southbound::spawn(&config(&server.unix_remote()));
    let (snap, diff) = next_change(&mut sb).await;
    assert_eq!(diff.added, names(&["a", "b"]));
    assert!(diff.global_changed && snap.ipsec);
}

#[tokio::test]
async fn view_reports_chassis_gone_while_disconnected_as_removed() {
    let mut server = OvsdbServer::standalone();
    server.sbctl(&["chassis-add", "a", "geneve", "192.0.2.1"]);
    let mut sb = Southbound::spawn(&config(&server.tcp_remote()));
    let (_, diff) = next_change(&mut sb).await;
    assert_eq!(diff.added, names(&["a"]));

    // The server comes back with another database: the full snapshot replaces the view.
    server.restart_empty();
    server.sbctl(&["chassis-add", "b", "geneve", "192.0.2.2"]);
    let (snap, diff) = next_change(&mut sb).await;
    assert!(diff.removed.contains("a"), "{diff:?}");
    if diff.added.is_empty() {
        // It resynced before `b` was added; `b` then arrives as its own change.
        let (snap, diff) = next_change(&mut sb).await;
        assert_eq!(diff.added, names(&["b"]));
        assert_eq!(snap.chassis.len(), 1);
    } else {
        assert_eq!(diff.added, names(&["b"]));
        assert_eq!(snap.chassis.len(), 1);
    }
}
