//! Real-kernel checks of the controller's kernel layer, run as root inside the qemu guest
//! (`tests/phases/controller-kernel-guest.sh`), where the kernel has ESP. Two network
//! namespaces `a` and `b` on a veth pair, each with its own `KernelSync` and a Geneve pair
//! towards the other over IPv4 and IPv6; nftables counters on input in both namespaces show
//! what crossed the wire (ESP, or plaintext UDP to 6081 and 7000).
//!
//! Prints one line per check (`ok - name` / `not ok - name: reason`) and `N passed, M failed`;
//! exits non-zero on any failure.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controller::kernel::{
    needs_reconcile, AeadAlgorithm, ChildKind, ChildSa, Desired, KernelConfig, KernelSync,
    ProtectedPair, SaDirection,
};
use ovn_ipsec_tests::guest_checks::{CheckReport, CheckResult, SIDE_A, SIDE_B};
use ovn_ipsec_tests::netns::{self, counter_delta, EnteredNetns};
use xfrm::{Event, Key, Lifetimes};

const GENEVE: u16 = 6081;
const OTHER_PORT: u16 = 7000;
const PACKETS: u64 = 5;
/// Under emulation a datagram over the veth can take a while; wait this long before reading.
const SETTLE: Duration = Duration::from_millis(300);
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Gap between two packets of the steady stream during the rekey.
const STREAM_GAP: Duration = Duration::from_millis(4);
/// The foreign user's reqid (outside our range).
const FOREIGN_REQID: &str = "7";

/// Runs `ip ARGS…` and returns stdout, or what went wrong as text.
fn ip(args: &[&str]) -> Result<String, String> {
    netns::ip(args).map_err(|e| e.to_string())
}

/// Moves the calling thread into the namespace `name` until the guard drops.
fn enter(name: &str) -> Result<EnteredNetns, String> {
    EnteredNetns::enter(name).map_err(|e| e.to_string())
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Packet counters of the named nft counters in a namespace.
fn nft_counters(ns: &str) -> Result<HashMap<String, u64>, String> {
    netns::nft_counters(ns, "inet", "t").map_err(|e| e.to_string())
}

/// Counter increments between two snapshots.
struct Wire {
    before: HashMap<String, u64>,
    after: HashMap<String, u64>,
}

impl Wire {
    fn d(&self, name: &str) -> u64 {
        counter_delta(&self.before, &self.after, name)
    }

    fn show(&self) -> String {
        format!(
            "esp {} decrypted-6081 {} plain-6081 {} plain-7000 {}",
            self.d("esp_in"),
            self.d("dec_6081"),
            self.d("plain_6081"),
            self.d("plain_7000")
        )
    }
}

/// The sockets of one namespace: a sender and receivers on 6081 and 7000, per family.
struct Host {
    ns: &'static str,
    v4: IpAddr,
    v6: IpAddr,
    send4: UdpSocket,
    send6: UdpSocket,
    geneve4: UdpSocket,
    other4: UdpSocket,
    geneve6: UdpSocket,
    other6: UdpSocket,
}

impl Host {
    fn open(ns: &'static str, v4: IpAddr, v6: IpAddr) -> Result<Host, String> {
        let _in = enter(ns)?;
        let e = |e: std::io::Error| format!("socket in {ns}: {e}");
        let bind = |a: IpAddr, port: u16| -> Result<UdpSocket, String> {
            let s = UdpSocket::bind(SocketAddr::new(a, port)).map_err(e)?;
            s.set_nonblocking(true).map_err(e)?;
            Ok(s)
        };
        Ok(Host {
            ns,
            v4,
            v6,
            send4: bind(v4, 0)?,
            send6: bind(v6, 0)?,
            geneve4: bind(v4, GENEVE)?,
            other4: bind(v4, OTHER_PORT)?,
            geneve6: bind(v6, GENEVE)?,
            other6: bind(v6, OTHER_PORT)?,
        })
    }

    fn sender(&self, v6: bool) -> &UdpSocket {
        if v6 {
            &self.send6
        } else {
            &self.send4
        }
    }

    fn receiver(&self, v6: bool, port: u16) -> &UdpSocket {
        match (v6, port) {
            (false, GENEVE) => &self.geneve4,
            (true, GENEVE) => &self.geneve6,
            (false, _) => &self.other4,
            (true, _) => &self.other6,
        }
    }

    fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.v6
        } else {
            self.v4
        }
    }
}

fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Sends `n` datagrams from `from` to `to` on `port` and returns how many arrived intact and
/// what the receiver's nft counters saw.
fn exchange(
    from: &Host,
    to: &Host,
    v6: bool,
    port: u16,
    n: u64,
    tag: &str,
) -> Result<(u64, Wire), String> {
    let rx = to.receiver(v6, port);
    drain(rx);
    let before = nft_counters(to.ns)?;
    let dst = SocketAddr::new(to.addr(v6), port);
    for i in 0..n {
        // Sends into a blocking policy may fail or vanish silently: both are drops.
        let _ = from
            .sender(v6)
            .send_to(format!("{tag}-{i}").as_bytes(), dst);
    }
    std::thread::sleep(SETTLE);
    let got = drain(rx)
        .iter()
        .filter(|m| m.starts_with(tag.as_bytes()))
        .count() as u64;
    let after = nft_counters(to.ns)?;
    Ok((got, Wire { before, after }))
}

/// Both directions of one family on 6081 must be dropped with nothing on the wire.
fn expect_blocked(a: &Host, b: &Host, v6: bool, tag: &str) -> CheckResult {
    for (from, to) in [(a, b), (b, a)] {
        let (got, w) = exchange(from, to, v6, GENEVE, PACKETS, tag)?;
        if got != 0 || w.d("plain_6081") != 0 || w.d("esp_in") != 0 {
            return Err(format!(
                "{}→{}: {got} delivered; wire at {}: {}",
                from.ns,
                to.ns,
                to.ns,
                w.show()
            ));
        }
    }
    Ok(())
}

/// Both directions of one family on 6081 must arrive, as ESP only.
fn expect_esp(a: &Host, b: &Host, v6: bool, tag: &str) -> CheckResult {
    for (from, to) in [(a, b), (b, a)] {
        let (got, w) = exchange(from, to, v6, GENEVE, PACKETS, tag)?;
        if got != PACKETS || w.d("esp_in") != PACKETS || w.d("plain_6081") != 0 {
            return Err(format!(
                "{}→{}: {got}/{PACKETS} delivered; wire at {}: {}",
                from.ns,
                to.ns,
                to.ns,
                w.show()
            ));
        }
    }
    Ok(())
}

/// Both directions of one family on 7000 arrive in plaintext.
fn expect_other_port_plain(a: &Host, b: &Host, v6: bool, tag: &str) -> CheckResult {
    for (from, to) in [(a, b), (b, a)] {
        let (got, w) = exchange(from, to, v6, OTHER_PORT, PACKETS, tag)?;
        if got != PACKETS || w.d("plain_7000") != PACKETS {
            return Err(format!(
                "7000 {}→{}: {got}/{PACKETS} delivered; {}",
                from.ns,
                to.ns,
                w.show()
            ));
        }
    }
    Ok(())
}

