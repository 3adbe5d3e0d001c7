//! IKE SA rekeying (RFC 7296 §2.18) and reauthentication (§2.8.3) between our engine and
//! strongSwan 5.9.8 charon in two network namespaces on the host kernel: charon rekeys (a
//! short IKE `rekey_time`), we rekey, we reauthenticate, charon reauthenticates (a short
//! `reauth_time`); each new IKE SA carries the next exchange (so both sides derived the same
//! keys). The host kernel has no ESP, so there are no CHILD_SAs, only IKE SAs. Needs root and
//! `bash tests/setup/peers.sh`.

use std::path::Path;
use std::time::Duration;

use ikev2::engine::{DownReason, Event};
use ovn_ipsec_tests::peers::our_endpoint::{dump, ike_sa_downs, ike_sa_rekeys, OurEndpoint};
use ovn_ipsec_tests::peers::strongswan::render_swanctl_conf;
use ovn_ipsec_tests::peers::{
    chassis_pair, wait_for, IkePeer, IkeSaState, NetnsPair, Pki, StrongSwan,
};

const UP: Duration = Duration::from_secs(15);

/// charon's IKE SA rekey time in these tests (its default is none: reauthentication only).
const CHARON_REKEY: &str = "8s";

fn pki() -> &'static Pki {
    Pki::shared(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-rekey-strongswan-pki"))
        .unwrap()
}

/// Waits until our endpoint has reported `n` IKE SA rekeys.
fn wait_for_rekeys(ours: &OurEndpoint, charon: &StrongSwan, n: usize, timeout: Duration) {
    wait_for(&format!("{n} IKE SA rekeys"), timeout, || {
        Ok(ike_sa_rekeys(&ours.events()).len() >= n)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\ncharon log:\n{}",
            dump(&ours.events()),
            charon.log()
        )
    });
}

/// charon holds exactly one IKE SA with ch1, established.
fn assert_charon_has_one_established(charon: &StrongSwan) {
    // The old IKE SA goes once its Delete is answered; give the exchange a moment.
    let one = wait_for("charon to hold one IKE SA", UP, || {
        let sas = charon.ike_sas()?;
        Ok(sas.len() == 1 && sas[0].state == IkeSaState::Established)
    });
    let sas = charon.ike_sas().unwrap();
    assert!(one.is_ok(), "{sas:#?}\n{}", charon.log());
    assert_eq!(sas[0].peer, "ch1");
}

/// charon with `rekey_time = CHARON_REKEY` on its IKE SA (no jitter), loaded over the
/// configuration the harness wrote.
fn charon_that_rekeys(charon: &StrongSwan) {
    charon_with(
        charon,
        "rekey_time = 0",
        &format!("rekey_time = {CHARON_REKEY}"),
    );
}

/// charon with the IKE SA's line `from` replaced by `to` and no jitter, loaded over the
/// configuration the harness wrote.
fn charon_with(charon: &StrongSwan, from: &str, to: &str) {
    // swanctl resolves relative certificate names against the file's folder: name it whole.
    let cert = pki().chassis("ch2").unwrap().cert.display().to_string();
    let conf = render_swanctl_conf(charon.config(), &cert)
        .replace(&format!("\n        {from}\n"), &format!("\n        {to}\n"))
        .replace("\n        rand_time = 9m\n", "\n        rand_time = 0\n");
    assert!(conf.contains(to), "{conf}");
    // One file per setting: the tests run in parallel.
    let tag: String = to
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("swanctl-{tag}.conf"));
    std::fs::write(&file, conf).unwrap();
    let file = file.display().to_string();
    charon
        .swanctl(&["--load-conns", "--file", &file])
        .unwrap_or_else(|e| panic!("{e}\n{}", charon.log()));
}

/// charon in one namespace of a new pair named `label`, set up further by `configure`, then
/// our endpoint in the other, each configured as ovs-monitor-ipsec configures the tunnel;
/// nothing initiated yet.
fn charon_and_us(
    label: &str,
    configure: impl FnOnce(&StrongSwan),
) -> (NetnsPair, StrongSwan, OurEndpoint) {
    let pair = NetnsPair::create(label).unwrap();
    let (c1, c2) = chassis_pair(&pair, false);
    let charon = StrongSwan::start(&pair.b, pki(), c2).unwrap();
    configure(&charon);
    let ours = OurEndpoint::start(&pair.a, pki(), c1).unwrap();
    (pair, charon, ours)
}

