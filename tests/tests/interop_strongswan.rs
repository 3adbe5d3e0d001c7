//! Our IKEv2 engine (`ikev2::engine::Endpoint`, driven by `peers::our_endpoint`) ↔
//! strongSwan 5.9.8 charon configured as ovs-monitor-ipsec configures it, in two network
//! namespaces on the host kernel: IKE_SA_INIT and IKE_AUTH with `ovs-pki` RSA-2048 certificates
//! both ways, each side initiating. The host kernel has no ESP, so charon cannot install its
//! half of any CHILD_SA; the tests assert how that shows. Needs root and
//! `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use ikev2::engine::{Event, IkeAlgorithms};
use ikev2::registry::{EncrId, IntegId, KeGroup, PrfId};
use ovn_ipsec_tests::peers::our_endpoint::{count, dump, OurEndpoint};
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, IkeSaState, NetnsPair, Pki, StrongSwan,
};

const UP: Duration = Duration::from_secs(15);

/// How long the CHILD_SA exchanges that follow IKE_AUTH are given to play out.
const SETTLE: Duration = Duration::from_secs(1);

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-strongswan-pki")).unwrap()
}

/// `aes256gcm16-sha256-modp2048`.
fn ovs_suite() -> IkeAlgorithms {
    IkeAlgorithms {
        encryption: EncrId::ENCR_AES_GCM_16,
        key_bits: Some(256),
        prf: PrfId::PRF_HMAC_SHA2_256,
        integrity: IntegId::NONE,
        ke: KeGroup::MODP_2048,
    }
}

/// charon's one IKE SA with ch1: established, ch1 proven, the suite ovs-monitor-ipsec asks for.
fn assert_charon_sees_ch1(charon: &StrongSwan, we_initiated: bool) {
    let sas = charon.ike_sas().unwrap();
    assert_eq!(sas.len(), 1, "{sas:#?}");
    assert_eq!(sas[0].state, IkeSaState::Established);
    assert_eq!(sas[0].peer, "ch1");
    assert_eq!(sas[0].remote_id.as_deref(), Some("ch1"));
    assert_eq!(sas[0].initiator, Some(!we_initiated));
    assert_eq!(
        sas[0].proposal.as_deref(),
        Some("AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048")
    );
    assert!(sas[0].child_sas.is_empty(), "no ESP here: {sas:#?}");
}

#[test]
fn our_endpoint_initiates_to_charon_ike_sa_establishes_and_charon_refuses_children_with_no_proposal_chosen(
) {
    our_endpoint_initiates_to_charon(false);
}

#[test]
fn our_endpoint_initiates_to_charon_over_ipv6_and_the_ike_sa_establishes() {
    our_endpoint_initiates_to_charon(true);
}

fn our_endpoint_initiates_to_charon(v6: bool) {
    let pair = NetnsPair::create(if v6 { "ours-sw16" } else { "ours-sw1" }).unwrap();
    let (c1, c2) = chassis_pair(&pair, v6);
    let charon = StrongSwan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    let t = ours.elapsed();
    ours.initiate("ch2").unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\ncharon log:\n{}",
            dump(&ours.events()),
            charon.log()
        )
    });
    // From the initiate command to IkeSaUp, as the driver saw them.
    let took = up.at.saturating_sub(t);
    charon.wait_for_ike_sa("ch1", UP).unwrap();
    // The harness's log is a tail: snapshot it as soon as the last exchange shows, before
    // later noise (address monitoring) pushes the IKE_AUTH lines out.
    let last = "generating CREATE_CHILD_SA response 2 [ N(NO_PROP) ]";
    wait_for("the CREATE_CHILD_SA answer in the log", UP, || {
        Ok(charon.log().contains(last))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", charon.log()));
    let log = charon.log();
    std::thread::sleep(SETTLE);
    let events = ours.events();
    eprintln!(
        "ours -> charon (IPv6 {v6}): IkeSaUp after {took:?}\nour events:\n{}",
        dump(&events)
    );

    // Our side: IKE SA up with the configured suite; charon proved "ch2" with its certificate
    // (IkeSaUp comes only after the AUTH payload verified against remote_id ch2 and the CA).
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
    assert_eq!(count(&events, |e| matches!(e, Event::AuthFailed { .. })), 0);
    // charon refused both children (IKE_AUTH "out", CREATE_CHILD_SA "in"): nothing to install.
    assert_eq!(
        count(&events, |e| matches!(e, Event::ChildSaInstall { .. })),
        0
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::AllocateSpi { .. })),
        2
    );

    // charon's side, from vici.
    assert_charon_sees_ch1(&charon, true);
    assert!(
        log.contains("authentication of 'ch1' with RSA_EMSA_PKCS1_SHA2_256 successful"),
        "{log}"
    );
    assert!(
        log.contains("unable to install inbound and outbound IPsec SA (SAD) in kernel"),
        "{log}"
    );
    assert!(
        log.contains("generating IKE_AUTH response 1 [ IDr CERT AUTH N(NO_PROP) ]"),
        "{log}"
    );
    assert!(
        log.contains("generating CREATE_CHILD_SA response 2 [ N(NO_PROP) ]"),
        "{log}"
    );
    // The CREATE_CHILD_SA for "in" carried PFS, as charon's esp_proposals ask.
    assert!(
        log.contains("selected proposal: ESP:AES_GCM_16_256/MODP_2048/NO_EXT_SEQ"),
        "{log}"
    );
}

