//! Pure planning: from the desired pairs and CHILD_SAs and a dump of our kernel objects, the
//! minimal ordered list of changes that makes the kernel equal to the desired set.
//!
//! The order is make-before-break: states are added first, then policies added or updated,
//! then policies deleted, and states deleted last, so a rekey's new state carries traffic
//! before the old one disappears and a pair's policies only go after its states are no longer
//! needed by anything else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use xfrm::{Change, Policy, PolicyId, PolicyInfo, State, StateId, StateInfo};

use crate::kernel::child_sa::ChildSa;
use crate::kernel::error::PlanError;
use crate::kernel::pair::{ProtectedPair, SaDirection};
use crate::kernel::KernelConfig;

/// What the controller wants in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Every pair to protect: its policies exist whether or not an SA is up.
    pub pairs: Vec<ProtectedPair>,
    /// Every SA to install, for pairs of `pairs`.
    pub child_sas: Vec<ChildSa>,
}

/// What the kernel holds of ours (from `Kernel::dump_states` and `Kernel::dump_policies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actual {
    /// Our states.
    pub states: Vec<StateInfo>,
    /// Our policies.
    pub policies: Vec<PolicyInfo>,
}

/// The outcome of planning.
#[derive(Debug, Default)]
pub struct Plan {
    /// Changes to apply, in order.
    pub changes: Vec<Change>,
    /// Parts of the desired set that were skipped, and why.
    pub problems: Vec<PlanError>,
    /// Adopted states that are not desired but stay, forwarding, until replaced.
    pub kept_adopted: Vec<StateId>,
}

/// How an installed state compares with the desired one.
enum StateMatch {
    Same,
    /// Only what `XFRM_MSG_UPDSA` can change in place (lifetimes, encapsulation ports), or the
    /// installed state is larval (an allocated SPI waiting for its keys).
    Update,
    /// Something the kernel cannot change in place: delete, then add.
    Replace,
}

fn compare(want: &State, have: &StateInfo) -> StateMatch {
    let Some(have_alg) = have.algorithm.as_deref() else {
        return StateMatch::Update;
    };
    let same_sa = have.reqid == want.reqid
        && have.mode == want.mode
        && have_alg == want.algorithm.kernel_name()
        && Some(have.selector) == want.selector
        && have.replay_window == want.replay_window
        && have.esn == want.esn;
    // Limitation: dumps carry no keys, so a state with the same SPI but other keys is not
    // noticed; the IKE layer never reuses an SPI with new keys.
    if !same_sa {
        StateMatch::Replace
    } else if have.lifetimes != want.lifetimes || have.encap != want.encap {
        StateMatch::Update
    } else {
        StateMatch::Same
    }
}

/// The pairs that can be programmed, keyed by index, and their policies in pair order.
fn desired_pairs(
    config: &KernelConfig,
    pairs: &[ProtectedPair],
    problems: &mut Vec<PlanError>,
) -> (BTreeMap<u32, ProtectedPair>, Vec<Policy>) {
    let mut by_index: BTreeMap<u32, ProtectedPair> = BTreeMap::new();
    for p in pairs {
        if let Some(first) = by_index.get(&p.index) {
            if first != p {
                problems.push(PlanError::DuplicatePairIndex {
                    index: p.index,
                    first: first.remote,
                    second: p.remote,
                });
            }
            continue;
        }
        by_index.insert(p.index, *p);
    }
    let mut policies = Vec::with_capacity(by_index.len().saturating_mul(4));
    by_index.retain(|_, p| match p.policies(config) {
        Ok(ps) => {
            policies.extend(ps);
            true
        }
        Err(e) => {
            problems.push(e);
            false
        }
    });
    (by_index, policies)
}

/// The states to install, in the order given.
fn desired_states(
    config: &KernelConfig,
    pairs: &BTreeMap<u32, ProtectedPair>,
    child_sas: &[ChildSa],
    problems: &mut Vec<PlanError>,
) -> Vec<State> {
    let mut states = Vec::with_capacity(child_sas.len());
    // The kernel identifies a state by destination and SPI (and protocol and mark).
    let mut seen: HashMap<(IpAddr, u32), u32> = HashMap::with_capacity(child_sas.len());
    for sa in child_sas {
        let Some(pair) = pairs.get(&sa.pair) else {
            problems.push(PlanError::UnknownPair {
                pair: sa.pair,
                spi: sa.spi,
            });
            continue;
        };
        let state = match sa.to_state(pair, config) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if let Some(first) = seen.insert((state.id.dst, state.id.spi), sa.pair) {
            problems.push(PlanError::DuplicateState {
                first,
                second: sa.pair,
                spi: sa.spi,
            });
            continue;
        }
        states.push(state);
    }
    states
}

