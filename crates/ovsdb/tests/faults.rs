//! Faults: a fake server that misbehaves in each way, a server that stops answering (SIGSTOP),
//! and a server that restarts with an empty database. Each ends in a clear error and a
//! reconnect, never a panic.

use std::time::Duration;

use ovn_ipsec_tests::ovsdb_server::{OvsdbServer, TempDir};
use ovsdb::{
    parse_remotes, ChangeKind, ConnectOptions, Connection, Error, Event, Monitor, MonitorConfig,
    Remote,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const WAIT: Duration = Duration::from_secs(10);

fn sb_tables() -> Vec<(String, Vec<String>)> {
    vec![
        ("SB_Global".into(), vec!["ipsec".into()]),
        ("Chassis".into(), vec!["name".into(), "encaps".into()]),
        ("Encap".into(), vec!["type".into(), "ip".into()]),
    ]
}

fn config(remotes: &str) -> MonitorConfig {
    let mut c = MonitorConfig::new(
        parse_remotes(remotes).unwrap(),
        "OVN_Southbound",
        sb_tables(),
    );
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    c.seed = Some(5);
    c
}

/// A unix-socket fake server: each accepted connection gets `payload` written to it once the
/// client's first request has arrived, then the connection is closed.
async fn fake_server(
    payload: Vec<u8>,
) -> (TempDir, String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let dir = TempDir::new("fake");
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = tx.send(());
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&payload).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (dir, format!("unix:{}", path.display()), rx)
}

/// Runs a monitor against a fake server; returns the first error and checks it reconnected.
async fn first_error(payload: Vec<u8>, max_message_size: Option<usize>) -> Error {
    let (_dir, remote, mut accepts) = fake_server(payload).await;
    let mut cfg = config(&remote);
    if let Some(m) = max_message_size {
        cfg.connect.max_message_size = m;
    }
    let mut m = Monitor::spawn(cfg);
    let error = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Disconnected { error, .. }) = m.next_event().await {
                return error;
            }
        }
    })
    .await
    .expect("no disconnect");
    // It tries again on its own: a second connection arrives.
    for _ in 0..2 {
        tokio::time::timeout(WAIT, accepts.recv())
            .await
            .unwrap()
            .unwrap();
    }
    error
}

#[tokio::test]
async fn garbage_from_the_server_is_a_framing_error_then_a_reconnect() {
    let e = first_error(b"HTTP/1.1 400 Bad Request\r\n".to_vec(), None).await;
    assert!(matches!(e, Error::Garbage { byte: b'H' }), "{e}");
}

