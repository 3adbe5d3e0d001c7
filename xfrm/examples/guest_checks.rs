//! Real-kernel checks of the `xfrm` crate, run as root inside the qemu guest
//! (`tests/phases/xfrm-guest.sh`), where the kernel has ESP. Two network namespaces `a` and `b`
//! on a veth pair; the crate programs states and policies in both and the checks prove, with
//! nftables counters in `b`, that UDP to 6081 is ESP on the wire and decrypted on arrival while
//! other ports stay plaintext.
//!
//! Prints one line per check (`ok - name` / `not ok - name: reason`) and `N passed, M failed`;
//! exits non-zero on any failure. `guest_checks bench N` instead times programming N states and
//! N policies against `ip -batch` doing the same work.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ovn_ipsec_tests::guest_checks::{CheckReport, CheckResult, SIDE_A, SIDE_B};
use ovn_ipsec_tests::netns::{self, counter_delta, send_and_receive, EnteredNetns};
use xfrm::{
    Algorithm, Change, Direction, Encap, Event, Kernel, Limits, Mode, Ownership, Policy, PolicyId,
    Selector, State, StateId, Template, XfrmStat,
};

const REQIDS: std::ops::RangeInclusive<u32> = 100..=199;
const GENEVE: u16 = 6081;
const OTHER_PORT: u16 = 7000;
const PACKETS: u64 = 5;
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Packet counters of the named nft counters in `b`.
fn nft_counters() -> Result<HashMap<String, u64>, String> {
    netns::nft_counters("b", "inet", "t").map_err(|e| e.to_string())
}

struct Net {
    a4: IpAddr,
    b4: IpAddr,
    a6: IpAddr,
    b6: IpAddr,
}

fn setup() -> Result<Net, String> {
    netns::create_veth_pair(&SIDE_A, &SIDE_B).map_err(|e| e.to_string())?;
    let rules = "table inet t {
        counter esp_in {}
        counter encap_4500 {}
        counter dec_6081 {}
        counter plain_6081 {}
        counter plain_7000 {}
        chain input {
            type filter hook input priority 0; policy accept;
            meta l4proto esp counter name esp_in
            udp dport 4500 counter name encap_4500
            udp dport 6081 meta secpath exists counter name dec_6081
            udp dport 6081 meta secpath missing counter name plain_6081
            udp dport 7000 meta secpath missing counter name plain_7000
        }
    }";
    let path = "/tmp/xfrm-guest.nft";
    std::fs::write(path, rules).map_err(|e| e.to_string())?;
    ip(&["netns", "exec", "b", "nft", "-f", path])?;
    Ok(Net {
        a4: SIDE_A.addr(false),
        b4: SIDE_B.addr(false),
        a6: SIDE_A.addr(true),
        b6: SIDE_B.addr(true),
    })
}

/// Receivers in `b` and a sender in `a` for one address family.
struct Udp {
    sender: UdpSocket,
    geneve: UdpSocket,
    other: UdpSocket,
}

fn udp_pair(a: IpAddr, b: IpAddr) -> Result<Udp, String> {
    let e = |e: std::io::Error| e.to_string();
    let (geneve, other) = {
        let _ns = enter("b")?;
        let g = UdpSocket::bind(SocketAddr::new(b, GENEVE)).map_err(e)?;
        let o = UdpSocket::bind(SocketAddr::new(b, OTHER_PORT)).map_err(e)?;
        (g, o)
    };
    let sender = {
        let _ns = enter("a")?;
        UdpSocket::bind(SocketAddr::new(a, 0)).map_err(e)?
    };
    for s in [&geneve, &other] {
        s.set_read_timeout(Some(RECV_TIMEOUT)).map_err(e)?;
    }
    Ok(Udp {
        sender,
        geneve,
        other,
    })
}

/// The four objects of one transport-mode direction a→b: out state and policy in `a`,
/// in state and policy in `b`.
struct Sa {
    out_state: State,
    in_state: State,
    out_policy: Policy,
    in_policy: Policy,
}

