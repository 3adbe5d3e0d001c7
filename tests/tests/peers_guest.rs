//! Full CHILD_SA interop with real peers, in the qemu guest of `tests/vm` (the host kernel has
//! no ESP): charon ↔ pluto, each side initiating, both ovs-monitor-ipsec Geneve children
//! installed as kernel ESP transport states. The host half builds the PKI and boots the guest;
//! the guest half (an ignored test of this binary) runs the same harness as the host tests.
//! Needs root, `bash tests/setup/vm.sh` and `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use ovn_ipsec_tests::peers::libreswan::{libreswan_root, CHILD_ESTABLISHED};
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, Libreswan, Netns, NetnsPair, Pki, StrongSwan,
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
             \x20   echo 'ok - charon and pluto installed both children each way'\n\
             else\n\
             \x20   echo 'not ok - charon and pluto installed both children each way'\n\
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
        vec!["charon and pluto installed both children each way"]
    );
}

/// Both children up on both sides: two CHILD_SAs in each daemon's status and four ESP
/// transport states (one per direction per child) in each namespace's kernel.
fn check_both_children(charon: &StrongSwan, pluto: &Libreswan, pair: &NetnsPair) {
    wait_for("both children on both sides", UP, || {
        Ok(charon.child_sas()?.len() == 2 && pluto.child_sas()?.len() == 2)
    })
    .unwrap_or_else(|e| panic!("{e}\ncharon:\n{}\npluto:\n{}", charon.log(), pluto.log()));
    for child in charon.child_sas().unwrap() {
        assert_eq!(child.state, "INSTALLED", "{child:?}");
        assert_eq!(child.mode.as_deref(), Some("TRANSPORT"), "{child:?}");
    }
    for child in pluto.child_sas().unwrap() {
        assert_eq!(child.state, CHILD_ESTABLISHED, "{child:?}");
    }
    for ns in [&pair.a, &pair.b] {
        let states = esp_states(ns);
        eprintln!("{} ESP states: {states:#?}", ns.name());
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

#[test]
#[ignore = "runs inside the qemu guest, started by charon_and_pluto_install_both_geneve_children_in_the_real_kernel_guest"]
fn guest_side_charon_and_pluto_install_both_geneve_children() {
    let pki = Pki::open(Path::new("/mnt/pki"), &["ch1", "ch2"]);
    let pair = NetnsPair::create("g").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let t = Instant::now();
    let charon = StrongSwan::start(&pair.a, &pki, c1).unwrap();
    let pluto = Libreswan::start(&pair.b, &pki, c2).unwrap();
    eprintln!("daemons up after {:?}", t.elapsed());

    // charon initiates: IKE_AUTH carries "out", CREATE_CHILD_SA adds "in".
    for direction in [Direction::Out, Direction::In] {
        let t = Instant::now();
        let outcome = charon.initiate("ch2", direction).unwrap();
        eprintln!(
            "charon {direction:?}: {:?} after {:?}",
            outcome.error,
            t.elapsed()
        );
        assert!(
            outcome.success,
            "{:#?}\npluto:\n{}",
            outcome.log,
            pluto.log()
        );
    }
    check_both_children(&charon, &pluto, &pair);

    charon.terminate("ch2").unwrap();
    wait_for("IKE SA gone on both sides", UP, || {
        Ok(charon.ike_sas()?.is_empty() && pluto.ike_sas()?.is_empty())
    })
    .unwrap();

    // pluto initiates.
    for direction in [Direction::Out, Direction::In] {
        let t = Instant::now();
        let outcome = pluto.initiate("ch1", direction).unwrap();
        eprintln!(
            "pluto {direction:?}: {:?} after {:?}",
            outcome.error,
            t.elapsed()
        );
        assert!(
            outcome.success,
            "{:#?}\ncharon:\n{}",
            outcome.log,
            charon.log()
        );
    }
    check_both_children(&charon, &pluto, &pair);
}
