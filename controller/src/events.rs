//! Engine events into the kernel and the logs: SPI allocation, CHILD_SA install, rekey and
//! delete into the desired set (then a reconcile), IKE SA up/down and authentication failures.

use std::time::{Duration, Instant, SystemTime};

use ikev2::engine::{AuthFailure, DownReason, EspAlgorithms, Event, Outbound};
use ikev2::registry::{EncrId, EsnId, NotifyType};
use tracing::{info, warn};
use xfrm::{Key, Lifetimes, Limits, Mode, SpiRange, SpiRequest};

use crate::daemon::Daemon;
use crate::kernel::{AeadAlgorithm, ChildKind, ChildSa, SaDirection, UdpEncap};
use crate::peers::{child_kind, IkeState};

/// Anti-replay window of our inbound states, in packets.
const REPLAY_WINDOW: u32 = 32;

/// The kernel's AEAD transform for negotiated ESP algorithms, if we install it.
fn aead(alg: &EspAlgorithms) -> Option<AeadAlgorithm> {
    match (alg.encryption, alg.key_bits) {
        (EncrId::ENCR_AES_GCM_16, Some(128)) => Some(AeadAlgorithm::AesGcm128),
        (EncrId::ENCR_AES_GCM_16, Some(256)) => Some(AeadAlgorithm::AesGcm256),
        (EncrId::ENCR_CHACHA20_POLY1305, _) => Some(AeadAlgorithm::ChaCha20Poly1305),
        _ => None,
    }
}

fn lifetimes(soft: Duration, hard: Duration) -> Lifetimes {
    Lifetimes {
        soft: Limits {
            add_seconds: Some(soft.as_secs().max(1)),
            ..Limits::default()
        },
        hard: Limits {
            add_seconds: Some(hard.as_secs().max(1)),
            ..Limits::default()
        },
    }
}

