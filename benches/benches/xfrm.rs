//! Kernel programming rate on the host: policies programmed per second by the `xfrm` crate
//! (batched, and one request at a time) against `ip -batch` doing the same work in the same
//! run, in a fresh network namespace. Each iteration adds N policies (one per peer, UDP dport
//! 6081, ESP transport template) and deletes them again.
//!
//! Needs root (unshare + CAP_NET_ADMIN) and iproute2; without root it says so and does nothing.
//! The host kernel has no ESP, so states are measured in the guest (`guest_checks bench`).

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xfrm::{Change, Direction, Kernel, Ownership, Policy, PolicyId, Selector, Template};

/// Policies per iteration: a mesh of a thousand peers.
const PEERS: u32 = 1000;
const BATCH_FILE: &str = "/tmp/ovn-ipsec-bench-xfrm.batch";

fn peer(i: u32) -> IpAddr {
    IpAddr::from([
        10,
        100 + (i / 65536) as u8,
        (i / 256 % 256) as u8,
        (i % 256) as u8,
    ])
}

fn policies() -> Vec<Policy> {
    let local: IpAddr = "10.0.0.1".parse().unwrap();
    (0..PEERS)
        .map(|i| {
            let sel = Selector::udp(local, peer(i), None, Some(6081));
            Policy::allow(
                PolicyId::new(sel, Direction::Out),
                100,
                vec![Template::transport(1 + i)],
            )
        })
        .collect()
}

fn batch_file() -> String {
    let mut s = String::new();
    for i in 0..PEERS {
        s.push_str(&format!(
            "xfrm policy add src 10.0.0.1 dst {} proto udp dport 6081 dir out priority 100 tmpl proto esp reqid {} mode transport\n",
            peer(i),
            1 + i
        ));
    }
    for i in 0..PEERS {
        s.push_str(&format!(
            "xfrm policy delete src 10.0.0.1 dst {} proto udp dport 6081 dir out\n",
            peer(i)
        ));
    }
    s
}

fn ip_batch() {
    let st = Command::new("ip")
        .args(["-batch", BATCH_FILE])
        .status()
        .expect("ip");
    assert!(st.success(), "ip -batch failed");
}

async fn crate_batched(k: &Kernel, adds: &[Change], deletes: &[Change]) {
    for r in k.apply(adds).await.unwrap() {
        r.unwrap();
    }
    for r in k.apply(deletes).await.unwrap() {
        r.unwrap();
    }
}

async fn crate_one_by_one(k: &Kernel, ps: &[Policy]) {
    for p in ps {
        k.add_policy(p).await.unwrap();
    }
    for p in ps {
        k.delete_policy(&p.id).await.unwrap();
    }
}

fn bench_policies(c: &mut Criterion) {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("xfrm bench: skipped (needs root for a fresh network namespace)");
        return;
    }
    // SAFETY: moves this (the benchmark's) thread into a new, empty network namespace; `ip`
    // children inherit it.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "unshare: {}",
        std::io::Error::last_os_error()
    );
    std::fs::write(BATCH_FILE, batch_file()).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let k = rt
        .block_on(Kernel::connect(Ownership::reqids(1..=PEERS)))
        .unwrap();
    let ps = policies();
    let adds: Vec<Change> = ps.iter().cloned().map(Change::AddPolicy).collect();
    let deletes: Vec<Change> = ps.iter().map(|p| Change::DeletePolicy(p.id)).collect();

    let mut g = c.benchmark_group("xfrm_policies_add_delete_1000");
    g.throughput(Throughput::Elements(u64::from(2 * PEERS)));
    g.sample_size(10);
    g.bench_function("xfrm_crate_batched", |b| {
        b.iter(|| rt.block_on(crate_batched(&k, &adds, &deletes)))
    });
    g.bench_function("xfrm_crate_one_by_one", |b| {
        b.iter(|| rt.block_on(crate_one_by_one(&k, &ps)))
    });
    g.bench_function("ip_batch", |b| b.iter(ip_batch));
    g.finish();

    // A side-by-side summary of the same work, best of five each.
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::MAX)
    };
    let ours = best(&mut || rt.block_on(crate_batched(&k, &adds, &deletes)));
    let theirs = best(&mut ip_batch);
    let rate = |d: Duration| f64::from(2 * PEERS) / d.as_secs_f64();
    println!(
        "xfrm host summary: crate batched {:.0} policies/s, ip -batch {:.0} policies/s, ratio {:.1}x",
        rate(ours),
        rate(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    let _ = std::fs::remove_file(BATCH_FILE);
}

criterion_group!(benches, bench_policies);
criterion_main!(benches);
