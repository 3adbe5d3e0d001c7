//! Which kernel objects are ours: those carrying a reqid from our range (and our mark, when one
//! is configured). Dumps and cleanup only ever see and touch these; we never flush.

use std::ops::RangeInclusive;

use crate::error::{Error, ObjectKind, Result};
use crate::policy::{Policy, PolicyInfo};
use crate::state::{Mark, State, StateInfo};

/// Our ownership tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The reqids we hand out; every state and policy we create carries one.
    pub reqids: RangeInclusive<u32>,
    /// A mark every object of ours carries, when configured.
    pub mark: Option<Mark>,
}

impl Ownership {
    /// Ownership by reqid range only.
    pub fn reqids(reqids: RangeInclusive<u32>) -> Ownership {
        Ownership { reqids, mark: None }
    }

    fn mark_matches(&self, mark: Option<Mark>) -> bool {
        self.mark.is_none() || self.mark == mark
    }

    /// True if a reported state is ours.
    pub fn owns_state(&self, s: &StateInfo) -> bool {
        self.reqids.contains(&s.reqid) && self.mark_matches(s.id.mark)
    }

    /// True if a reported policy is ours: one of its templates carries our reqid.
    pub fn owns_policy(&self, p: &PolicyInfo) -> bool {
        p.policy.reqids().any(|r| self.reqids.contains(&r)) && self.mark_matches(p.policy.id.mark)
    }

    /// Refuses to program a state that would not be recognised as ours later.
    pub fn check_state(&self, s: &State) -> Result<()> {
        self.check_reqid(ObjectKind::State, s.reqid)
    }

    /// Refuses to program a policy that would not be recognised as ours later.
    pub fn check_policy(&self, p: &Policy) -> Result<()> {
        let reqid = p.reqids().next().unwrap_or(0);
        if p.reqids().any(|r| self.reqids.contains(&r)) {
            return Ok(());
        }
        self.check_reqid(ObjectKind::Policy, reqid)
    }

    pub(crate) fn check_reqid(&self, kind: ObjectKind, reqid: u32) -> Result<()> {
        if self.reqids.contains(&reqid) {
            Ok(())
        } else {
            Err(Error::NotOwned {
                kind,
                reqid,
                min: *self.reqids.start(),
                max: *self.reqids.end(),
            })
        }
    }
}
