//! Certificate rotation: new credentials for a peer leave its established IKE SA alone and are
//! what the next IKE_AUTH presents.

use std::time::Duration;

use super::ike_auth::{jumbo, ups, Mesh};
use super::*;
use crate::engine::event::{AuthFailure, DownReason};
use crate::engine::UpdatePeerError;

#[test]
fn new_credentials_keep_the_established_ike_sa_and_are_presented_by_the_next_one() {
    let mut mesh = Mesh::with(11, jumbo(), |_| {}, |_| {});
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    assert_eq!(ups(&mesh.events(mesh.a)), 1);
    mesh.events(mesh.b);

    // chassis-3's certificate: b, which expects chassis-1 there, will refuse it.
    let (a, peer) = (mesh.a, mesh.a_to_b);
    mesh.net
        .node_mut(a)
        .endpoint
        .update_credentials(peer, credentials("chassis-3"), trust_store())
        .unwrap();
    // Past several liveness checks: the IKE SA authenticated with the old one stays.
    mesh.run(Duration::from_secs(120));
    let ea = mesh.events(mesh.a);
    assert!(
        !ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })),
        "{ea:?}"
    );
    assert_eq!(mesh.net.node(mesh.a).endpoint.ike_sas().count(), 1);

    // A new IKE SA presents the new certificate.
    let now = mesh.net.now();
    mesh.net.node_mut(a).endpoint.terminate(now, peer).unwrap();
    mesh.run(Duration::from_secs(2));
    mesh.events(mesh.b);
    assert!(mesh.events(mesh.a).iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::Terminated,
            ..
        }
    )));
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    let eb = mesh.events(mesh.b);
    let refused = eb.iter().find_map(|e| match e {
        Event::AuthFailed {
            reason: AuthFailure::PeerNotAuthenticated(why) | AuthFailure::WrongIdentity(why),
            ..
        } => Some(why.clone()),
        _ => None,
    });
    assert!(
        refused
            .as_deref()
            .is_some_and(|w| w.contains("CN=chassis-3")),
        "{eb:?}"
    );

    // Back to chassis-1's own certificate: the next IKE SA comes up.
    mesh.events(mesh.a);
    mesh.net
        .node_mut(a)
        .endpoint
        .update_credentials(peer, credentials("chassis-1"), trust_store())
        .unwrap();
    mesh.initiate_from_a();
    mesh.run(Duration::from_secs(2));
    assert_eq!(ups(&mesh.events(mesh.a)), 1);
}

#[test]
fn credentials_without_a_certificate_are_refused_and_the_old_ones_stay() {
    let mut mesh = Mesh::new(12);
    let (a, peer) = (mesh.a, mesh.a_to_b);
    let empty = Credentials {
        chain: Vec::new(),
        ..credentials("chassis-1")
    };
    let endpoint = &mut mesh.net.node_mut(a).endpoint;
    assert!(matches!(
        endpoint.update_credentials(peer, empty, trust_store()),
        Err(UpdatePeerError::Invalid(_))
    ));
    assert_eq!(endpoint.peer(peer).unwrap().credentials.chain.len(), 1);
    let now = std::time::Instant::now();
    let removed = endpoint.remove_peer(now, peer).unwrap();
    let endpoint = &mut mesh.net.node_mut(a).endpoint;
    assert_eq!(
        endpoint.update_credentials(peer, removed.credentials, trust_store()),
        Err(UpdatePeerError::UnknownPeer(peer))
    );
}