fn setup() -> Result<(), String> {
    netns::create_veth_pair(&SIDE_A, &SIDE_B).map_err(|e| e.to_string())?;
    // Input sees a packet as it came off the wire (ESP, or plaintext before the policy check
    // drops it), and the decrypted packet again after ESP.
    let rules = "table inet t {
        counter esp_in {}
        counter dec_6081 {}
        counter plain_6081 {}
        counter plain_7000 {}
        chain input {
            type filter hook input priority 0; policy accept;
            meta l4proto esp counter name esp_in
            udp dport 6081 meta secpath exists counter name dec_6081
            udp dport 6081 meta secpath missing counter name plain_6081
            udp sport 6081 meta secpath missing counter name plain_6081
            udp dport 7000 meta secpath missing counter name plain_7000
        }
    }";
    let path = "/tmp/controller-kernel-guest.nft";
    std::fs::write(path, rules).map_err(|e| e.to_string())?;
    for ns in ["a", "b"] {
        ip(&["netns", "exec", ns, "nft", "-f", path])?;
    }
    // Another IPsec user in `a`: a state and a policy with a reqid outside our range.
    ip(&[
        "-n",
        "a",
        "xfrm",
        "state",
        "add",
        "src",
        "10.0.0.1",
        "dst",
        "10.0.0.99",
        "proto",
        "esp",
        "spi",
        "0x999",
        "reqid",
        FOREIGN_REQID,
        "mode",
        "transport",
        "aead",
        "rfc4106(gcm(aes))",
        "0x0102030405060708090a0b0c0d0e0f1011121314",
        "128",
    ])?;
    ip(&[
        "-n",
        "a",
        "xfrm",
        "policy",
        "add",
        "src",
        "10.0.0.1",
        "dst",
        "10.0.0.99",
        "proto",
        "udp",
        "dport",
        "9999",
        "dir",
        "out",
        "tmpl",
        "proto",
        "esp",
        "reqid",
        FOREIGN_REQID,
        "mode",
        "transport",
    ])?;
    Ok(())
}

fn foreign_objects_present() -> CheckResult {
    let states = ip(&["-n", "a", "xfrm", "state", "list"])?;
    let policies = ip(&["-n", "a", "xfrm", "policy", "list"])?;
    let tag = format!("reqid {FOREIGN_REQID} ");
    if !states.contains("spi 0x00000999") || !states.contains(&tag) {
        return Err(format!("foreign state gone:\n{states}"));
    }
    if !policies.contains("dport 9999") || !policies.contains(&tag) {
        return Err(format!("foreign policy gone:\n{policies}"));
    }
    Ok(())
}

/// The two namespaces' views of the same two Geneve tunnels (IPv4 and IPv6).
struct Pairs {
    a: Vec<ProtectedPair>,
    b: Vec<ProtectedPair>,
}

fn pairs() -> Pairs {
    // Indexes differ between the sides on purpose: reqids are local to each chassis.
    Pairs {
        a: vec![
            ProtectedPair::geneve(SIDE_A.addr(false), SIDE_B.addr(false), 0),
            ProtectedPair::geneve(SIDE_A.addr(true), SIDE_B.addr(true), 1),
        ],
        b: vec![
            ProtectedPair::geneve(SIDE_B.addr(false), SIDE_A.addr(false), 5),
            ProtectedPair::geneve(SIDE_B.addr(true), SIDE_A.addr(true), 6),
        ],
    }
}

fn key_for(spi: u32) -> Key {
    let b = spi.to_be_bytes();
    Key::new(
        &(0..36u8)
            .map(|i| i ^ b[(i % 4) as usize])
            .collect::<Vec<u8>>(),
    )
}

fn child_sa(pair: u32, child: ChildKind, dir: SaDirection, spi: u32) -> ChildSa {
    ChildSa {
        pair,
        child,
        dir,
        spi,
        algorithm: AeadAlgorithm::AesGcm256,
        key: key_for(spi),
        selector: None,
        encap: None,
        lifetimes: Lifetimes::default(),
        replay_window: 1024,
        esn: true,
    }
}