impl Daemon {
    /// Acts on one engine event.
    pub(crate) async fn on_engine_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::AllocateSpi {
                request,
                peer,
                local,
                remote,
                ..
            } => {
                let reqid = self
                    .peers
                    .by_engine_id(peer)
                    .map(|p| p.index)
                    .and_then(|i| self.kernel.config().reqid(i, ChildKind::Out).ok());
                let Some(reqid) = reqid else {
                    warn!(?peer, "SPI requested for an unknown peer");
                    return;
                };
                let spi = self
                    .kernel
                    .kernel()
                    .alloc_spi(SpiRequest {
                        src: remote.ip(),
                        dst: local.ip(),
                        reqid,
                        mode: Mode::Transport,
                        mark: self.kernel.config().mark,
                        range: SpiRange::full(),
                    })
                    .await;
                match spi {
                    Ok(spi) => {
                        if let Err(error) = self.endpoint.spi_allocated(now, request, spi) {
                            warn!(%error, "SPI answer refused by the engine");
                        }
                    }
                    // Limitation: the exchange waiting for this SPI is left to time out.
                    Err(error) => warn!(%error, %remote, "kernel SPI allocation failed"),
                }
            }
            Event::ChildSaInstall {
                peer,
                name,
                spi_in,
                spi_out,
                keys,
                algorithms,
                udp_encap,
                soft_lifetime,
                hard_lifetime,
                outbound,
                ..
            } => {
                let Some(p) = self.peers.by_engine_id(peer) else {
                    return;
                };
                let _span = p.span.clone().entered();
                let (Some(kind), Some(algorithm)) = (child_kind(&name), aead(&algorithms)) else {
                    warn!(child = %name, algorithms = ?algorithms, "CHILD_SA not installable");
                    return;
                };
                let encap = udp_encap.map(|e| UdpEncap {
                    local_port: e.local_port,
                    remote_port: e.remote_port,
                });
                let sa = |dir, spi, key: &[u8]| ChildSa {
                    pair: p.index,
                    child: kind,
                    dir,
                    spi,
                    algorithm,
                    key: Key::new(key),
                    selector: None,
                    encap,
                    lifetimes: lifetimes(soft_lifetime, hard_lifetime),
                    replay_window: REPLAY_WINDOW,
                    esn: algorithms.esn == EsnId::ESN,
                };
                p.child_sas
                    .push(sa(SaDirection::Inbound, spi_in, keys.encr_in.as_bytes()));
                let out = sa(SaDirection::Outbound, spi_out, keys.encr_out.as_bytes());
                match outbound {
                    Outbound::Now => p.child_sas.push(out),
                    // The responder of a rekey: the kernel would send on the new outbound SA
                    // at once, before the initiator can decrypt it (RFC 7296 §2.8); or our own
                    // CHILD_SA a simultaneous rekey made redundant, which is never ready.
                    Outbound::Pending => p.pending_outbound.hold(spi_in, out),
                }
                // Limitation: a CHILD_SA we answer outside a rekey (IKE_AUTH, the second child,
                // a peer's reauthentication) still has its outbound SA installed at once.
                info!(child = %name, spi_in = format_args!("{spi_in:08x}"), spi_out = format_args!("{spi_out:08x}"), encap = encap.is_some(), outbound = ?outbound, "CHILD_SA up");
                self.reconcile_due = true;
            }
            Event::ChildSaRekeyed {
                peer,
                old_spi_in,
                old_spi_out,
                new_spi_in,
                new_spi_out,
            } => {
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    // The new outbound SA carries traffic from now on (or from its
                    // ChildSaOutboundReady, the old one until then); the old inbound one stays
                    // until the Delete, for packets still in flight.
                    p.pending_outbound
                        .rekeyed(&mut p.child_sas, old_spi_out, new_spi_in);
                    info!(
                        old_spi_in = format_args!("{old_spi_in:08x}"),
                        new_spi_in = format_args!("{new_spi_in:08x}"),
                        new_spi_out = format_args!("{new_spi_out:08x}"),
                        "CHILD_SA rekeyed"
                    );
                    self.metrics.rekey(
                        crate::metrics::RekeyKind::Child,
                        crate::metrics::RekeyResult::Success,
                    );
                    self.reconcile_due = true;
                }
            }
            Event::ChildSaOutboundReady {
                peer,
                spi_in,
                spi_out,
                ..
            } => {
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    if p.pending_outbound.ready(&mut p.child_sas, spi_in, spi_out) {
                        info!(
                            spi_in = format_args!("{spi_in:08x}"),
                            spi_out = format_args!("{spi_out:08x}"),
                            "CHILD_SA outbound SA switched"
                        );
                        self.reconcile_due = true;
                    }
                }
            }
            Event::ChildSaDelete {
                peer,
                spi_in,
                spi_out,
            } => {
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    info!(
                        spi_in = format_args!("{spi_in:08x}"),
                        spi_out = format_args!("{spi_out:08x}"),
                        "CHILD_SA deleted"
                    );
                    self.child_sa_deleted(peer, spi_in, spi_out);
                }
            }
            Event::IkeSaUp {
                peer,
                ike_sa,
                local,
                remote,
                algorithms,
            } => {
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    if p.ike == IkeState::Up && p.ike_sa.is_some() {
                        // A reauthentication: the new IKE SA takes over, the old one goes later.
                        info!(old = ?p.ike_sa, new = ?ike_sa, "IKE SA reauthenticated");
                        p.ike_sa = Some(ike_sa);
                        return;
                    }
                    p.ike_sa = Some(ike_sa);
                    p.ike = IkeState::Up;
                    p.up_since = Some(now);
                    self.metrics.handshake_up(&p.desired.remote_chassis, now);
                    p.initiate_at = None;
                    p.last_error = None;
                    p.retry.succeeded();
                    info!(%local, %remote, encryption = %algorithms.encryption, ke = %algorithms.ke, "peer up: IKE SA established");
                }
            }
            Event::IkeSaRekeyed {
                peer,
                old_ike_sa,
                new_ike_sa,
                algorithms,
            } => {
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    p.ike_sa = Some(new_ike_sa);
                    info!(old = ?old_ike_sa, new = ?new_ike_sa, encryption = %algorithms.encryption, ke = %algorithms.ke, "IKE SA rekeyed");
                    self.metrics.rekey(
                        crate::metrics::RekeyKind::Ike,
                        crate::metrics::RekeyResult::Success,
                    );
                }
            }
            Event::IkeSaDown {
                peer,
                ike_sa,
                reason,
            } => {
                if reason == DownReason::DeletedByPeer {
                    self.ike_sa_deleted_by_peer(peer, now);
                }
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    if matches!(reason, DownReason::Superseded | DownReason::Rekeyed) {
                        // The peer's crossed attempt is kept instead, or a rekey replaced it:
                        // nothing went down.
                        return;
                    }
                    if p.ike_sa.is_some_and(|current| current != ike_sa) {
                        // Not the current IKE SA (a failed reauthentication, or the old one
                        // the peer deleted after reauthenticating).
                        info!(?reason, ?ike_sa, "older IKE SA gone");
                        return;
                    }
                    if reason == DownReason::PeerUnreachable && p.ike == IkeState::Up {
                        // RFC 7296 §2.4: an established IKE SA's request went unanswered.
                        self.metrics.dead_peer();
                    }
                    if let Some(failure) = failure_of(reason) {
                        self.metrics.failure(failure);
                    }
                    if let Some(text) = crate::peers::down_failure_text(reason) {
                        p.record_error(text, SystemTime::now());
                    }
                    p.ike_sa = None;
                    p.ike = IkeState::Idle;
                    p.up_since = None;
                    let delay = p.retry_later(now, crate::retry::random_sample());
                    info!(?reason, retry_in = ?delay, failures = p.retry.failures(), "peer down: IKE SA gone");
                }
            }
            Event::AuthFailed { peer, reason } => {
                let local = self.chassis.clone();
                if let Some(p) = self.peers.by_engine_id(peer) {
                    let _span = p.span.clone().entered();
                    let detail = match &reason {
                        AuthFailure::PeerNotAuthenticated(s) => {
                            format!("peer not authenticated: {s}")
                        }
                        AuthFailure::WrongIdentity(s) => {
                            format!("peer proved another identity: {s}")
                        }
                        AuthFailure::RejectedByPeer => {
                            "the peer rejected our authentication".into()
                        }
                    };
                    warn!(local_chassis = %local, expected_remote_chassis = %p.desired.remote_chassis, reason = %detail, "authentication failed");
                    if p.ike != IkeState::Up {
                        // With an IKE SA up this was a reauthentication; the old one stays.
                        p.ike = IkeState::Failed;
                    }
                    p.record_error(detail, SystemTime::now());
                    self.metrics.failure(crate::metrics::FailureReason::Auth);
                }
            }
        }
    }
}

