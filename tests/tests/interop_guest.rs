//! Our IKEv2 engine ↔ strongSwan 5.9.8 charon and Libreswan 4.10 pluto with real ESP
//! CHILD_SAs, in the qemu guest of `tests/vm` (the host kernel has no ESP): each side
//! initiating, both ovs-monitor-ipsec Geneve children come up (IKE_AUTH "out",
//! CREATE_CHILD_SA "in" with PFS), our side installs them with the `xfrm` crate, the peer with
//! its own kernel code, and Geneve-port traffic is ESP both ways; then with forced UDP
//! encapsulation (ESP-in-UDP on port 4500) with charon (we initiate) and pluto (it
//! initiates). Needs root, `bash tests/setup/vm.sh` and `bash tests/setup/peers.sh`.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use ikev2::engine::Event;
use ovn_ipsec_tests::peers::libreswan::{libreswan_root, CHILD_ESTABLISHED};
use ovn_ipsec_tests::peers::our_endpoint::OurEndpoint;
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, Libreswan, Netns, NetnsPair, Pki, StrongSwan,
    GENEVE_PORT,
};
use ovn_ipsec_tests::vm::GuestRun;

const GUEST_TEST: &str = "guest_side_our_endpoint_with_charon_and_pluto_each_side_initiating";
const CHECK: &str =
    "our endpoint with charon and pluto, each side initiating: both Geneve children installed and carrying ESP";
/// Under software emulation a handshake takes about a second.
const UP: Duration = Duration::from_secs(60);

#[test]
fn our_endpoint_with_charon_and_pluto_each_side_initiating_carries_esp_in_the_real_kernel_guest() {
    let t = Instant::now();
    let mut run = GuestRun::new().unwrap();
    Pki::create(&run.share_dir().join("pki"), &["ch1", "ch2"]).unwrap();
    run.add_current_exe("self").unwrap();
    // charon, swanctl and their plugins and configuration; pluto and its helpers from the
    // unpacked .deb; the NSS tools and the soft token NSS loads at run time.
    let libreswan = libreswan_root();
    for path in [
        "/usr/lib/ipsec".into(),
        "/usr/sbin/swanctl".into(),
        "/etc/strongswan.d".into(),
        "/usr/bin/certutil".into(),
        "/usr/bin/pk12util".into(),
        "/usr/bin/openssl".into(),
        "/usr/bin/mount".into(),
        "/usr/lib/x86_64-linux-gnu/libsoftokn3.so".into(),
        "/usr/lib/x86_64-linux-gnu/libsoftokn3.chk".into(),
        "/usr/lib/x86_64-linux-gnu/libfreeblpriv3.so".into(),
        "/usr/lib/x86_64-linux-gnu/libfreeblpriv3.chk".into(),
        "/usr/lib/x86_64-linux-gnu/libnssdbm3.so".into(),
        libreswan.join("usr/libexec/ipsec").display().to_string(),
        libreswan.join("usr/sbin/ipsec").display().to_string(),
    ] {
        run.add_host_path(path);
    }
    run.add_text(
        "guest.sh",
        &format!(
            "export OVN_IPSEC_LIBRESWAN={}\n\
             if /mnt/self --ignored --exact {GUEST_TEST} --nocapture; then\n\
             \x20   echo 'ok - {CHECK}'\n\
             else\n\
             \x20   echo 'not ok - {CHECK}'\n\
             \x20   exit 1\n\
             fi\n",
            libreswan.display()
        ),
    )
    .unwrap();
    run.timeout(Duration::from_secs(300));
    let outcome = run.run("guest.sh").unwrap();
    eprintln!("guest run took {:?}", t.elapsed());
    assert!(outcome.succeeded(), "guest run failed: {}", outcome.stderr);
    assert_eq!(outcome.checks().passed, vec![CHECK]);
}

fn esp_states(ns: &Netns) -> Vec<String> {
    let mut states = ns.xfrm_states().unwrap();
    states.retain(|s| s.contains("proto esp"));
    states
}

/// Both children up on both sides: two `ChildSaInstall` from our engine (installed by the
/// driver), two CHILD_SAs in the peer's status, four ESP transport states in each kernel.
fn check_both_children(ours: &OurEndpoint, peer: &dyn IkePeer, pair: &NetnsPair) {
    wait_for("two CHILD_SAs on both sides", UP, || {
        let installs = ours
            .events()
            .iter()
            .filter(|r| matches!(r.event, Event::ChildSaInstall { .. }))
            .count();
        Ok(installs >= 2 && peer.child_sas()?.len() == 2)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nour events: {:#?}\n{}:\n{}",
            ours.events(),
            peer.label(),
            peer.log()
        )
    });
    for child in peer.child_sas().unwrap() {
        assert!(
            child.state == "INSTALLED" || child.state == CHILD_ESTABLISHED,
            "{child:?}"
        );
        if let Some(mode) = &child.mode {
            assert_eq!(mode, "TRANSPORT", "{child:?}");
        }
    }
    for ns in [&pair.a, &pair.b] {
        let states = esp_states(ns);
        assert_eq!(states.len(), 4, "{}: {states:#?}", ns.name());
        for state in &states {
            assert!(state.contains("mode transport"), "{state}");
            assert!(state.contains("aead rfc4106(gcm(aes))"), "{state}");
            assert!(state.contains("port 6081"), "{state}");
        }
    }
}