/// Generation `gen` of both CHILD_SAs of both tunnels, as `a` and as `b` install them. `a`'s
/// "out" child is `b`'s "in" child and the other way round; the SPIs match across.
fn generation(p: &Pairs, gen: u32) -> (Vec<ChildSa>, Vec<ChildSa>) {
    use ChildKind::{In, Out};
    use SaDirection::{Inbound, Outbound};
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (fam, (pa, pb)) in p.a.iter().zip(&p.b).enumerate() {
        let spi = |k: u32| 0x1000_0000 + (fam as u32) * 0x10_0000 + gen * 0x100 + k;
        // (a's child, a's direction, b's child, b's direction), one row per SPI.
        let rows = [
            (Out, Outbound, In, Inbound),
            (Out, Inbound, In, Outbound),
            (In, Inbound, Out, Outbound),
            (In, Outbound, Out, Inbound),
        ];
        for (k, (ca, da, cb, db)) in rows.into_iter().enumerate() {
            a.push(child_sa(pa.index, ca, da, spi(k as u32)));
            b.push(child_sa(pb.index, cb, db, spi(k as u32)));
        }
    }
    (a, b)
}

fn inbound_only(sas: &[ChildSa]) -> Vec<ChildSa> {
    sas.iter()
        .filter(|s| s.dir == SaDirection::Inbound)
        .cloned()
        .collect()
}

async fn reconcile(
    sync: &mut KernelSync,
    pairs: &[ProtectedPair],
    sas: Vec<ChildSa>,
) -> Result<controller::kernel::ReconcileReport, String> {
    let r = sync
        .reconcile(&Desired {
            pairs: pairs.to_vec(),
            child_sas: sas,
        })
        .await
        .map_err(|e| e.to_string())?;
    if !r.converged() {
        return Err(format!(
            "not converged: failures {:?}, problems {:?}",
            r.failures, r.problems
        ));
    }
    Ok(r)
}

async fn start(ns: &str, config: &KernelConfig) -> Result<KernelSync, String> {
    let _in = enter(ns)?;
    KernelSync::start(config.clone())
        .await
        .map_err(|e| e.to_string())
}

async fn wait_for(
    events: &mut xfrm::Events,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> CheckResult {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while Instant::now() < deadline {
        match tokio::time::timeout(EVENT_TIMEOUT, events.next()).await {
            Ok(Ok(e)) if want(&e) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("waiting for {what}: {e}")),
            Err(_) => break,
        }
    }
    Err(format!("no {what} within {EVENT_TIMEOUT:?}"))
}

/// A steady stream of numbered datagrams from one socket to another, on threads.
struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    sender: std::thread::JoinHandle<()>,
    receiver: std::thread::JoinHandle<Vec<u64>>,
}

impl Stream {
    fn start(tx: &UdpSocket, rx: &UdpSocket, to: SocketAddr) -> Result<Stream, String> {
        let tx = tx.try_clone().map_err(|e| e.to_string())?;
        let rx = rx.try_clone().map_err(|e| e.to_string())?;
        drain(&rx);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop_tx, sent_tx) = (stop.clone(), sent.clone());
        let sender = std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop_tx.load(Ordering::Relaxed) {
                let _ = tx.send_to(format!("stream-{i}").as_bytes(), to);
                i += 1;
                sent_tx.store(i, Ordering::Relaxed);
                std::thread::sleep(STREAM_GAP);
            }
        });
        let stop_rx = stop.clone();
        let receiver = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut quiet_since: Option<Instant> = None;
            loop {
                let got = drain(&rx);
                for m in &got {
                    if let Some(n) = std::str::from_utf8(m)
                        .ok()
                        .and_then(|s| s.strip_prefix("stream-"))
                        .and_then(|n| n.parse().ok())
                    {
                        seen.push(n);
                    }
                }
                if stop_rx.load(Ordering::Relaxed) {
                    // After the stop, keep reading until the veth has been quiet for a while.
                    if got.is_empty() {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > SETTLE * 2 {
                            return seen;
                        }
                    } else {
                        quiet_since = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Ok(Stream {
            stop,
            sent,
            sender,
            receiver,
        })
    }

    /// Stops the stream; returns (sent, distinct numbers received).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sender.join();
        let mut seen = self.receiver.join().unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        (self.sent.load(Ordering::Relaxed), seen.len() as u64)
    }
}

