//! OVSDB client costs: framing + parsing + applying a 10,000-chassis Southbound initial dump,
//! applying one `update3` on top of it, and the Southbound view following that update.

use bytes::BytesMut;
use controller::southbound::View;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ovsdb::codec::JsonCodec;
use ovsdb::{DatabaseSchema, TableCache};
use serde_json::{json, Map, Value};
use tokio_util::codec::Decoder;

const CHASSIS: usize = 10_000;

fn schema() -> DatabaseSchema {
    let map = json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"});
    let set = json!({"key": "string", "min": 0, "max": "unlimited"});
    DatabaseSchema::from_json(&json!({"name": "OVN_Southbound", "tables": {
        "Chassis": {"columns": {
            "name": {"type": "string"}, "hostname": {"type": "string"},
            "encaps": {"type": {"key": {"type": "uuid", "refTable": "Encap"}, "min": 1, "max": "unlimited"}},
            "other_config": {"type": map}, "external_ids": {"type": map}, "transport_zones": {"type": set}}},
        "Encap": {"columns": {
            "type": {"type": "string"}, "ip": {"type": "string"},
            "options": {"type": map}, "chassis_name": {"type": "string"}}}
    }}))
    .unwrap()
}

fn tables() -> Vec<(String, Vec<String>)> {
    let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
    vec![
        (
            "Chassis".into(),
            cols(&[
                "name",
                "hostname",
                "encaps",
                "other_config",
                "external_ids",
                "transport_zones",
            ]),
        ),
        (
            "Encap".into(),
            cols(&["type", "ip", "options", "chassis_name"]),
        ),
    ]
}

fn uuid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// The `monitor_cond_since` reply a server sends for 10,000 chassis with 2 encaps each.
fn dump() -> Vec<u8> {
    let mut chassis = Map::new();
    let mut encaps = Map::new();
    for i in 0..CHASSIS {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        let name = format!("chassis-{i:05}");
        for (k, ty) in ["geneve", "vxlan"].iter().enumerate() {
            encaps.insert(
                uuid(k as u32 + 1, i),
                json!({"initial": {"type": ty, "ip": ip,
                "chassis_name": name, "options": ["map", [["csum", "true"]]]}}),
            );
        }
        chassis.insert(
            uuid(0, i),
            json!({"initial": {"name": name, "hostname": format!("host-{i}"),
            "encaps": ["set", [["uuid", uuid(1, i)], ["uuid", uuid(2, i)]]],
            "other_config": ["map", [["ovn-cms-options", "enable-chassis-as-gw"]]]}}),
        );
    }
    let reply = json!({"id": 3, "error": null, "result": [false, uuid(9, 0),
        {"Chassis": chassis, "Encap": encaps}]});
    reply.to_string().into_bytes()
}

fn decode(bytes: &[u8]) -> Value {
    let mut buf = BytesMut::from(bytes);
    JsonCodec::default().decode(&mut buf).unwrap().unwrap()
}

fn bench(c: &mut Criterion) {
    let bytes = dump();
    let schema = schema();
    c.bench_function("ovsdb_decode_and_apply_10k_chassis_dump", |b| {
        b.iter(|| {
            let reply = decode(&bytes);
            let mut cache = TableCache::new(&tables());
            cache.set_schema(schema.clone());
            cache.replace_with_updates2(&reply["result"][2]).unwrap();
            cache
        })
    });

    let mut cache = TableCache::new(&tables());
    cache.set_schema(schema.clone());
    cache
        .replace_with_updates2(&decode(&bytes)["result"][2])
        .unwrap();
    let mut flip = false;
    c.bench_function("ovsdb_apply_one_update3_on_10k_chassis", |b| {
        b.iter_batched(
            || {
                flip = !flip;
                let ip = if flip { "192.0.2.7" } else { "10.0.0.7" };
                let msg = json!({"id": null, "method": "update3", "params": ["db", uuid(9, 1),
                    {"Encap": {uuid(1, 7): {"modify": {"ip": ip}}}}]});
                msg.to_string().into_bytes()
            },
            |msg| {
                let v = decode(&msg);
                cache.apply_updates2(&v["params"][2]).unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let mut view = View::default();
    let all = cache
        .replace_with_updates2(&decode(&bytes)["result"][2])
        .unwrap();
    view.apply(&cache, &all);
    // Outside the closure: criterion calls it more than once.
    let mut n: u32 = 0;
    c.bench_function(
        "southbound_view_follows_one_encap_change_at_10k_chassis",
        |b| {
            b.iter(|| {
                // A new address every time, so that each update really changes the chassis.
                n = n.wrapping_add(1);
                let ip = format!("10.255.{}.{}", (n >> 8) & 0xff, n & 0xff);
                let update = json!({"Encap": {uuid(1, 7): {"modify": {"ip": ip}}}});
                let cs = cache.apply_updates2(&update).unwrap();
                let diff = view.apply(&cache, &cs);
                assert_eq!(diff.changed.len(), 1);
                diff
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
