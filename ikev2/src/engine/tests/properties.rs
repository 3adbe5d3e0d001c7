//! Random schedules of loss, duplication and reordering, with one or both chassis initiating:
//! whatever happens on the way, once the network has been good for long enough the two
//! chassis agree.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::ike_auth::{installed_pairs_match, Mesh};
use super::*;
use crate::registry::KeGroup;

/// Replays `events` into the CHILD_SAs still installed, by inbound SPI.
fn live_children(events: &[Event]) -> BTreeMap<u32, Event> {
    let mut live = BTreeMap::new();
    for e in events {
        match e {
            Event::ChildSaInstall { spi_in, .. } => {
                live.insert(*spi_in, e.clone());
            }
            Event::ChildSaDelete { spi_in, .. } => {
                live.remove(spi_in);
            }
            _ => {}
        }
    }
    live
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn after_a_bad_network_heals_both_sides_agree(
        seed in any::<u64>(),
        loss_ppm in 0u32..400_000,
        duplicate_ppm in 0u32..300_000,
        jitter_ms in 0u64..80,
        crossed in any::<bool>(),
    ) {
        // Curve25519 keeps each case fast; nothing here depends on the group.
        let fast = |p: &mut PeerConfig| p.ike_proposals[0].ke = vec![KeGroup::CURVE25519];
        let conditions = Conditions {
            loss_ppm,
            duplicate_ppm,
            jitter: Duration::from_millis(jitter_ms),
            mtu: 9000,
            ..Conditions::default()
        };
        let mut mesh = Mesh::with(seed, conditions, fast, fast);
        mesh.initiate_from_a();
        if crossed {
            // Both chassis initiate at the same instant.
            let now = mesh.net.now();
            let peer = mesh.b_to_a;
            mesh.net.node_mut(mesh.b).endpoint.initiate(now, peer).unwrap();
        }
        mesh.run(Duration::from_secs(60));

        // The network heals; timers run out or liveness checks pass.
        mesh.net.conditions = Conditions { mtu: 9000, ..Conditions::default() };
        mesh.net.advance(Duration::from_secs(400), STEPS);

        let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
        let (la, lb) = (live_children(&ea), live_children(&eb));
        let sas_a = mesh.net.node(mesh.a).endpoint.ike_sas().count();
        let sas_b = mesh.net.node(mesh.b).endpoint.ike_sas().count();
        // At most one IKE SA each, and both or neither.
        prop_assert!(sas_a <= 1 && sas_b <= 1);
        prop_assert_eq!(sas_a, sas_b, "a {:?}\nb {:?}", ea, eb);
        // CHILD_SAs on both sides or neither, with crossed SPIs and keys.
        prop_assert_eq!(la.len(), lb.len(), "a {:?}\nb {:?}", ea, eb);
        for (spi_in, install) in &la {
            let Event::ChildSaInstall { spi_out, .. } = install else { unreachable!() };
            let other = lb.get(spi_out);
            prop_assert!(other.is_some(), "no partner for {:x}", spi_in);
            prop_assert!(installed_pairs_match(install, other.unwrap()));
        }
    }
}
