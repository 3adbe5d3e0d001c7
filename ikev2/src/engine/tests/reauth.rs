//! Reauthentication (RFC 7296 §2.8.3) as make-before-break: the new IKE SA and its CHILD_SAs
//! come up before the old IKE SA is deleted, with the credentials the configuration has then.

use std::sync::Arc;
use std::time::Duration;

use super::collisions::{deleted, installed};
use super::ike_auth::Mesh;
use super::rekey::{assert_agree, downs, established, live, rekeys};
use super::*;
use crate::engine::event::{AuthFailure, DownReason};

fn ups_of(events: &[Event]) -> Vec<IkeSaId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { ike_sa, .. } => Some(*ike_sa),
            _ => None,
        })
        .collect()
}

/// Position of the first event matching `f`.
fn first(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(f).unwrap()
}

fn last(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().rposition(f).unwrap()
}

fn is_install(e: &Event) -> bool {
    matches!(e, Event::ChildSaInstall { .. })
}

fn is_delete(e: &Event) -> bool {
    matches!(e, Event::ChildSaDelete { .. })
}

#[test]
fn reauthentication_brings_the_new_ike_sa_up_before_deleting_the_old() {
    let every_half_hour = |p: &mut PeerConfig| p.reauth_interval = Some(Duration::from_secs(1800));
    let mut mesh = Mesh::with(90, super::ike_auth::jumbo(), every_half_hour, |_| {});
    let old = mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let (mut ea, mut eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    let (old_a, old_b): (Vec<u32>, Vec<u32>) = (
        live(&ea).keys().copied().collect(),
        live(&eb).keys().copied().collect(),
    );
    let old_on_b = mesh.net.node(mesh.b).endpoint.ike_sas().next().unwrap();

    // Reauthentication is due within 1620..1800 s; the soft lifetimes are an hour.
    mesh.net.advance(Duration::from_secs(1800), STEPS);
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));

    // a: a second IKE SA and two new CHILD_SAs, each reported as replacing its namesake, and
    // only then the old ones deleted and the old IKE SA gone.
    let new = ups_of(&na);
    assert_eq!(new.len(), 1, "{na:?}");
    assert_ne!(new[0], old);
    assert_eq!(installed(&na).len(), 2);
    assert_eq!(rekeys(&na).len(), 2);
    assert!(last(&na, is_install) < first(&na, is_delete), "{na:?}");
    let mut gone = deleted(&na);
    gone.sort();
    assert_eq!(gone, old_a);
    assert_eq!(downs(&na), vec![(old, DownReason::Rekeyed)]);

    // b: the same, with the old IKE SA deleted by a (no INITIAL_CONTACT dropped it early).
    assert_eq!(ups_of(&nb).len(), 1);
    assert!(last(&nb, is_install) < first(&nb, is_delete), "{nb:?}");
    let mut gone = deleted(&nb);
    gone.sort();
    assert_eq!(gone, old_b);
    assert_eq!(downs(&nb), vec![(old_on_b, DownReason::DeletedByPeer)]);

    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 1);

    // And again half an hour later, from the new IKE SA.
    mesh.net.advance(Duration::from_secs(1800), STEPS);
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert_eq!(ups_of(&na).len(), 1);
    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
}

/// chassis-ec's certificate (ECDSA P-256, under CA A) and key.
fn ec_credentials() -> Credentials {
    let cert = crate::auth::Certificate::from_pem(&fixture("chassis-ec-cert.pem")).unwrap();
    let key = crate::auth::PrivateKey::from_pem(
        &fixture("chassis-ec-pkcs8-privkey.pem"),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    Credentials {
        chain: vec![cert],
        key: Arc::new(key),
    }
}

/// a's certificate is replaced by chassis-ec's (as the daemon does on a renewal); b is told
/// to expect it when `b_follows`.
fn renew_a_certificate(mesh: &mut Mesh, b_follows: bool) {
    let peer = mesh.a_to_b;
    let endpoint = &mut mesh.net.node_mut(mesh.a).endpoint;
    let mut config = endpoint.peer(peer).unwrap().clone();
    config.credentials = ec_credentials();
    config.local_id = crate::auth::Identity::Fqdn("chassis-ec".into());
    endpoint.update_peer(peer, config).unwrap();
    if b_follows {
        let peer = mesh.b_to_a;
        let endpoint = &mut mesh.net.node_mut(mesh.b).endpoint;
        let mut config = endpoint.peer(peer).unwrap().clone();
        config.remote_id = crate::auth::Identity::Fqdn("chassis-ec".into());
        endpoint.update_peer(peer, config).unwrap();
    }
}

#[test]
fn reauthentication_signs_with_the_certificate_the_configuration_has_now() {
    let (mut mesh, mut ea, mut eb) = established(91);
    renew_a_certificate(&mut mesh, true);
    mesh.reauthenticate_on(mesh.a);
    mesh.run(Duration::from_secs(3));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    // b accepted the new certificate (it now only accepts chassis-ec).
    assert!(
        !nb.iter().any(|e| matches!(e, Event::AuthFailed { .. })),
        "{nb:?}"
    );
    assert_eq!((ups_of(&na).len(), ups_of(&nb).len()), (1, 1));
    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
    assert_eq!(mesh.net.node(mesh.b).endpoint.ike_sas().count(), 1);
}

#[test]
fn reauthentication_the_peer_rejects_keeps_the_old_ike_sa_and_its_child_sas() {
    let (mut mesh, mut ea, mut eb) = established(92);
    let old = mesh.net.node(mesh.a).endpoint.ike_sas().next().unwrap();
    // b still expects chassis-1, so the renewed certificate is refused.
    renew_a_certificate(&mut mesh, false);
    mesh.reauthenticate_on(mesh.a);
    mesh.run(Duration::from_secs(3));
    let (na, nb) = (mesh.events(mesh.a), mesh.events(mesh.b));
    assert!(nb.iter().any(|e| matches!(e, Event::AuthFailed { .. })));
    assert!(na.contains(&Event::AuthFailed {
        peer: mesh.a_to_b,
        reason: AuthFailure::RejectedByPeer,
    }));
    // Only the attempt went down; the CHILD_SAs were never touched.
    assert!(deleted(&na).is_empty() && deleted(&nb).is_empty());
    assert!(downs(&na).iter().all(|(id, _)| *id != old));
    let ids: Vec<IkeSaId> = mesh.net.node(mesh.a).endpoint.ike_sas().collect();
    assert_eq!(ids, vec![old]);
    ea.extend(na);
    eb.extend(nb);
    assert_agree(&ea, &eb, 2);
}

#[test]
fn reauthenticate_without_an_established_ike_sa_is_refused() {
    let mut mesh = Mesh::new(93);
    let now = mesh.net.now();
    let peer = mesh.a_to_b;
    assert_eq!(
        mesh.net.node_mut(mesh.a).endpoint.reauthenticate(now, peer),
        Err(crate::engine::CommandError::NotEstablished(peer))
    );
}