/// True when an adopted state still has a place: its reqid belongs to a desired pair whose
/// encap IPs it runs between, and no desired state of that CHILD_SA and direction replaces it.
fn adoption_holds(
    config: &KernelConfig,
    have: &StateInfo,
    pairs: &BTreeMap<u32, ProtectedPair>,
    replaced: &HashSet<(u32, IpAddr, IpAddr)>,
) -> bool {
    let Some((index, _child)) = config.child_of_reqid(have.reqid) else {
        return false;
    };
    let Some(pair) = pairs.get(&index) else {
        return false;
    };
    let runs_between = SaDirection::BOTH
        .iter()
        .any(|d| pair.endpoints(*d) == (have.id.src, have.id.dst));
    runs_between && !replaced.contains(&(have.reqid, have.id.src, have.id.dst))
}

/// Plans the changes that make `actual` equal to `desired`. `adopted` names states found at
/// start that are kept until replaced (see the module documentation of `kernel`).
pub fn plan(
    config: &KernelConfig,
    desired: &Desired,
    actual: &Actual,
    adopted: &HashSet<StateId>,
) -> Plan {
    let mut out = Plan::default();
    let (pairs, policies) = desired_pairs(config, &desired.pairs, &mut out.problems);
    let states = desired_states(config, &pairs, &desired.child_sas, &mut out.problems);

    // States: add the missing, update or replace the changed.
    let have_states: HashMap<StateId, &StateInfo> =
        actual.states.iter().map(|s| (s.id, s)).collect();
    let mut add_states = Vec::new();
    for want in &states {
        match have_states.get(&want.id).map(|have| compare(want, have)) {
            // Limitation: a state deleted behind our back (e.g. `ip xfrm state flush`) comes
            // back with its sequence numbers restarted, so the peer drops the first packets on
            // an outbound SA as replays until they pass what it saw; the IKE layer should
            // rekey on a flush.
            None => add_states.push(Change::AddState(want.clone())),
            Some(StateMatch::Same) => {}
            Some(StateMatch::Update) => add_states.push(Change::UpdateState(want.clone())),
            Some(StateMatch::Replace) => {
                // The same SPI cannot hold two states: this one has to go first.
                add_states.push(Change::DeleteState(want.id));
                add_states.push(Change::AddState(want.clone()));
            }
        }
    }

    // States not desired: larval ones are SPI reservations of the IKE layer (the kernel
    // expires them); adopted ones stay until replaced; the rest go, last.
    let want_ids: HashSet<StateId> = states.iter().map(|s| s.id).collect();
    let replaced: HashSet<(u32, IpAddr, IpAddr)> = states
        .iter()
        .map(|s| (s.reqid, s.id.src, s.id.dst))
        .collect();
    let mut delete_states = Vec::new();
    for have in &actual.states {
        if want_ids.contains(&have.id) || have.algorithm.is_none() {
            continue;
        }
        if adopted.contains(&have.id) && adoption_holds(config, have, &pairs, &replaced) {
            out.kept_adopted.push(have.id);
            continue;
        }
        delete_states.push(Change::DeleteState(have.id));
    }

    // Policies: add the missing (NEWPOLICY, so a foreign policy with the same selector is
    // reported as a conflict instead of replaced), update ours that differ, delete the rest.
    let have_policies: HashMap<PolicyId, &PolicyInfo> =
        actual.policies.iter().map(|p| (p.policy.id, p)).collect();
    let mut set_policies = Vec::new();
    for want in &policies {
        match have_policies.get(&want.id) {
            None => set_policies.push(Change::AddPolicy(want.clone())),
            Some(have) if have.policy != *want => {
                set_policies.push(Change::UpdatePolicy(want.clone()))
            }
            Some(_) => {}
        }
    }
    let want_policy_ids: HashSet<PolicyId> = policies.iter().map(|p| p.id).collect();
    let delete_policies = actual
        .policies
        .iter()
        .filter(|p| !want_policy_ids.contains(&p.policy.id))
        .map(|p| Change::DeletePolicy(p.policy.id));

    out.changes = add_states;
    out.changes.extend(set_policies);
    out.changes.extend(delete_policies);
    out.changes.extend(delete_states);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::child_sa::AeadAlgorithm;
    use crate::kernel::pair::{ChildKind, SaDirection};
    use xfrm::{Key, Lifetimes, Limits};

    fn config() -> KernelConfig {
        KernelConfig {
            reqids: 1000..=1999,
            ..KernelConfig::default()
        }
    }

    fn pair(n: u8, index: u32) -> ProtectedPair {
        ProtectedPair::geneve(
            "192.0.2.1".parse().unwrap(),
            format!("192.0.2.{}", 10 + n).parse().unwrap(),
            index,
        )
    }

    fn sa(pair: u32, child: ChildKind, dir: SaDirection, spi: u32) -> ChildSa {
        ChildSa {
            pair,
            child,
            dir,
            spi,
            algorithm: AeadAlgorithm::AesGcm128,
            key: Key::new(&[spi as u8; 20]),
            selector: None,
            encap: None,
            lifetimes: Lifetimes::default(),
            replay_window: 128,
            esn: true,
        }
    }

    /// The four SAs of a pair's two CHILD_SAs, SPIs from `base`.
    fn sas(pair: u32, base: u32) -> Vec<ChildSa> {
        let mut v = Vec::new();
        let mut spi = base;
        for child in ChildKind::BOTH {
            for dir in SaDirection::BOTH {
                v.push(sa(pair, child, dir, spi));
                spi += 1;
            }
        }
        v
    }

    fn info_of(s: &State) -> StateInfo {
        StateInfo {
            id: s.id,
            reqid: s.reqid,
            mode: s.mode,
            algorithm: Some(s.algorithm.kernel_name().to_owned()),
            selector: s.selector.unwrap(),
            replay_window: s.replay_window,
            esn: s.esn,
            sequence: None,
            encap: s.encap,
            if_id: s.if_id,
            lifetimes: s.lifetimes,
            usage: Default::default(),
            counters: Default::default(),
        }
    }

    /// What the kernel would hold after `changes`, as a perfect kernel.
    fn apply(actual: &mut Actual, changes: &[Change]) {
        for c in changes {
            match c {
                Change::AddState(s) | Change::UpdateState(s) => {
                    actual.states.retain(|h| h.id != s.id);
                    actual.states.push(info_of(s));
                }
                Change::DeleteState(id) => actual.states.retain(|h| h.id != *id),
                Change::AddPolicy(p) | Change::UpdatePolicy(p) => {
                    actual.policies.retain(|h| h.policy.id != p.id);
                    actual.policies.push(PolicyInfo {
                        policy: p.clone(),
                        index: 0,
                    });
                }
                Change::DeletePolicy(id) => actual.policies.retain(|h| h.policy.id != *id),
            }
        }
    }

    fn converge(desired: &Desired, actual: &mut Actual, adopted: &HashSet<StateId>) -> Plan {
        let p = plan(&config(), desired, actual, adopted);
        apply(actual, &p.changes);
        p
    }

    fn kinds(changes: &[Change]) -> Vec<&'static str> {
        changes
            .iter()
            .map(|c| match c {
                Change::AddState(_) => "add-state",
                Change::UpdateState(_) => "update-state",
                Change::DeleteState(_) => "delete-state",
                Change::AddPolicy(_) => "add-policy",
                Change::UpdatePolicy(_) => "update-policy",
                Change::DeletePolicy(_) => "delete-policy",
            })
            .collect()
    }

    #[test]
    fn new_pairs_get_their_four_policies_and_a_second_plan_is_empty() {
        let desired = Desired {
            pairs: vec![pair(1, 0), pair(2, 1)],
            child_sas: vec![],
        };
        let mut actual = Actual::default();
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["add-policy"; 8]);
        assert!(p.problems.is_empty());
        assert!(plan(&config(), &desired, &actual, &HashSet::new())
            .changes
            .is_empty());
    }

    #[test]
    fn child_sas_are_added_before_policies_and_then_stable() {
        let desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(
            kinds(&p.changes),
            [vec!["add-state"; 4], vec!["add-policy"; 4]].concat()
        );
        let reqids: Vec<u32> = actual.states.iter().map(|s| s.reqid).collect();
        assert_eq!(reqids, vec![1000, 1000, 1001, 1001]);
        assert!(plan(&config(), &desired, &actual, &HashSet::new())
            .changes
            .is_empty());
    }

    #[test]
    fn rekey_adds_new_states_and_deletes_old_ones_last() {
        let mut desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());

        // Old and new side by side: only additions.
        desired.child_sas.extend(sas(0, 0x200));
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["add-state"; 4]);

        // Old removed from the desired set: only its deletions.
        desired.child_sas.drain(..4);
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["delete-state"; 4]);
        let spis: Vec<u32> = actual.states.iter().map(|s| s.id.spi).collect();
        assert_eq!(spis, vec![0x200, 0x201, 0x202, 0x203]);
    }

    #[test]
    fn responder_rekey_keeps_the_old_outbound_state_until_the_held_one_is_ready() {
        use crate::kernel::PendingOutbound;
        let mut desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        let old_out = 0x101;

        // The new CHILD_SA as the rekey's responder: the inbound state at once, the outbound
        // one held; the rekey reported.
        let mut pending = PendingOutbound::default();
        desired
            .child_sas
            .push(sa(0, ChildKind::Out, SaDirection::Inbound, 0x200));
        pending.hold(0x200, sa(0, ChildKind::Out, SaDirection::Outbound, 0x201));
        pending.rekeyed(&mut desired.child_sas, old_out, 0x200);
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["add-state"]);

        // Another reconcile pass changes nothing: the old outbound state stays, the held one
        // is still held.
        assert!(plan(&config(), &desired, &actual, &HashSet::new())
            .changes
            .is_empty());
        assert!(pending.is_held(0x200));
        assert!(actual.states.iter().any(|s| s.id.spi == old_out));

        // Ready: the new outbound state is added, then the old one deleted.
        assert!(pending.ready(&mut desired.child_sas, 0x200, 0x201));
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["add-state", "delete-state"]);
        assert!(!actual.states.iter().any(|s| s.id.spi == old_out));
    }

    #[test]
    fn rekey_in_one_step_orders_additions_before_deletions() {
        let mut desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        desired.child_sas = sas(0, 0x200);
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(
            kinds(&p.changes),
            [vec!["add-state"; 4], vec!["delete-state"; 4]].concat()
        );
    }

    #[test]
    fn removing_a_pair_deletes_exactly_its_policies_and_states() {
        let mut desired = Desired {
            pairs: vec![pair(1, 0), pair(2, 1)],
            child_sas: [sas(0, 0x100), sas(1, 0x300)].concat(),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        let keep_policies: Vec<_> = actual
            .policies
            .iter()
            .filter(|p| {
                p.policy.id.selector.dst.addr == pair(2, 1).remote
                    || p.policy.id.selector.src.addr == pair(2, 1).remote
            })
            .cloned()
            .collect();

        desired.pairs.remove(0);
        desired.child_sas.drain(..4);
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(
            kinds(&p.changes),
            [vec!["delete-policy"; 4], vec!["delete-state"; 4]].concat()
        );
        assert_eq!(actual.policies, keep_policies);
        assert!(actual.states.iter().all(|s| s.reqid >= 1002));
        assert_eq!(actual.states.len(), 4);
    }

    #[test]
    fn flushed_states_are_all_added_back_and_policies_left_alone() {
        let desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        actual.states.clear();
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["add-state"; 4]);
    }

    #[test]
    fn adopted_states_keep_forwarding_until_the_same_child_and_direction_is_replaced() {
        let old = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&old, &mut actual, &HashSet::new());
        let adopted: HashSet<StateId> = actual.states.iter().map(|s| s.id).collect();

        // After a restart: pairs known, no CHILD_SA negotiated yet.
        let mut desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: vec![],
        };
        let p = converge(&desired, &mut actual, &adopted);
        assert!(p.changes.is_empty(), "{:?}", kinds(&p.changes));
        assert_eq!(p.kept_adopted.len(), 4);

        // The "out" child is renegotiated: its two old states go, the "in" child's stay.
        desired.child_sas = sas(0, 0x200).into_iter().take(2).collect();
        let p = converge(&desired, &mut actual, &adopted);
        assert_eq!(
            kinds(&p.changes),
            [vec!["add-state"; 2], vec!["delete-state"; 2]].concat()
        );
        assert_eq!(p.kept_adopted.len(), 2);
        let mut spis: Vec<u32> = actual.states.iter().map(|s| s.id.spi).collect();
        spis.sort();
        assert_eq!(spis, vec![0x102, 0x103, 0x200, 0x201]);
    }

    #[test]
    fn adopted_states_of_a_pair_that_left_are_deleted() {
        let old = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&old, &mut actual, &HashSet::new());
        let adopted: HashSet<StateId> = actual.states.iter().map(|s| s.id).collect();
        // The index now names another pair: the old states run between other addresses.
        let p = converge(
            &Desired {
                pairs: vec![pair(2, 0)],
                child_sas: vec![],
            },
            &mut actual,
            &adopted,
        );
        assert!(p.kept_adopted.is_empty());
        assert!(actual.states.is_empty());
        assert_eq!(actual.policies.len(), 4);
    }

    #[test]
    fn larval_states_are_left_alone_and_filled_in_when_desired() {
        let desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: vec![],
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        let inbound = sa(0, ChildKind::Out, SaDirection::Inbound, 0x777);
        let mut larval = info_of(&inbound.to_state(&pair(1, 0), &config()).unwrap());
        larval.algorithm = None;
        actual.states.push(larval);
        assert!(plan(&config(), &desired, &actual, &HashSet::new())
            .changes
            .is_empty());

        let desired = Desired {
            child_sas: vec![inbound],
            ..desired
        };
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["update-state"]);
    }

    #[test]
    fn changed_lifetimes_update_in_place_and_changed_algorithm_replaces() {
        let mut desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: sas(0, 0x100),
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        desired.child_sas[0].lifetimes.hard = Limits {
            add_seconds: Some(3600),
            ..Limits::default()
        };
        desired.child_sas[1].algorithm = AeadAlgorithm::ChaCha20Poly1305;
        desired.child_sas[1].key = Key::new(&[1; 36]);
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(
            kinds(&p.changes),
            vec!["update-state", "delete-state", "add-state"]
        );
    }

    #[test]
    fn changed_priority_updates_the_policy() {
        let desired = Desired {
            pairs: vec![pair(1, 0)],
            child_sas: vec![],
        };
        let mut actual = Actual::default();
        converge(&desired, &mut actual, &HashSet::new());
        actual.policies[2].policy.priority = 5;
        let p = converge(&desired, &mut actual, &HashSet::new());
        assert_eq!(kinds(&p.changes), vec!["update-policy"]);
    }

    #[test]
    fn bad_parts_of_the_desired_set_are_reported_and_the_rest_planned() {
        let mut bad_family = pair(3, 2);
        bad_family.remote = "2001:db8::3".parse().unwrap();
        let mut wrong_key = sa(0, ChildKind::Out, SaDirection::Outbound, 0x500);
        wrong_key.key = Key::new(&[0; 19]);
        let desired = Desired {
            pairs: vec![pair(1, 0), pair(2, 0), bad_family, pair(4, 500)],
            child_sas: vec![
                wrong_key,
                sa(7, ChildKind::In, SaDirection::Inbound, 0x501),
                sa(0, ChildKind::In, SaDirection::Inbound, 0x502),
                sa(0, ChildKind::Out, SaDirection::Inbound, 0x502),
            ],
        };
        let p = plan(&config(), &desired, &Actual::default(), &HashSet::new());
        let mut names: Vec<String> = p
            .problems
            .iter()
            .map(|e| {
                format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "DuplicatePairIndex",
                "DuplicateState",
                "InvalidChildSa",
                "MixedFamilies",
                "PairIndexOutOfRange",
                "UnknownPair"
            ]
        );
        assert_eq!(
            kinds(&p.changes),
            [vec!["add-state"], vec!["add-policy"; 4]].concat()
        );
    }

    #[test]
    fn planning_is_deterministic_for_the_same_input() {
        let desired = Desired {
            pairs: (0..50).rev().map(|i| pair(i as u8, i)).collect(),
            child_sas: (0..50).flat_map(|i| sas(i, 0x1000 + i * 8)).collect(),
        };
        let a = plan(&config(), &desired, &Actual::default(), &HashSet::new());
        let b = plan(&config(), &desired, &Actual::default(), &HashSet::new());
        assert_eq!(format!("{:?}", a.changes), format!("{:?}", b.changes));
        assert_eq!(a.changes.len(), 50 * 8);
    }
}
