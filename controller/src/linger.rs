//! CHILD_SA states that outlive their IKE SA for a moment when a restarted peer replaces it.
//!
//! A peer that restarted sends INITIAL_CONTACT in its new IKE_AUTH, and the engine drops our old
//! IKE SA with that peer at once (RFC 7296 §2.4), before the new CHILD_SAs exist. But the
//! restarted peer still forwards over the old SAs (our daemon adopts them on start) until its
//! new ones are installed, one round trip later for the first CHILD_SA and one
//! CREATE_CHILD_SA later for the second. Deleting the old states at once lost ~1–3 s of
//! traffic under emulation (tests/daemon/faults.sh, kill -9 and restart); they are kept
//! [`LINGER`] longer instead. Other deletes (rekeyed, expired, a single CHILD_SA the peer
//! deleted) still leave at once.

use std::time::{Duration, Instant};

use ikev2::engine::PeerId;
use tracing::debug;

use crate::daemon::Daemon;
use crate::kernel::SaDirection;

/// How long the states of an IKE SA the peer replaced stay after it went: enough for the
/// restarted peer's IKE_AUTH and CREATE_CHILD_SA under emulation.
pub const LINGER: Duration = Duration::from_secs(5);

/// CHILD_SA deletes waiting to be applied, by (peer, inbound SPI, outbound SPI).
#[derive(Debug, Default)]
pub struct ChildSaLinger {
    /// Deleted in the engine's current batch of events; applied at its end unless their IKE
    /// SA turns out to be replaced by a restarted peer.
    pending: Vec<(PeerId, u32, u32)>,
    /// Kept until the instant given.
    lingering: Vec<(Instant, PeerId, u32, u32)>,
}

impl Daemon {
    /// The engine deleted a CHILD_SA: noted, applied at the end of the batch of events.
    pub(crate) fn child_sa_deleted(&mut self, peer: PeerId, spi_in: u32, spi_out: u32) {
        self.linger.pending.push((peer, spi_in, spi_out));
    }

    /// The peer replaced (or deleted) our IKE SA with it: its CHILD_SAs deleted in this batch
    /// stay for [`LINGER`].
    pub(crate) fn ike_sa_deleted_by_peer(&mut self, peer: PeerId, now: Instant) {
        let (linger, rest): (Vec<_>, Vec<_>) = self
            .linger
            .pending
            .drain(..)
            .partition(|(p, _, _)| *p == peer);
        self.linger.pending = rest;
        for (p, spi_in, spi_out) in linger {
            debug!(
                spi_in = format_args!("{spi_in:08x}"),
                "states of the replaced IKE SA stay for packets in flight"
            );
            self.linger
                .lingering
                .push((now + LINGER, p, spi_in, spi_out));
        }
    }

    /// Applies the pending deletes and the lingering ones that are due.
    pub(crate) fn apply_child_sa_deletes(&mut self, now: Instant) {
        let mut due: Vec<(PeerId, u32, u32)> = self.linger.pending.drain(..).collect();
        self.linger.lingering.retain(|(until, p, i, o)| {
            if *until <= now {
                due.push((*p, *i, *o));
                false
            } else {
                true
            }
        });
        for (peer, spi_in, spi_out) in due {
            if let Some(p) = self.peers.by_engine_id(peer) {
                p.pending_outbound.deleted(spi_in);
                p.child_sas.retain(|s| match s.dir {
                    SaDirection::Inbound => s.spi != spi_in,
                    SaDirection::Outbound => s.spi != spi_out,
                });
                self.reconcile_due = true;
            }
        }
    }

    /// When the next lingering delete is due.
    pub(crate) fn next_linger_deadline(&self) -> Option<Instant> {
        self.linger.lingering.iter().map(|(t, ..)| *t).min()
    }
}
