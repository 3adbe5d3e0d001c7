//! Rekeying after states of ours vanished behind our back (`ip xfrm state flush`, `ip xfrm
//! state del`). The reconcile puts such a state back with the same keys but its sequence
//! numbers restarted at 1, which the peer's anti-replay window drops until they pass what it
//! has already seen (RFC 4303 §3.4.3); a rekey of the CHILD_SA gives both ends fresh states.

use std::time::Instant;

use tracing::{info, warn};
use xfrm::Event;

use crate::daemon::Daemon;
use crate::kernel::SaDirection;

// Limitation: until the rekey completes, the reinstalled outbound state is still dropped by the
// peer as replays (24-126 of 600 probes at 50/s in five runs, 0.5-2.5 s under emulation).

/// Which of our states an XFRM event says someone else removed.
enum Lost {
    /// Every state (a flush, or a delete the kernel did not describe).
    All,
    /// The state with this SPI.
    Spi(u32),
}

fn lost_states(event: &Event) -> Option<Lost> {
    match event {
        Event::StatesFlushed { by_us: false, .. } => Some(Lost::All),
        Event::StateDeleted {
            by_us: false,
            state: Some(s),
        } => Some(Lost::Spi(s.id.spi)),
        Event::StateDeleted {
            by_us: false,
            state: None,
        } => Some(Lost::All),
        _ => None,
    }
}

impl Daemon {
    /// On a flush or foreign delete of our states, asks the engine to rekey every affected
    /// CHILD_SA (the reconcile due by the same event reinstalls the states meanwhile).
    pub(crate) fn rekey_lost_states(&mut self, event: &Event) {
        let Some(lost) = lost_states(event) else {
            return;
        };
        let now = Instant::now();
        for peer in self.peers.peers.values() {
            let Some(id) = peer.engine_id else {
                continue;
            };
            // The CHILD_SAs (by kind) that lost a state; each is rekeyed by its inbound SPI.
            let kinds: Vec<_> = peer
                .child_sas
                .iter()
                .filter(|sa| match lost {
                    Lost::All => true,
                    Lost::Spi(spi) => sa.spi == spi,
                })
                .map(|sa| sa.child)
                .collect();
            let _span = peer.span.enter();
            for sa in peer
                .child_sas
                .iter()
                .filter(|sa| sa.dir == SaDirection::Inbound && kinds.contains(&sa.child))
            {
                match self.endpoint.rekey_child(now, id, sa.spi) {
                    Ok(()) => info!(
                        spi_in = format_args!("{:08x}", sa.spi),
                        "our state was removed behind our back: rekeying its CHILD_SA"
                    ),
                    // An inbound SA already replaced by a rekey waits for its Delete.
                    Err(ikev2::engine::CommandError::UnknownChildSa(_)) => {}
                    Err(error) => warn!(%error, "cannot rekey after a lost state"),
                }
            }
        }
    }
}
