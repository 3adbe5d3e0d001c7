//! A stand-in for the kernel's XFRM states of one chassis, driven by the engine's CHILD_SA
//! events the way the daemon drives the real kernel, and the check that no chassis sends on an
//! SA its peer cannot decrypt (RFC 7296 §2.8, make-before-break).
//!
//! The kernel sends on the newest outbound state of a CHILD_SA (the daemon installs a
//! [`Outbound::Pending`] one only at its [`Event::ChildSaOutboundReady`]), so "the newest
//! installed outbound SA of a configuration" is the one packets leave on.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{Event, IkeSaId, Outbound};

/// One outbound state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutboundState {
    spi_out: u32,
    /// It belongs to a CHILD_SA that replaced another by a rekey (reported ready after being
    /// pending, or named new by [`Event::ChildSaRekeyed`]): the sender had an SA that worked,
    /// so switching to one that does not is the engine's fault.
    successor: bool,
}

/// A CHILD_SA whose outbound state waits for its [`Event::ChildSaOutboundReady`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    name: String,
    spi_out: u32,
    /// Outbound SPIs of the CHILD_SAs it replaces: removed once it is installed, as the
    /// daemon does.
    replaces: Vec<u32>,
}

/// The states of one chassis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelModel {
    /// Installed inbound states, by SPI.
    pub inbound: BTreeSet<u32>,
    /// Every inbound SPI ever installed, deleted ones too.
    installed_ever: BTreeSet<u32>,
    /// The IKE SA each inbound SPI ever installed belongs to (followed through IKE SA rekeys).
    ike_sa_of: BTreeMap<u32, IkeSaId>,
    /// Installed outbound states per CHILD_SA configuration, oldest first.
    outbound: BTreeMap<String, Vec<OutboundState>>,
    /// Outbound SPIs removed for a rekey's new outbound SA while their CHILD_SA is not deleted
    /// yet: SAs the chassis chose to stop sending on.
    given_up: BTreeMap<String, BTreeSet<u32>>,
    /// CHILD_SAs whose outbound state is not installed yet, by inbound SPI.
    pending: BTreeMap<u32, Pending>,
    /// Events the daemon could not have applied (an outbound SA reported ready twice, or
    /// never pending).
    pub errors: Vec<String>,
}

impl KernelModel {
    /// Applies one engine event as the daemon would.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ChildSaInstall {
                ike_sa,
                name,
                spi_in,
                spi_out,
                outbound,
                ..
            } => {
                self.inbound.insert(*spi_in);
                self.installed_ever.insert(*spi_in);
                self.ike_sa_of.insert(*spi_in, *ike_sa);
                match outbound {
                    Outbound::Now => self.install_outbound(name, *spi_out, false),
                    Outbound::Pending => {
                        self.pending.insert(
                            *spi_in,
                            Pending {
                                name: name.clone(),
                                spi_out: *spi_out,
                                replaces: Vec::new(),
                            },
                        );
                    }
                }
            }
            Event::ChildSaOutboundReady {
                spi_in, spi_out, ..
            } => match self.pending.remove(spi_in) {
                Some(p) if p.spi_out == *spi_out => {
                    self.install_outbound(&p.name, p.spi_out, true);
                    for old in p.replaces {
                        self.give_up_outbound(old);
                    }
                }
                _ => self.errors.push(format!(
                    "outbound SA {spi_out:x} of {spi_in:x} reported ready but not pending"
                )),
            },
            Event::ChildSaRekeyed {
                old_spi_out,
                new_spi_in,
                new_spi_out,
                ..
            } => match self.pending.get_mut(new_spi_in) {
                // The old outbound SA carries the traffic until the new one is ready.
                Some(p) => p.replaces.push(*old_spi_out),
                None => {
                    for states in self.outbound.values_mut() {
                        for s in states.iter_mut().filter(|s| s.spi_out == *new_spi_out) {
                            s.successor = true;
                        }
                    }
                    self.give_up_outbound(*old_spi_out);
                }
            },
            Event::IkeSaRekeyed {
                old_ike_sa,
                new_ike_sa,
                ..
            } => {
                for id in self.ike_sa_of.values_mut().filter(|id| *id == old_ike_sa) {
                    *id = *new_ike_sa;
                }
            }
            Event::ChildSaDelete {
                spi_in, spi_out, ..
            } => {
                self.inbound.remove(spi_in);
                self.pending.remove(spi_in);
                for spis in self.given_up.values_mut() {
                    spis.remove(spi_out);
                }
                self.remove_outbound(*spi_out);
            }
            _ => {}
        }
    }

    fn install_outbound(&mut self, name: &str, spi_out: u32, successor: bool) {
        self.outbound
            .entry(name.to_string())
            .or_default()
            .push(OutboundState { spi_out, successor });
    }

    /// Removes outbound SA `spi_out` in favour of a rekey's new one; its CHILD_SA lives on.
    fn give_up_outbound(&mut self, spi_out: u32) {
        let name = self
            .outbound
            .iter()
            .find(|(_, states)| states.iter().any(|s| s.spi_out == spi_out))
            .map(|(name, _)| name.clone());
        if let Some(name) = name {
            self.given_up.entry(name).or_default().insert(spi_out);
        }
        self.remove_outbound(spi_out);
    }

    fn remove_outbound(&mut self, spi_out: u32) {
        for states in self.outbound.values_mut() {
            states.retain(|s| s.spi_out != spi_out);
        }
        self.outbound.retain(|_, states| !states.is_empty());
    }

    /// The outbound SPI packets of configuration `name` leave on, if any.
    pub fn active_outbound(&self, name: &str) -> Option<u32> {
        self.outbound.get(name)?.last().map(|s| s.spi_out)
    }

    /// Whether CHILD_SA `spi_in` still waits for its outbound SA to be reported ready.
    pub fn is_pending(&self, spi_in: u32) -> bool {
        self.pending.contains_key(&spi_in)
    }

    /// How many CHILD_SAs wait for their outbound SA.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