async fn checks(r: &mut CheckReport) -> Result<(), String> {
    let config = KernelConfig {
        reqids: 0x4f56_0000..=0x4f56_00ff,
        ..KernelConfig::default()
    };
    let p = pairs();
    let host_a = Host::open(SIDE_A.netns, SIDE_A.addr(false), SIDE_A.addr(true))?;
    let host_b = Host::open(SIDE_B.netns, SIDE_B.addr(false), SIDE_B.addr(true))?;
    let (a, b) = (&host_a, &host_b);
    let mut sync_a = start("a", &config).await?;
    let mut sync_b = start("b", &config).await?;
    let mut events_a = {
        let _in = enter("a")?;
        sync_a
            .kernel()
            .subscribe()
            .await
            .map_err(|e| e.to_string())?
    };
    let mut events_b = {
        let _in = enter("b")?;
        sync_b
            .kernel()
            .subscribe()
            .await
            .map_err(|e| e.to_string())?
    };

    // 1. Only `a` knows the pair: its in policies drop b's plaintext, its out policies drop
    //    its own Geneve and ask for an SA.
    let res = async {
        let rep = reconcile(&mut sync_a, &p.a, vec![]).await?;
        if rep.policies_added != 8 {
            return Err(format!("{} policies added, want 8", rep.policies_added));
        }
        let (got, w) = exchange(b, a, false, GENEVE, PACKETS, "plain-in")?;
        if got != 0 || w.d("plain_6081") != PACKETS {
            return Err(format!(
                "b→a plaintext: {got} delivered (want 0), wire at a: {}",
                w.show()
            ));
        }
        let (got, w) = exchange(a, b, false, GENEVE, PACKETS, "plain-out")?;
        if got != 0 || w.d("plain_6081") != 0 || w.d("esp_in") != 0 {
            return Err(format!("a→b: {got} delivered, wire at b: {}", w.show()));
        }
        let want = config.reqid(0, ChildKind::Out).map_err(|e| e.to_string())?;
        wait_for(
            &mut events_a,
            "ACQUIRE for the out child's reqid",
            |e| matches!(e, Event::Acquire { reqid: Some(r), .. } if *r == want),
        )
        .await?;
        expect_other_port_plain(a, b, false, "other-1")
    }
    .await;
    r.check("policies before any SA: plaintext 6081 from the peer is dropped on arrival, our own 6081 never leaves and raises an ACQUIRE, 7000 passes", res);

    // 2. Both sides have their policies: 6081 is dropped both ways, nothing on the wire.
    let res = async {
        reconcile(&mut sync_b, &p.b, vec![]).await?;
        expect_blocked(a, b, false, "blocked4")?;
        expect_blocked(a, b, true, "blocked6")?;
        expect_other_port_plain(a, b, false, "other-2")?;
        expect_other_port_plain(a, b, true, "other-3")
    }
    .await;
    r.check("both sides' policies, no SA: UDP to 6081 dropped in both directions with nothing on the wire (IPv4, IPv6); 7000 passes", res);

    // 3. CHILD_SAs installed on both sides.
    let (gen1_a, gen1_b) = generation(&p, 1);
    let res = async {
        let ra = reconcile(&mut sync_a, &p.a, gen1_a.clone()).await?;
        let rb = reconcile(&mut sync_b, &p.b, gen1_b.clone()).await?;
        if (ra.states_added, rb.states_added, ra.policies_added) != (8, 8, 0) {
            return Err(format!(
                "states added a {} b {}, policies added {}",
                ra.states_added, rb.states_added, ra.policies_added
            ));
        }
        expect_esp(a, b, false, "esp4")?;
        expect_esp(a, b, true, "esp6")?;
        expect_other_port_plain(a, b, false, "other-4")
    }
    .await;
    r.check("after installing both CHILD_SAs on both sides: 6081 flows both ways and is ESP on the wire (IPv4, IPv6); 7000 stays plaintext", res);

    // 4. `ip xfrm state flush` in `b` behind our back.
    let res = async {
        ip(&["-n", "b", "xfrm", "state", "flush"])?;
        let own = config.ownership();
        wait_for(
            &mut events_b,
            "a flush event that wakes the reconciler",
            |e| matches!(e, Event::StatesFlushed { by_us: false, .. }) && needs_reconcile(e, &own),
        )
        .await?;
        // a still has its states: a→b leaves as ESP and is dropped at b, which has none;
        // b→a is dropped by b's policy before it leaves.
        let (got, w) = exchange(a, b, false, GENEVE, PACKETS, "flushed-ab")?;
        if got != 0 || w.d("plain_6081") != 0 {
            return Err(format!("a→b while flushed: {got} delivered, {}", w.show()));
        }
        let (got, w) = exchange(b, a, false, GENEVE, PACKETS, "flushed-ba")?;
        if got != 0 || w.d("plain_6081") != 0 || w.d("esp_in") != 0 {
            return Err(format!("b→a while flushed: {got} delivered, {}", w.show()));
        }
        let rb = reconcile(&mut sync_b, &p.b, gen1_b.clone()).await?;
        if rb.states_added != 8 {
            return Err(format!("repair added {} states, want 8", rb.states_added));
        }
        let (got, w) = exchange(a, b, false, GENEVE, PACKETS, "repaired-ab")?;
        if got != PACKETS || w.d("plain_6081") != 0 {
            return Err(format!("a→b after repair: {got}/{PACKETS}, {}", w.show()));
        }
        // b's re-added outbound state counts from 1 again: a already saw those sequence
        // numbers, so the first PACKETS are replays; the ones after arrive.
        let (got, w) = exchange(b, a, false, GENEVE, 2 * PACKETS, "repaired-ba")?;
        if got < PACKETS || w.d("plain_6081") != 0 {
            return Err(format!("b→a after repair: {got}/{}, {}", 2 * PACKETS, w.show()));
        }
        println!(
            "# after the flush repair, b→a delivered {got} of {} (the first sequence numbers are replays at a)",
            2 * PACKETS
        );
        Ok(())
    }
    .await;
    r.check("`ip xfrm state flush` behind our back: nothing leaks in plaintext, the next reconcile re-adds the states and 6081 flows again", res);

    // 5. Rekey under a steady stream both ways: new inbound SAs first, then outbound, then
    //    the old ones removed.
    let (gen2_a, gen2_b) = generation(&p, 2);
    let res = async {
        let ab = Stream::start(&a.send4, &b.geneve4, SocketAddr::new(b.v4, GENEVE))?;
        let ba = Stream::start(&b.send4, &a.geneve4, SocketAddr::new(a.v4, GENEVE))?;
        let before = (nft_counters("a")?, nft_counters("b")?);
        std::thread::sleep(SETTLE);
        let steps = [
            (
                [gen1_a.clone(), inbound_only(&gen2_a)].concat(),
                [gen1_b.clone(), inbound_only(&gen2_b)].concat(),
            ),
            (
                [gen1_a.clone(), gen2_a.clone()].concat(),
                [gen1_b.clone(), gen2_b.clone()].concat(),
            ),
            (gen2_a.clone(), gen2_b.clone()),
        ];
        let mut results = Vec::new();
        for (sa_a, sa_b) in steps {
            results.push(reconcile(&mut sync_a, &p.a, sa_a).await);
            results.push(reconcile(&mut sync_b, &p.b, sa_b).await);
            std::thread::sleep(SETTLE);
        }
        let (sent_ab, got_ab) = ab.finish();
        let (sent_ba, got_ba) = ba.finish();
        for res in results {
            res?;
        }
        let after = (nft_counters("a")?, nft_counters("b")?);
        let plain = |b: &HashMap<String, u64>, a: &HashMap<String, u64>| {
            let get = |m: &HashMap<String, u64>| m.get("plain_6081").copied().unwrap_or(0);
            get(a).saturating_sub(get(b))
        };
        let leaked = plain(&before.0, &after.0) + plain(&before.1, &after.1);
        println!(
            "# rekey stream: a→b {got_ab}/{sent_ab}, b→a {got_ba}/{sent_ba}, plaintext {leaked}"
        );
        if got_ab != sent_ab || got_ba != sent_ba || sent_ab < 20 || leaked != 0 {
            return Err(format!(
                "a→b {got_ab}/{sent_ab}, b→a {got_ba}/{sent_ba} received, {leaked} plaintext"
            ));
        }
        let spis: Vec<u32> = sync_a
            .kernel()
            .dump_states()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.id.spi)
            .collect();
        let mut want: Vec<u32> = gen2_a.iter().map(|s| s.spi).collect();
        let mut have = spis.clone();
        want.sort_unstable();
        have.sort_unstable();
        if have != want {
            return Err(format!(
                "a's states after the rekey: {have:x?}, want {want:x?}"
            ));
        }
        expect_esp(a, b, true, "rekeyed6")
    }
    .await;
    r.check("rekey (new SPIs added, inbound first, then old removed) under a steady stream both ways: no packet lost, none in plaintext, only the new states remain", res);

    // 6. Restart of `a`'s controller: its states are adopted and keep forwarding with no
    //    CHILD_SA known; new SAs then replace them.
    let (gen3_a, gen3_b) = generation(&p, 3);
    drop(sync_a);
    let mut sync_a = start("a", &config).await?;
    let res = async {
        if sync_a.adopted().len() != 8 {
            return Err(format!("{} states adopted, want 8", sync_a.adopted().len()));
        }
        let rep = reconcile(&mut sync_a, &p.a, vec![]).await?;
        if rep.applied() != 0 || rep.kept_adopted != 8 {
            return Err(format!(
                "restart reconcile applied {} changes, kept {} adopted",
                rep.applied(),
                rep.kept_adopted
            ));
        }
        expect_esp(a, b, false, "adopted4")?;
        expect_esp(a, b, true, "adopted6")?;

        reconcile(
            &mut sync_b,
            &p.b,
            [gen2_b.clone(), inbound_only(&gen3_b)].concat(),
        )
        .await?;
        let rep = reconcile(&mut sync_a, &p.a, gen3_a.clone()).await?;
        reconcile(&mut sync_b, &p.b, gen3_b.clone()).await?;
        if (rep.states_added, rep.states_deleted, rep.kept_adopted) != (8, 8, 0) {
            return Err(format!(
                "replacing adopted states: added {} deleted {} kept {}",
                rep.states_added, rep.states_deleted, rep.kept_adopted
            ));
        }
        if !sync_a.adopted().is_empty() {
            return Err(format!("{} still adopted", sync_a.adopted().len()));
        }
        expect_esp(a, b, false, "renewed4")?;
        expect_esp(a, b, true, "renewed6")
    }
    .await;
    r.check("restart: the new controller adopts the installed states, they keep forwarding with no CHILD_SA desired, and new SAs replace them", res);

    // 7. Removing the IPv6 pair from `a` removes exactly its objects.
    let res = async {
        let v4_only: Vec<ChildSa> = gen3_a.iter().filter(|s| s.pair == 0).cloned().collect();
        let rep = reconcile(&mut sync_a, &p.a[..1], v4_only).await?;
        if (rep.policies_deleted, rep.states_deleted, rep.applied()) != (4, 4, 8) {
            return Err(format!(
                "removal deleted {} policies, {} states, {} changes",
                rep.policies_deleted,
                rep.states_deleted,
                rep.applied()
            ));
        }
        let policies = sync_a
            .kernel()
            .dump_policies()
            .await
            .map_err(|e| e.to_string())?;
        let states = sync_a
            .kernel()
            .dump_states()
            .await
            .map_err(|e| e.to_string())?;
        if policies.len() != 4
            || states.len() != 4
            || policies
                .iter()
                .any(|p| p.policy.id.selector.src.addr.is_ipv6())
            || states.iter().any(|s| s.id.src.is_ipv6())
        {
            return Err(format!(
                "left: {} policies, {} states (want 4 + 4 IPv4)",
                policies.len(),
                states.len()
            ));
        }
        foreign_objects_present()?;
        expect_esp(a, b, false, "after-removal4")
    }
    .await;
    r.check("removing a pair removes exactly its 4 policies and 4 states; the other pair keeps flowing; foreign state and policy untouched", res);

    // 8. IPsec switched off: everything of ours goes, nothing foreign.
    let res = async {
        let ra = sync_a.remove_all().await.map_err(|e| e.to_string())?;
        let rb = sync_b.remove_all().await.map_err(|e| e.to_string())?;
        if (ra.policies, ra.states, rb.policies, rb.states) != (4, 4, 8, 8) {
            return Err(format!("removed a {ra:?}, b {rb:?}"));
        }
        foreign_objects_present()
    }
    .await;
    r.check(
        "remove_all removes all our states and policies on both sides and leaves the foreign ones",
        res,
    );

    // 9. Scale: 1000 pairs with both CHILD_SAs in a namespace of their own.
    let res = scale(1000).await;
    r.check("1000 pairs with 4000 states and 4000 policies converge in one reconcile; the next changes nothing; removal of all is one reconcile", res);
    Ok(())
}

