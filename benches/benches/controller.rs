//! Controller planning costs for a large mesh: the desired peers of one chassis among 10,000
//! (two geneve encaps each, IPv4 and IPv6, some in transport zones and exempt groups), and
//! the kernel layer's plan of all their policies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use controller::desired::desired_peers;
use controller::kernel::{plan, Actual, Desired, KernelConfig};
use controller::southbound::{Chassis, Encap, EncapType, Snapshot};
use criterion::{criterion_group, criterion_main, Criterion};

const CHASSIS: usize = 10_000;

fn encap(name: &str, ip: String) -> Encap {
    Encap {
        encap_type: EncapType::Geneve,
        ip,
        options: BTreeMap::new(),
        chassis_name: name.to_owned(),
    }
}

fn mesh() -> Snapshot {
    let mut chassis = BTreeMap::new();
    for i in 0..CHASSIS {
        let name = format!("chassis-{i:05}");
        let (hi, lo) = (i / 250, i % 250 + 1);
        let mut other_config = BTreeMap::new();
        if i % 10 == 0 {
            other_config.insert(
                "ovn-cms-options".to_string(),
                format!("ipsec-exempt-group=rack{}", i % 30),
            );
        }
        let transport_zones: BTreeSet<String> = if i % 7 == 0 {
            ["tz1".to_string()].into()
        } else {
            BTreeSet::new()
        };
        let c = Chassis {
            encaps: vec![
                encap(&name, format!("10.{hi}.0.{lo}")),
                encap(&name, format!("fd00::{i:x}")),
            ],
            hostname: name.clone(),
            other_config,
            external_ids: BTreeMap::new(),
            transport_zones,
            name: name.clone(),
        };
        chassis.insert(name, Arc::new(c));
    }
    Snapshot {
        ipsec: true,
        options: BTreeMap::new(),
        chassis,
    }
}

fn bench(c: &mut Criterion) {
    let s = mesh();
    let d = desired_peers(&s, "chassis-00001");
    assert!(d.peers.len() > CHASSIS);
    c.bench_function("desired_peers of one chassis among 10k", |b| {
        b.iter(|| desired_peers(&s, "chassis-00001"))
    });
    let pairs = Desired {
        pairs: d
            .peers
            .values()
            .zip(0u32..)
            .map(|(p, i)| p.protected_pair(i))
            .collect(),
        child_sas: Vec::new(),
    };
    let config = KernelConfig::default();
    c.bench_function("kernel plan of ~17k desired peers from empty", |b| {
        b.iter(|| plan(&config, &pairs, &Actual::default(), &Default::default()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