#[tokio::test]
async fn truncated_json_is_reported_as_truncated() {
    let e = first_error(br#"{"id":1,"result":{"name":"_Ser"#.to_vec(), None).await;
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
}

#[tokio::test]
async fn balanced_but_invalid_json_is_a_json_error() {
    let e = first_error(br#"{"id":1,"result" {}}"#.to_vec(), None).await;
    assert!(matches!(e, Error::Json(_)), "{e}");
}

#[tokio::test]
async fn huge_message_is_refused_at_the_limit() {
    let mut huge = br#"{"id":1,"result":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 << 20));
    huge.extend(br#""}"#);
    let e = first_error(huge, Some(1 << 20)).await;
    assert!(
        matches!(e, Error::MessageTooLarge { limit } if limit == 1 << 20),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_method_from_the_server_is_an_error() {
    let e = first_error(
        br#"{"id":9,"method":"steal","params":["x"]}"#.to_vec(),
        None,
    )
    .await;
    assert!(matches!(&e, Error::UnknownMethod(m) if m == "steal"), "{e}");
}

#[tokio::test]
async fn reply_that_is_not_json_rpc_is_an_error() {
    let e = first_error(br#"{"id":1}"#.to_vec(), None).await;
    assert!(matches!(e, Error::NotJsonRpc(_)), "{e}");
}

#[tokio::test]
async fn server_echo_is_answered_while_nobody_reads_notifications() {
    let dir = TempDir::new("echo");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let remote: Remote = format!("unix:{}", path.display()).parse().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        // A large update the client will not consume, then the server's probe.
        let big = json!({"id": null, "method": "update3", "params": ["db", "x", {"T": "y".repeat(1 << 20)}]});
        s.write_all(big.to_string().as_bytes()).await.unwrap();
        s.write_all(br#"{"id":"echo","method":"echo","params":["p"]}"#)
            .await
            .unwrap();
        read_one(&mut s).await
    });
    let (_conn, _incoming) = Connection::open(&remote, None, &ConnectOptions::default())
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert_eq!(reply, json!({"id": "echo", "result": ["p"], "error": null}));
}

async fn read_one(s: &mut UnixStream) -> Value {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice(&buf) {
            return v;
        }
    }
}

#[tokio::test]
async fn silent_server_is_probed_and_dropped_after_two_intervals() {
    let dir = TempDir::new("silent");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let remote: Remote = format!("unix:{}", path.display()).parse().unwrap();
    let probe = Duration::from_millis(200);
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let probe = read_one(&mut s).await;
        // Keep the socket open and say nothing.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
        probe
    });
    let opts = ConnectOptions {
        probe_interval: Some(probe),
        ..ConnectOptions::default()
    };
    let started = tokio::time::Instant::now();
    let (_conn, mut incoming) = Connection::open(&remote, None, &opts).await.unwrap();
    let end = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        matches!(end, Err(Error::ProbeTimeout(d)) if d == probe * 2),
        "{end:?}"
    );
    assert!(
        elapsed >= probe * 2 && elapsed < probe * 3,
        "gave up after {elapsed:?}"
    );
    server.abort();
    let _ = server.await;
}

#[tokio::test]
async fn old_server_without_monitor_cond_gets_plain_monitor() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(ovn_ipsec_tests::ovsdb_server::SB_SCHEMA).unwrap(),
    )
    .unwrap();
    let dir = TempDir::new("old");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let remote = format!("unix:{}", path.display());
    let u1 = "11111111-1111-1111-1111-111111111111";
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        loop {
            let req = read_one(&mut s).await;
            let id = req["id"].clone();
            let reply = match (req["method"].as_str().unwrap(), req["params"][0].as_str()) {
                ("get_schema", Some("_Server")) => json!({"id": id, "error": "unknown database"}),
                ("get_schema", _) => json!({"id": id, "result": schema, "error": null}),
                ("monitor_cond_since", _) => json!({"id": id, "error": "unknown method"}),
                ("monitor_cond", _) => json!({"id": id, "error": {"error": "unknown method"}}),
                ("monitor", _) => {
                    let reply = json!({"id": id, "error": null, "result":
                        {"Chassis": {u1: {"new": {"name": "old1", "encaps": ["set", []]}}}}});
                    s.write_all(reply.to_string().as_bytes()).await.unwrap();
                    json!({"id": null, "method": "update", "params": ["db",
                        {"Chassis": {u1: {"old": {"name": "old1"}, "new": {"name": "old2", "encaps": ["set", []]}}}}]})
                }
                (m, _) => panic!("unexpected {m}"),
            };
            s.write_all(reply.to_string().as_bytes()).await.unwrap();
        }
    });
    let mut m = Monitor::spawn(config(&remote));
    tokio::time::timeout(WAIT, async {
        loop {
            let name = m
                .cache()
                .table("Chassis")
                .next()
                .and_then(|(_, r)| r.str("name").map(String::from));
            if name.as_deref() == Some("old2") {
                return;
            }
            match m.next_event().await.unwrap() {
                Event::Disconnected { error, .. } => panic!("{error}"),
                _ => continue,
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn stopped_server_is_noticed_within_two_probe_intervals_and_left() {
    let a = OvsdbServer::standalone();
    let b = OvsdbServer::standalone();
    a.sbctl(&["chassis-add", "on-a", "geneve", "192.0.2.1"]);
    b.sbctl(&["chassis-add", "on-b", "geneve", "192.0.2.2"]);
    let mut cfg = config(&format!("{},{}", a.tcp_remote(), b.tcp_remote()));
    let probe = Duration::from_millis(300);
    cfg.connect.probe_interval = Some(probe);
    let mut m = Monitor::spawn(cfg);
    let first = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Connected { remote, .. }) = m.next_event().await {
                return remote.to_string();
            }
        }
    })
    .await
    .unwrap();
    let (stopped, other) = if first == a.tcp_remote() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let other_name = if first == a.tcp_remote() {
        "on-b"
    } else {
        "on-a"
    };
    stopped.signal("STOP");
    let stop_at = tokio::time::Instant::now();

    let (error, took) = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Disconnected { error, .. }) = m.next_event().await {
                return (error, stop_at.elapsed());
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(error, Error::ProbeTimeout(_)), "{error}");
    assert!(
        took <= probe * 2 + Duration::from_millis(200),
        "noticed after {took:?}"
    );

    // It moves on (possibly after another timeout on the stopped one) and resyncs fully.
    let cs = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Connected { remote, .. }) = m.next_event().await {
                if remote.to_string() == other.tcp_remote() {
                    if let Some(Event::Changed(cs)) = m.next_event().await {
                        return cs;
                    }
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(cs.replaced);
    let names: Vec<_> = m
        .cache()
        .table("Chassis")
        .filter_map(|(_, r)| r.str("name").map(String::from))
        .collect();
    assert_eq!(names, vec![other_name.to_string()]);
    stopped.signal("CONT");
}

#[tokio::test]
async fn server_restarted_empty_is_resynced_with_every_row_deleted() {
    let mut sb = OvsdbServer::standalone();
    sb.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    let mut m = Monitor::spawn(config(&sb.tcp_remote()));
    tokio::time::timeout(WAIT, async {
        while m.cache().len("Chassis") != 1 {
            m.next_event().await.unwrap();
        }
    })
    .await
    .unwrap();
    sb.restart_empty();
    let cs = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Changed(cs)) = m.next_event().await {
                // Skip the first connection's snapshot, which may still be queued.
                if cs.replaced && cs.changes.iter().any(|c| c.kind == ChangeKind::Delete) {
                    return cs;
                }
            }
        }
    })
    .await
    .unwrap();
    let mut deleted: Vec<_> = cs
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Delete)
        .map(|c| c.table.as_str())
        .collect();
    deleted.sort();
    assert_eq!(deleted, vec!["Chassis", "Encap", "SB_Global"]);
    assert!(m.cache().is_empty());
}