/// Reconciles `n` pairs with all four SAs each in namespace `c`; prints the times (for the
/// report, not asserted).
async fn scale(n: u32) -> CheckResult {
    ip(&["netns", "add", "c"])?;
    let config = KernelConfig::default();
    let mut sync = start("c", &config).await?;
    let pairs: Vec<ProtectedPair> = (0..n)
        .map(|i| {
            let remote = std::net::Ipv4Addr::from(0x0a02_0000 + i);
            ProtectedPair::geneve(addr("10.1.0.1"), IpAddr::V4(remote), i)
        })
        .collect();
    let mut sas = Vec::new();
    for p in &pairs {
        for (k, child) in ChildKind::BOTH.into_iter().enumerate() {
            for (j, dir) in SaDirection::BOTH.into_iter().enumerate() {
                let spi = 0x2000_0000 + p.index * 4 + (k * 2 + j) as u32;
                sas.push(child_sa(p.index, child, dir, spi));
            }
        }
    }
    let t = Instant::now();
    let first = reconcile(&mut sync, &pairs, sas.clone()).await?;
    let t_first = t.elapsed();
    let t = Instant::now();
    let again = reconcile(&mut sync, &pairs, sas).await?;
    let t_again = t.elapsed();
    let t = Instant::now();
    let gone = reconcile(&mut sync, &[], vec![]).await?;
    let t_gone = t.elapsed();
    println!(
        "# guest, {n} pairs: first reconcile ({} states + {} policies) {t_first:?}, no-op {t_again:?}, removing all {t_gone:?}",
        first.states_added, first.policies_added
    );
    let want = (n as usize) * 4;
    if (first.states_added, first.policies_added, again.applied()) != (want, want, 0)
        || (gone.states_deleted, gone.policies_deleted) != (want, want)
    {
        return Err(format!(
            "first {}+{}, no-op {}, removal {}+{}",
            first.states_added,
            first.policies_added,
            again.applied(),
            gone.states_deleted,
            gone.policies_deleted
        ));
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut r = CheckReport::default();
    match setup() {
        Ok(()) => {
            if let Err(e) = checks(&mut r).await {
                r.check("guest check harness", Err(e));
            }
        }
        Err(e) => r.check("two namespaces on a veth pair with nft counters", Err(e)),
    }
    let _ = ip(&["netns", "del", "a"]);
    let _ = ip(&["netns", "del", "b"]);
    let _ = ip(&["netns", "del", "c"]);
    r.finish();
}
