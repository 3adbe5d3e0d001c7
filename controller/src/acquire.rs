//! Kernel ACQUIREs as a hint to negotiate: tunnel traffic hit one of our policies while no SA
//! exists, so the peer's IKE SA is started now instead of after the responder's grace period.
//!
//! The ACQUIRE only hurries what the peer table already plans: a peer not yet in the engine,
//! with an IKE SA being set up or up, or backing off after failures is left alone, so traffic
//! towards an impostor cannot make us retry it faster than the backoff allows.

use std::time::Instant;

use tracing::{debug, info};

use crate::daemon::Daemon;
use crate::desired::PeerKey;
use crate::kernel::KernelConfig;
use crate::peers::{IkeState, PeerTable};

/// The peer whose policy raised `event`, if it is an ACQUIRE for one of ours: by the
/// template's reqid (which names the pair index) when the kernel included it, else by the SA
/// endpoints the kernel asks for (our encap IP → the peer's).
pub fn peer_of_acquire(
    event: &xfrm::Event,
    config: &KernelConfig,
    peers: &PeerTable,
) -> Option<PeerKey> {
    let xfrm::Event::Acquire {
        src, dst, reqid, ..
    } = event
    else {
        return None;
    };
    let wanted = PeerKey {
        local_ip: *src,
        remote_ip: *dst,
    };
    match reqid {
        Some(reqid) => {
            let (index, _child) = config.child_of_reqid(*reqid)?;
            peers
                .peers
                .iter()
                .find(|(key, p)| p.index == index && **key == wanted)
                .map(|(key, _)| *key)
        }
        None => peers.peers.contains_key(&wanted).then_some(wanted),
    }
}

/// Whether an ACQUIRE should move the initiation of a peer in the engine to `now`: it has no
/// IKE SA (being) set up, has not failed since its last IKE SA, and is not due already.
pub fn hurries(peer: &crate::peers::Peer, now: Instant) -> bool {
    matches!(peer.ike, IkeState::Idle)
        && peer.retry.failures() == 0
        && peer.initiate_at.is_some_and(|at| at > now)
}

impl Daemon {
    /// Acts on an XFRM event that may be an ACQUIRE for one of our peers.
    pub(crate) fn on_acquire(&mut self, event: &xfrm::Event) {
        let Some(key) = peer_of_acquire(event, self.kernel.config(), &self.peers) else {
            return;
        };
        let Some(peer) = self.peers.peers.get_mut(&key) else {
            return;
        };
        let _span = peer.span.clone().entered();
        let now = Instant::now();
        if peer.engine_id.is_some() && hurries(peer, now) {
            info!("tunnel traffic waiting for an SA: initiating now");
            peer.initiate_at = Some(now);
        } else {
            debug!(ike = ?peer.ike, failures = peer.retry.failures(), "acquire: nothing to hurry");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;
    use crate::desired::{DesiredPeer, Role, GENEVE_PORT};
    use crate::kernel::ChildKind;
    use crate::peers::Peer;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table() -> PeerTable {
        let mut t = PeerTable::default();
        for (i, remote) in ["192.0.2.2", "192.0.2.3", "2001:db8::2"].iter().enumerate() {
            let local = if remote.contains(':') {
                "2001:db8::1"
            } else {
                "192.0.2.1"
            };
            let key = PeerKey {
                local_ip: ip(local),
                remote_ip: ip(remote),
            };
            let desired = DesiredPeer::geneve(
                key,
                format!("ch-{remote}"),
                Role::Responder {
                    initiate_after: Duration::from_secs(10),
                },
            );
            // Indices not in key order, so the reqid really selects.
            let index = [4, 1, 7][i];
            t.peers
                .insert(key, Peer::new(desired, index, tracing::Span::none()));
        }
        t
    }

    fn acquire(src: &str, dst: &str, reqid: Option<u32>) -> xfrm::Event {
        xfrm::Event::Acquire {
            src: ip(src),
            dst: ip(dst),
            reqid,
            selector: xfrm::Selector::udp(ip(src), ip(dst), None, Some(GENEVE_PORT)),
            dir: None,
        }
    }

    #[test]
    fn acquire_with_our_reqid_maps_to_the_pair_of_that_index() {
        let c = KernelConfig::default();
        let t = table();
        let reqid = c.reqid(1, ChildKind::Out).unwrap();
        assert_eq!(
            peer_of_acquire(&acquire("192.0.2.1", "192.0.2.3", Some(reqid)), &c, &t),
            Some(PeerKey {
                local_ip: ip("192.0.2.1"),
                remote_ip: ip("192.0.2.3")
            })
        );
        let reqid = c.reqid(7, ChildKind::In).unwrap();
        assert_eq!(
            peer_of_acquire(&acquire("2001:db8::1", "2001:db8::2", Some(reqid)), &c, &t)
                .map(|k| k.remote_ip),
            Some(ip("2001:db8::2"))
        );
    }

    #[test]
    fn acquire_without_reqid_maps_by_the_sa_endpoints() {
        let c = KernelConfig::default();
        assert_eq!(
            peer_of_acquire(&acquire("192.0.2.1", "192.0.2.2", None), &c, &table())
                .map(|k| k.remote_ip),
            Some(ip("192.0.2.2"))
        );
        assert_eq!(
            peer_of_acquire(&acquire("192.0.2.1", "192.0.2.9", None), &c, &table()),
            None
        );
    }

    #[test]
    fn acquire_of_a_foreign_reqid_or_a_mismatched_pair_maps_to_no_peer() {
        let c = KernelConfig::default();
        let t = table();
        // strongSwan's reqid 1, for the addresses of one of our peers.
        assert_eq!(
            peer_of_acquire(&acquire("192.0.2.1", "192.0.2.2", Some(1)), &c, &t),
            None
        );
        // Our reqid of pair 4, but the addresses of pair 1.
        let reqid = c.reqid(4, ChildKind::Out).unwrap();
        assert_eq!(
            peer_of_acquire(&acquire("192.0.2.1", "192.0.2.3", Some(reqid)), &c, &t),
            None
        );
        let other = xfrm::Event::Lost;
        assert_eq!(peer_of_acquire(&other, &c, &t), None);
    }

    #[test]
    fn acquire_hurries_only_an_idle_peer_that_has_not_failed() {
        let now = Instant::now();
        let mut t = table();
        let peer = t.peers.values_mut().next().unwrap();
        peer.initiate_at = Some(now + Duration::from_secs(10));
        assert!(hurries(peer, now));

        peer.ike = IkeState::Connecting;
        assert!(!hurries(peer, now), "already negotiating");
        peer.ike = IkeState::Idle;

        peer.retry_later(now, 0);
        assert!(!hurries(peer, now), "backing off after a failure");
        peer.retry.succeeded();
        assert!(hurries(peer, now));

        peer.initiate_at = Some(now);
        assert!(!hurries(peer, now), "due already");
    }
}
