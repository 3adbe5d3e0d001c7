//! Outbound SAs held back from the desired set until the IKE layer says the peer can decrypt
//! them (RFC 7296 §2.8).
//!
//! As the responder of a CHILD_SA rekey the engine reports the new CHILD_SA with
//! `Outbound::Pending`: its inbound SA is desired at once, its outbound SA only after
//! `ChildSaOutboundReady`. The kernel sends on the newest outbound state, so adding the new
//! one earlier would send packets the peer (which installs its inbound SA when it gets our
//! response) cannot decrypt yet. Until then the old CHILD_SA's outbound SA stays desired, even
//! after `ChildSaRekeyed`; it leaves the desired set together with the new one's arrival.
//!
//! Nothing here is in the desired set, so a reconcile pass neither adds a held SA nor deletes
//! anything for it; a restart forgets the held SAs together with the engine's CHILD_SAs.

use crate::kernel::{ChildSa, SaDirection};

/// One held outbound SA.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// Inbound SPI of its CHILD_SA: the engine's events name CHILD_SAs by it.
    spi_in: u32,
    /// The outbound SA to install once ready.
    sa: ChildSa,
    /// Outbound SPIs of the CHILD_SAs it replaces, kept desired until it is installed.
    replaces: Vec<u32>,
}

/// The held outbound SAs of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingOutbound {
    held: Vec<Held>,
}

impl PendingOutbound {
    /// Holds `sa` (an outbound SA) of CHILD_SA `spi_in` back until [`PendingOutbound::ready`].
    pub fn hold(&mut self, spi_in: u32, sa: ChildSa) {
        debug_assert_eq!(sa.dir, SaDirection::Outbound);
        self.held.retain(|h| h.spi_in != spi_in);
        self.held.push(Held {
            spi_in,
            sa,
            replaces: Vec::new(),
        });
    }

    /// Whether CHILD_SA `spi_in` has its outbound SA held.
    pub fn is_held(&self, spi_in: u32) -> bool {
        self.held.iter().any(|h| h.spi_in == spi_in)
    }

    /// How many outbound SAs are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// CHILD_SA `old_spi_out` was rekeyed into `new_spi_in`: drops the old outbound SA from
    /// `desired` now, or, when the new one is held, once the new one is ready.
    pub fn rekeyed(&mut self, desired: &mut Vec<ChildSa>, old_spi_out: u32, new_spi_in: u32) {
        match self.held.iter_mut().find(|h| h.spi_in == new_spi_in) {
            Some(h) => h.replaces.push(old_spi_out),
            None => {
                desired.retain(|s| !(s.dir == SaDirection::Outbound && s.spi == old_spi_out));
                // A held SA replaced before it was ever ready (a reauthentication) goes too.
                self.held.retain(|h| h.sa.spi != old_spi_out);
            }
        }
    }

    /// The outbound SA `spi_out` of CHILD_SA `spi_in` is ready: moves it into `desired` and
    /// drops the outbound SAs it replaces from there (within one reconcile additions come
    /// first, so there is no gap). False when nothing was held for it.
    pub fn ready(&mut self, desired: &mut Vec<ChildSa>, spi_in: u32, spi_out: u32) -> bool {
        let Some(pos) = self
            .held
            .iter()
            .position(|h| h.spi_in == spi_in && h.sa.spi == spi_out)
        else {
            return false;
        };
        let held = self.held.remove(pos);
        desired.retain(|s| !(s.dir == SaDirection::Outbound && held.replaces.contains(&s.spi)));
        desired.push(held.sa);
        true
    }

    /// CHILD_SA `spi_in` was deleted: its held outbound SA, if any, is never installed.
    pub fn deleted(&mut self, spi_in: u32) {
        self.held.retain(|h| h.spi_in != spi_in);
    }
}

#[cfg(test)]
mod tests {
    use xfrm::{Key, Lifetimes};

    use super::*;
    use crate::kernel::{AeadAlgorithm, ChildKind};

    fn sa(dir: SaDirection, spi: u32) -> ChildSa {
        ChildSa {
            pair: 0,
            child: ChildKind::Out,
            dir,
            spi,
            algorithm: AeadAlgorithm::AesGcm256,
            key: Key::new(&[7; 36]),
            selector: None,
            encap: None,
            lifetimes: Lifetimes::default(),
            replay_window: 32,
            esn: false,
        }
    }

    fn outbound_spis(desired: &[ChildSa]) -> Vec<u32> {
        desired
            .iter()
            .filter(|s| s.dir == SaDirection::Outbound)
            .map(|s| s.spi)
            .collect()
    }

    /// The old pair (in 0xa1, out 0xb1) and the responder's new inbound SA 0xa2, with the new
    /// outbound SA 0xb2 held and the rekey reported.
    fn responder_rekey() -> (Vec<ChildSa>, PendingOutbound) {
        let mut desired = vec![
            sa(SaDirection::Inbound, 0xa1),
            sa(SaDirection::Outbound, 0xb1),
        ];
        let mut pending = PendingOutbound::default();
        desired.push(sa(SaDirection::Inbound, 0xa2));
        pending.hold(0xa2, sa(SaDirection::Outbound, 0xb2));
        pending.rekeyed(&mut desired, 0xb1, 0xa2);
        (desired, pending)
    }

    #[test]
    fn held_outbound_sa_stays_out_of_the_desired_set_and_the_old_one_stays_in() {
        let (desired, pending) = responder_rekey();
        assert_eq!(outbound_spis(&desired), vec![0xb1]);
        assert!(pending.is_held(0xa2));
    }

    #[test]
    fn ready_installs_the_new_outbound_sa_and_only_then_drops_the_old_one() {
        let (mut desired, mut pending) = responder_rekey();
        assert!(pending.ready(&mut desired, 0xa2, 0xb2));
        assert_eq!(outbound_spis(&desired), vec![0xb2]);
        assert!(pending.is_empty());
        // Reported twice: nothing happens the second time.
        assert!(!pending.ready(&mut desired, 0xa2, 0xb2));
        assert_eq!(outbound_spis(&desired), vec![0xb2]);
    }

    #[test]
    fn initiator_rekey_drops_the_old_outbound_sa_at_once() {
        let mut desired = vec![
            sa(SaDirection::Outbound, 0xb1),
            sa(SaDirection::Outbound, 0xb2),
        ];
        let mut pending = PendingOutbound::default();
        pending.rekeyed(&mut desired, 0xb1, 0xa2);
        assert_eq!(outbound_spis(&desired), vec![0xb2]);
    }

    #[test]
    fn deleted_child_sa_forgets_its_held_outbound_sa() {
        let (mut desired, mut pending) = responder_rekey();
        pending.deleted(0xa2);
        assert!(pending.is_empty());
        assert!(!pending.ready(&mut desired, 0xa2, 0xb2));
        assert_eq!(outbound_spis(&desired), vec![0xb1]);
    }

    #[test]
    fn held_sa_replaced_before_it_was_ready_is_dropped() {
        // A reauthentication replaces the CHILD_SA whose outbound SA is still held.
        let (mut desired, mut pending) = responder_rekey();
        desired.push(sa(SaDirection::Outbound, 0xb3));
        pending.rekeyed(&mut desired, 0xb2, 0xa3);
        assert!(pending.is_empty());
    }
}
