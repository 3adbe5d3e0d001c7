//! `Kernel`: the typed, async entry point for programming XFRM states and policies.

use netlink_packet_xfrm::{
    policy::{DelGetMessage as PolicyDelGet, ModifyMessage as PolicyModify},
    state::{AllocSpiMessage, DelGetMessage as StateDelGet, ModifyMessage as StateModify},
    XfrmMessage, XFRM_MSG_GETPOLICY, XFRM_MSG_GETSA,
};
use tokio::sync::Mutex;

use crate::error::{Error, ObjectKind, Result};
use crate::events::Events;
use crate::ownership::Ownership;
use crate::policy::{Policy, PolicyId, PolicyInfo};
use crate::selector::Family;
use crate::socket::{KernelError, NetlinkSocket, Request};
use crate::spi::SpiRequest;
use crate::state::{State, StateId, StateInfo};
use crate::stats::StateCounters;

/// One change to the kernel's tables, for `Kernel::apply`.
#[derive(Debug, Clone)]
pub enum Change {
    /// XFRM_MSG_NEWSA: fails with `Error::Exists` if the (dst, SPI) is taken.
    AddState(State),
    /// XFRM_MSG_UPDSA: replaces a state, e.g. the larval state of an allocated SPI.
    UpdateState(State),
    /// XFRM_MSG_DELSA.
    DeleteState(StateId),
    /// XFRM_MSG_NEWPOLICY: fails with `Error::Exists` if an equal policy is installed.
    AddPolicy(Policy),
    /// XFRM_MSG_UPDPOLICY: adds or replaces.
    UpdatePolicy(Policy),
    /// XFRM_MSG_DELPOLICY.
    DeletePolicy(PolicyId),
}

/// What `Kernel::cleanup` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// States of ours deleted.
    pub states: usize,
    /// Policies of ours deleted.
    pub policies: usize,
}

/// A connection to the XFRM tables of the network namespace it was opened in.
///
/// Requests are serialised on one netlink socket; open several `Kernel`s for parallelism.
/// Every object programmed must carry a reqid of the `Ownership` range, and dumps and cleanup
/// only return and touch such objects. When the ownership has a mark, objects without a mark
/// get it.
pub struct Kernel {
    socket: Mutex<NetlinkSocket>,
    port_id: u32,
    ownership: Ownership,
}

impl Kernel {
    /// Opens the XFRM netlink socket in the calling thread's network namespace.
    pub async fn connect(ownership: Ownership) -> Result<Kernel> {
        let socket = NetlinkSocket::open(&[])?;
        Ok(Kernel {
            port_id: socket.port_id(),
            socket: Mutex::new(socket),
            ownership,
        })
    }

    /// Which objects are ours.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Our netlink port id (notifications caused by our requests carry it).
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    /// Subscribes to XFRM events in this namespace (expire, acquire, mapping, policy expire,
    /// and states and policies added, deleted or flushed by anyone).
    pub async fn subscribe(&self) -> Result<Events> {
        Events::open(self.port_id, self.ownership.clone())
    }

    /// Allocates a free inbound SPI in the request's range (XFRM_MSG_ALLOCSPI). The kernel
    /// holds it in a larval state; install the real state with `update_state`. The kernel
    /// probes random SPIs of the range, so a nearly full range may report
    /// `Error::SpiRangeExhausted` early; a failed request also leaves a larval state behind
    /// (ours, removed by `cleanup` or by the kernel's acquire timeout).
    pub async fn alloc_spi(&self, request: SpiRequest) -> Result<u32> {
        self.ownership.check_reqid(ObjectKind::Spi, request.reqid)?;
        let mut request = request;
        request.mark = request.mark.or(self.ownership.mark);
        let (spi_info, nlas) = request.to_kernel()?;
        let message = XfrmMessage::AllocSpi(AllocSpiMessage { spi_info, nlas });
        let mut outcome = self
            .one(Request {
                message,
                dump: false,
            })
            .await?;
        if let Some(e) = outcome.error.take() {
            if e.errno == libc::ENOENT {
                return Err(Error::SpiRangeExhausted {
                    min: request.range.min,
                    max: request.range.max,
                });
            }
            return Err(map_error(ObjectKind::Spi, e, None));
        }
        match outcome.replies.first() {
            Some(XfrmMessage::AddSa(m)) | Some(XfrmMessage::UpdateSa(m)) => {
                Ok(m.user_sa_info.id.spi)
            }
            Some(other) => Err(Error::UnexpectedReply {
                request: "ALLOCSPI",
                message_type: other.message_type(),
            }),
            None => Err(Error::UnexpectedReply {
                request: "ALLOCSPI",
                message_type: 0,
            }),
        }
    }

