//! A protected pair (local and remote encap IP, the tunnel port of each side) and the four
//! policies that keep its tunnel traffic off the wire unless it is ESP.
//!
//! Like ovs-monitor-ipsec, every tunnel gets two CHILD_SAs, so strongSwan and Libreswan peers
//! it configured negotiate the same traffic selectors with us: the "out" child carries our
//! tunnel packets (local, any port → remote, the remote encap's `dst_port`), the "in" child the
//! peer's (remote, any port → local, our encap's `dst_port`). The two ends of a tunnel compute
//! mirrored pairs from the same Southbound rows, so one side's "out" child is the other's "in".

use std::net::IpAddr;

use xfrm::{Direction, Policy, PolicyId, Selector, Template, IPPROTO_TCP, IPPROTO_UDP};

use crate::kernel::error::PlanError;
use crate::kernel::KernelConfig;

/// The transport protocol of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelProtocol {
    /// Geneve (6081) and VXLAN (4789).
    Udp,
    /// STT (7471).
    Tcp,
}

impl TunnelProtocol {
    /// The IP protocol number, as a selector carries it.
    pub fn ip_proto(self) -> u8 {
        match self {
            TunnelProtocol::Udp => IPPROTO_UDP,
            TunnelProtocol::Tcp => IPPROTO_TCP,
        }
    }
}

/// One of the two CHILD_SAs of a pair, named as ovs-monitor-ipsec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildKind {
    /// Local any port → remote tunnel port (and its reverse): what we send to the peer.
    Out,
    /// Remote any port → local tunnel port (and its reverse): what the peer sends us.
    In,
}

impl ChildKind {
    /// Both children, in reqid order.
    pub const BOTH: [ChildKind; 2] = [ChildKind::Out, ChildKind::In];

    /// The same CHILD_SA seen from the peer: our "out" child is its "in" child.
    pub fn mirrored(self) -> ChildKind {
        match self {
            ChildKind::Out => ChildKind::In,
            ChildKind::In => ChildKind::Out,
        }
    }

    pub(crate) fn offset(self) -> u32 {
        match self {
            ChildKind::Out => 0,
            ChildKind::In => 1,
        }
    }
}

/// Which way an SA (one kernel state) carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaDirection {
    /// From the peer to us: src = remote, dst = local.
    Inbound,
    /// From us to the peer: src = local, dst = remote.
    Outbound,
}

impl SaDirection {
    /// Both directions.
    pub const BOTH: [SaDirection; 2] = [SaDirection::Inbound, SaDirection::Outbound];

    /// The policy direction that carries this SA's packets.
    pub fn policy_direction(self) -> Direction {
        match self {
            SaDirection::Inbound => Direction::In,
            SaDirection::Outbound => Direction::Out,
        }
    }
}

/// A tunnel between one local and one remote encap IP that must only ever carry ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtectedPair {
    /// This chassis' encap IP.
    pub local: IpAddr,
    /// The remote chassis' encap IP (same family as `local`).
    pub remote: IpAddr,
    /// The tunnel's transport protocol.
    pub protocol: TunnelProtocol,
    /// The port the peer's tunnel packets arrive on: our Encap's `dst_port` (6081 for Geneve).
    pub local_port: u16,
    /// The port our tunnel packets go to: the remote Encap's `dst_port`.
    pub remote_port: u16,
    /// A stable index, unique among this chassis' pairs, from which the reqids are derived
    /// ([`KernelConfig::reqid`]); it must survive restarts for adoption to work.
    pub index: u32,
}

impl ProtectedPair {
    /// A Geneve pair with both ends on the standard port 6081.
    pub fn geneve(local: IpAddr, remote: IpAddr, index: u32) -> ProtectedPair {
        ProtectedPair {
            local,
            remote,
            protocol: TunnelProtocol::Udp,
            local_port: GENEVE_PORT,
            remote_port: GENEVE_PORT,
            index,
        }
    }

    /// The tunnel port a CHILD_SA selects: the remote encap's for the "out" child (our packets
    /// go there), ours for the "in" child (the peer's packets arrive there).
    pub fn tunnel_port(&self, child: ChildKind) -> u16 {
        match child {
            ChildKind::Out => self.remote_port,
            ChildKind::In => self.local_port,
        }
    }

    /// The same tunnel as the peer sees it (addresses and ports swapped), with `index`.
    pub fn mirrored(&self, index: u32) -> ProtectedPair {
        ProtectedPair {
            local: self.remote,
            remote: self.local,
            protocol: self.protocol,
            local_port: self.remote_port,
            remote_port: self.local_port,
            index,
        }
    }

