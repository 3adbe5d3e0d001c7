//! The controller's kernel layer: keeps the kernel's XFRM policies and states equal to what the
//! controller wants, level-triggered.
//!
//! The inputs are plain data: the [`ProtectedPair`]s of this chassis (local and remote encap
//! IP, tunnel protocol, each side's tunnel port, a stable index) and the [`ChildSa`]s the IKE layer negotiated.
//! [`plan::plan`] turns them, together with a dump of what the kernel holds, into the minimal
//! list of changes; [`KernelSync::reconcile`] dumps, plans and applies that list in one batch.
//!
//! # Policies: blocking until an SA exists
//!
//! Every protected pair gets four policies as soon as it is known, before any IKE message goes
//! out, one per direction of each of the pair's two CHILD_SAs (as ovs-monitor-ipsec configures
//! them for Geneve, where R is the remote encap's `dst_port` and L ours; both are 6081 unless
//! an Encap sets another):
//!
//! | CHILD_SA | out policy | in policy |
//! |---|---|---|
//! | "out" child | local any → remote R | remote R → local any |
//! | "in" child  | local L → remote any | remote any → local L |
//!
//! Each is an *allow* policy with one required ESP transport template carrying the child's
//! reqid. We choose this over a separate block policy because the one policy does everything
//! the design asks for over the pair's whole life, with nothing to switch:
//!
//! - Outbound, while no state with that reqid exists, the kernel cannot resolve the template:
//!   it drops the packet (`net.core.xfrm_larval_drop`, on by default) and sends an ACQUIRE, which
//!   the IKE layer can take as a hint to negotiate. Nothing leaves in plaintext.
//! - Inbound, a required template rejects every packet that did not arrive through an ESP state
//!   with that reqid, so plaintext tunnel packets from the peer are dropped.
//! - Once a state with the reqid is added the same policy carries traffic through it; a rekey
//!   adds a state with the same reqid (the kernel prefers the newest outbound state) and then
//!   deletes the old one, so the policy never changes and there is no gap.
//!
//! A pure block policy would also drop, but it would have to be replaced by an allow policy
//! when the SA arrives and put back when it goes (two windows where the wrong policy is in
//! place, and an `ip xfrm state flush` would leave an allow policy with no state, which still
//! drops, so it buys nothing) and it sends no ACQUIRE.
//!
//! # Ownership and restart
//!
//! Every object carries a reqid of [`KernelConfig::reqids`] (two per pair, see
//! [`KernelConfig::reqid`]) and the configured mark; dumps only see those, so foreign objects
//! are never touched. On start ([`KernelSync::start`]) the states already installed are
//! *adopted*: they keep forwarding, even though the IKE layer does not know them yet, until a
//! new state of the same CHILD_SA and direction is desired (then they are removed after it is
//! added) or their pair goes away.
//!
//! # Rekeying without loss
//!
//! The caller (the IKE layer) decides what is desired; for a rekey without loss it adds the new
//! inbound SA first, the new outbound SA once the peer can receive on it (held back in a
//! [`PendingOutbound`] until the engine says so), and drops the old SAs from the desired set
//! last. Within one reconcile, additions always precede deletions.
//!
//! Level-triggered also means a desired state the kernel deleted is added again: after a
//! hard expire the IKE layer drops that SA from the desired set (it rekeys at the soft one).
//! Parts of the desired set that cannot be programmed at all (a [`PlanError`]) are reported
//! and not retried; changes the kernel refused are retried with backoff.

#![warn(missing_docs)]

pub mod backoff;
pub mod child_sa;
pub mod error;
pub mod pair;
pub mod pending;
pub mod plan;
pub mod reconcile;
pub mod wake;

use std::ops::RangeInclusive;

pub use backoff::Backoff;
pub use child_sa::{AeadAlgorithm, ChildSa, UdpEncap};
pub use error::{PlanError, SyncError};
pub use pair::{ChildKind, ProtectedPair, SaDirection, TunnelProtocol};
pub use pending::PendingOutbound;
pub use plan::{plan, Actual, Desired, Plan};
pub use reconcile::{ChangeFailure, KernelSync, ObjectRef, Operation, ReconcileReport};
pub use wake::{needs_reconcile, next_wakeup, Wakeup};