/// `_Server`'s schema, as much of it as the client reads.
fn server_schema() -> Value {
    json!({"name": "_Server", "version": "1.2.0", "tables": {"Database": {"columns": {
        "name": {"type": "string"},
        "model": {"type": {"key": {"type": "string", "enum": ["set", ["standalone", "clustered", "relay"]]}}},
        "connected": {"type": "boolean"},
        "leader": {"type": "boolean"},
        "schema": {"type": {"key": "string", "min": 0, "max": 1}},
        "cid": {"type": {"key": "uuid", "min": 0, "max": 1}},
        "sid": {"type": {"key": "uuid", "min": 0, "max": 1}},
        "index": {"type": {"key": "integer", "min": 0, "max": 1}}}}}})
}

#[tokio::test]
async fn member_behind_what_was_already_seen_is_left_as_stale() {
    let sb_schema: Value = serde_json::from_str(
        &std::fs::read_to_string(ovn_ipsec_tests::ovsdb_server::SB_SCHEMA).unwrap(),
    )
    .unwrap();
    let dir = TempDir::new("stale");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let remote = format!("unix:{}", path.display());
    let cid = "33333333-3333-3333-3333-333333333333";
    tokio::spawn(async move {
        // The first connection reports RAFT index 10 and then closes; later ones report 5.
        for index in [10, 5, 5] {
            let (mut s, _) = listener.accept().await.unwrap();
            loop {
                let req = read_one(&mut s).await;
                let id = req["id"].clone();
                let db_row = json!({"name": "OVN_Southbound", "model": "clustered", "connected": true,
                    "cid": ["uuid", cid], "index": index});
                let result = match (req["method"].as_str().unwrap(), req["params"][0].as_str()) {
                    ("get_schema", Some("_Server")) => server_schema(),
                    ("get_schema", _) => sb_schema.clone(),
                    ("monitor_cond", _) => json!({"Database": {
                        "44444444-4444-4444-4444-444444444444": {"initial": db_row}}}),
                    ("monitor_cond_since", _) => {
                        json!([false, "55555555-5555-5555-5555-555555555555", {}])
                    }
                    (m, _) => panic!("unexpected {m}"),
                };
                let reply = json!({"id": id, "result": result, "error": null});
                s.write_all(reply.to_string().as_bytes()).await.unwrap();
                if req["method"] == "monitor_cond_since" {
                    break;
                }
            }
        }
    });
    let mut m = Monitor::spawn(config(&remote));
    let error = tokio::time::timeout(WAIT, async {
        loop {
            match m.next_event().await.unwrap() {
                Event::Disconnected {
                    error: Error::StaleMember { index, seen, .. },
                    ..
                } => return (index, seen),
                _ => continue,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(error, (5, 10));
}

#[tokio::test]
async fn server_echo_is_answered_while_a_large_snapshot_is_being_applied() {
    let sb_schema: Value = serde_json::from_str(
        &std::fs::read_to_string(ovn_ipsec_tests::ovsdb_server::SB_SCHEMA).unwrap(),
    )
    .unwrap();
    let mut rows = serde_json::Map::new();
    for i in 0..20_000u32 {
        rows.insert(
            format!("{i:08x}-0000-4000-8000-000000000000"),
            json!({"initial": {"name": format!("ch{i}")}}),
        );
    }
    let snapshot = json!({"Chassis": rows});
    let dir = TempDir::new("busy");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let remote = format!("unix:{}", path.display());
    let (echo_tx, echo_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        loop {
            let req = read_one(&mut s).await;
            let id = req["id"].clone();
            let result = match (req["method"].as_str().unwrap(), req["params"][0].as_str()) {
                ("get_schema", Some("_Server")) => {
                    let reply = json!({"id": id, "error": "unknown database"});
                    s.write_all(reply.to_string().as_bytes()).await.unwrap();
                    continue;
                }
                ("get_schema", _) => sb_schema.clone(),
                ("monitor_cond_since", _) => {
                    json!([false, "55555555-5555-5555-5555-555555555555", snapshot])
                }
                (m, _) => panic!("unexpected {m}"),
            };
            let last = req["method"] == "monitor_cond_since";
            let reply = json!({"id": id, "result": result, "error": null});
            s.write_all(reply.to_string().as_bytes()).await.unwrap();
            if last {
                break;
            }
        }
        // The client is now applying 20,000 rows; probe it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.write_all(br#"{"id":"echo","method":"echo","params":[]}"#)
            .await
            .unwrap();
        let reply = read_one(&mut s).await;
        let _ = echo_tx.send((reply, tokio::time::Instant::now()));
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut m = Monitor::spawn(config(&remote));
    let connected_at = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Connected { .. }) = m.next_event().await {
                return tokio::time::Instant::now();
            }
        }
    })
    .await
    .unwrap();
    let (reply, echoed_at) = echo_rx.await.unwrap();
    assert_eq!(reply["id"], json!("echo"));
    assert_eq!(m.cache().len("Chassis"), 20_000);
    // Answered before the snapshot was in the cache (or at worst together with it).
    assert!(
        echoed_at <= connected_at,
        "echo answered only after the apply finished"
    );
}
