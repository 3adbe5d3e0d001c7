//! strongSwan charon ↔ charon, configured as ovs-monitor-ipsec configures them, in two
//! network namespaces on the host kernel. Needs root and `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, Direction, IkePeer, IkeSaState, NetnsPair, Pki, StrongSwan,
};

const UP: Duration = Duration::from_secs(15);

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-strongswan-pki")).unwrap()
}

/// One side initiates the "out" child: the IKE SA must come up on both sides with the ovs
/// proposal and the chassis identities; the CHILD_SA fails at installation on this kernel.
fn initiate_and_check(initiator: &StrongSwan, responder: &StrongSwan) {
    let peer = &initiator.config().remote_peers[0].name;
    let me = &initiator.config().name;
    let t = Instant::now();
    let outcome = initiator.initiate(peer, Direction::Out).unwrap();
    eprintln!(
        "{} -> {}: initiate took {:?}, error {:?}, last report lines {:#?}",
        initiator.label(),
        responder.label(),
        t.elapsed(),
        outcome.error,
        outcome.log.iter().rev().take(3).rev().collect::<Vec<_>>()
    );

    wait_for("IKE SA established on both sides", UP, || {
        Ok(initiator.ike_sa_established(peer)? && responder.ike_sa_established(me)?)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ninitiator log:\n{}\nresponder log:\n{}",
            initiator.log(),
            responder.log()
        )
    });

    let i = initiator.ike_sas().unwrap();
    let r = responder.ike_sas().unwrap();
    assert_eq!(
        (i.len(), r.len()),
        (1, 1),
        "exactly one IKE SA each: {i:?} {r:?}"
    );
    assert_eq!(i[0].remote_id.as_deref(), Some(peer.as_str()));
    assert_eq!(r[0].remote_id.as_deref(), Some(me.as_str()));
    assert_eq!((i[0].initiator, r[0].initiator), (Some(true), Some(false)));
    for sa in [&i[0], &r[0]] {
        assert_eq!(sa.state, IkeSaState::Established);
        assert_eq!(sa.udp_encap, Some(false), "no NAT, no forced encapsulation");
        assert_eq!(
            sa.proposal.as_deref(),
            Some("AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048")
        );
    }

    // Host kernel: no ESP. The responder's SA installation fails and it answers the child
    // with NO_PROPOSAL_CHOSEN; both keep the IKE SA and have no CHILD_SA.
    assert!(
        !outcome.success,
        "a CHILD_SA cannot be installed on this kernel: {outcome:?}"
    );
    assert!(
        outcome.log_mentions("received NO_PROPOSAL_CHOSEN notify"),
        "{:#?}",
        outcome.log
    );
    assert!(initiator.child_sas().unwrap().is_empty());
    assert!(responder.child_sas().unwrap().is_empty());
    let log = responder.log();
    assert!(
        log.contains("Function not implemented"),
        "responder log:\n{log}"
    );
}

#[test]
fn charon_and_charon_establish_ike_sa_with_ovs_pki_certificates_each_side_initiating() {
    let t = Instant::now();
    let pki = pki();
    eprintln!("pki ready after {:?}", t.elapsed());
    let pair = NetnsPair::create("sw").unwrap();
    eprintln!("netns pair ready after {:?}", t.elapsed());
    let (c1, c2) = chassis_pair(&pair, false);
    let a = StrongSwan::start(&pair.a, pki, c1).unwrap();
    eprintln!("first charon loaded after {:?}", t.elapsed());
    let b = StrongSwan::start(&pair.b, pki, c2).unwrap();
    eprintln!("second charon loaded after {:?}", t.elapsed());

    initiate_and_check(&a, &b);

    // The second child over the same IKE SA (CREATE_CHILD_SA) fails the same way.
    let second = a.initiate("ch2", Direction::In).unwrap();
    eprintln!("second child (CREATE_CHILD_SA): {:#?}", second.log);
    assert!(!second.success);
    assert!(
        second.log_mentions("NO_PROPOSAL_CHOSEN"),
        "{:#?}",
        second.log
    );
    assert_eq!(a.ike_sas().unwrap().len(), 1, "the IKE SA is kept");

    a.terminate("ch2").unwrap();
    wait_for("IKE SA gone on both sides", UP, || {
        Ok(a.ike_sas()?.is_empty() && b.ike_sas()?.is_empty())
    })
    .unwrap();

    initiate_and_check(&b, &a);
    eprintln!("whole test took {:?}", t.elapsed());
}

#[test]
fn charon_and_charon_establish_ike_sa_over_ipv6() {
    let pair = NetnsPair::create("sw6").unwrap();
    let (c1, c2) = chassis_pair(&pair, true);
    let a = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let b = StrongSwan::start(&pair.b, pki(), c2).unwrap();
    initiate_and_check(&b, &a);
}

#[test]
fn charon_gets_no_ike_sa_with_a_peer_whose_certificate_names_another_chassis() {
    let pair = NetnsPair::create("swid").unwrap();
    let (mut c1, c2) = chassis_pair(&pair, false);
    // ch1 expects ch3 at ch2's address: ch2's valid certificate must not be accepted there.
    c1.remote_peers[0].name = "ch3".into();
    let a = StrongSwan::start(&pair.a, pki(), c1).unwrap();
    let b = StrongSwan::start(&pair.b, pki(), c2).unwrap();

    let outcome = a.initiate("ch3", Direction::Out).unwrap();
    eprintln!("wrong identity: {:?} {:#?}", outcome.error, outcome.log);
    assert!(!outcome.success);
    assert!(!a.ike_sa_established("ch3").unwrap());
    assert!(!b.ike_sa_established("ch1").unwrap());
    assert!(
        outcome.log_mentions("AUTHENTICATION_FAILED"),
        "{:#?}",
        outcome.log
    );
}
