//! Scale: a Southbound of 10,000 chassis with 2 encaps each arrives as one initial dump without
//! a timeout, and a single change on top of it is applied incrementally. Prints the time and
//! the memory it took (speed targets live in the criterion benchmarks, not here).

use std::time::{Duration, Instant};

use controller::southbound::{Southbound, SouthboundConfig, SouthboundEvent};
use ovn_ipsec_tests::ovsdb_server::OvsdbServer;
use ovsdb::{parse_remotes, ConnectOptions, Connection, Remote};
use serde_json::{json, Value};

const CHASSIS: usize = 10_000;
const PER_TRANSACTION: usize = 2_000;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn chassis_ops(range: std::ops::Range<usize>) -> Vec<Value> {
    let mut ops = Vec::new();
    for i in range {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        let name = format!("chassis-{i:05}");
        for (k, ty) in ["geneve", "vxlan"].iter().enumerate() {
            ops.push(
                json!({"op": "insert", "table": "Encap", "uuid-name": format!("e{i}_{k}"),
                "row": {"type": ty, "ip": ip, "chassis_name": name,
                        "options": ["map", [["csum", "true"]]]}}),
            );
        }
        ops.push(json!({"op": "insert", "table": "Chassis", "row": {
            "name": name, "hostname": format!("host-{i}"),
            "encaps": ["set", [["named-uuid", format!("e{i}_0")], ["named-uuid", format!("e{i}_1")]]],
            "other_config": ["map", [["ovn-cms-options", "enable-chassis-as-gw"]]]}}));
    }
    ops
}

#[tokio::test]
async fn ten_thousand_chassis_arrive_in_one_dump_and_updates_stay_incremental() {
    let server = OvsdbServer::standalone();
    let remote: Remote = server.unix_remote().parse().unwrap();
    let (conn, _incoming) = Connection::open(&remote, None, &ConnectOptions::default())
        .await
        .unwrap();
    let fill = Instant::now();
    for start in (0..CHASSIS).step_by(PER_TRANSACTION) {
        conn.transact(
            "OVN_Southbound",
            chassis_ops(start..start + PER_TRANSACTION),
        )
        .await
        .unwrap();
    }
    eprintln!("filled {CHASSIS} chassis in {:?}", fill.elapsed());

    // The server's share: compose, send and parse the same snapshot as a bare JSON value.
    let raw = Instant::now();
    let req = json!({"Chassis": [{"columns": ["name", "hostname", "encaps", "other_config",
        "external_ids", "transport_zones"]}], "Encap": [{"columns": ["type", "ip", "options",
        "chassis_name"]}]});
    let reply = conn
        .call("monitor_cond", json!(["OVN_Southbound", "raw", req]))
        .await
        .unwrap();
    eprintln!(
        "raw monitor_cond reply ({} chassis) received and parsed in {:?}",
        reply["Chassis"].as_object().map_or(0, |o| o.len()),
        raw.elapsed()
    );
    drop(reply);
    conn.monitor_cancel(&json!("raw")).await.unwrap();

    let rss_before = rss_kib("VmRSS:");
    let started = Instant::now();
    let mut cfg = SouthboundConfig::new(parse_remotes(&server.unix_remote()).unwrap());
    cfg.seed = Some(1);
    let mut sb = Southbound::spawn(&cfg);
    let snap = loop {
        match tokio::time::timeout(Duration::from_secs(120), sb.next())
            .await
            .unwrap()
            .unwrap()
        {
            SouthboundEvent::Changed { snapshot, diff } => {
                assert_eq!(diff.added.len(), CHASSIS);
                break snapshot;
            }
            SouthboundEvent::Disconnected { error, .. } => panic!("lost the dump: {error}"),
            SouthboundEvent::Connected { .. } => {
                eprintln!("in the table cache after {:?}", started.elapsed());
            }
        }
    };
    let dump = started.elapsed();
    let rss_after = rss_kib("VmRSS:");
    assert_eq!(snap.chassis.len(), CHASSIS);
    assert!(snap.chassis.values().all(|c| c.encaps.len() == 2));
    eprintln!(
        "initial dump of {CHASSIS} chassis / {} encaps: {dump:?}, RSS {} -> {} MiB (peak {} MiB)",
        2 * CHASSIS,
        rss_before / 1024,
        rss_after / 1024,
        rss_kib("VmHWM:") / 1024
    );

    // One chassis' encap moves; only that chassis is reported.
    let uuid = server.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Encap",
        "type=geneve",
        "ip=10.0.0.7",
    ]);
    let update = Instant::now();
    server.sbctl(&["set", "Encap", uuid.trim(), "ip=192.0.2.7"]);
    let event = tokio::time::timeout(Duration::from_secs(30), sb.next())
        .await
        .unwrap()
        .unwrap();
    let SouthboundEvent::Changed { snapshot, diff } = event else {
        panic!("{event:?}");
    };
    assert_eq!(diff.changed.len(), 1);
    assert!(diff.changed.contains("chassis-00007"));
    assert_eq!(snapshot.chassis.len(), CHASSIS);
    eprintln!(
        "one encap change seen {:?} after ovn-sbctl started",
        update.elapsed()
    );
}
