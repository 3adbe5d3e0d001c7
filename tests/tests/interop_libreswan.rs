//! Our IKEv2 engine (`ikev2::engine::Endpoint`, driven by `peers::our_endpoint`) ↔
//! Libreswan 4.10 pluto configured exactly as ovs-monitor-ipsec configures it (Libreswan's
//! defaults: first KE MODP-2048, PFS in CREATE_CHILD_SA), in two network namespaces on the
//! host kernel: IKE_SA_INIT and IKE_AUTH with `ovs-pki` RSA-2048 certificates both ways, each
//! side initiating. The host kernel has no ESP, so pluto cannot install its half of any
//! CHILD_SA; the tests assert how that shows. Needs root and `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use ikev2::engine::{Event, IkeAlgorithms};
use ikev2::registry::{EncrId, IntegId, KeGroup, PrfId};
use ovn_ipsec_tests::peers::our_endpoint::{count, dump, OurEndpoint};
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, Libreswan, NetnsPair, Pki,
};

const UP: Duration = Duration::from_secs(15);

/// How long the CHILD_SA exchanges that follow IKE_AUTH are given to play out.
const SETTLE: Duration = Duration::from_secs(1);

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-libreswan-pki")).unwrap()
}

fn ovs_suite() -> IkeAlgorithms {
    IkeAlgorithms {
        encryption: EncrId::ENCR_AES_GCM_16,
        key_bits: Some(256),
        prf: PrfId::PRF_HMAC_SHA2_256,
        integrity: IntegId::NONE,
        ke: KeGroup::MODP_2048,
    }
}

/// pluto authenticated us as `@ch1` with the RSA signature of our `ovs-pki` certificate.
const PLUTO_AUTHENTICATED_CH1: &str =
    "authenticated peer '2048-bit PKCS#1 1.5 RSA with SHA2_256' digital signature using peer certificate '@ch1'";

#[test]
fn our_endpoint_initiates_to_pluto_ike_sa_establishes_and_pluto_refuses_children_with_ts_unacceptable(
) {
    our_endpoint_initiates_to_pluto(false);
}

#[test]
fn our_endpoint_initiates_to_pluto_over_ipv6_and_the_ike_sa_establishes() {
    our_endpoint_initiates_to_pluto(true);
}

fn our_endpoint_initiates_to_pluto(v6: bool) {
    let pair = NetnsPair::create(if v6 { "ours-lw16" } else { "ours-lw1" }).unwrap();
    let (c1, c2) = chassis_pair(&pair, v6);
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    let t = ours.elapsed();
    ours.initiate("ch2").unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\npluto log:\n{}",
            dump(&ours.events()),
            pluto.log()
        )
    });
    // From the initiate command to IkeSaUp, as the driver saw them.
    let took = up.at.saturating_sub(t);
    pluto.wait_for_ike_sa("ch1", UP).unwrap();
    // The harness's log is a tail: snapshot it as soon as the last exchange shows, before
    // later noise (address monitoring) pushes the IKE_AUTH lines out.
    let last = "with encrypted notification TS_UNACCEPTABLE";
    wait_for("the CREATE_CHILD_SA answer in the log", UP, || {
        Ok(pluto.log().contains(last))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", pluto.log()));
    let log = pluto.log();
    std::thread::sleep(SETTLE);
    let events = ours.events();
    eprintln!(
        "ours -> pluto (IPv6 {v6}): IkeSaUp after {took:?}\nour events:\n{}",
        dump(&events)
    );

    let Event::IkeSaUp { algorithms, .. } = up.event else {
        unreachable!()
    };
    assert_eq!(algorithms, ovs_suite());
    assert_eq!(count(&events, |e| matches!(e, Event::IkeSaUp { .. })), 1);
    assert_eq!(
        count(&events, |e| matches!(e, Event::IkeSaDown { .. })),
        0,
        "{}",
        dump(&events)
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::ChildSaInstall { .. })),
        0
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::AllocateSpi { .. })),
        2
    );

    // pluto's side: its state list (whack --showstates) has the IKE SA, no CHILD_SA.
    assert!(pluto.ike_sa_established("ch1").unwrap());
    assert!(pluto.child_sas().unwrap().is_empty());
    assert!(
        log.contains(&format!(
            "responder established IKE SA; {PLUTO_AUTHENTICATED_CH1}"
        )),
        "{log}"
    );
    // IKE_AUTH "out": the proposal (no KE transform) is chosen, then the kernel refuses.
    assert!(
        log.contains("proposal 1:ESP=AES_GCM_C_256-DISABLED SPI=c0000001 chosen"),
        "{log}"
    );
    // CREATE_CHILD_SA "in" with PFS MODP-2048, as pluto wants it by default.
    assert!(
        log.contains("proposal 1:ESP=AES_GCM_C_256-MODP2048-DISABLED SPI=c0000002 chosen"),
        "{log}"
    );
    assert!(log.contains("Function not implemented"), "{log}");
    assert!(
        log.contains("with encrypted notification TS_UNACCEPTABLE"),
        "{log}"
    );
}

