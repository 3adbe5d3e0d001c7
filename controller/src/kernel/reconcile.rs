//! `KernelSync`: dumps our kernel objects, plans, applies the plan in one batch and reports
//! what failed and when to retry. Level-triggered: call it on every change of the desired
//! set, on XFRM events ([`crate::kernel::needs_reconcile`]), on the retry delay it returns, and
//! periodically.

use std::collections::HashSet;
use std::time::Duration;

use xfrm::{Change, CleanupReport, Kernel, PolicyId, StateId};

use crate::kernel::backoff::Backoff;
use crate::kernel::error::{PlanError, SyncError};
use crate::kernel::plan::{plan, Actual, Desired};
use crate::kernel::KernelConfig;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Added (NEWSA / NEWPOLICY).
    Add,
    /// Replaced in place (UPDSA / UPDPOLICY).
    Update,
    /// Deleted.
    Delete,
}

/// The kernel object a change was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef {
    /// A state.
    State(StateId),
    /// A policy.
    Policy(PolicyId),
}

/// A change the kernel refused.
#[derive(Debug)]
pub struct ChangeFailure {
    /// What was attempted.
    pub operation: Operation,
    /// On which object.
    pub object: ObjectRef,
    /// The kernel's answer.
    pub error: xfrm::Error,
}

/// The outcome of one reconcile.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// States added (including larval states filled in).
    pub states_added: usize,
    /// States replaced in place.
    pub states_updated: usize,
    /// States deleted.
    pub states_deleted: usize,
    /// Policies added.
    pub policies_added: usize,
    /// Policies replaced in place.
    pub policies_updated: usize,
    /// Policies deleted.
    pub policies_deleted: usize,
    /// Adopted states kept forwarding, not yet replaced.
    pub kept_adopted: usize,
    /// Changes the kernel refused; they are retried by the next reconcile.
    pub failures: Vec<ChangeFailure>,
    /// Parts of the desired set that could not be programmed at all.
    pub problems: Vec<PlanError>,
    /// When to reconcile again because of failures; `None` when everything was applied.
    pub retry_after: Option<Duration>,
}

impl ReconcileReport {
    /// Number of changes applied.
    pub fn applied(&self) -> usize {
        self.states_added
            + self.states_updated
            + self.states_deleted
            + self.policies_added
            + self.policies_updated
            + self.policies_deleted
    }

    /// True when the kernel now equals the desired set.
    pub fn converged(&self) -> bool {
        self.failures.is_empty() && self.problems.is_empty()
    }
}

fn describe(change: &Change) -> (Operation, ObjectRef) {
    match change {
        Change::AddState(s) => (Operation::Add, ObjectRef::State(s.id)),
        Change::UpdateState(s) => (Operation::Update, ObjectRef::State(s.id)),
        Change::DeleteState(id) => (Operation::Delete, ObjectRef::State(*id)),
        Change::AddPolicy(p) => (Operation::Add, ObjectRef::Policy(p.id)),
        Change::UpdatePolicy(p) => (Operation::Update, ObjectRef::Policy(p.id)),
        Change::DeletePolicy(id) => (Operation::Delete, ObjectRef::Policy(*id)),
    }
}

/// Keeps the kernel's XFRM objects of one network namespace equal to a desired set.
pub struct KernelSync {
    kernel: Kernel,
    config: KernelConfig,
    adopted: HashSet<StateId>,
    backoff: Backoff,
    retry_after: Option<Duration>,
}

impl KernelSync {
    /// Connects in the calling thread's network namespace and adopts the states of ours that
    /// are already installed (a previous run's), so they keep forwarding until replaced.
    pub async fn start(config: KernelConfig) -> Result<KernelSync, SyncError> {
        let kernel = Kernel::connect(config.ownership())
            .await
            .map_err(SyncError::Connect)?;
        let states = kernel
            .dump_states()
            .await
            .map_err(|source| SyncError::Dump {
                what: "states",
                source,
            })?;
        let adopted: HashSet<StateId> = states
            .iter()
            .filter(|s| s.algorithm.is_some())
            .map(|s| s.id)
            .collect();
        if !adopted.is_empty() {
            tracing::info!(
                states = adopted.len(),
                "adopting installed states until replaced"
            );
        }
        Ok(KernelSync {
            kernel,
            config,
            adopted,
            backoff: Backoff::default(),
            retry_after: None,
        })
    }