    /// Adds a state (XFRM_MSG_NEWSA).
    pub async fn add_state(&self, state: &State) -> Result<()> {
        self.apply_one(Change::AddState(state.clone())).await
    }

    /// Adds or replaces a state (XFRM_MSG_UPDSA); use it for the SPI from `alloc_spi`.
    pub async fn update_state(&self, state: &State) -> Result<()> {
        self.apply_one(Change::UpdateState(state.clone())).await
    }

    /// Deletes a state (XFRM_MSG_DELSA).
    pub async fn delete_state(&self, id: &StateId) -> Result<()> {
        self.apply_one(Change::DeleteState(*id)).await
    }

    /// Reads one state (XFRM_MSG_GETSA), with its counters.
    pub async fn get_state(&self, id: &StateId) -> Result<StateInfo> {
        let mut id = *id;
        id.mark = id.mark.or(self.ownership.mark);
        let (user_sa_id, nlas) = id.to_kernel()?;
        let message = XfrmMessage::GetSa(StateDelGet { user_sa_id, nlas });
        let mut outcome = self
            .one(Request {
                message,
                dump: false,
            })
            .await?;
        if let Some(e) = outcome.error.take() {
            return Err(map_error(ObjectKind::State, e, None));
        }
        match outcome.replies.first() {
            Some(XfrmMessage::AddSa(m)) | Some(XfrmMessage::UpdateSa(m)) => {
                Ok(StateInfo::from_kernel(&m.user_sa_info, &m.nlas))
            }
            Some(other) => Err(Error::UnexpectedReply {
                request: "GETSA",
                message_type: other.message_type(),
            }),
            None => Err(Error::UnexpectedReply {
                request: "GETSA",
                message_type: 0,
            }),
        }
    }

    /// The counters of one state.
    pub async fn counters(&self, id: &StateId) -> Result<StateCounters> {
        Ok(self.get_state(id).await?.counters)
    }