#[test]
fn pluto_initiates_to_our_endpoint_ike_sa_establishes_then_pluto_drops_it_when_its_kernel_refuses_the_child(
) {
    let pair = NetnsPair::create("ours-lw2").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    let t = Instant::now();
    let outcome = pluto.initiate("ch1", Direction::Out).unwrap();
    let took = t.elapsed();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\npluto log:\n{}",
            dump(&ours.events()),
            pluto.log()
        )
    });
    std::thread::sleep(SETTLE);
    let events = ours.events();
    eprintln!(
        "pluto -> ours: initiate took {took:?}, IkeSaUp at {:?}, error {:?}\npluto's report: {:#?}\nour events:\n{}",
        up.at,
        outcome.error,
        outcome.log,
        dump(&events)
    );

    let Event::IkeSaUp { algorithms, .. } = up.event else {
        unreachable!()
    };
    assert_eq!(algorithms, ovs_suite());
    assert_eq!(count(&events, |e| matches!(e, Event::AuthFailed { .. })), 0);
    let first_install = events.iter().find_map(|r| match &r.event {
        Event::ChildSaInstall { name, .. } => Some(name.clone()),
        _ => None,
    });
    assert_eq!(first_install.as_deref(), Some("in"), "{}", dump(&events));

    // pluto's report of this initiation: the IKE SA established with our certificate, then
    // its kernel refused the inbound SA and pluto dropped the IKE SA without telling us.
    assert!(!outcome.success);
    assert!(
        outcome.log_mentions(&format!(
            "initiator established IKE SA; {PLUTO_AUTHENTICATED_CH1}"
        )),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("Function not implemented"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("CHILD SA encountered fatal error: INVALID_SYNTAX"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("and NOT sending notification"),
        "{:#?}",
        outcome.log
    );
}

/// `ipsec_encapsulation=yes` on both chassis: pluto fakes its NAT-D payloads, so our
/// responder sees a NAT and its CHILD_SA is ESP-in-UDP on port 4500.
#[test]
fn forced_udp_encapsulation_from_pluto_gives_our_child_sa_udp_encapsulation() {
    let pair = NetnsPair::create("ours-lw3").unwrap();
    let (mut c1, mut c2) = chassis_pair(&pair, false);
    c1.force_encaps = true;
    c2.force_encaps = true;
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    let outcome = pluto.initiate("ch1", Direction::Out).unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\npluto log:\n{}",
            dump(&ours.events()),
            pluto.log()
        )
    });
    std::thread::sleep(SETTLE);
    let events = ours.events();
    let Event::IkeSaUp { local, remote, .. } = up.event else {
        unreachable!()
    };
    assert_eq!((local.port(), remote.port()), (4500, 4500));
    let encap = events.iter().find_map(|r| match &r.event {
        Event::ChildSaInstall { udp_encap, .. } => Some(*udp_encap),
        _ => None,
    });
    let encap = encap
        .flatten()
        .unwrap_or_else(|| panic!("{}", dump(&events)));
    assert_eq!((encap.local_port, encap.remote_port), (4500, 4500));
    assert!(
        outcome.log_mentions(&format!(
            "initiator established IKE SA; {PLUTO_AUTHENTICATED_CH1}"
        )),
        "{:#?}",
        outcome.log
    );
}
