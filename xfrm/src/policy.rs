//! XFRM policies: which traffic must be protected (allow + templates) or dropped (block).

use std::net::IpAddr;

use netlink_packet_xfrm::{
    Address, Id, LifetimeConfig, UserPolicyId, UserPolicyInfo, UserTemplate, XfrmAttrs, XFRM_INF,
    XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK, XFRM_POLICY_FWD, XFRM_POLICY_IN, XFRM_POLICY_OUT,
    XFRM_SHARE_ANY,
};

use crate::error::{Error, ObjectKind, Result};
use crate::selector::{ip_from_kernel, Family, Selector, IPPROTO_ESP};
use crate::state::{Mark, Mode};

/// Which packets a policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Arriving for this host.
    In,
    /// Leaving this host.
    Out,
    /// Forwarded through this host.
    Fwd,
}

impl Direction {
    pub(crate) fn to_kernel(self) -> u8 {
        match self {
            Direction::In => XFRM_POLICY_IN,
            Direction::Out => XFRM_POLICY_OUT,
            Direction::Fwd => XFRM_POLICY_FWD,
        }
    }

    pub(crate) fn from_kernel(d: u8) -> Option<Direction> {
        match d {
            XFRM_POLICY_IN => Some(Direction::In),
            XFRM_POLICY_OUT => Some(Direction::Out),
            XFRM_POLICY_FWD => Some(Direction::Fwd),
            _ => None,
        }
    }
}

/// What happens to matching packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let them through, transformed by the templates (no templates: in clear).
    Allow,
    /// Drop them.
    Block,
}

/// One transform a matching packet must go through (`struct xfrm_user_tmpl`), always ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Template {
    /// Outer source (tunnel mode); `None` for transport mode.
    pub src: Option<IpAddr>,
    /// Outer destination (tunnel mode); `None` for transport mode.
    pub dst: Option<IpAddr>,
    /// The reqid of the states that may satisfy it.
    pub reqid: u32,
    /// Transport or tunnel.
    pub mode: Mode,
    /// A specific SPI; `None` for any.
    pub spi: Option<u32>,
    /// If true, packets without this transform are accepted too (inbound only).
    pub optional: bool,
}

impl Template {
    /// A transport-mode ESP template for states with `reqid`.
    pub fn transport(reqid: u32) -> Template {
        Template {
            src: None,
            dst: None,
            reqid,
            mode: Mode::Transport,
            spi: None,
            optional: false,
        }
    }

    /// A tunnel-mode ESP template between two outer addresses.
    pub fn tunnel(src: IpAddr, dst: IpAddr, reqid: u32) -> Template {
        Template {
            src: Some(src),
            dst: Some(dst),
            reqid,
            mode: Mode::Tunnel,
            spi: None,
            optional: false,
        }
    }

    fn to_kernel(self, family: Family) -> UserTemplate {
        let family = self.dst.map(|a| Family::of(&a)).unwrap_or(family);
        UserTemplate {
            id: Id {
                daddr: self.dst.map(|a| Address::from_ip(&a)).unwrap_or_default(),
                spi: self.spi.unwrap_or(0),
                proto: IPPROTO_ESP,
            },
            family: family.af(),
            saddr: self.src.map(|a| Address::from_ip(&a)).unwrap_or_default(),
            reqid: self.reqid,
            mode: self.mode.to_kernel(),
            share: XFRM_SHARE_ANY,
            optional: u8::from(self.optional),
            aalgos: u32::MAX,
            ealgos: u32::MAX,
            calgos: u32::MAX,
        }
    }

    fn from_kernel(t: &UserTemplate, fallback: Family) -> Template {
        let family = Family::from_af(t.family).unwrap_or(fallback);
        let addr = |a: &Address| {
            let ip = ip_from_kernel(a, family);
            if ip.is_unspecified() {
                None
            } else {
                Some(ip)
            }
        };
        Template {
            src: addr(&t.saddr),
            dst: addr(&t.id.daddr),
            reqid: t.reqid,
            mode: Mode::from_kernel(t.mode),
            spi: if t.id.spi == 0 { None } else { Some(t.id.spi) },
            optional: t.optional != 0,
        }
    }
}

/// What identifies a policy: selector, direction, mark and interface id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyId {
    /// Which packets.
    pub selector: Selector,
    /// Which direction.
    pub dir: Direction,
    /// The policy's mark, if it has one.
    pub mark: Option<Mark>,
    /// XFRM interface id, if bound to one.
    pub if_id: Option<u32>,
}

impl PolicyId {
    /// A policy id without mark or interface id.
    pub fn new(selector: Selector, dir: Direction) -> PolicyId {
        PolicyId {
            selector,
            dir,
            mark: None,
            if_id: None,
        }
    }