/// A datagram to B's Geneve port and B's reply: ESP on the veth, decrypted on arrival.
fn check_geneve_port_traffic_is_esp(pair: &NetnsPair) {
    let (a, b) = (pair.a.addr(false), pair.b.addr(false));
    let rx = pair
        .b
        .run_in(move || UdpSocket::bind(SocketAddr::new(b, GENEVE_PORT)))
        .unwrap()
        .unwrap();
    let tx = pair
        .a
        .run_in(move || UdpSocket::bind(SocketAddr::new(a, 0)))
        .unwrap()
        .unwrap();
    for s in [&rx, &tx] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    tx.send_to(b"geneve-ish", SocketAddr::new(b, GENEVE_PORT))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"geneve-ish");
    rx.send_to(b"reply", from).unwrap();
    let (n, _) = tx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"reply");
    let there = (
        pair.a.esp_packets(a, b).unwrap(),
        pair.b.esp_packets(a, b).unwrap(),
    );
    let back = (
        pair.b.esp_packets(b, a).unwrap(),
        pair.a.esp_packets(b, a).unwrap(),
    );
    eprintln!("ESP packets A->B (sent, decrypted) {there:?}, B->A {back:?}");
    assert!(there.0 >= 1 && there.1 >= 1, "A->B {there:?}");
    assert!(back.0 >= 1 && back.1 >= 1, "B->A {back:?}");
}

/// The peer brings up "out" (IKE_AUTH) and then "in" (CREATE_CHILD_SA) towards us.
fn peer_initiates_both(peer: &dyn IkePeer) {
    for direction in [Direction::Out, Direction::In] {
        let t = Instant::now();
        let outcome = peer.initiate("ch1", direction).unwrap();
        eprintln!(
            "{} {direction:?}: {:?} after {:?}",
            peer.label(),
            outcome.error,
            t.elapsed()
        );
        assert!(outcome.success, "{:#?}\n{}", outcome.log, peer.log());
    }
}

/// Our endpoint initiates: IKE_AUTH carries "out", CREATE_CHILD_SA adds "in" by itself.
fn we_initiate(ours: &OurEndpoint) {
    let t = Instant::now();
    ours.initiate("ch2").unwrap();
    ours.wait_for_ike_sa_up("ch2", UP).unwrap();
    eprintln!("our IKE SA up after {:?}", t.elapsed());
}

#[test]
#[ignore = "runs inside the qemu guest, started by our_endpoint_with_charon_and_pluto_each_side_initiating_carries_esp_in_the_real_kernel_guest"]
fn guest_side_our_endpoint_with_charon_and_pluto_each_side_initiating() {
    let pki = Pki::open(Path::new("/mnt/pki"), &["ch1", "ch2"]);

    // Four fresh namespace pairs: ours on A (ch1), the peer on B (ch2).
    // The last two with ovn-controller's ipsec_encapsulation=yes: ESP-in-UDP on port 4500.
    for (label, pluto, we_start, encap) in [
        ("go1", false, true, false),
        ("go2", false, false, false),
        ("go3", true, true, false),
        ("go4", true, false, false),
        ("go5", false, true, true),
        ("go6", true, false, true),
    ] {
        let t = Instant::now();
        let pair = NetnsPair::create(label).unwrap();
        let (mut c1, mut c2) = chassis_pair(&pair, false);
        c1.force_encaps = encap;
        c2.force_encaps = encap;
        let peer: Box<dyn IkePeer> = if pluto {
            Box::new(Libreswan::start(&pair.b, &pki, c2).unwrap())
        } else {
            Box::new(StrongSwan::start(&pair.b, &pki, c2).unwrap())
        };
        let ours = OurEndpoint::start_installing(&pair.a, &pki, c1).unwrap();
        eprintln!(
            "--- {} on B, we initiate: {we_start}, forced encapsulation: {encap}",
            peer.label()
        );
        if we_start {
            we_initiate(&ours);
        } else {
            peer_initiates_both(peer.as_ref());
        }
        check_both_children(&ours, peer.as_ref(), &pair);
        eprintln!("both children up after {:?}", t.elapsed());
        for ns in [&pair.a, &pair.b] {
            for state in esp_states(ns) {
                assert_eq!(state.contains("encap type espinudp"), encap, "{state}");
            }
        }
        check_geneve_port_traffic_is_esp(&pair);
        drop((ours, peer, pair));
    }
}
