//! The client against a real standalone ovsdb-server with the OVN Southbound schema.

use std::time::Duration;

use ovn_ipsec_tests::ovsdb_server::{OvsdbServer, Pki};
use ovsdb::{
    parse_remotes, ChangeKind, ConnectOptions, Connection, Event, Monitor, MonitorConfig, Remote,
    TableCache, TlsFiles,
};

const WAIT: Duration = Duration::from_secs(10);

fn sb_tables() -> Vec<(String, Vec<String>)> {
    let t = |name: &str, cols: &[&str]| {
        (
            name.to_string(),
            cols.iter().map(|c| c.to_string()).collect(),
        )
    };
    vec![
        t("SB_Global", &["ipsec", "options"]),
        t(
            "Chassis",
            &[
                "name",
                "hostname",
                "encaps",
                "other_config",
                "external_ids",
                "transport_zones",
            ],
        ),
        t("Encap", &["type", "ip", "options", "chassis_name"]),
    ]
}

fn config(remotes: &str) -> MonitorConfig {
    let mut c = MonitorConfig::new(
        parse_remotes(remotes).unwrap(),
        "OVN_Southbound",
        sb_tables(),
    );
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.seed = Some(1);
    c
}

/// Reads events until `pred` holds for the cache; returns the change sets seen on the way.
async fn until(m: &mut Monitor, pred: impl Fn(&TableCache) -> bool) -> Vec<ovsdb::ChangeSet> {
    let mut seen = Vec::new();
    let work = async {
        loop {
            if pred(&m.cache()) {
                return;
            }
            match m.next_event().await.unwrap() {
                Event::Changed(cs) => seen.push(cs),
                Event::Connected { .. } => {}
                Event::Disconnected { error, .. } => eprintln!("disconnected: {error}"),
            }
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("condition not reached in time");
    seen
}

fn chassis_ip(c: &TableCache, name: &str) -> Option<String> {
    let (_, ch) = c
        .table("Chassis")
        .find(|(_, r)| r.str("name") == Some(name))?;
    let encap = ch.uuids("encaps").into_iter().next()?;
    c.row("Encap", &encap)?.str("ip").map(str::to_string)
}

#[tokio::test]
async fn monitor_over_unix_follows_each_change_exactly() {
    let sb = OvsdbServer::standalone();
    let mut m = Monitor::spawn(config(&sb.unix_remote()));
    until(&mut m, |c| c.is_empty()).await;

    sb.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    until(&mut m, |c| {
        chassis_ip(c, "ch1").as_deref() == Some("192.0.2.1")
    })
    .await;
    assert_eq!(m.cache().len("Encap"), 1);

    let encap = sb.sbctl(&["--bare", "--columns=_uuid", "find", "Encap", "ip=192.0.2.1"]);
    sb.sbctl(&["set", "Encap", encap.trim(), "ip=192.0.2.9"]);
    until(&mut m, |c| {
        chassis_ip(c, "ch1").as_deref() == Some("192.0.2.9")
    })
    .await;

    sb.sbctl(&[
        "set",
        "Chassis",
        "ch1",
        "other_config:a=1",
        "other_config:b=2",
    ]);
    let other = |c: &TableCache| {
        c.table("Chassis")
            .next()
            .map(|(_, r)| r.string_map("other_config"))
            .unwrap_or_default()
    };
    until(&mut m, |c| other(c).len() == 2).await;
    sb.sbctl(&["remove", "Chassis", "ch1", "other_config", "a"]);
    until(&mut m, |c| {
        other(c).len() == 1 && other(c).contains_key("b")
    })
    .await;

    sb.sbctl(&["set", "SB_Global", ".", "ipsec=true"]);
    let ipsec = |c: &TableCache| {
        c.table("SB_Global")
            .next()
            .and_then(|(_, r)| r.bool("ipsec"))
    };
    until(&mut m, |c| ipsec(c) == Some(true)).await;
    sb.sbctl(&["set", "SB_Global", ".", "ipsec=false"]);
    until(&mut m, |c| ipsec(c) == Some(false)).await;

    sb.sbctl(&["chassis-del", "ch1"]);
    let seen = until(&mut m, |c| c.len("Chassis") == 0 && c.len("Encap") == 0).await;
    let last = seen.last().unwrap();
    let deleted: Vec<_> = last
        .changes
        .iter()
        .map(|c| (c.table.as_str(), c.kind))
        .collect();
    assert!(
        deleted.contains(&("Chassis", ChangeKind::Delete)),
        "{deleted:?}"
    );
    assert!(
        deleted.contains(&("Encap", ChangeKind::Delete)),
        "encaps vanish in the same update"
    );
}

#[tokio::test]
async fn monitor_over_tcp_sees_rows_created_before_it_connected() {
    let sb = OvsdbServer::standalone();
    sb.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    sb.sbctl(&["chassis-add", "ch2", "vxlan", "192.0.2.2"]);
    let mut m = Monitor::spawn(config(&sb.tcp_remote()));
    until(&mut m, |c| c.len("Chassis") == 2 && c.len("Encap") == 2).await;
    let c = m.cache();
    let (_, e) = c
        .table("Encap")
        .find(|(_, r)| r.str("type") == Some("vxlan"))
        .unwrap();
    assert_eq!(e.str("chassis_name"), Some("ch2"));
}

#[tokio::test]
async fn member_role_of_a_standalone_server_is_standalone_once_connected() {
    let sb = OvsdbServer::standalone();
    let mut m = Monitor::spawn(config(&sb.tcp_remote()));
    let connected = async {
        loop {
            if let Some(Event::Connected { .. }) = m.next_event().await {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, connected).await.unwrap();
    assert_eq!(m.member_role(), Some(ovsdb::MemberRole::Standalone));
}

#[tokio::test]
async fn monitor_over_ssl_with_ovs_pki_certificates() {
    let pki = Pki::new();
    let sb = OvsdbServer::standalone_tls(&pki);
    sb.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    let mut cfg = config(&sb.ssl_remote());
    cfg.tls = Some(TlsFiles {
        private_key: pki.key("ch1"),
        certificate: pki.cert("ch1"),
        ca_cert: pki.ca_bundle(),
    });
    let mut m = Monitor::spawn(cfg);
    until(&mut m, |c| chassis_ip(c, "ch1").is_some()).await;
    sb.sbctl(&["chassis-add", "ch2", "geneve", "192.0.2.2"]);
    until(&mut m, |c| {
        chassis_ip(c, "ch2").as_deref() == Some("192.0.2.2")
    })
    .await;
}

#[tokio::test]
async fn ssl_with_a_ca_that_did_not_sign_the_server_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    let sb = OvsdbServer::standalone_tls(&pki);
    let files = TlsFiles {
        private_key: pki.key("ch1"),
        certificate: pki.cert("ch1"),
        ca_cert: other.ca_bundle(),
    };
    let remote: Remote = sb.ssl_remote().parse().unwrap();
    let err = Connection::open(
        &remote,
        Some(&files.load().unwrap()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ovsdb::Error::Tls(_)), "{err}");
}

#[tokio::test]
async fn raw_requests_list_dbs_schema_transact_echo_and_server_id() {
    let sb = OvsdbServer::standalone();
    let remote: Remote = sb.unix_remote().parse().unwrap();
    let (conn, _incoming) = Connection::open(&remote, None, &ConnectOptions::default())
        .await
        .unwrap();
    let dbs = conn.list_dbs().await.unwrap();
    assert!(dbs.contains(&"OVN_Southbound".to_string()) && dbs.contains(&"_Server".to_string()));
    let schema = conn.get_schema("OVN_Southbound").await.unwrap();
    assert!(schema.column("Encap", "ip").unwrap().is_scalar());
    conn.echo().await.unwrap();
    assert_eq!(conn.get_server_id().await.unwrap().len(), 36);

    let ops =
        vec![serde_json::json!({"op": "insert", "table": "SB_Global", "row": {"ipsec": true}})];
    conn.transact("OVN_Southbound", ops).await.unwrap();
    assert!(sb
        .sbctl(&["get", "SB_Global", ".", "ipsec"])
        .contains("true"));

    let bad = vec![serde_json::json!({"op": "insert", "table": "No_Such_Table", "row": {}})];
    let err = conn.transact("OVN_Southbound", bad).await.unwrap_err();
    assert!(matches!(err, ovsdb::Error::Rpc { .. }), "{err}");
    let req = serde_json::json!({"SB_Global": [{"columns": ["ipsec"]}]});
    let snapshot = conn
        .call(
            "monitor_cond",
            serde_json::json!(["OVN_Southbound", "m1", req]),
        )
        .await
        .unwrap();
    assert!(snapshot["SB_Global"].is_object());
    conn.monitor_cancel(&serde_json::json!("m1")).await.unwrap();
    let err = conn
        .monitor_cancel(&serde_json::json!("m1"))
        .await
        .unwrap_err();
    assert!(matches!(err, ovsdb::Error::Rpc { .. }), "{err}");

    let err = conn.get_schema("Nope").await.unwrap_err();
    assert!(matches!(err, ovsdb::Error::Rpc { .. }), "{err}");
}

#[tokio::test]
async fn monitor_over_an_ipv6_literal_remote() {
    let (sb, port) = OvsdbServer::standalone_ipv6();
    sb.sbctl(&["chassis-add", "ch6", "geneve", "2001:db8::6"]);
    let mut m = Monitor::spawn(config(&format!("tcp:[::1]:{port}")));
    until(&mut m, |c| {
        chassis_ip(c, "ch6").as_deref() == Some("2001:db8::6")
    })
    .await;
}