    /// Checks the two addresses are of one family.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.local.is_ipv4() != self.remote.is_ipv4() {
            return Err(PlanError::MixedFamilies {
                index: self.index,
                local: self.local,
                remote: self.remote,
            });
        }
        Ok(())
    }

    /// The (src, dst) of an SA of this pair in `dir`.
    pub fn endpoints(&self, dir: SaDirection) -> (IpAddr, IpAddr) {
        match dir {
            SaDirection::Inbound => (self.remote, self.local),
            SaDirection::Outbound => (self.local, self.remote),
        }
    }

    /// The traffic one direction of one CHILD_SA carries: for the "out" child local any →
    /// remote port outbound and remote port → local any inbound; for the "in" child remote
    /// any → local port inbound and local port → remote any outbound.
    pub fn selector(&self, child: ChildKind, dir: SaDirection) -> Selector {
        let (src, dst) = self.endpoints(dir);
        let port = Some(self.tunnel_port(child));
        // The tunnel port is on the remote side for the "out" child, on ours for the "in" one.
        let (sport, dport) = match (child, dir) {
            (ChildKind::Out, SaDirection::Outbound) | (ChildKind::In, SaDirection::Inbound) => {
                (None, port)
            }
            (ChildKind::Out, SaDirection::Inbound) | (ChildKind::In, SaDirection::Outbound) => {
                (port, None)
            }
        };
        Selector {
            proto: Some(self.protocol.ip_proto()),
            sport,
            dport,
            ..Selector::host_to_host(src, dst)
        }
    }

    /// The four policies of this pair: allow policies whose required transport template names
    /// the child's reqid, so that without a state the kernel drops the traffic.
    pub fn policies(&self, config: &KernelConfig) -> Result<Vec<Policy>, PlanError> {
        self.validate()?;
        let mut out = Vec::with_capacity(4);
        for child in ChildKind::BOTH {
            let reqid = config.reqid(self.index, child)?;
            for dir in [SaDirection::Outbound, SaDirection::Inbound] {
                let id = PolicyId {
                    mark: config.mark,
                    ..PolicyId::new(self.selector(child, dir), dir.policy_direction())
                };
                out.push(Policy::allow(
                    id,
                    config.priority,
                    vec![Template::transport(reqid)],
                ));
            }
        }
        Ok(out)
    }
}

/// The IANA port of Geneve (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> ProtectedPair {
        ProtectedPair::geneve(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            3,
        )
    }

    #[test]
    fn geneve_pair_has_four_policies_covering_both_children_and_directions() {
        let c = KernelConfig {
            reqids: 100..=199,
            ..KernelConfig::default()
        };
        let p = pair().policies(&c).unwrap();
        let l: IpAddr = "192.0.2.1".parse().unwrap();
        let r: IpAddr = "192.0.2.2".parse().unwrap();
        let summary: Vec<_> = p
            .iter()
            .map(|p| {
                let s = p.id.selector;
                (
                    p.id.dir,
                    s.src.addr,
                    s.sport,
                    s.dst.addr,
                    s.dport,
                    p.templates[0].reqid,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Direction::Out, l, None, r, Some(6081), 106),
                (Direction::In, r, Some(6081), l, None, 106),
                (Direction::Out, l, Some(6081), r, None, 107),
                (Direction::In, r, None, l, Some(6081), 107),
            ]
        );
        assert!(p
            .iter()
            .all(|p| p.action == xfrm::Action::Allow && !p.templates[0].optional));
    }

    #[test]
    fn pair_of_mixed_families_is_rejected() {
        let mut p = pair();
        p.remote = "2001:db8::2".parse().unwrap();
        assert!(matches!(
            p.policies(&KernelConfig::default()),
            Err(PlanError::MixedFamilies { index: 3, .. })
        ));
    }

    /// A policy as (direction, source, source port, destination, destination port).
    type Seen = (Direction, IpAddr, Option<u16>, IpAddr, Option<u16>);

    fn summary(p: &[Policy]) -> Vec<Seen> {
        p.iter()
            .map(|p| {
                let s = p.id.selector;
                (p.id.dir, s.src.addr, s.sport, s.dst.addr, s.dport)
            })
            .collect()
    }

    #[test]
    fn out_child_selects_the_remote_port_and_in_child_ours() {
        let l: IpAddr = "10.0.0.1".parse().unwrap();
        let r: IpAddr = "10.0.0.2".parse().unwrap();
        let p = ProtectedPair {
            local_port: 7081,
            remote_port: 6081,
            ..ProtectedPair::geneve(l, r, 0)
        };
        let policies = p.policies(&KernelConfig::default()).unwrap();
        assert_eq!(
            summary(&policies),
            vec![
                // Our Geneve packets to the peer's port 6081, and that child's reverse.
                (Direction::Out, l, None, r, Some(6081)),
                (Direction::In, r, Some(6081), l, None),
                // The peer's packets to our port 7081, and that child's reverse.
                (Direction::Out, l, Some(7081), r, None),
                (Direction::In, r, None, l, Some(7081)),
            ]
        );
    }

    #[test]
    fn stt_pair_selects_tcp_and_ipv6_pair_uses_full_prefixes() {
        let p = ProtectedPair {
            protocol: TunnelProtocol::Tcp,
            local_port: 7471,
            remote_port: 7471,
            ..ProtectedPair::geneve("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), 0)
        };
        for policy in p.policies(&KernelConfig::default()).unwrap() {
            let s = policy.id.selector;
            assert_eq!(s.proto, Some(IPPROTO_TCP));
            assert_eq!((s.src.len, s.dst.len), (128, 128));
        }
    }

    #[test]
    fn both_ends_select_the_same_traffic_for_each_child_sa() {
        let a = ProtectedPair {
            local_port: 7081,
            remote_port: 8081,
            ..pair()
        };
        let b = a.mirrored(9);
        assert_eq!(b.mirrored(a.index), a);
        for child in ChildKind::BOTH {
            for dir in SaDirection::BOTH {
                // What one end sends under a CHILD_SA, the other receives under its mirror.
                let other = match dir {
                    SaDirection::Inbound => SaDirection::Outbound,
                    SaDirection::Outbound => SaDirection::Inbound,
                };
                assert_eq!(
                    a.selector(child, dir),
                    b.selector(child.mirrored(), other),
                    "{child:?} {dir:?}"
                );
            }
        }
    }
}
