//! Libreswan pluto ↔ strongSwan charon (the mixed mesh of ovs-monitor-ipsec's two flavours)
//! and pluto ↔ pluto, each configured as ovs-monitor-ipsec configures it, in two network
//! namespaces on the host kernel. Needs root and `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, IkeSaState, InitiateOutcome, Libreswan, Netns,
    NetnsPair, Pki, StrongSwan, XfrmPolicy,
};

const UP: Duration = Duration::from_secs(15);

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-libreswan-pki")).unwrap()
}

fn report(what: &str, took: Duration, outcome: &InitiateOutcome) {
    eprintln!(
        "{what}: took {took:?}, error {:?}, report {:#?}",
        outcome.error, outcome.log
    );
}

fn wait_both_established(initiator: &dyn IkePeer, responder: &dyn IkePeer) {
    let peer = initiator.config().remote_peers[0].name.clone();
    let me = initiator.config().name.clone();
    wait_for("IKE SA established on both sides", UP, || {
        Ok(initiator.ike_sa_established(&peer)? && responder.ike_sa_established(&me)?)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ninitiator log:\n{}\nresponder log:\n{}",
            initiator.log(),
            responder.log()
        )
    });
    for side in [initiator, responder] {
        let sas = side.ike_sas().unwrap();
        assert_eq!(
            sas.len(),
            1,
            "{}: exactly one IKE SA: {sas:?}",
            side.label()
        );
        assert_eq!(sas[0].state, IkeSaState::Established);
        let children = side.child_sas().unwrap();
        assert!(
            children.is_empty(),
            "{}: no CHILD_SA on this kernel: {children:?}",
            side.label()
        );
    }
}

#[test]
fn charon_initiates_to_pluto_ike_sa_establishes_and_pluto_answers_child_with_ts_unacceptable() {
    let t = Instant::now();
    let pair = NetnsPair::create("mix1").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();
    eprintln!("setup (pki, netns, charon, pluto) took {:?}", t.elapsed());

    let t = Instant::now();
    let outcome = charon.initiate("ch2", Direction::Out).unwrap();
    report("charon -> pluto (IKE_AUTH)", t.elapsed(), &outcome);
    wait_both_established(&charon, &pluto);

    let sa = &charon.ike_sas().unwrap()[0];
    assert_eq!(sa.remote_id.as_deref(), Some("ch2"));
    assert_eq!(sa.initiator, Some(true));
    assert_eq!(
        sa.proposal.as_deref(),
        Some("AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048")
    );

    // pluto fails to add the inbound SA (no ESP in this kernel) and rejects the child.
    assert!(!outcome.success);
    assert!(
        outcome.log_mentions("received TS_UNACCEPTABLE notify"),
        "{:#?}",
        outcome.log
    );
    let log = pluto.log();
    assert!(
        log.contains("Function not implemented"),
        "pluto log:\n{log}"
    );

    // The second child, over the same IKE SA (CREATE_CHILD_SA).
    let t = Instant::now();
    let second = charon.initiate("ch2", Direction::In).unwrap();
    report("charon -> pluto (CREATE_CHILD_SA)", t.elapsed(), &second);
    assert!(!second.success);
    assert!(
        second.log_mentions("received TS_UNACCEPTABLE notify"),
        "{:#?}",
        second.log
    );
    assert_eq!(charon.ike_sas().unwrap().len(), 1, "the IKE SA is kept");
}

#[test]
fn pluto_initiates_to_charon_ike_sa_establishes_and_charon_answers_child_with_no_proposal_chosen() {
    let pair = NetnsPair::create("mix2").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();

    let t = Instant::now();
    let outcome = pluto.initiate("ch1", Direction::Out).unwrap();
    report("pluto -> charon (IKE_AUTH)", t.elapsed(), &outcome);
    wait_both_established(&pluto, &charon);

    let sa = &charon.ike_sas().unwrap()[0];
    assert_eq!(sa.remote_id.as_deref(), Some("ch2"));
    assert_eq!(sa.initiator, Some(false));
    assert_eq!(
        sa.proposal.as_deref(),
        Some("AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048")
    );

    assert!(!outcome.success);
    assert!(
        outcome.log_mentions("rejected Child SA with NO_PROPOSAL_CHOSEN"),
        "{:#?}",
        outcome.log
    );
    let log = charon.log();
    assert!(
        log.contains("unable to install inbound and outbound IPsec SA"),
        "charon log:\n{log}"
    );

    // The second child, over the same IKE SA (CREATE_CHILD_SA).
    let t = Instant::now();
    let second = pluto.initiate("ch1", Direction::In).unwrap();
    report("pluto -> charon (CREATE_CHILD_SA)", t.elapsed(), &second);
    assert!(!second.success);
    let notify = "CREATE_CHILD_SA failed with error notification NO_PROPOSAL_CHOSEN";
    assert!(second.log_mentions(notify), "{:#?}", second.log);
    assert_eq!(pluto.ike_sas().unwrap().len(), 1, "the IKE SA is kept");
}