    /// The connection, for what the kernel layer does not cover (SPI allocation, counters,
    /// event subscription).
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The configuration.
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    /// Adopted states not yet replaced or removed.
    pub fn adopted(&self) -> &HashSet<StateId> {
        &self.adopted
    }

    /// Dumps our objects, plans the minimal changes towards `desired` and applies them in one
    /// batch. Refused changes are reported with a retry delay (exponential backoff over
    /// consecutive reconciles with failures); the error is for a failed dump or socket only,
    /// and also advances the backoff ([`KernelSync::retry_after`]).
    pub async fn reconcile(&mut self, desired: &Desired) -> Result<ReconcileReport, SyncError> {
        let actual = match self.dump().await {
            Ok(a) => a,
            Err(e) => {
                self.retry_after = Some(self.backoff.failed());
                return Err(e);
            }
        };
        let planned = plan(&self.config, desired, &actual, &self.adopted);
        let results = match self.kernel.apply(&planned.changes).await {
            Ok(r) => r,
            Err(e) => {
                self.retry_after = Some(self.backoff.failed());
                return Err(SyncError::Apply(e));
            }
        };

        let mut report = ReconcileReport {
            kept_adopted: planned.kept_adopted.len(),
            problems: planned.problems,
            ..ReconcileReport::default()
        };
        for (change, result) in planned.changes.iter().zip(results) {
            let (operation, object) = describe(change);
            match result {
                Ok(()) => {}
                // Gone already: what a delete wanted.
                Err(xfrm::Error::NotFound { .. }) if operation == Operation::Delete => {}
                Err(error) => {
                    tracing::warn!(?operation, ?object, %error, "kernel refused a change");
                    report.failures.push(ChangeFailure {
                        operation,
                        object,
                        error,
                    });
                    continue;
                }
            }
            if let (Operation::Delete, ObjectRef::State(id)) = (operation, object) {
                self.adopted.remove(&id);
            }
            let counter = match (operation, object) {
                (Operation::Add, ObjectRef::State(_)) => &mut report.states_added,
                (Operation::Update, ObjectRef::State(_)) => &mut report.states_updated,
                (Operation::Delete, ObjectRef::State(_)) => &mut report.states_deleted,
                (Operation::Add, ObjectRef::Policy(_)) => &mut report.policies_added,
                (Operation::Update, ObjectRef::Policy(_)) => &mut report.policies_updated,
                (Operation::Delete, ObjectRef::Policy(_)) => &mut report.policies_deleted,
            };
            *counter += 1;
        }
        // Adopted states that vanished (flushed, expired) are no longer adopted.
        let present: HashSet<StateId> = actual.states.iter().map(|s| s.id).collect();
        self.adopted.retain(|id| present.contains(id));

        if report.failures.is_empty() {
            self.backoff.succeeded();
        } else {
            report.retry_after = Some(self.backoff.failed());
        }
        self.retry_after = report.retry_after;
        tracing::debug!(
            applied = report.applied(),
            failed = report.failures.len(),
            problems = report.problems.len(),
            kept_adopted = report.kept_adopted,
            "kernel reconciled"
        );
        Ok(report)
    }

    /// When to reconcile again because the last reconcile failed (refused changes or an
    /// error); `None` after one that converged.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Removes every state and policy of ours (IPsec switched off in the Southbound DB); other
    /// users' objects are untouched.
    pub async fn remove_all(&mut self) -> Result<CleanupReport, SyncError> {
        let report = self.kernel.cleanup().await.map_err(SyncError::Apply)?;
        self.adopted.clear();
        tracing::info!(
            states = report.states,
            policies = report.policies,
            "removed all our states and policies"
        );
        Ok(report)
    }

    async fn dump(&self) -> Result<Actual, SyncError> {
        let policies = self
            .kernel
            .dump_policies()
            .await
            .map_err(|source| SyncError::Dump {
                what: "policies",
                source,
            })?;
        let states = self
            .kernel
            .dump_states()
            .await
            .map_err(|source| SyncError::Dump {
                what: "states",
                source,
            })?;
        Ok(Actual { states, policies })
    }
}
