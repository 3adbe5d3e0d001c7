//! Random schedules of loss, duplication and reordering, with one or both chassis initiating:
//! whatever happens on the way, once the network has been good for long enough the two
//! chassis agree.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::ike_auth::{installed_pairs_match, Mesh};
use super::*;
use crate::registry::KeGroup;

/// `default` cases, or `PROPTEST_CASES` when set (for a longer run by hand: an explicit
/// case count would otherwise win over the variable).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn after_a_bad_network_heals_both_sides_agree(
        seed in any::<u64>(),
        loss_ppm in 0u32..400_000,
        duplicate_ppm in 0u32..300_000,
        jitter_ms in 0u64..80,
        crossed in any::<bool>(),
    ) {
        let mut mesh = lossy_mesh(seed, loss_ppm, duplicate_ppm, jitter_ms);
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
        assert_switched(&mesh, &la, &lb)?;
    }
}

/// Two chassis on a network losing, duplicating and delaying datagrams as given, with
/// Curve25519 to keep each case fast (no property checked here depends on the group).
fn lossy_mesh(seed: u64, loss_ppm: u32, duplicate_ppm: u32, jitter_ms: u64) -> Mesh {
    let fast = |p: &mut PeerConfig| p.ike_proposals[0].ke = vec![KeGroup::CURVE25519];
    let conditions = Conditions {
        loss_ppm,
        duplicate_ppm,
        jitter: Duration::from_millis(jitter_ms),
        mtu: 9000,
        ..Conditions::default()
    };
    Mesh::with(seed, conditions, fast, fast)
}

/// One line per event, for failure messages.
fn summary(events: &[Event]) -> String {
    let line = |e: &Event| match e {
        Event::IkeSaUp { ike_sa, .. } => format!("up {}", ike_sa.0),
        Event::IkeSaDown { ike_sa, reason, .. } => format!("down {} {reason:?}", ike_sa.0),
        Event::IkeSaRekeyed {
            old_ike_sa,
            new_ike_sa,
            ..
        } => {
            format!("ike rekeyed {} -> {}", old_ike_sa.0, new_ike_sa.0)
        }
        Event::ChildSaInstall {
            ike_sa,
            name,
            spi_in,
            spi_out,
            ..
        } => {
            format!("install {name} {spi_in:x}/{spi_out:x} on {}", ike_sa.0)
        }
        Event::ChildSaRekeyed {
            old_spi_in,
            new_spi_in,
            ..
        } => {
            format!("rekeyed {old_spi_in:x} -> {new_spi_in:x}")
        }
        Event::ChildSaDelete { spi_in, .. } => format!("delete {spi_in:x}"),
        other => format!("{other:?}"),
    };
    events.iter().map(line).collect::<Vec<_>>().join("\n  ")
}

/// A command the schedule gives one chassis at some instant.
#[derive(Debug, Clone)]
enum Command {
    /// Rekey the `which`-th CHILD_SA (modulo how many there are).
    RekeyChild { which: usize },
    /// Rekey the IKE SA.
    RekeyIke,
    /// Reauthenticate.
    Reauthenticate,
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => any::<usize>().prop_map(|which| Command::RekeyChild { which }),
        2 => Just(Command::RekeyIke),
        1 => Just(Command::Reauthenticate),
    ]
}