/// The default reqid range: 0x4f56_0000 ("OV") onwards, 2 reqids per pair, room for 32768
/// pairs; far from the small reqids strongSwan and Libreswan hand out.
pub const DEFAULT_REQIDS: RangeInclusive<u32> = 0x4f56_0000..=0x4f56_ffff;

/// Default priority of our policies (lower wins). Our selectors name single hosts and a port,
/// so they are more specific than any catch-all an administrator would write at that level.
pub const DEFAULT_POLICY_PRIORITY: u32 = 1000;

/// Reqids per pair: one for each of its two CHILD_SAs.
pub const REQIDS_PER_PAIR: u32 = 2;

/// How the kernel layer tags and prioritises what it installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    /// Our reqid range; every state and policy carries one, and only these are ever touched.
    pub reqids: RangeInclusive<u32>,
    /// A mark every object carries, when configured (narrows ownership further).
    pub mark: Option<xfrm::Mark>,
    /// Priority of our policies.
    pub priority: u32,
}

impl Default for KernelConfig {
    fn default() -> KernelConfig {
        KernelConfig {
            reqids: DEFAULT_REQIDS,
            mark: None,
            priority: DEFAULT_POLICY_PRIORITY,
        }
    }
}

impl KernelConfig {
    /// The `xfrm` ownership tag matching this configuration.
    pub fn ownership(&self) -> xfrm::Ownership {
        xfrm::Ownership {
            reqids: self.reqids.clone(),
            mark: self.mark,
        }
    }

    /// The reqid of one CHILD_SA of pair `index`: `start + 2 * index` for the "out" child and
    /// one more for the "in" child; an error when it falls outside the range.
    pub fn reqid(&self, index: u32, child: ChildKind) -> Result<u32, PlanError> {
        let offset = index
            .checked_mul(REQIDS_PER_PAIR)
            .and_then(|o| o.checked_add(child.offset()));
        let reqid = offset.and_then(|o| self.reqids.start().checked_add(o));
        match reqid {
            Some(r) if self.reqids.contains(&r) => Ok(r),
            _ => Err(PlanError::PairIndexOutOfRange {
                index,
                max: self.max_pairs().saturating_sub(1),
            }),
        }
    }

    /// Which pair index and CHILD_SA a reqid of ours stands for.
    pub fn child_of_reqid(&self, reqid: u32) -> Option<(u32, ChildKind)> {
        if !self.reqids.contains(&reqid) {
            return None;
        }
        let offset = reqid.checked_sub(*self.reqids.start())?;
        let child = if offset % REQIDS_PER_PAIR == 0 {
            ChildKind::Out
        } else {
            ChildKind::In
        };
        Some((offset / REQIDS_PER_PAIR, child))
    }

    /// How many pairs the reqid range has room for.
    pub fn max_pairs(&self) -> u32 {
        let len = self.reqids.end().saturating_sub(*self.reqids.start());
        len.saturating_add(1) / REQIDS_PER_PAIR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reqids_of_a_pair_are_adjacent_and_map_back() {
        let c = KernelConfig {
            reqids: 100..=199,
            ..KernelConfig::default()
        };
        assert_eq!(c.reqid(0, ChildKind::Out).unwrap(), 100);
        assert_eq!(c.reqid(0, ChildKind::In).unwrap(), 101);
        assert_eq!(c.reqid(49, ChildKind::In).unwrap(), 199);
        assert_eq!(c.child_of_reqid(137), Some((18, ChildKind::In)));
        assert_eq!(c.child_of_reqid(99), None);
        assert_eq!(c.max_pairs(), 50);
    }

    #[test]
    fn pair_index_beyond_the_range_is_an_error_not_a_wrap() {
        let c = KernelConfig {
            reqids: 100..=199,
            ..KernelConfig::default()
        };
        assert!(matches!(
            c.reqid(50, ChildKind::Out),
            Err(PlanError::PairIndexOutOfRange { index: 50, max: 49 })
        ));
        assert!(c.reqid(u32::MAX, ChildKind::In).is_err());
    }
}