    pub(crate) fn to_kernel(self) -> Result<(UserPolicyId, Vec<XfrmAttrs>)> {
        let id = UserPolicyId {
            selector: self.selector.to_kernel()?,
            index: 0,
            direction: self.dir.to_kernel(),
        };
        let mut nlas = Vec::new();
        nlas.extend(self.mark.map(Mark::attr));
        nlas.extend(self.if_id.map(XfrmAttrs::IfId));
        Ok((id, nlas))
    }
}

/// A policy to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Selector, direction, mark, interface id.
    pub id: PolicyId,
    /// Lower values win when several policies match.
    pub priority: u32,
    /// Allow (with templates) or block.
    pub action: Action,
    /// Transforms required, outermost last.
    pub templates: Vec<Template>,
}

impl Policy {
    /// An allow policy requiring the given templates.
    pub fn allow(id: PolicyId, priority: u32, templates: Vec<Template>) -> Policy {
        Policy {
            id,
            priority,
            action: Action::Allow,
            templates,
        }
    }

    /// A block policy. The kernel ignores templates on block policies, so it carries one
    /// transport template with `owner_reqid` purely as our ownership tag.
    pub fn block(id: PolicyId, priority: u32, owner_reqid: u32) -> Policy {
        Policy {
            id,
            priority,
            action: Action::Block,
            templates: vec![Template::transport(owner_reqid)],
        }
    }

    /// The reqids this policy carries (its ownership tag).
    pub fn reqids(&self) -> impl Iterator<Item = u32> + '_ {
        self.templates.iter().map(|t| t.reqid)
    }

    pub(crate) fn to_kernel(&self) -> Result<(UserPolicyInfo, Vec<XfrmAttrs>)> {
        let family = self.id.selector.family()?;
        for t in &self.templates {
            if let (Some(s), Some(d)) = (t.src, t.dst) {
                if Family::of(&s) != Family::of(&d) {
                    return Err(Error::MixedFamilies(ObjectKind::Policy));
                }
            }
        }
        let info = UserPolicyInfo {
            selector: self.id.selector.to_kernel()?,
            lifetime_cfg: LifetimeConfig {
                soft_byte_limit: XFRM_INF,
                hard_byte_limit: XFRM_INF,
                soft_packet_limit: XFRM_INF,
                hard_packet_limit: XFRM_INF,
                ..LifetimeConfig::default()
            },
            priority: self.priority,
            direction: self.id.dir.to_kernel(),
            action: match self.action {
                Action::Allow => XFRM_POLICY_ALLOW,
                Action::Block => XFRM_POLICY_BLOCK,
            },
            share: XFRM_SHARE_ANY,
            ..UserPolicyInfo::default()
        };
        let mut nlas = Vec::new();
        if !self.templates.is_empty() {
            nlas.push(XfrmAttrs::Template(
                self.templates.iter().map(|t| t.to_kernel(family)).collect(),
            ));
        }
        nlas.extend(self.id.mark.map(Mark::attr));
        nlas.extend(self.id.if_id.map(XfrmAttrs::IfId));
        Ok((info, nlas))
    }
}

/// A policy as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The policy as it would be installed.
    pub policy: Policy,
    /// The kernel's index for it.
    pub index: u32,
}

impl PolicyInfo {
    /// Reads a policy from `xfrm_userpolicy_info` and its attributes; `None` for a direction
    /// we do not model (socket policies).
    pub(crate) fn from_kernel(info: &UserPolicyInfo, nlas: &[XfrmAttrs]) -> Option<PolicyInfo> {
        let family = Family::from_af(info.selector.family).unwrap_or(Family::V4);
        let dir = Direction::from_kernel(info.direction)?;
        let mut policy = Policy {
            id: PolicyId::new(Selector::from_kernel(&info.selector, family), dir),
            priority: info.priority,
            action: if info.action == XFRM_POLICY_BLOCK {
                Action::Block
            } else {
                Action::Allow
            },
            templates: Vec::new(),
        };
        for nla in nlas {
            match nla {
                XfrmAttrs::Template(ts) => {
                    policy.templates = ts
                        .iter()
                        .map(|t| Template::from_kernel(t, family))
                        .collect()
                }
                XfrmAttrs::Mark(m) if m.mask != 0 || m.value != 0 => {
                    policy.id.mark = Some(Mark {
                        value: m.value,
                        mask: m.mask,
                    })
                }
                XfrmAttrs::IfId(id) if *id != 0 => policy.id.if_id = Some(*id),
                _ => {}
            }
        }
        Some(PolicyInfo {
            policy,
            index: info.index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_policy_carries_ownership_template_and_round_trips() {
        let sel = Selector::udp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            None,
            Some(6081),
        );
        let p = Policy::block(PolicyId::new(sel, Direction::Out), 100, 4242);
        let (info, nlas) = p.to_kernel().unwrap();
        assert_eq!(info.action, XFRM_POLICY_BLOCK);
        let back = PolicyInfo::from_kernel(&info, &nlas).unwrap();
        assert_eq!(back.policy, p);
        assert_eq!(back.policy.reqids().collect::<Vec<_>>(), vec![4242]);
    }
}