#[test]
fn pluto_and_pluto_establish_ike_sa_with_ovs_pki_certificates() {
    let pair = NetnsPair::create("lw").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let a = Libreswan::start(&pair.a, pki(), c1).unwrap();
    let b = Libreswan::start(&pair.b, pki(), c2).unwrap();

    let t = Instant::now();
    let outcome = a.initiate("ch2", Direction::Out).unwrap();
    report("pluto -> pluto (IKE_AUTH)", t.elapsed(), &outcome);
    wait_both_established(&a, &b);
    assert!(!outcome.success);
    assert!(
        outcome.log_mentions("rejected Child SA with TS_UNACCEPTABLE"),
        "{:#?}",
        outcome.log
    );
}

/// `start_action = trap` / `auto=route` as ovs-monitor-ipsec configures them put policies for
/// both Geneve children into the kernel before any IKE exchange (XFRM policies do work on the
/// host kernel; only SAs do not).
#[test]
fn trap_policies_cover_geneve_both_ways_for_charon_and_outbound_only_for_pluto() {
    let pair = NetnsPair::create("trap").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let _charon = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let _pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();

    let has = |policies: &[XfrmPolicy], sel: &str, dir: &str| {
        policies.iter().any(|p| {
            p.selector == sel && p.dir == dir && p.template.as_deref() == Some("esp transport")
        })
    };
    let (a, b) = ("10.77.0.1/32", "10.77.0.2/32");
    let charon = wait_for_policies(&pair.a, 4);
    for (sel, dir) in [
        (format!("src {a} dst {b} proto udp dport 6081"), "out"),
        (format!("src {b} dst {a} proto udp sport 6081"), "in"),
        (format!("src {a} dst {b} proto udp sport 6081"), "out"),
        (format!("src {b} dst {a} proto udp dport 6081"), "in"),
    ] {
        assert!(
            has(&charon, &sel, dir),
            "charon: no {dir} policy {sel}: {charon:#?}"
        );
    }
    assert_eq!(charon.len(), 4, "{charon:#?}");

    // pluto traps outbound only; its inbound policies come with an SA (so until then
    // plaintext Geneve from the peer is accepted).
    let pluto = wait_for_policies(&pair.b, 2);
    for sel in [
        format!("src {b} dst {a} proto udp dport 6081"),
        format!("src {b} dst {a} proto udp sport 6081"),
    ] {
        assert!(
            has(&pluto, &sel, "out"),
            "pluto: no out policy {sel}: {pluto:#?}"
        );
    }
    assert_eq!(pluto.len(), 2, "{pluto:#?}");
}

/// The daemons install their trap policies just after loading the connections: wait for them.
/// Only policies with an IPsec template count (pluto also adds template-less bypass policies
/// for IPv6 neighbour discovery).
fn wait_for_policies(ns: &Netns, n: usize) -> Vec<XfrmPolicy> {
    let mut policies = Vec::new();
    wait_for("trap policies", UP, || {
        policies = ns.xfrm_policies()?;
        policies.retain(|p| p.template.is_some());
        Ok(policies.len() >= n)
    })
    .unwrap();
    policies
}

/// pluto started the way ovs-monitor-ipsec starts it (both connections of every tunnel,
/// asynchronously) initiates to a passive charon by itself.
#[test]
fn pluto_started_like_ovs_monitor_ipsec_brings_up_the_ike_sa_with_a_passive_charon() {
    let pair = NetnsPair::create("auto").unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();

    let t = Instant::now();
    pluto.start_all_like_ovs_monitor_ipsec().unwrap();
    charon
        .wait_for_ike_sa("ch2", UP)
        .unwrap_or_else(|e| panic!("{e}\n{}", pluto.log()));
    pluto.wait_for_ike_sa("ch1", UP).unwrap();
    eprintln!("IKE SA up {:?} after the asynchronous start", t.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let (c, p) = (charon.ike_sas().unwrap(), pluto.ike_sas().unwrap());
    assert_eq!(
        (c.len(), p.len()),
        (1, 1),
        "one IKE SA for both connections: {c:#?} {p:#?}"
    );
    assert_eq!(c[0].initiator, Some(false));
}

/// SB_Global `ipsec_encapsulation=yes` / `ipsec_forceencaps=yes`: both daemons configured
/// with forced UDP encapsulation agree on it although there is no NAT.
#[test]
fn forced_udp_encapsulation_is_negotiated_between_charon_and_pluto() {
    let pair = NetnsPair::create("encap").unwrap();
    let (mut c1, mut c2) = chassis_pair(&pair, false);
    c1.force_encaps = true;
    c2.force_encaps = true;
    let charon = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();

    let outcome = charon.initiate("ch2", Direction::Out).unwrap();
    wait_both_established(&charon, &pluto);
    let sa = &charon.ike_sas().unwrap()[0];
    assert_eq!(sa.udp_encap, Some(true), "{sa:?}");
    // pluto's encapsulation=yes fakes its NAT-D payloads, so charon sees a NAT at pluto.
    assert!(
        outcome.log_mentions("remote host is behind NAT"),
        "{:#?}",
        outcome.log
    );
}
