//! The kernel policies each desired peer needs, as plain data for the XFRM layer to apply.
//!
//! Like ovs-monitor-ipsec, every tunnel gets two CHILD_SAs, so strongSwan and Libreswan peers
//! it configured negotiate the same traffic selectors with us:
//!
//! - [`ChildKind::Outbound`] carries our tunnel packets: local, any port → remote, the remote
//!   encap's `dst_port` (ovs-monitor-ipsec's `out-1`);
//! - [`ChildKind::Inbound`] carries the peer's: remote, any port → local, our `dst_port`
//!   (`in-1`).
//!
//! Each CHILD_SA's selectors are bidirectional, so each child needs an `out` and an `in`
//! policy. Every policy requires an ESP transport-mode SA ([`PolicyAction::BlockUntilSa`]):
//! while none is installed the kernel drops matching outbound packets (raising an acquire)
//! and drops matching inbound packets that arrive in plaintext. No netlink here.

use std::fmt;
use std::net::IpAddr;

use crate::desired::{DesiredPeer, DesiredPeers, PeerKey};

/// The two CHILD_SAs of a tunnel, named by whose tunnel packets they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// Our tunnel packets to the peer: local any port → remote `dst_port`.
    Outbound,
    /// The peer's tunnel packets to us: remote any port → local `dst_port`.
    Inbound,
}

impl ChildKind {
    /// The same CHILD_SA seen from the peer.
    pub fn mirrored(self) -> Self {
        match self {
            ChildKind::Outbound => ChildKind::Inbound,
            ChildKind::Inbound => ChildKind::Outbound,
        }
    }
}

/// The direction of a policy (the kernel's `dir`; transport mode needs no `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Packets this host sends.
    Out,
    /// Packets this host receives.
    In,
}

/// One traffic selector of a CHILD_SA (RFC 7296 §3.13.1), narrowed to what a tunnel needs:
/// one address, one protocol, one port or any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrafficSelector {
    /// The single address (a /32 or /128 range).
    pub addr: IpAddr,
    /// The IP protocol number.
    pub proto: u8,
    /// One port, or `None` for the whole range 0-65535.
    pub port: Option<u16>,
}

/// A policy selector, with full-length prefixes on both addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port, `None` for any.
    pub src_port: Option<u16>,
    /// Destination port, `None` for any.
    pub dst_port: Option<u16>,
}

impl Selector {
    /// The prefix length of both addresses: 32 for IPv4, 128 for IPv6.
    pub fn prefix_len(&self) -> u8 {
        if self.src.is_ipv4() {
            32
        } else {
            128
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: Option<u16>| p.map_or_else(|| "any".to_owned(), |p| p.to_string());
        write!(
            f,
            "proto {} {}/{} port {} -> {}/{} port {}",
            self.proto,
            self.src,
            self.prefix_len(),
            port(self.src_port),
            self.dst,
            self.prefix_len(),
            port(self.dst_port)
        )
    }
}

/// What a policy does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Allow only through an ESP transport-mode SA between these tunnel endpoints; with no
    /// such SA, drop. The XFRM layer adds its reqid and mark.
    BlockUntilSa {
        /// The SA's source (the packet's sender).
        sa_src: IpAddr,
        /// The SA's destination.
        sa_dst: IpAddr,
        /// ESP is to be encapsulated in UDP even without NAT.
        udp_encap: bool,
    },
}

/// One policy to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlannedPolicy {
    /// The peer it protects.
    pub peer: PeerKey,
    /// The CHILD_SA whose traffic it matches.
    pub child: ChildKind,
    /// Out or in.
    pub direction: Direction,
    /// What it matches.
    pub selector: Selector,
    /// What it does.
    pub action: PolicyAction,
}

/// One CHILD_SA of a tunnel: its traffic selectors and its two policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPlan {
    /// Which of the two it is.
    pub kind: ChildKind,
    /// Our side's traffic selector (TSi when we initiate).
    pub local_ts: TrafficSelector,
    /// The peer's traffic selector.
    pub remote_ts: TrafficSelector,
    /// The out and in policies, in that order.
    pub policies: [PlannedPolicy; 2],
}

/// Everything one desired peer needs in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    /// The peer.
    pub peer: PeerKey,
    /// Outbound, then Inbound.
    pub children: [ChildPlan; 2],
}

impl PeerPlan {
    /// The four policies of the peer.
    pub fn policies(&self) -> impl Iterator<Item = &PlannedPolicy> {
        self.children.iter().flat_map(|c| c.policies.iter())
    }
}

fn child(peer: &DesiredPeer, kind: ChildKind) -> ChildPlan {
    let proto = peer.protocol.ip_proto();
    let (local_port, remote_port) = match kind {
        ChildKind::Outbound => (None, Some(peer.remote_port)),
        ChildKind::Inbound => (Some(peer.local_port), None),
    };
    let local_ts = TrafficSelector {
        addr: peer.key.local_ip,
        proto,
        port: local_port,
    };
    let remote_ts = TrafficSelector {
        addr: peer.key.remote_ip,
        proto,
        port: remote_port,
    };
    let policy = |direction, from: TrafficSelector, to: TrafficSelector| PlannedPolicy {
        peer: peer.key,
        child: kind,
        direction,
        selector: Selector {
            src: from.addr,
            dst: to.addr,
            proto,
            src_port: from.port,
            dst_port: to.port,
        },
        action: PolicyAction::BlockUntilSa {
            sa_src: from.addr,
            sa_dst: to.addr,
            udp_encap: peer.force_udp_encap,
        },
    };
    ChildPlan {
        kind,
        local_ts,
        remote_ts,
        policies: [
            policy(Direction::Out, local_ts, remote_ts),
            policy(Direction::In, remote_ts, local_ts),
        ],
    }
}

/// The CHILD_SAs and policies of one desired peer.
pub fn plan_peer(peer: &DesiredPeer) -> PeerPlan {
    PeerPlan {
        peer: peer.key,
        children: [
            child(peer, ChildKind::Outbound),
            child(peer, ChildKind::Inbound),
        ],
    }
}

/// The plans of every desired peer, in peer order.
pub fn plan_all(desired: &DesiredPeers) -> Vec<PeerPlan> {
    desired.peers.values().map(plan_peer).collect()
}

#[cfg(test)]
mod tests;