/// The failure an IKE SA going down stands for in the metrics; authentication failures are
/// counted from their own event (`AuthFailed`), ends asked for or replaced ones are none.
fn failure_of(reason: DownReason) -> Option<crate::metrics::FailureReason> {
    use crate::metrics::FailureReason;
    match reason {
        DownReason::PeerUnreachable | DownReason::HalfOpenTimeout => Some(FailureReason::Timeout),
        DownReason::NoProposalChosen => Some(FailureReason::NoProposal),
        DownReason::KeyExchangeFailed => Some(FailureReason::InvalidKe),
        DownReason::PeerError(NotifyType::TS_UNACCEPTABLE) => Some(FailureReason::TsUnacceptable),
        DownReason::PeerError(NotifyType::NO_PROPOSAL_CHOSEN) => Some(FailureReason::NoProposal),
        DownReason::PeerError(NotifyType::INVALID_KE_PAYLOAD) => Some(FailureReason::InvalidKe),
        DownReason::PeerError(_)
        | DownReason::AuthFailed
        | DownReason::DeletedByPeer
        | DownReason::Terminated
        | DownReason::Expired
        | DownReason::Rekeyed
        | DownReason::Superseded
        | DownReason::Replaced => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FailureReason;

    #[test]
    fn ike_sas_going_down_count_as_the_failure_their_reason_names() {
        assert_eq!(
            failure_of(DownReason::PeerUnreachable),
            Some(FailureReason::Timeout)
        );
        assert_eq!(
            failure_of(DownReason::PeerError(NotifyType::TS_UNACCEPTABLE)),
            Some(FailureReason::TsUnacceptable)
        );
        assert_eq!(
            failure_of(DownReason::KeyExchangeFailed),
            Some(FailureReason::InvalidKe)
        );
        // Counted from AuthFailed, not twice; rekeys and operator actions are no failures.
        for reason in [
            DownReason::AuthFailed,
            DownReason::Rekeyed,
            DownReason::Terminated,
        ] {
            assert_eq!(failure_of(reason), None);
        }
    }
}