fn transport_sa(a: IpAddr, b: IpAddr, spi: u32, reqid: u32, alg: Algorithm) -> Sa {
    let id = StateId {
        src: a,
        dst: b,
        spi,
        mark: None,
    };
    let state = State::new(id, reqid, Mode::Transport, alg);
    let sel = Selector::udp(a, b, None, Some(GENEVE));
    Sa {
        out_state: state.clone(),
        in_state: state,
        out_policy: Policy::allow(
            PolicyId::new(sel, Direction::Out),
            100,
            vec![Template::transport(reqid)],
        ),
        in_policy: Policy::allow(
            PolicyId::new(sel, Direction::In),
            100,
            vec![Template::transport(reqid)],
        ),
    }
}

async fn install(ka: &Kernel, kb: &Kernel, sa: &Sa) -> CheckResult {
    for r in ka
        .apply(&[
            Change::AddState(sa.out_state.clone()),
            Change::AddPolicy(sa.out_policy.clone()),
        ])
        .await
        .map_err(|e| e.to_string())?
    {
        r.map_err(|e| format!("in a: {e}"))?;
    }
    for r in kb
        .apply(&[
            Change::AddState(sa.in_state.clone()),
            Change::AddPolicy(sa.in_policy.clone()),
        ])
        .await
        .map_err(|e| e.to_string())?
    {
        r.map_err(|e| format!("in b: {e}"))?;
    }
    Ok(())
}

