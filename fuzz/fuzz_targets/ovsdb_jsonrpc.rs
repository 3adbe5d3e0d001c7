//! Feeds arbitrary bytes to the OVSDB client's decoding: the framing of back-to-back JSON
//! objects (split at a fuzzer-chosen point), JSON-RPC classification, and applying whatever
//! `update2`/`update`/snapshot payload results to a Southbound-shaped table cache. Nothing may
//! panic; every failure must be an `Err`.
#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ovsdb::codec::JsonCodec;
use ovsdb::jsonrpc::Message;
use ovsdb::{DatabaseSchema, TableCache};
use serde_json::{json, Value};
use tokio_util::codec::Decoder;

/// Small enough that the fuzzer also reaches the size limit.
const MAX_MESSAGE: usize = 64 * 1024;

/// The cache every run starts from (building the schema is slower than one run).
fn cache() -> TableCache {
    static BASE: OnceLock<TableCache> = OnceLock::new();
    BASE.get_or_init(build_cache).clone()
}

fn build_cache() -> TableCache {
    let map = json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"});
    let schema = DatabaseSchema::from_json(&json!({"name": "OVN_Southbound", "tables": {
        "SB_Global": {"columns": {"ipsec": {"type": "boolean"}, "options": {"type": map},
            "nb_cfg": {"type": "integer"}}},
        "Chassis": {"columns": {"name": {"type": "string"},
            "encaps": {"type": {"key": {"type": "uuid", "refTable": "Encap"}, "min": 1, "max": "unlimited"}},
            "other_config": {"type": map},
            "transport_zones": {"type": {"key": "string", "min": 0, "max": "unlimited"}}}},
        "Encap": {"columns": {"type": {"type": {"key": {"type": "string",
            "enum": ["set", ["geneve", "stt", "vxlan"]]}}}, "ip": {"type": "string"},
            "options": {"type": map}, "ssl": {"type": {"key": {"type": "real"}, "min": 0, "max": 1}}}}
    }}))
    .unwrap();
    let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut cache = TableCache::new(&[
        ("SB_Global".into(), cols(&["ipsec", "options", "nb_cfg"])),
        ("Chassis".into(), cols(&["name", "encaps", "other_config", "transport_zones"])),
        ("Encap".into(), cols(&["type", "ip", "options", "ssl"])),
    ]);
    cache.set_schema(schema);
    cache
}

fn apply(cache: &mut TableCache, method: &str, params: &Value) {
    let Some(params) = params.as_array() else { return };
    for p in params {
        let _ = match method {
            "update" => cache.apply_updates1(p),
            _ => cache.apply_updates2(p),
        };
        let _ = cache.replace_with_updates2(p);
        let _ = cache.replace_with_updates1(p);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let split = usize::from(split).min(data.len());
    let mut codec = JsonCodec::new(MAX_MESSAGE);
    let mut cache = cache();
    let mut buf = BytesMut::new();
    for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(value)) => match Message::from_value(value) {
                    Ok(Message::Notification { method, params }) => apply(&mut cache, &method, &params),
                    Ok(Message::Reply { result: Ok(v), .. }) => apply(&mut cache, "update2", &json!([v])),
                    Ok(m) => {
                        let _ = m.to_value();
                    }
                    Err(_) => {}
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
