//! Full CHILD_SA interop with real peers, in the qemu guest of `tests/vm` (the host kernel has
//! no ESP): charon ↔ pluto, each side initiating, both ovs-monitor-ipsec Geneve children
//! installed as kernel ESP transport states. The host half builds the PKI and boots the guest;
//! the guest half (an ignored test of this binary) runs the same harness as the host tests.
//! Needs root, `bash tests/setup/vm.sh` and `bash tests/setup/peers.sh`.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use ovn_ipsec_tests::peers::libreswan::{libreswan_root, CHILD_ESTABLISHED};
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, Libreswan, Netns, NetnsPair, Pki, StrongSwan,
    GENEVE_PORT,
};
use ovn_ipsec_tests::vm::GuestRun;

const GUEST_TEST: &str = "guest_side_charon_and_pluto_install_both_geneve_children";
/// Under software emulation a handshake takes about a second and pluto's start a few.
const UP: Duration = Duration::from_secs(60);

#[test]
fn charon_and_pluto_install_both_geneve_children_in_the_real_kernel_guest() {
    let t = Instant::now();
    let mut run = GuestRun::new().unwrap();
    Pki::create(&run.share_dir().join("pki"), &["ch1", "ch2"]).unwrap();
    run.add_current_exe("self").unwrap();

    // charon, swanctl and their plugins and configuration; pluto and its helpers from the
    // unpacked .deb; the NSS tools and the soft token NSS loads at run time (ldd does not
    // list it); util-linux mount for `mount --bind`.
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
             \x20   echo 'ok - both Geneve children installed and carrying ESP (charon-pluto each way, charon-charon)'\n\
             else\n\
             \x20   echo 'not ok - both Geneve children installed and carrying ESP (charon-pluto each way, charon-charon)'\n\
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
    assert_eq!(
        outcome.checks().passed,
        vec!["both Geneve children installed and carrying ESP (charon-pluto each way, charon-charon)"]
    );
}

/// Both children up on both sides: two CHILD_SAs in each daemon's status and four ESP
/// transport states (one per direction per child) in each namespace's kernel, with
/// `rfc4106(gcm(aes))` and ovs-monitor-ipsec's udp/6081 selectors.
fn check_both_children(a: &dyn IkePeer, b: &dyn IkePeer, pair: &NetnsPair) {
    wait_for("both children on both sides", UP, || {
        Ok(a.child_sas()?.len() == 2 && b.child_sas()?.len() == 2)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}:\n{}\n{}:\n{}",
            a.label(),
            a.log(),
            b.label(),
            b.log()
        )
    });
    for child in a
        .child_sas()
        .unwrap()
        .iter()
        .chain(b.child_sas().unwrap().iter())
    {
        // charon says INSTALLED (and the mode), pluto its established state.
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
        assert_eq!(states.len(), 4, "{states:#?}");
        for state in &states {
            assert!(state.contains("mode transport"), "{state}");
            assert!(state.contains("aead rfc4106(gcm(aes))"), "{state}");
            assert!(state.contains("proto udp"), "{state}");
            assert!(state.contains("port 6081"), "{state}");
        }
    }
}

fn esp_states(ns: &Netns) -> Vec<String> {
    let mut states = ns.xfrm_states().unwrap();
    states.retain(|s| s.contains("proto esp"));
    states
}

/// A UDP datagram to B's Geneve port and B's reply from it: the first goes through A's "out"
/// child, the reply through B's "in" child; each is counted by the sender's outbound ESP state
/// and the receiver's inbound one, so it was ESP on the veth and decrypted on arrival.
fn check_geneve_port_traffic_is_esp(pair: &NetnsPair) {
    let (a, b) = (pair.a.addr(false), pair.b.addr(false));
    let before = (
        pair.a.esp_packets(a, b).unwrap(),
        pair.b.esp_packets(a, b).unwrap(),
    );
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

    let after = (
        pair.a.esp_packets(a, b).unwrap(),
        pair.b.esp_packets(a, b).unwrap(),
    );
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "A->B ESP packets {before:?} -> {after:?}"
    );
    let back = (
        pair.b.esp_packets(b, a).unwrap(),
        pair.a.esp_packets(b, a).unwrap(),
    );
    assert!(back.0 >= 1 && back.1 >= 1, "B->A ESP packets {back:?}");
}

#[test]
#[ignore = "runs inside the qemu guest, started by charon_and_pluto_install_both_geneve_children_in_the_real_kernel_guest"]
fn guest_side_charon_and_pluto_install_both_geneve_children() {
    let pki = Pki::open(Path::new("/mnt/pki"), &["ch1", "ch2"]);
    let pair = NetnsPair::create("g").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let t = Instant::now();
    let charon = StrongSwan::start(&pair.a, &pki, c1).unwrap();
    let pluto = Libreswan::start(&pair.b, &pki, c2).unwrap();
    eprintln!("charon and pluto up after {:?}", t.elapsed());

    // charon initiates: IKE_AUTH carries "out", CREATE_CHILD_SA adds "in".
    initiate_both(&charon, "ch2");
    check_both_children(&charon, &pluto, &pair);
    check_geneve_port_traffic_is_esp(&pair);

    charon.terminate("ch2").unwrap();
    wait_for("IKE SA gone on both sides", UP, || {
        Ok(charon.ike_sas()?.is_empty() && pluto.ike_sas()?.is_empty())
    })
    .unwrap();

    // pluto initiates.
    initiate_both(&pluto, "ch1");
    check_both_children(&charon, &pluto, &pair);
    check_geneve_port_traffic_is_esp(&pair);
    drop((charon, pluto, pair));

    // charon <-> charon in a fresh pair.
    let pair = NetnsPair::create("gs").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let a = StrongSwan::start(&pair.a, &pki, c1).unwrap();
    let b = StrongSwan::start(&pair.b, &pki, c2).unwrap();
    initiate_both(&b, "ch1");
    check_both_children(&a, &b, &pair);
    check_geneve_port_traffic_is_esp(&pair);
}

fn initiate_both(peer: &dyn IkePeer, remote: &str) {
    for direction in [Direction::Out, Direction::In] {
        let t = Instant::now();
        let outcome = peer.initiate(remote, direction).unwrap();
        eprintln!(
            "{} {direction:?}: {:?} after {:?}",
            peer.label(),
            outcome.error,
            t.elapsed()
        );
        assert!(outcome.success, "{:#?}\n{}", outcome.log, peer.log());
    }
}