async fn remove(ka: &Kernel, kb: &Kernel) -> CheckResult {
    ka.cleanup().await.map_err(|e| e.to_string())?;
    kb.cleanup().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Sends to 6081 and 7000 and checks the wire, the arrival, and the crate's counters.
async fn traffic_check(
    ka: &Kernel,
    kb: &Kernel,
    sa: &Sa,
    udp: &Udp,
    b: IpAddr,
    encap: bool,
) -> CheckResult {
    let before = nft_counters()?;
    let got = send_and_receive(
        &udp.sender,
        &udp.geneve,
        SocketAddr::new(b, GENEVE),
        PACKETS,
        "geneve",
    );
    let got_other = send_and_receive(
        &udp.sender,
        &udp.other,
        SocketAddr::new(b, OTHER_PORT),
        PACKETS,
        "other",
    );
    let after = nft_counters()?;
    let d = |n| counter_delta(&before, &after, n);
    if got != PACKETS || got_other != PACKETS {
        return Err(format!(
            "arrived: {got}/{PACKETS} to 6081, {got_other}/{PACKETS} to 7000"
        ));
    }
    let wire = if encap { d("encap_4500") } else { d("esp_in") };
    if wire != PACKETS
        || d("dec_6081") != PACKETS
        || d("plain_6081") != 0
        || d("plain_7000") != PACKETS
    {
        return Err(format!(
            "nft: esp {} encap {} decrypted-6081 {} plain-6081 {} plain-7000 {}",
            d("esp_in"),
            d("encap_4500"),
            d("dec_6081"),
            d("plain_6081"),
            d("plain_7000")
        ));
    }
    if encap && d("esp_in") != 0 {
        return Err(format!(
            "bare ESP seen although encapsulated: {}",
            d("esp_in")
        ));
    }
    let out = ka
        .counters(&sa.out_state.id)
        .await
        .map_err(|e| e.to_string())?;
    let inn = kb
        .counters(&sa.in_state.id)
        .await
        .map_err(|e| e.to_string())?;
    if out.packets != PACKETS
        || inn.packets != PACKETS
        || inn.integrity_failed != 0
        || inn.replay != 0
    {
        return Err(format!("crate counters: out {out:?}, in {inn:?}"));
    }
    Ok(())
}

async fn next_event(events: &mut xfrm::Events) -> Result<Event, String> {
    match tokio::time::timeout(EVENT_TIMEOUT, events.next()).await {
        Ok(Ok(e)) => Ok(e),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no event within 10 s".into()),
    }
}

/// Waits for an event matching `want`, skipping others.
async fn wait_for(
    events: &mut xfrm::Events,
    what: &str,
    want: impl Fn(&Event) -> bool,
) -> CheckResult {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while Instant::now() < deadline {
        let e = next_event(events)
            .await
            .map_err(|e| format!("waiting for {what}: {e}"))?;
        if want(&e) {
            return Ok(());
        }
    }
    Err(format!("no {what}"))
}

fn key(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

async fn checks(net: &Net, r: &mut CheckReport) -> Result<(), String> {
    let own = Ownership::reqids(REQIDS);
    let ka = {
        let _ns = enter("a")?;
        Kernel::connect(own.clone())
            .await
            .map_err(|e| e.to_string())?
    };
    let kb = {
        let _ns = enter("b")?;
        Kernel::connect(own.clone())
            .await
            .map_err(|e| e.to_string())?
    };
    let udp4 = udp_pair(net.a4, net.b4)?;
    let udp6 = udp_pair(net.a6, net.b6)?;

    // Each algorithm, each family: transport SAs and policies for UDP dport 6081.
    let algorithms: Vec<(&str, Algorithm)> = vec![
        (
            "rfc4106(gcm(aes)) 128",
            Algorithm::aes_gcm_128(&key(20, 1)).unwrap(),
        ),
        (
            "rfc4106(gcm(aes)) 256",
            Algorithm::aes_gcm_256(&key(36, 2)).unwrap(),
        ),
        (
            "rfc7539esp(chacha20,poly1305)",
            Algorithm::chacha20_poly1305(&key(36, 3)).unwrap(),
        ),
        (
            "cbc(aes)+hmac(sha256)",
            Algorithm::aes_cbc_hmac_sha256(&key(16, 4), &key(32, 5)).unwrap(),
        ),
    ];
    let mut spi = 0x1000;
    for (name, alg) in &algorithms {
        for (fam, a, b, udp) in [
            ("IPv4", net.a4, net.b4, &udp4),
            ("IPv6", net.a6, net.b6, &udp6),
        ] {
            spi += 1;
            let sa = transport_sa(a, b, spi, 100 + (spi % 50), alg.clone());
            let res = async {
                install(&ka, &kb, &sa).await?;
                traffic_check(&ka, &kb, &sa, udp, b, false).await
            }
            .await;
            let cleaned = remove(&ka, &kb).await;
            r.check(
                &format!("{name} transport {fam}: 6081 is ESP on the wire and decrypted, 7000 stays plaintext, state counters = {PACKETS} packets"),
                res.and(cleaned),
            );
        }
    }

    // ESN with a large replay window.
    let res = async {
        let mut sa = transport_sa(
            net.a4,
            net.b4,
            0x2001,
            120,
            Algorithm::aes_gcm_256(&key(36, 9)).unwrap(),
        );
        for st in [&mut sa.out_state, &mut sa.in_state] {
            st.esn = true;
            st.replay_window = xfrm::state::MAX_REPLAY_WINDOW;
        }
        install(&ka, &kb, &sa).await?;
        traffic_check(&ka, &kb, &sa, &udp4, net.b4, false).await?;
        let inn = kb
            .get_state(&sa.in_state.id)
            .await
            .map_err(|e| e.to_string())?;
        let out = ka
            .get_state(&sa.out_state.id)
            .await
            .map_err(|e| e.to_string())?;
        if !inn.esn || inn.replay_window != 4096 {
            return Err(format!(
                "kernel reports esn={} window={}",
                inn.esn, inn.replay_window
            ));
        }
        match (out.sequence, inn.sequence) {
            (Some(o), Some(i)) if o.outbound == PACKETS && i.inbound == PACKETS => Ok(()),
            other => Err(format!("sequence numbers {other:?}")),
        }
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check("ESN state with a 4096-packet replay window carries traffic; 64-bit sequence numbers reported", res.and(cleaned));

    // ESP-in-UDP: the receiver needs a UDP_ENCAP_ESPINUDP socket on 4500.
    let res = async {
        let encap_sock = {
            let _ns = enter("b")?;
            UdpSocket::bind(SocketAddr::new(net.b4, 4500)).map_err(|e| e.to_string())?
        };
        set_udp_encap(&encap_sock)?;
        let mut sa = transport_sa(
            net.a4,
            net.b4,
            0x3001,
            130,
            Algorithm::aes_gcm_128(&key(20, 7)).unwrap(),
        );
        for st in [&mut sa.out_state, &mut sa.in_state] {
            st.encap = Some(Encap {
                sport: 4500,
                dport: 4500,
                original_address: None,
            });
        }
        install(&ka, &kb, &sa).await?;
        traffic_check(&ka, &kb, &sa, &udp4, net.b4, true).await?;
        let info = ka
            .get_state(&sa.out_state.id)
            .await
            .map_err(|e| e.to_string())?;
        match info.encap {
            Some(Encap {
                sport: 4500,
                dport: 4500,
                ..
            }) => Ok(()),
            other => Err(format!("encap reported as {other:?}")),
        }
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check("ESP-in-UDP (UDP_ENCAP_ESPINUDP 4500) state: 6081 arrives decrypted, only UDP 4500 on the wire", res.and(cleaned));

    // The controller's inbound flow: allocate the SPI in b, then install over the larval state.
    let res = async {
        let range = xfrm::SpiRange::new(0xc000, 0xcfff).map_err(|e| e.to_string())?;
        let req = xfrm::SpiRequest {
            src: net.a4,
            dst: net.b4,
            reqid: 180,
            mode: Mode::Transport,
            mark: None,
            range,
        };
        let spi = kb.alloc_spi(req).await.map_err(|e| e.to_string())?;
        if !(0xc000..=0xcfff).contains(&spi) {
            return Err(format!("SPI {spi:#x} outside the range"));
        }
        let sa = transport_sa(
            net.a4,
            net.b4,
            spi,
            180,
            Algorithm::aes_gcm_256(&key(36, 11)).unwrap(),
        );
        kb.update_state(&sa.in_state)
            .await
            .map_err(|e| format!("update over larval state: {e}"))?;
        kb.add_policy(&sa.in_policy)
            .await
            .map_err(|e| e.to_string())?;
        ka.add_state(&sa.out_state)
            .await
            .map_err(|e| e.to_string())?;
        ka.add_policy(&sa.out_policy)
            .await
            .map_err(|e| e.to_string())?;
        traffic_check(&ka, &kb, &sa, &udp4, net.b4, false).await
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check(
        "SPI allocated in a range (ALLOCSPI) then installed with update_state carries traffic",
        res.and(cleaned),
    );

    // Tunnel mode between the two hosts, IPv6.
    let res = async {
        let mut sa = transport_sa(
            net.a6,
            net.b6,
            0x8001,
            185,
            Algorithm::chacha20_poly1305(&key(36, 12)).unwrap(),
        );
        for st in [&mut sa.out_state, &mut sa.in_state] {
            st.mode = Mode::Tunnel;
        }
        for p in [&mut sa.out_policy, &mut sa.in_policy] {
            p.templates = vec![Template::tunnel(net.a6, net.b6, 185)];
        }
        install(&ka, &kb, &sa).await?;
        traffic_check(&ka, &kb, &sa, &udp6, net.b6, false).await?;
        match ka
            .get_state(&sa.out_state.id)
            .await
            .map_err(|e| e.to_string())?
            .mode
        {
            Mode::Tunnel => Ok(()),
            m => Err(format!("mode reported as {m:?}")),
        }
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check(
        "tunnel-mode SAs (IPv6): 6081 is ESP on the wire and decrypted, 7000 stays plaintext",
        res.and(cleaned),
    );

    // Integrity failures: b's inbound state has a different key, so every packet fails the
    // ICV check and is counted on the state and in /proc/net/xfrm_stat.
    let res = async {
        let sa = transport_sa(
            net.a4,
            net.b4,
            0x9001,
            187,
            Algorithm::aes_gcm_128(&key(20, 13)).unwrap(),
        );
        let mut wrong = sa.in_state.clone();
        wrong.algorithm = Algorithm::aes_gcm_128(&key(20, 14)).unwrap();
        let bad = Sa {
            in_state: wrong,
            ..sa
        };
        install(&ka, &kb, &bad).await?;
        let stat_before = {
            let _ns = enter("b")?;
            XfrmStat::read().map_err(|e| e.to_string())?
        };
        let got = send_and_receive(
            &udp4.sender,
            &udp4.geneve,
            SocketAddr::new(net.b4, GENEVE),
            PACKETS,
            "tampered",
        );
        let stat_after = {
            let _ns = enter("b")?;
            XfrmStat::read().map_err(|e| e.to_string())?
        };
        let inn = kb
            .counters(&bad.in_state.id)
            .await
            .map_err(|e| e.to_string())?;
        let proto_errors = stat_after
            .in_state_proto_error()
            .saturating_sub(stat_before.in_state_proto_error());
        if got != 0 || u64::from(inn.integrity_failed) != PACKETS || proto_errors != PACKETS {
            return Err(format!(
                "delivered {got}, state integrity_failed {}, XfrmInStateProtoError +{proto_errors}",
                inn.integrity_failed
            ));
        }
        Ok(())
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check("integrity failures are dropped and counted (state integrity_failed and XfrmInStateProtoError = 5)", res.and(cleaned));

    // Mark and if_id on a state: programmed, reported back, and part of its identity.
    let res = async {
        let mark = xfrm::Mark {
            value: 0x42,
            mask: 0xff,
        };
        let id = StateId {
            src: net.a6,
            dst: net.b6,
            spi: 0xa001,
            mark: Some(mark),
        };
        let mut st = State::new(
            id,
            188,
            Mode::Transport,
            Algorithm::aes_gcm_128(&key(20, 15)).unwrap(),
        );
        st.if_id = Some(9);
        ka.add_state(&st).await.map_err(|e| e.to_string())?;
        let info = ka.get_state(&id).await.map_err(|e| e.to_string())?;
        if info.id.mark != Some(mark) || info.if_id != Some(9) {
            return Err(format!(
                "reported mark {:?} if_id {:?}",
                info.id.mark, info.if_id
            ));
        }
        let unmarked = StateId { mark: None, ..id };
        if ka.get_state(&unmarked).await.is_ok() {
            return Err("found without its mark".into());
        }
        ka.delete_state(&id).await.map_err(|e| e.to_string())
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check(
        "state with mark 0x42/0xff and if_id 9: reported back; the mark is part of its identity",
        res.and(cleaned),
    );

    // A block policy with no SA: nothing leaves, nothing arrives in plaintext.
    let res = async {
        let sel = Selector::udp(net.a4, net.b4, None, Some(GENEVE));
        ka.add_policy(&Policy::block(PolicyId::new(sel, Direction::Out), 10, 140)).await.map_err(|e| e.to_string())?;
        let stat_before = { let _ns = enter("a")?; XfrmStat::read().map_err(|e| e.to_string())? };
        let before = nft_counters()?;
        let mut refused = 0;
        for i in 0..PACKETS {
            if udp4.sender.send_to(format!("blocked-{i}").as_bytes(), SocketAddr::new(net.b4, GENEVE)).is_err() {
                refused += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let after = nft_counters()?;
        let stat_after = { let _ns = enter("a")?; XfrmStat::read().map_err(|e| e.to_string())? };
        let blocked = stat_after.out_policy_block().saturating_sub(stat_before.out_policy_block());
        let arrived = counter_delta(&before, &after, "plain_6081") + counter_delta(&before, &after, "dec_6081") + counter_delta(&before, &after, "esp_in");
        if refused != PACKETS || blocked != PACKETS || arrived != 0 {
            return Err(format!("send refused {refused}/{PACKETS}, XfrmOutPolBlock +{blocked}, packets seen in b {arrived}"));
        }
        Ok(())
    }
    .await;
    let cleaned = remove(&ka, &kb).await;
    r.check("block policy with no SA drops tunnel traffic (sendto refused, XfrmOutPolBlock counts it, nothing reaches b)", res.and(cleaned));

    // Soft and hard expiry.
    let mut events = {
        let _ns = enter("a")?;
        ka.subscribe().await.map_err(|e| e.to_string())?
    };
    let res = async {
        let id = StateId {
            src: net.a4,
            dst: net.b4,
            spi: 0x4001,
            mark: None,
        };
        let mut st = State::new(
            id,
            150,
            Mode::Transport,
            Algorithm::aes_gcm_128(&key(20, 8)).unwrap(),
        );
        st.lifetimes.soft = Limits {
            add_seconds: Some(1),
            ..Limits::default()
        };
        st.lifetimes.hard = Limits {
            add_seconds: Some(2),
            ..Limits::default()
        };
        ka.add_state(&st).await.map_err(|e| e.to_string())?;
        wait_for(
            &mut events,
            "soft expire",
            |e| matches!(e, Event::Expire { state, hard: false } if state.id.spi == 0x4001),
        )
        .await?;
        wait_for(
            &mut events,
            "hard expire",
            |e| matches!(e, Event::Expire { state, hard: true } if state.id.spi == 0x4001),
        )
        .await?;
        if !ka
            .dump_states()
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Err("state still installed after hard expire".into());
        }
        Ok(())
    }
    .await;
    r.check("soft then hard expire events for a state with 1 s / 2 s lifetimes; the state is gone after", res);

    // An allow policy whose SA is missing: nothing leaves in plaintext, and the kernel asks
    // for the SA (ACQUIRE) naming the template's reqid.
    let res = async {
        let sel = Selector::udp(net.a4, net.b4, None, Some(GENEVE));
        let p = Policy::allow(
            PolicyId::new(sel, Direction::Out),
            100,
            vec![Template::transport(190)],
        );
        ka.add_policy(&p).await.map_err(|e| e.to_string())?;
        let before = nft_counters()?;
        let _ = udp4
            .sender
            .send_to(b"needs-an-sa", SocketAddr::new(net.b4, GENEVE));
        wait_for(
            &mut events,
            "Acquire for reqid 190",
            |e| matches!(e, Event::Acquire { reqid: Some(190), dst, .. } if *dst == net.b4),
        )
        .await?;
        let after = nft_counters()?;
        let seen =
            counter_delta(&before, &after, "plain_6081") + counter_delta(&before, &after, "esp_in");
        if seen != 0 {
            return Err(format!("{seen} packets reached b"));
        }
        Ok(())
    }
    .await;
    let cleaned = ka
        .delete_policy(&PolicyId::new(
            Selector::udp(net.a4, net.b4, None, Some(GENEVE)),
            Direction::Out,
        ))
        .await
        .map_err(|e| e.to_string());
    r.check("allow policy without an SA: nothing leaves in plaintext and an Acquire event names the reqid", res.and(cleaned));

    // An external flush.
    let res = async {
        let sa = transport_sa(
            net.a4,
            net.b4,
            0x5001,
            160,
            Algorithm::aes_gcm_128(&key(20, 6)).unwrap(),
        );
        ka.add_state(&sa.out_state)
            .await
            .map_err(|e| e.to_string())?;
        wait_for(&mut events, "our StateAdded", |e| {
            matches!(e, Event::StateAdded { by_us: true, .. })
        })
        .await?;
        ip(&["-n", "a", "xfrm", "state", "delete", "src", "10.0.0.1", "dst", "10.0.0.2", "proto", "esp", "spi", "0x5001"])?;
        wait_for(&mut events, "StateDeleted of ours by someone else", |e| {
            matches!(e, Event::StateDeleted { state: Some(st), by_us: false } if st.id.spi == 0x5001 && st.reqid == 160)
        })
        .await?;
        ka.add_state(&sa.out_state).await.map_err(|e| e.to_string())?;
        ip(&["-n", "a", "xfrm", "state", "flush"])?;
        wait_for(&mut events, "StatesFlushed by someone else", |e| {
            matches!(e, Event::StatesFlushed { by_us: false, .. })
        })
        .await?;
        ka.add_policy(&sa.out_policy)
            .await
            .map_err(|e| e.to_string())?;
        ip(&["-n", "a", "xfrm", "policy", "flush"])?;
        wait_for(&mut events, "PoliciesFlushed by someone else", |e| {
            matches!(e, Event::PoliciesFlushed { by_us: false })
        })
        .await?;
        if !ka
            .dump_states()
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Err("dump still shows states after the flush".into());
        }
        Ok(())
    }
    .await;
    r.check(
        "external `ip xfrm state delete`, `ip xfrm state flush` and `ip xfrm policy flush` arrive as events",
        res,
    );

    // Ownership: foreign objects beside ours.
    let res = async {
        ip(&[
            "-n",
            "a",
            "xfrm",
            "state",
            "add",
            "src",
            "10.0.0.1",
            "dst",
            "10.0.0.2",
            "proto",
            "esp",
            "spi",
            "0x7007",
            "reqid",
            "7",
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
            "10.0.0.2",
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
            "7",
            "mode",
            "transport",
        ])?;
        let sa = transport_sa(
            net.a4,
            net.b4,
            0x6001,
            170,
            Algorithm::chacha20_poly1305(&key(36, 5)).unwrap(),
        );
        ka.add_state(&sa.out_state)
            .await
            .map_err(|e| e.to_string())?;
        ka.add_policy(&sa.out_policy)
            .await
            .map_err(|e| e.to_string())?;
        let states = ka.dump_states().await.map_err(|e| e.to_string())?;
        let policies = ka.dump_policies().await.map_err(|e| e.to_string())?;
        if states.len() != 1 || states[0].id.spi != 0x6001 || policies.len() != 1 {
            return Err(format!(
                "dumps: {} states, {} policies",
                states.len(),
                policies.len()
            ));
        }
        let report = ka.cleanup().await.map_err(|e| e.to_string())?;
        let left = ip(&["-n", "a", "xfrm", "state"])? + &ip(&["-n", "a", "xfrm", "policy"])?;
        if report.states != 1
            || report.policies != 1
            || !left.contains("spi 0x00007007")
            || !left.contains("dport 9999")
        {
            return Err(format!("cleanup {report:?}, left: {left}"));
        }
        ip(&["-n", "a", "xfrm", "state", "flush"])?;
        ip(&["-n", "a", "xfrm", "policy", "flush"])?;
        Ok(())
    }
    .await;
    r.check("dumps return only our objects while foreign ones (reqid 7) sit beside them; cleanup leaves those", res);
    Ok(())
}

fn set_udp_encap(sock: &UdpSocket) -> CheckResult {
    const UDP_ENCAP: libc::c_int = 100;
    const UDP_ENCAP_ESPINUDP: libc::c_int = 2;
    let v = UDP_ENCAP_ESPINUDP;
    // SAFETY: setsockopt with a pointer to a live c_int on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_ENCAP,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("UDP_ENCAP: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Rounds of the guest benchmark; the order alternates so neither side always runs first.
const BENCH_ROUNDS: u32 = 3;

fn bench_peer(i: u32) -> IpAddr {
    IpAddr::from([
        10,
        200 + (i / 65536) as u8,
        (i / 256 % 256) as u8,
        (i % 256) as u8,
    ])
}

/// Times the crate programming `n` states and `n` policies in one batch, in a fresh namespace.
async fn bench_crate(n: u32) -> Result<Duration, String> {
    ip(&["netns", "add", "bench1"])?;
    let k = {
        let _ns = enter("bench1")?;
        Kernel::connect(Ownership::reqids(1..=u32::MAX))
            .await
            .map_err(|e| e.to_string())?
    };
    let local = addr("10.0.0.1");
    let gcm = Algorithm::aes_gcm_256(&key(36, 1)).unwrap();
    let mut changes = Vec::with_capacity(2 * n as usize);
    for i in 0..n {
        let id = StateId {
            src: local,
            dst: bench_peer(i),
            spi: 0x10000 + i,
            mark: None,
        };
        changes.push(Change::AddState(State::new(
            id,
            1 + i,
            Mode::Transport,
            gcm.clone(),
        )));
        let sel = Selector::udp(local, bench_peer(i), None, Some(GENEVE));
        changes.push(Change::AddPolicy(Policy::allow(
            PolicyId::new(sel, Direction::Out),
            100,
            vec![Template::transport(1 + i)],
        )));
    }
    let t = Instant::now();
    let results = k.apply(&changes).await.map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(format!("crate batch: {e}"));
    }
    let installed = k.dump_states().await.map_err(|e| e.to_string())?.len();
    drop(k);
    ip(&["netns", "del", "bench1"])?;
    if installed != n as usize {
        return Err(format!("{installed} states installed, expected {n}"));
    }
    Ok(took)
}

/// Times `ip -batch` doing the same work in a fresh namespace.
fn bench_ip(n: u32) -> Result<Duration, String> {
    let local = addr("10.0.0.1");
    let hex: String = key(36, 1).iter().map(|b| format!("{b:02x}")).collect();
    let mut script = String::new();
    for i in 0..n {
        script.push_str(&format!(
            "xfrm state add src {local} dst {} proto esp spi {} reqid {} mode transport replay-window 1024 flag esn \
             aead rfc4106(gcm(aes)) 0x{hex} 128\n",
            bench_peer(i), 0x10000 + i, 1 + i
        ));
        script.push_str(&format!(
            "xfrm policy add src {local} dst {} proto udp dport 6081 dir out priority 100 tmpl proto esp reqid {} mode transport\n",
            bench_peer(i), 1 + i
        ));
    }
    let path = "/tmp/xfrm-bench.batch";
    std::fs::write(path, script).map_err(|e| e.to_string())?;
    ip(&["netns", "add", "bench2"])?;
    let t = Instant::now();
    ip(&["-n", "bench2", "-batch", path])?;
    let took = t.elapsed();
    ip(&["netns", "del", "bench2"])?;
    Ok(took)
}

/// Programs `n` outbound states and `n` policies (one per peer) with the crate and with
/// `ip -batch`, in fresh namespaces, for a few rounds; prints objects per second for both.
async fn bench(n: u32) -> Result<(), String> {
    let rate = |d: Duration| f64::from(2 * n) / d.as_secs_f64();
    let (mut best_ours, mut best_theirs) = (Duration::MAX, Duration::MAX);
    for round in 0..BENCH_ROUNDS {
        let (ours, theirs) = if round % 2 == 0 {
            let o = bench_crate(n).await?;
            (o, bench_ip(n)?)
        } else {
            let t = bench_ip(n)?;
            (bench_crate(n).await?, t)
        };
        println!(
            "bench round {round}: {n} states + {n} policies: xfrm crate {:.0} objects/s, ip -batch {:.0} objects/s, ratio {:.2}x",
            rate(ours), rate(theirs), theirs.as_secs_f64() / ours.as_secs_f64()
        );
        best_ours = best_ours.min(ours);
        best_theirs = best_theirs.min(theirs);
    }
    println!(
        "bench: {n} states + {n} policies, best of {BENCH_ROUNDS}: xfrm crate {:.0} objects/s ({:.1} ms), ip -batch {:.0} objects/s ({:.1} ms), ratio {:.2}x",
        rate(best_ours), best_ours.as_secs_f64() * 1e3, rate(best_theirs), best_theirs.as_secs_f64() * 1e3,
        best_theirs.as_secs_f64() / best_ours.as_secs_f64()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bench") {
        let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
        if let Err(e) = bench(n).await {
            println!("bench failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut r = CheckReport::default();
    match setup() {
        Ok(net) => {
            if let Err(e) = checks(&net, &mut r).await {
                r.check("guest check harness", Err(e));
            }
        }
        Err(e) => r.check("two namespaces on a veth pair with nft counters", Err(e)),
    }
    let _ = ip(&["netns", "del", "a"]);
    let _ = ip(&["netns", "del", "b"]);
    r.finish();
}