#[test]
fn charon_initiates_to_our_endpoint_ike_sa_establishes_and_charon_deletes_the_child_it_cannot_install(
) {
    let pair = NetnsPair::create("ours-sw2").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    let t = Instant::now();
    let outcome = charon.initiate("ch1", Direction::Out).unwrap();
    let took = t.elapsed();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\ncharon log:\n{}",
            dump(&ours.events()),
            charon.log()
        )
    });
    std::thread::sleep(SETTLE);
    let events = ours.events();
    eprintln!(
        "charon -> ours: initiate took {took:?}, IkeSaUp at {:?}, error {:?}\ncharon's report: {:#?}\nour events:\n{}",
        up.at,
        outcome.error,
        outcome.log,
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
    // We accepted charon's "out" as our "in" (Geneve port on our side), then charon, unable
    // to install it, deleted it with an INFORMATIONAL Delete and we removed it too.
    let installed: Vec<_> = events
        .iter()
        .filter_map(|r| match &r.event {
            Event::ChildSaInstall {
                name,
                spi_in,
                spi_out,
                ..
            } => Some((name.clone(), *spi_in, *spi_out)),
            _ => None,
        })
        .collect();
    assert_eq!(installed.len(), 1, "{}", dump(&events));
    // charon moved IKE to port 4500 (MOBIKE) but saw no NAT: plain ESP on both sides.
    assert!(events.iter().any(|r| matches!(&r.event,
        Event::IkeSaUp { remote, .. } if remote.port() == 4500)));
    assert!(
        events.iter().all(|r| !matches!(
            &r.event,
            Event::ChildSaInstall {
                udp_encap: Some(_),
                ..
            }
        )),
        "{}",
        dump(&events)
    );
    assert_eq!(charon.ike_sas().unwrap()[0].udp_encap, Some(false));
    assert_eq!(installed[0].0, "in");
    let (_, spi_in, spi_out) = installed[0];
    assert!(events.iter().any(|r| matches!(r.event,
        Event::ChildSaDelete { spi_in: i, spi_out: o, .. } if i == spi_in && o == spi_out)));

    assert!(!outcome.success);
    assert!(
        outcome.log_mentions("parsed IKE_SA_INIT response 0 [ SA KE No CERTREQ"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("authentication of 'ch1' with RSA_EMSA_PKCS1_SHA2_256 successful"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("unable to install inbound and outbound IPsec SA (SAD) in kernel"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("sending DELETE for ESP CHILD_SA"),
        "{:#?}",
        outcome.log
    );
    assert!(
        outcome.log_mentions("parsed INFORMATIONAL response 2 [ D ]"),
        "{:#?}",
        outcome.log
    );
    assert_charon_sees_ch1(&charon, false);
}

/// `ipsec_encapsulation=yes` on both chassis: our endpoint fakes its NAT-D source hash and
/// moves to port 4500; charon's vici status reports the IKE SA UDP-encapsulated (`nat-any`).
#[test]
fn forced_udp_encapsulation_from_our_endpoint_makes_charon_report_udp_encapsulation() {
    let pair = NetnsPair::create("ours-sw3").unwrap();
    let (mut c1, mut c2) = chassis_pair(&pair, false);
    c1.force_encaps = true;
    c2.force_encaps = true;
    let charon = StrongSwan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();

    ours.initiate("ch2").unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\ncharon log:\n{}",
            dump(&ours.events()),
            charon.log()
        )
    });
    charon.wait_for_ike_sa("ch1", UP).unwrap();
    let Event::IkeSaUp { local, remote, .. } = up.event else {
        unreachable!()
    };
    assert_eq!((local.port(), remote.port()), (4500, 4500));
    let sas = charon.ike_sas().unwrap();
    assert_eq!(sas.len(), 1, "{sas:#?}");
    assert_eq!(sas[0].udp_encap, Some(true), "{sas:#?}");
}