/// The make-before-break invariant between two chassis: for every configuration whose newest
/// outbound SA at `from` came from a CHILD_SA rekey, `from` never sends on an SA before `to`
/// has installed its inbound state while `from` could still send on one `to` can decrypt (an
/// installed outbound SA, one it removed for the new one while its CHILD_SA lives, or one it
/// holds back; when
/// none is left, `to` lost its state or the old SA expired, and nothing `from` could do would
/// help); and a
/// CHILD_SA waiting for its outbound SA still has an older outbound SA carrying its traffic.
/// Also reports the events `from` could not apply.
///
/// An outbound SA whose inbound state the peer removed is checked the same way, unless the
/// peer removed every CHILD_SA of that IKE SA.
///
/// Limitation: CHILD_SAs not made by a rekey (IKE_AUTH, additional ones, a reauthentication
/// we answer) are installed at once by their responder and are not checked until the peer
/// has them; nor is an IKE SA the peer deleted whole while `from` still sends on its CHILD_SAs
/// (the initiator of a reauthentication removes the old IKE SA's CHILD_SAs when it sends the
/// Delete).
pub fn check_sender(from: &KernelModel, to: &KernelModel) -> Result<(), String> {
    if let Some(e) = from.errors.first() {
        return Err(e.clone());
    }
    for (name, states) in &from.outbound {
        let Some(&OutboundState {
            spi_out: active,
            successor,
        }) = states.last()
        else {
            continue;
        };
        let decryptable = |spi: u32| to.inbound.contains(&spi);
        // Not installed yet at the peer (checked for a rekey's successor), or removed there.
        let not_yet = successor && !to.installed_ever.contains(&active);
        // Limitation: an inbound SA the peer removed with every other CHILD_SA of its IKE SA
        // (it deleted the IKE SA, e.g. after reauthenticating) is not checked.
        let removed = to.installed_ever.contains(&active)
            && !decryptable(active)
            && to.ike_sa_of.get(&active).is_some_and(|ike| {
                to.inbound
                    .iter()
                    .any(|spi| to.ike_sa_of.get(spi) == Some(ike))
            });
        if not_yet || removed {
            let usable = states
                .iter()
                .map(|s| s.spi_out)
                .chain(from.given_up.get(name).into_iter().flatten().copied())
                .chain(
                    from.pending
                        .values()
                        .filter(|p| p.name == *name)
                        .map(|p| p.spi_out),
                );
            if let Some(good) = usable
                .filter(|out| *out != active)
                .find(|out| decryptable(*out))
            {
                return Err(format!(
                    "{name}: sending on {active:x}, which the peer cannot decrypt, \
                     instead of {good:x}, which it can"
                ));
            }
        }
    }
    for (spi_in, p) in &from.pending {
        if from.active_outbound(&p.name).is_none() {
            return Err(format!(
                "{}: {spi_in:x} waits for its outbound SA {:x} with no outbound SA left",
                p.name, p.spi_out
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(kernel: &mut KernelModel, name: &str, spi_out: u32, _spi_in: u32) {
        kernel.install_outbound(name, spi_out, true);
    }

    fn inbound(kernel: &mut KernelModel, spi_in: u32) {
        kernel.inbound.insert(spi_in);
        kernel.installed_ever.insert(spi_in);
    }

    #[test]
    fn sending_on_an_sa_the_peer_lacks_while_an_older_one_works_is_a_violation() {
        let (mut a, mut b) = (KernelModel::default(), KernelModel::default());
        outbound(&mut a, "in", 0xb1, 0xa1);
        inbound(&mut b, 0xb1);
        assert!(check_sender(&a, &b).is_ok());
        outbound(&mut a, "in", 0xb2, 0xa2);
        assert!(check_sender(&a, &b).is_err());
        inbound(&mut b, 0xb2);
        assert!(check_sender(&a, &b).is_ok());
    }

    #[test]
    fn a_peer_that_lost_every_state_is_no_violation() {
        let (mut a, b) = (KernelModel::default(), KernelModel::default());
        outbound(&mut a, "in", 0xb1, 0xa1);
        outbound(&mut a, "in", 0xb2, 0xa2);
        assert!(check_sender(&a, &b).is_ok());
    }

    #[test]
    fn an_outbound_sa_ready_that_was_not_pending_is_reported() {
        let mut a = KernelModel::default();
        a.apply(&Event::ChildSaOutboundReady {
            peer: crate::engine::event::PeerId(0),
            ike_sa: crate::engine::event::IkeSaId(0),
            spi_in: 1,
            spi_out: 2,
        });
        assert!(check_sender(&a, &KernelModel::default()).is_err());
    }
}
