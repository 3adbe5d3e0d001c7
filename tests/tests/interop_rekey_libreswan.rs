//! IKE SA rekeying (RFC 7296 §2.18) and reauthentication (§2.8.3) between our engine and
//! Libreswan 4.10 pluto, configured as ovs-monitor-ipsec configures it, in two network
//! namespaces on the host kernel: we rekey twice, pluto rekeys (`whack --rekey-ike`) before we
//! do, we reauthenticate; each new IKE SA carries the next exchange. The host kernel has no
//! ESP, so only IKE SAs exist. Needs root and `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::Duration;

use ikev2::engine::Event;
use ovn_ipsec_tests::peers::our_endpoint::{dump, ike_sa_downs, ike_sa_rekeys, OurEndpoint};
use ovn_ipsec_tests::peers::{chassis_pair, wait_for, IkePeer, Libreswan, NetnsPair, Pki};

const UP: Duration = Duration::from_secs(15);

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-rekey-libreswan-pki"))
        .unwrap()
}

/// pluto in one namespace of a new pair named `label`, our endpoint in the other, each
/// configured as ovs-monitor-ipsec configures the tunnel; nothing initiated yet.
fn pluto_and_us(label: &str) -> (NetnsPair, Libreswan, OurEndpoint) {
    let pair = NetnsPair::create(label).unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let pluto = Libreswan::start(&pair.b, pki(), c2).unwrap();
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();
    (pair, pluto, ours)
}

fn assert_still_up(ours: &OurEndpoint, pluto: &Libreswan) {
    assert!(pluto.ike_sa_established("ch1").unwrap(), "{}", pluto.log());
    let events = ours.events();
    assert_eq!(ike_sa_downs(&events).len(), 2, "{}", dump(&events));
    assert!(!events
        .iter()
        .any(|r| matches!(r.event, Event::AuthFailed { .. })));
}

#[test]
fn we_rekey_the_ike_sa_with_pluto_twice_and_it_stays_up() {
    let (_pair, pluto, ours) = pluto_and_us("rk-lw1");
    let first = ours.first_ike_sa_with(&pluto, UP);

    ours.rekey_ike("ch2").unwrap();
    let second = ours.wait_for_ike_sa_rekey(&pluto, 1, first, UP);
    ours.rekey_ike("ch2").unwrap();
    ours.wait_for_ike_sa_rekey(&pluto, 2, second, UP);
    eprintln!("we rekey twice:\n{}", dump(&ours.events()));
    assert_still_up(&ours, &pluto);
}

#[test]
fn pluto_rekeys_the_ike_sa_and_the_new_one_carries_our_rekey_next() {
    let (_pair, pluto, ours) = pluto_and_us("rk-lw2");
    let first = ours.first_ike_sa_with(&pluto, UP);

    // The IKE SA belongs to one of the tunnel's two connections; ask both.
    let names = pluto.config().peer("ch1").unwrap().conn_names();
    let asked: Vec<bool> = [&names.child_in, &names.child_out]
        .iter()
        .map(|conn| pluto.whack(&["--name", conn, "--rekey-ike"]).is_ok())
        .collect();
    assert!(asked.contains(&true), "{}", pluto.log());
    let second = ours.wait_for_ike_sa_rekey(&pluto, 1, first, UP);
    ours.rekey_ike("ch2").unwrap();
    ours.wait_for_ike_sa_rekey(&pluto, 2, second, UP);
    eprintln!("pluto rekeys, then we do:\n{}", dump(&ours.events()));
    assert_still_up(&ours, &pluto);
}

#[test]
fn we_reauthenticate_with_pluto_make_before_break_and_the_new_ike_sa_carries_a_rekey() {
    let (_pair, pluto, ours) = pluto_and_us("rk-lw3");
    let first = ours.first_ike_sa_with(&pluto, UP);

    ours.reauthenticate("ch2").unwrap();
    // A second IKE SA comes up; the first goes (deleted by us once the new one's CHILD_SA
    // exchanges are done, or by pluto when it sees the same identities again).
    ours.wait_for_reauthentication(&pluto, first, UP);
    assert!(pluto.ike_sa_established("ch1").unwrap(), "{}", pluto.log());
    let events = ours.events();
    assert!(!events
        .iter()
        .any(|r| matches!(r.event, Event::AuthFailed { .. })));
    // The new IKE SA works: a rekey of it goes through.
    ours.rekey_ike("ch2").unwrap();
    wait_for("the IKE SA rekey", UP, || {
        Ok(!ike_sa_rekeys(&ours.events()).is_empty())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dump(&ours.events()), pluto.log()));
    assert!(pluto.ike_sa_established("ch1").unwrap(), "{}", pluto.log());
    eprintln!("we reauthenticate with pluto:\n{}", dump(&ours.events()));
}