    /// Every state of ours (others' states are filtered out).
    pub async fn dump_states(&self) -> Result<Vec<StateInfo>> {
        Ok(self
            .dump(XFRM_MSG_GETSA)
            .await?
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddSa(m) | XfrmMessage::UpdateSa(m) => {
                    Some(StateInfo::from_kernel(&m.user_sa_info, &m.nlas))
                }
                _ => None,
            })
            .filter(|s| self.ownership.owns_state(s))
            .collect())
    }

    /// Adds a policy (XFRM_MSG_NEWPOLICY).
    pub async fn add_policy(&self, policy: &Policy) -> Result<()> {
        self.apply_one(Change::AddPolicy(policy.clone())).await
    }

    /// Adds or replaces a policy (XFRM_MSG_UPDPOLICY).
    pub async fn update_policy(&self, policy: &Policy) -> Result<()> {
        self.apply_one(Change::UpdatePolicy(policy.clone())).await
    }

    /// Deletes a policy (XFRM_MSG_DELPOLICY).
    pub async fn delete_policy(&self, id: &PolicyId) -> Result<()> {
        self.apply_one(Change::DeletePolicy(*id)).await
    }

    /// Sends one dump request of `message_type` and returns every reply, ours or not.
    async fn dump(&self, message_type: u16) -> Result<Vec<XfrmMessage>> {
        let message = XfrmMessage::Other((message_type, Vec::new()));
        let mut outcome = self
            .one(Request {
                message,
                dump: true,
            })
            .await?;
        if let Some(e) = outcome.error.take() {
            return Err(map_error(ObjectKind::Dump, e, None));
        }
        Ok(outcome.replies)
    }

    /// Every policy of ours (others' policies are filtered out).
    pub async fn dump_policies(&self) -> Result<Vec<PolicyInfo>> {
        Ok(self
            .dump(XFRM_MSG_GETPOLICY)
            .await?
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddPolicy(m) | XfrmMessage::UpdatePolicy(m) => {
                    PolicyInfo::from_kernel(&m.user_policy_info, &m.nlas)
                }
                _ => None,
            })
            .filter(|p| self.ownership.owns_policy(p))
            .collect())
    }

    /// Applies many changes with as few round trips as possible: requests are packed into
    /// datagrams of up to `MAX_BATCH_MESSAGES` and only the last of each is acked. Returns
    /// one result per change, in order; the outer error is for socket failures only.
    pub async fn apply(&self, changes: &[Change]) -> Result<Vec<Result<()>>> {
        let mut results: Vec<Option<Result<()>>> = Vec::with_capacity(changes.len());
        let mut requests = Vec::with_capacity(changes.len());
        let mut sent_index = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            match self.request_for(c) {
                Ok(r) => {
                    requests.push(r);
                    sent_index.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let outcomes = self.socket.lock().await.execute(&requests).await?;
        for (outcome, i) in outcomes.into_iter().zip(sent_index) {
            let change = changes.get(i);
            let r = match outcome.error {
                None => Ok(()),
                Some(e) => Err(map_error(kind_of(change), e, change)),
            };
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }

    /// Deletes every state and policy of ours, in one batch; others' objects are untouched.
    /// Objects that vanished meanwhile are not errors.
    // Limitation: a larval state left by a failed ALLOCSPI has SPI 0 and cannot be named in
    // XFRM_MSG_DELSA; it stays until the kernel's acquire timeout (net.core.xfrm_acq_expires).
    pub async fn cleanup(&self) -> Result<CleanupReport> {
        let policies = self.dump_policies().await?;
        let states = self.dump_states().await?;
        let mut changes: Vec<Change> = policies
            .iter()
            .map(|p| Change::DeletePolicy(p.policy.id))
            .collect();
        changes.extend(states.iter().map(|s| Change::DeleteState(s.id)));
        let mut report = CleanupReport::default();
        for (c, r) in changes.iter().zip(self.apply(&changes).await?) {
            match r {
                Ok(()) => match c {
                    Change::DeletePolicy(_) => report.policies += 1,
                    _ => report.states += 1,
                },
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn apply_one(&self, change: Change) -> Result<()> {
        self.apply(std::slice::from_ref(&change))
            .await?
            .pop()
            .unwrap_or(Ok(()))
    }

    async fn one(&self, request: Request) -> Result<crate::socket::Outcome> {
        let mut outcomes = self
            .socket
            .lock()
            .await
            .execute(std::slice::from_ref(&request))
            .await?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    fn request_for(&self, change: &Change) -> Result<Request> {
        let mark = self.ownership.mark;
        let message = match change {
            Change::AddState(s) | Change::UpdateState(s) => {
                self.ownership.check_state(s)?;
                let mut s = s.clone();
                s.id.mark = s.id.mark.or(mark);
                let (user_sa_info, nlas) = s.to_kernel()?;
                let m = StateModify { user_sa_info, nlas };
                if matches!(change, Change::AddState(_)) {
                    XfrmMessage::AddSa(m)
                } else {
                    XfrmMessage::UpdateSa(m)
                }
            }
            Change::DeleteState(id) => {
                let mut id = *id;
                id.mark = id.mark.or(mark);
                let (user_sa_id, nlas) = id.to_kernel()?;
                XfrmMessage::DeleteSa(StateDelGet { user_sa_id, nlas })
            }
            Change::AddPolicy(p) | Change::UpdatePolicy(p) => {
                self.ownership.check_policy(p)?;
                let mut p = p.clone();
                p.id.mark = p.id.mark.or(mark);
                let (user_policy_info, nlas) = p.to_kernel()?;
                let m = PolicyModify {
                    user_policy_info,
                    nlas,
                };
                if matches!(change, Change::AddPolicy(_)) {
                    XfrmMessage::AddPolicy(m)
                } else {
                    XfrmMessage::UpdatePolicy(m)
                }
            }
            Change::DeletePolicy(id) => {
                let mut id = *id;
                id.mark = id.mark.or(mark);
                let (user_policy_id, nlas) = id.to_kernel()?;
                XfrmMessage::DeletePolicy(PolicyDelGet {
                    user_policy_id,
                    nlas,
                })
            }
        };
        Ok(Request {
            message,
            dump: false,
        })
    }
}

fn kind_of(change: Option<&Change>) -> ObjectKind {
    match change {
        Some(Change::AddPolicy(_) | Change::UpdatePolicy(_) | Change::DeletePolicy(_)) => {
            ObjectKind::Policy
        }
        _ => ObjectKind::State,
    }
}

/// Turns an errno into the precise variant, using what the request was to name a missing
/// module.
pub(crate) fn map_error(kind: ObjectKind, e: KernelError, change: Option<&Change>) -> Error {
    let KernelError { errno, message } = e;
    let adding = match change {
        Some(Change::AddState(s) | Change::UpdateState(s)) => Some(s),
        _ => None,
    };
    if let Some(state) = adding {
        let family = state.id.family().unwrap_or(Family::V4);
        let says_type_missing = message
            .as_deref()
            .is_some_and(|m| m.contains("type not found"));
        // The kernel looks up the ESP type after the algorithms: EPROTONOSUPPORT (or ENOENT on
        // older kernels) with "Requested type not found" means no esp4/esp6.
        if errno == libc::EPROTONOSUPPORT || says_type_missing {
            return Error::KernelLacksEsp {
                module: Some(family.esp_module()),
                message,
            };
        }
        // ENOSYS: the algorithm lookup failed ("Requested … algorithm not found").
        if errno == libc::ENOSYS {
            return Error::KernelLacksAlgorithm {
                algorithm: state.algorithm.kernel_name(),
                module: Some(state.algorithm.kernel_module()),
                message,
            };
        }
    }
    match errno {
        libc::EEXIST => Error::Exists { kind, message },
        libc::ENOENT | libc::ESRCH => Error::NotFound { kind, message },
        libc::EINVAL => Error::Invalid { kind, message },
        libc::EPERM => Error::PermissionDenied { kind },
        _ => Error::Kernel {
            errno,
            kind,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Mode};

    fn state(dst: &str) -> Change {
        let id = StateId {
            src: "2001:db8::1".parse().unwrap(),
            dst: dst.parse().unwrap(),
            spi: 300,
            mark: None,
        };
        Change::AddState(State::new(
            id,
            1,
            Mode::Transport,
            Algorithm::chacha20_poly1305(&[0; 36]).unwrap(),
        ))
    }

    fn err(errno: i32, message: Option<&str>) -> KernelError {
        KernelError {
            errno,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn eexist_enoent_esrch_einval_map_to_distinct_variants() {
        let k = ObjectKind::Policy;
        assert!(matches!(
            map_error(k, err(libc::EEXIST, None), None),
            Error::Exists { .. }
        ));
        assert!(matches!(
            map_error(k, err(libc::ENOENT, None), None),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            map_error(k, err(libc::ESRCH, None), None),
            Error::NotFound { .. }
        ));
        assert!(
            matches!(map_error(k, err(libc::EINVAL, Some("bad dir")), None), Error::Invalid { message: Some(m), .. } if m == "bad dir")
        );
        assert!(matches!(
            map_error(k, err(libc::EPERM, None), None),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            map_error(k, err(libc::EBUSY, None), None),
            Error::Kernel {
                errno: libc::EBUSY,
                ..
            }
        ));
    }

    #[test]
    fn missing_esp_names_the_module_of_the_family() {
        let c = state("2001:db8::2");
        let e = map_error(
            ObjectKind::State,
            err(libc::EPROTONOSUPPORT, Some("Requested type not found")),
            Some(&c),
        );
        assert!(
            matches!(
                e,
                Error::KernelLacksEsp {
                    module: Some("esp6"),
                    ..
                }
            ),
            "{e:?}"
        );
        // Older kernels answer ENOENT with the same text.
        let e = map_error(
            ObjectKind::State,
            err(libc::ENOENT, Some("Requested type not found")),
            Some(&c),
        );
        assert!(matches!(e, Error::KernelLacksEsp { .. }));
    }

    #[test]
    fn missing_algorithm_names_the_algorithm_and_module() {
        let c = state("2001:db8::2");
        let e = map_error(ObjectKind::State, err(libc::ENOSYS, None), Some(&c));
        assert!(matches!(
            e,
            Error::KernelLacksAlgorithm {
                algorithm: "rfc7539esp(chacha20,poly1305)",
                module: Some("chacha20poly1305"),
                ..
            }
        ));
        assert!(e
            .to_string()
            .contains("kernel lacks the algorithm rfc7539esp(chacha20,poly1305)"));
    }

    #[test]
    fn enoent_on_a_state_delete_is_not_found() {
        let id = StateId {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            spi: 300,
            mark: None,
        };
        let e = map_error(
            ObjectKind::State,
            err(libc::ESRCH, None),
            Some(&Change::DeleteState(id)),
        );
        assert!(matches!(
            e,
            Error::NotFound {
                kind: ObjectKind::State,
                ..
            }
        ));
    }
}