#[test]
fn charon_rekeys_the_ike_sa_and_the_new_one_carries_our_rekey_next() {
    let (_pair, charon, ours) = charon_and_us("rk-sw1", charon_that_rekeys);

    ours.initiate("ch2").unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap();
    let Event::IkeSaUp { ike_sa: first, .. } = up.event else {
        unreachable!()
    };
    // charon's rekey (8 s after IKE_AUTH): we answer as the responder of the rekey.
    // charon, the rekey's initiator, then deletes the old IKE SA.
    let second = ours.wait_for_ike_sa_rekey(&charon, 1, first, Duration::from_secs(30));
    assert!(
        charon.log().contains("CREATE_CHILD_SA request"),
        "{}",
        charon.log()
    );
    assert_charon_has_one_established(&charon);

    // Our rekey on the IKE SA charon made: charon must open it with the keys we derived.
    ours.rekey_ike("ch2").unwrap();
    ours.wait_for_ike_sa_rekey(&charon, 2, second, UP);
    assert_charon_has_one_established(&charon);
    let events = ours.events();
    eprintln!("charon rekeys, then we do:\n{}", dump(&events));
    // Nothing else went down; no authentication problem.
    assert_eq!(ike_sa_downs(&events).len(), 2, "{}", dump(&events));
    assert!(!events
        .iter()
        .any(|r| matches!(r.event, Event::AuthFailed { .. })));
}

#[test]
fn we_rekey_the_ike_sa_with_charon_twice_and_it_stays_up() {
    let (_pair, charon, ours) = charon_and_us("rk-sw2", |_| {});

    let first = ours.first_ike_sa_with(&charon, UP);

    ours.rekey_ike("ch2").unwrap();
    let second = ours.wait_for_ike_sa_rekey(&charon, 1, first, UP);
    assert_charon_has_one_established(&charon);

    // The second rekey runs on the first rekey's IKE SA, Message ID 0 again.
    ours.rekey_ike("ch2").unwrap();
    ours.wait_for_ike_sa_rekey(&charon, 2, second, UP);
    assert_charon_has_one_established(&charon);
    let log = charon.log();
    let events = ours.events();
    eprintln!("we rekey twice:\n{}", dump(&events));
    assert_eq!(ike_sa_downs(&events).len(), 2, "{}", dump(&events));
    assert!(log.contains("rekeyed"), "{log}");
}

#[test]
fn we_reauthenticate_with_charon_make_before_break_and_the_new_ike_sa_carries_a_rekey() {
    let (_pair, charon, ours) = charon_and_us("rk-sw3", |_| {});
    let first = ours.first_ike_sa_with(&charon, UP);

    ours.reauthenticate("ch2").unwrap();
    // A second IKE SA comes up; the first goes (deleted by us once the new one's CHILD_SA
    // exchanges are done, or by charon when it sees the same identities again).
    ours.wait_for_reauthentication(&charon, first, UP);
    assert_charon_has_one_established(&charon);
    let events = ours.events();
    assert!(!events
        .iter()
        .any(|r| matches!(r.event, Event::AuthFailed { .. })));
    // The new IKE SA works: a rekey of it goes through.
    ours.rekey_ike("ch2").unwrap();
    wait_for_rekeys(&ours, &charon, 1, UP);
    assert_charon_has_one_established(&charon);
    eprintln!("we reauthenticate with charon:\n{}", dump(&ours.events()));
}

#[test]
fn charon_reauthenticating_without_child_sas_deletes_the_ike_sa_and_we_can_initiate_again() {
    let (_pair, charon, ours) = charon_and_us("rk-sw4", |c| {
        charon_with(c, "reauth_time = 171m", "reauth_time = 8s")
    });
    ours.initiate("ch2").unwrap();
    let up = ours.wait_for_ike_sa_up("ch2", UP).unwrap();
    let Event::IkeSaUp { ike_sa: first, .. } = up.event else {
        unreachable!()
    };
    // charon 5.9.8 reauthenticates break-before-make: it deletes the IKE SA first, then,
    // with no CHILD_SA to recreate (the host kernel has no ESP), builds none.
    wait_for(
        "charon's Delete of the IKE SA",
        Duration::from_secs(30),
        || Ok(ike_sa_downs(&ours.events()).contains(&(first, DownReason::DeletedByPeer))),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nour events:\n{}\ncharon log:\n{}",
            dump(&ours.events()),
            charon.log()
        )
    });
    let log = charon.log();
    assert!(log.contains("reauthenticating IKE_SA"), "{log}");
    // Nothing of the old IKE SA is left on our side: a new initiation is accepted and works.
    ours.initiate("ch2").unwrap();
    wait_for("a second IKE SA", UP, || {
        Ok(ours
            .events()
            .iter()
            .filter(|r| matches!(r.event, Event::IkeSaUp { .. }))
            .count()
            == 2)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dump(&ours.events()), charon.log()));
    assert_charon_has_one_established(&charon);
    eprintln!("charon reauthenticates:\n{}", dump(&ours.events()));
}
