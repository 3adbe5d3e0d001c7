//! Traffic selectors: which packets a policy (or a state) applies to, by addresses, IP
//! protocol and ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_xfrm::{Address, Selector as KernelSelector, AF_INET, AF_INET6};

use crate::error::{Error, ObjectKind, Result};

/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of ESP.
pub const IPPROTO_ESP: u8 = 50;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The `AF_*` value the kernel uses.
    pub fn af(self) -> u16 {
        match self {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }

    /// The kernel module providing ESP for this family.
    pub fn esp_module(self) -> &'static str {
        match self {
            Family::V4 => "esp4",
            Family::V6 => "esp6",
        }
    }

    /// Maps an `AF_*` value back; `None` for anything else.
    pub fn from_af(af: u16) -> Option<Family> {
        match af {
            AF_INET => Some(Family::V4),
            AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }

    fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// An address with a prefix length: `192.0.2.1/32`, `2001:db8::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address.
    pub addr: IpAddr,
    /// Number of leading bits that must match.
    pub len: u8,
}

impl Prefix {
    /// A single host: the full-length prefix of `addr`.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: Family::of(&addr).max_prefix(),
        }
    }

    /// Every address of a family (`0.0.0.0/0`, `::/0`).
    pub fn any(family: Family) -> Prefix {
        Prefix {
            addr: family.unspecified(),
            len: 0,
        }
    }
}

/// Which packets match: addresses, IP protocol and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source prefix.
    pub src: Prefix,
    /// Destination prefix.
    pub dst: Prefix,
    /// IP protocol (`IPPROTO_UDP` …); `None` for any.
    pub proto: Option<u8>,
    /// Source port (UDP/TCP); `None` for any.
    pub sport: Option<u16>,
    /// Destination port (UDP/TCP); `None` for any.
    pub dport: Option<u16>,
}

impl Selector {
    /// All traffic from one host to another.
    pub fn host_to_host(src: IpAddr, dst: IpAddr) -> Selector {
        Selector {
            src: Prefix::host(src),
            dst: Prefix::host(dst),
            proto: None,
            sport: None,
            dport: None,
        }
    }

    /// UDP between two hosts, optionally restricted by ports (e.g. dport 6081 for Geneve).
    pub fn udp(src: IpAddr, dst: IpAddr, sport: Option<u16>, dport: Option<u16>) -> Selector {
        Selector {
            proto: Some(IPPROTO_UDP),
            sport,
            dport,
            ..Selector::host_to_host(src, dst)
        }
    }

    /// The address family, checking that both prefixes agree and fit.
    pub fn family(&self) -> Result<Family> {
        let family = Family::of(&self.src.addr);
        if Family::of(&self.dst.addr) != family {
            return Err(Error::MixedFamilies(ObjectKind::Policy));
        }
        for p in [self.src, self.dst] {
            if p.len > family.max_prefix() {
                return Err(Error::InvalidPrefixLength {
                    addr: p.addr,
                    prefix_len: p.len,
                });
            }
        }
        Ok(family)
    }

    pub(crate) fn to_kernel(self) -> Result<KernelSelector> {
        let family = self.family()?;
        let mask = |p: Option<u16>| if p.is_some() { u16::MAX } else { 0 };
        Ok(KernelSelector {
            daddr: Address::from_ip(&self.dst.addr),
            saddr: Address::from_ip(&self.src.addr),
            dport: self.dport.unwrap_or(0),
            dport_mask: mask(self.dport),
            sport: self.sport.unwrap_or(0),
            sport_mask: mask(self.sport),
            family: family.af(),
            prefixlen_d: self.dst.len,
            prefixlen_s: self.src.len,
            proto: self.proto.unwrap_or(0),
            ifindex: 0,
            user: 0,
        })
    }

    /// Reads a kernel selector; `fallback` gives the family when the selector's is unset.
    pub(crate) fn from_kernel(k: &KernelSelector, fallback: Family) -> Selector {
        let family = Family::from_af(k.family).unwrap_or(fallback);
        let port = |p: u16, mask: u16| if mask != 0 { Some(p) } else { None };
        Selector {
            src: Prefix {
                addr: ip_from_kernel(&k.saddr, family),
                len: k.prefixlen_s,
            },
            dst: Prefix {
                addr: ip_from_kernel(&k.daddr, family),
                len: k.prefixlen_d,
            },
            proto: if k.proto == 0 { None } else { Some(k.proto) },
            sport: port(k.sport, k.sport_mask),
            dport: port(k.dport, k.dport_mask),
        }
    }
}

/// Converts a kernel `xfrm_address_t` of the given family.
pub(crate) fn ip_from_kernel(a: &Address, family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(a.to_ipv4()),
        Family::V6 => IpAddr::V6(a.to_ipv6()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_selector_round_trips_through_kernel_form() {
        let s = Selector::udp(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            None,
            Some(6081),
        );
        let k = s.to_kernel().unwrap();
        assert_eq!(
            (k.dport, k.dport_mask, k.sport_mask, k.prefixlen_d),
            (6081, 0xffff, 0, 32)
        );
        assert_eq!(Selector::from_kernel(&k, Family::V6), s);
    }

    #[test]
    fn mixed_families_are_rejected() {
        let s =
            Selector::host_to_host("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        assert!(matches!(s.family(), Err(Error::MixedFamilies(_))));
    }

    #[test]
    fn over_long_prefix_is_rejected() {
        let mut s =
            Selector::host_to_host("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        s.dst.len = 33;
        assert!(matches!(
            s.family(),
            Err(Error::InvalidPrefixLength { prefix_len: 33, .. })
        ));
    }
}