/// Gives `command` to `node` (errors such as "not established yet" are part of the game).
fn apply(mesh: &mut Mesh, node: NodeId, peer: PeerId, command: &Command) {
    let now = mesh.net.now();
    let endpoint = &mut mesh.net.node_mut(node).endpoint;
    let _ = match command {
        Command::RekeyChild { which } => {
            let spis: Vec<u32> = endpoint
                .ike_sas
                .values()
                .filter_map(|sa| match &sa.state {
                    crate::engine::ike_sa::State::Established(e) => Some(e),
                    _ => None,
                })
                .flat_map(|e| e.children.iter().map(|c| c.spi_in))
                .collect();
            match spis.get(which % spis.len().max(1)) {
                Some(&spi) => endpoint.rekey_child(now, peer, spi),
                None => Ok(()),
            }
        }
        Command::RekeyIke => endpoint.rekey_ike(now, peer),
        Command::Reauthenticate => endpoint.reauthenticate(now, peer),
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(96)))]

    #[test]
    fn after_rekeys_and_reauthentications_on_a_bad_network_both_sides_agree(
        seed in any::<u64>(),
        loss_ppm in 0u32..250_000,
        duplicate_ppm in 0u32..200_000,
        jitter_ms in 0u64..80,
        schedule in prop::collection::vec((0u64..40_000, any::<bool>(), command()), 1..8),
    ) {
        let mut mesh = lossy_mesh(seed, loss_ppm, duplicate_ppm, jitter_ms);
        mesh.initiate_from_a();
        mesh.run(Duration::from_secs(5));

        // Commands at their instants (both chassis may act at the same one).
        let mut schedule = schedule;
        schedule.sort_by_key(|(at, _, _)| *at);
        let mut elapsed = 0;
        for (at, from_a, command) in &schedule {
            mesh.net.advance(Duration::from_millis(at - elapsed), STEPS);
            elapsed = *at;
            let (node, peer) = if *from_a {
                (mesh.a, mesh.a_to_b)
            } else {
                (mesh.b, mesh.b_to_a)
            };
            apply(&mut mesh, node, peer, command);
        }
        mesh.net.advance(Duration::from_secs(20), STEPS);

        // The network heals; grace periods, retries and liveness checks run out.
        mesh.net.conditions = Conditions { mtu: 9000, ..Conditions::default() };
        mesh.net.advance(Duration::from_secs(400), STEPS);

        let (ea, eb) = (mesh.events(mesh.a), mesh.events(mesh.b));
        let (la, lb) = (live_children(&ea), live_children(&eb));
        let ids_a: Vec<IkeSaId> = mesh.net.node(mesh.a).endpoint.ike_sas().collect();
        let ids_b: Vec<IkeSaId> = mesh.net.node(mesh.b).endpoint.ike_sas().collect();
        // At most one IKE SA each, and both or neither; the same one (SPIs and keys).
        prop_assert!(ids_a.len() <= 1 && ids_b.len() <= 1, "a\n  {}\nb\n  {}", summary(&ea), summary(&eb));
        prop_assert_eq!(ids_a.len(), ids_b.len(), "a\n  {}\nb\n  {}", summary(&ea), summary(&eb));
        if let ([a], [b]) = (ids_a.as_slice(), ids_b.as_slice()) {
            let (na, nb) = (&mesh.net.node(mesh.a).endpoint, &mesh.net.node(mesh.b).endpoint);
            let (ia, ib) = (na.ike_sa_info(*a).unwrap(), nb.ike_sa_info(*b).unwrap());
            prop_assert_eq!((ia.spi_i, ia.spi_r), (ib.spi_i, ib.spi_r));
            prop_assert!(na.ike_sa_keys(*a) == nb.ike_sa_keys(*b));
        }
        // CHILD_SAs on both sides or neither, with crossed SPIs and keys, one per
        // configuration.
        prop_assert_eq!(la.len(), lb.len(), "a\n  {}\nb\n  {}", summary(&ea), summary(&eb));
        prop_assert!(la.len() <= 2, "a {:?}", la.keys().collect::<Vec<_>>());
        for (spi_in, install) in &la {
            let Event::ChildSaInstall { spi_out, .. } = install else { unreachable!() };
            let other = lb.get(spi_out);
            prop_assert!(other.is_some(), "no partner for {:x}", spi_in);
            prop_assert!(installed_pairs_match(install, other.unwrap()));
        }
        assert_switched(&mesh, &la, &lb)?;
    }
}

/// RFC 7296 §2.8 throughout and at the end: no chassis ever sent on an SA its peer had not
/// installed yet (checked after every step), and every CHILD_SA left has its outbound SA
/// installed (none held back forever).
fn assert_switched(
    mesh: &Mesh,
    la: &BTreeMap<u32, Event>,
    lb: &BTreeMap<u32, Event>,
) -> Result<(), TestCaseError> {
    prop_assert!(mesh.violations().is_empty(), "{:?}", mesh.violations());
    for (node, live) in [(mesh.a, la), (mesh.b, lb)] {
        let kernel = &mesh.net.node(node).kernel;
        for spi_in in live.keys() {
            prop_assert!(
                !kernel.is_pending(*spi_in),
                "outbound SA of {:x} still held",
                spi_in
            );
        }
        prop_assert_eq!(kernel.pending_count(), 0);
    }
    Ok(())
}
