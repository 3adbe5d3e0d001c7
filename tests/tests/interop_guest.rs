//! Our IKEv2 engine ↔ strongSwan 5.9.8 charon with real ESP CHILD_SAs, in the qemu guest of
//! `tests/vm` (the host kernel has no ESP): our endpoint initiates, both ovs-monitor-ipsec
//! Geneve children come up (IKE_AUTH "out", CREATE_CHILD_SA "in" with PFS), our side installs
//! them with the `xfrm` crate, charon with its kernel-netlink plugin, and Geneve-port traffic
//! is ESP both ways. Needs root, `bash tests/setup/vm.sh` and `bash tests/setup/peers.sh`.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use ikev2::engine::Event;
use ovn_ipsec_tests::peers::our_endpoint::OurEndpoint;
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, IkePeer, Netns, NetnsPair, Pki, StrongSwan, GENEVE_PORT,
};
use ovn_ipsec_tests::vm::GuestRun;

const GUEST_TEST: &str = "guest_side_our_endpoint_and_charon_install_both_geneve_children";
const CHECK: &str = "our endpoint and charon: both Geneve children installed and carrying ESP";
/// Under software emulation a handshake takes about a second.
const UP: Duration = Duration::from_secs(60);

#[test]
fn our_endpoint_and_charon_install_both_geneve_children_in_the_real_kernel_guest() {
    let t = Instant::now();
    let mut run = GuestRun::new().unwrap();
    Pki::create(&run.share_dir().join("pki"), &["ch1", "ch2"]).unwrap();
    run.add_current_exe("self").unwrap();
    for path in [
        "/usr/lib/ipsec",
        "/usr/sbin/swanctl",
        "/etc/strongswan.d",
        "/usr/bin/openssl",
        "/usr/bin/mount",
    ] {
        run.add_host_path(path);
    }
    run.add_text(
        "guest.sh",
        &format!(
            "if /mnt/self --ignored --exact {GUEST_TEST} --nocapture; then\n\
             \x20   echo 'ok - {CHECK}'\n\
             else\n\
             \x20   echo 'not ok - {CHECK}'\n\
             \x20   exit 1\n\
             fi\n"
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

#[test]
#[ignore = "runs inside the qemu guest, started by our_endpoint_and_charon_install_both_geneve_children_in_the_real_kernel_guest"]
fn guest_side_our_endpoint_and_charon_install_both_geneve_children() {
    let pki = Pki::open(Path::new("/mnt/pki"), &["ch1", "ch2"]);
    let pair = NetnsPair::create("go").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.b, &pki, c2).unwrap();
    let ours = OurEndpoint::start_installing(&pair.a, &pki, c1).unwrap();

    let t = Instant::now();
    ours.initiate("ch2").unwrap();
    ours.wait_for_ike_sa_up("ch2", UP).unwrap();
    wait_for("two CHILD_SAs on both sides", UP, || {
        let installs = ours
            .events()
            .iter()
            .filter(|r| matches!(r.event, Event::ChildSaInstall { .. }))
            .count();
        Ok(installs >= 2 && charon.child_sas()?.len() == 2)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nour events: {:#?}\ncharon:\n{}",
            ours.events(),
            charon.log()
        )
    });
    eprintln!("both children up after {:?}", t.elapsed());
    for child in charon.child_sas().unwrap() {
        assert_eq!(child.state, "INSTALLED", "{child:?}");
        assert_eq!(child.mode.as_deref(), Some("TRANSPORT"), "{child:?}");
    }
    for ns in [&pair.a, &pair.b] {
        let states = esp_states(ns);
        assert_eq!(states.len(), 4, "{}: {states:#?}", ns.name());
        for state in &states {
            assert!(state.contains("mode transport"), "{state}");
            assert!(state.contains("aead rfc4106(gcm(aes))"), "{state}");
        }
    }

    // A datagram to B's Geneve port and B's reply: ESP on the veth, decrypted on arrival.
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
