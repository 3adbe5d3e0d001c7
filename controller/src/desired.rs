//! The desired protected peers: from a Southbound [`Snapshot`] and the local chassis name,
//! every (local encap IP, remote encap IP) pair whose tunnel traffic must be encrypted, with
//! the chassis name the peer must prove and who initiates.
//!
//! Everything here is decided from Southbound data alone, which every chassis sees alike, so
//! that the two ends of a tunnel always agree on whether it is protected, how, and by whom it
//! is initiated. The rules:
//!
//! - Nothing is protected unless `SB_Global.ipsec` is true.
//! - A remote chassis gets a tunnel when ovn-controller would make one: their
//!   `transport_zones` overlap, or neither has any; a chassis with `other_config:is-remote=true`
//!   only when this chassis has `other_config:is-interconn=true`.
//! - The encapsulation is the most preferred type both chassis have (geneve, then stt, then
//!   vxlan), and every pair of same-family IPs of that type, one per side, is a peer.
//! - The port of each direction is the receiving side's Encap `dst_port` option (6081 for
//!   geneve, 7471 for stt, 4789 for vxlan by default): tunnel packets go to the remote
//!   encap's port and arrive on ours.
//! - An encap IP that more than one chassis claims is never used, on any side: the identity a
//!   peer must prove would be ambiguous.
//! - **Opt-out.** Two chassis that share an IPsec exempt group are not protected with each
//!   other. A chassis joins group `NAME` with the entry `ipsec-exempt-group=NAME` in its
//!   `ovn-cms-options` (`ovs-vsctl set Open_vSwitch . external_ids:ovn-cms-options=...`, which
//!   ovn-controller publishes as `Chassis.other_config:ovn-cms-options`; older OVN releases
//!   published it in `Chassis.external_ids`, which is read when `other_config` lacks it). The
//!   option may appear several times to join several groups, beside other entries of the
//!   comma-separated list (`enable-chassis-as-gw,ipsec-exempt-group=rack7`).
//! - **Initiator.** Of the two ends, the one whose (chassis name, encap IP) is
//!   lexicographically smaller initiates at once; the other waits [`RESPONDER_GRACE`] and then
//!   initiates too, so that a peer that never initiates (a passive strongSwan or Libreswan)
//!   still comes up.
//! - UDP encapsulation of ESP is forced when `SB_Global.options:ipsec_encapsulation` or
//!   `ipsec_forceencaps` is `yes` or `true`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::kernel::pair::{ProtectedPair, TunnelProtocol as KernelTunnelProtocol};
use crate::southbound::{Chassis, Encap, EncapType, Snapshot};

/// The key of `Chassis.other_config` (and, in older OVN, `external_ids`) that holds the CMS
/// options list in which the opt-out entries live.
pub const CMS_OPTIONS_KEY: &str = "ovn-cms-options";

/// The CMS option naming an IPsec exempt group: `ipsec-exempt-group=NAME`.
pub const EXEMPT_GROUP_OPTION: &str = "ipsec-exempt-group";

/// How long the end that does not initiate first waits before it initiates too.
pub const RESPONDER_GRACE: Duration = Duration::from_secs(10);

/// Default Geneve destination port (IANA).
pub const GENEVE_PORT: u16 = 6081;
/// Default VXLAN destination port (IANA, RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// Default STT destination port (TCP).
pub const STT_PORT: u16 = 7471;

/// The `SB_Global.options` keys that force UDP encapsulation of ESP (the first is Libreswan's
/// word, the second strongSwan's; ovn-controller passes both on to ovs-monitor-ipsec).
pub const FORCE_ENCAPS_OPTIONS: [&str; 2] = ["ipsec_encapsulation", "ipsec_forceencaps"];

/// The transport protocol that carries a tunnel's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunnelProtocol {
    /// UDP (Geneve, VXLAN).
    Udp,
    /// TCP (STT).
    Tcp,
}

impl TunnelProtocol {
    /// The IP protocol number, as a policy selector carries it.
    pub fn ip_proto(self) -> u8 {
        match self {
            TunnelProtocol::Udp => 17,
            TunnelProtocol::Tcp => 6,
        }
    }
}

impl fmt::Display for TunnelProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelProtocol::Udp => "udp",
            TunnelProtocol::Tcp => "tcp",
        })
    }
}

/// A protected peer is identified by the two tunnel endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    /// Our encap IP.
    pub local_ip: IpAddr,
    /// The remote chassis' encap IP.
    pub remote_ip: IpAddr,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local_ip, self.remote_ip)
    }
}

/// Who starts the IKE SA of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We initiate as soon as the policies are in place.
    Initiator,
    /// The peer initiates; we initiate too if no IKE SA exists after `initiate_after`.
    Responder {
        /// How long to wait for the peer first.
        initiate_after: Duration,
    },
}

/// One (local encap IP, remote encap IP) pair whose tunnel traffic must be encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPeer {
    /// The two tunnel endpoints.
    pub key: PeerKey,
    /// The Southbound name of the remote chassis: the identity its certificate must prove.
    pub remote_chassis: String,
    /// The encapsulation both chassis use for this tunnel.
    pub encap_type: EncapType,
    /// The transport protocol of the tunnel packets.
    pub protocol: TunnelProtocol,
    /// The port tunnel packets from the peer arrive on (our encap's `dst_port`).
    pub local_port: u16,
    /// The port tunnel packets to the peer go to (its encap's `dst_port`).
    pub remote_port: u16,
    /// ESP must be encapsulated in UDP even without NAT.
    pub force_udp_encap: bool,
    /// Whether we initiate at once.
    pub role: Role,
}

impl DesiredPeer {
    /// The usual OVN peer: a Geneve tunnel over UDP with [`GENEVE_PORT`] at both ends and no
    /// forced UDP encapsulation, towards `remote_chassis` at `key`, in `role`.
    pub fn geneve(key: PeerKey, remote_chassis: String, role: Role) -> DesiredPeer {
        DesiredPeer {
            key,
            remote_chassis,
            encap_type: EncapType::Geneve,
            protocol: TunnelProtocol::Udp,
            local_port: GENEVE_PORT,
            remote_port: GENEVE_PORT,
            force_udp_encap: false,
            role,
        }
    }

    /// This peer as the kernel layer's [`ProtectedPair`], with the stable `index` its reqids
    /// derive from (the caller keeps indices stable across restarts).
    pub fn protected_pair(&self, index: u32) -> ProtectedPair {
        ProtectedPair {
            local: self.key.local_ip,
            remote: self.key.remote_ip,
            protocol: match self.protocol {
                TunnelProtocol::Udp => KernelTunnelProtocol::Udp,
                TunnelProtocol::Tcp => KernelTunnelProtocol::Tcp,
            },
            local_port: self.local_port,
            remote_port: self.remote_port,
            index,
        }
    }
}

/// Why the desired set is what it is as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredState {
    /// IPsec is on and the local chassis is registered: `peers` is the set to protect.
    Protecting,
    /// `SB_Global.ipsec` is false (or there is no SB_Global row): nothing is protected.
    IpsecDisabled,
    /// The local chassis is not in the Southbound DB (yet): nothing can be protected.
    LocalChassisMissing,
}

/// Why a remote chassis or one of its encaps yields no peer (for logs and status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// The two chassis share no transport zone (and not both have none).
    TransportZonesDisjoint {
        /// The remote chassis.
        chassis: String,
    },
    /// The remote chassis is in another availability zone and we are not an interconnection
    /// gateway.
    RemoteNotInterconn {
        /// The remote chassis.
        chassis: String,
    },
    /// The two chassis have no encapsulation type in common.
    NoCommonEncapType {
        /// The remote chassis.
        chassis: String,
    },
    /// The two chassis are in the same IPsec exempt group.
    Exempt {
        /// The remote chassis.
        chassis: String,
        /// The (first) group both are in.
        group: String,
    },
    /// Of the chosen type, no local and remote IP pair of the same address family is usable.
    NoUsableEncapPair {
        /// The remote chassis.
        chassis: String,
    },
    /// An encap IP that is not an IP address.
    InvalidEncapIp {
        /// The chassis owning the encap.
        chassis: String,
        /// The IP column as written.
        ip: String,
    },
    /// An encap `dst_port` option that is not a port number 1-65535.
    InvalidDstPort {
        /// The chassis owning the encap.
        chassis: String,
        /// The encap IP.
        ip: String,
        /// The option as written.
        value: String,
    },
    /// An encap IP claimed by several chassis: never used.
    DuplicateEncapIp {
        /// The IP.
        ip: IpAddr,
        /// The chassis claiming it.
        chassis: BTreeSet<String>,
    },
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::TransportZonesDisjoint { chassis } => {
                write!(f, "chassis {chassis}: no transport zone in common")
            }
            Exclusion::RemoteNotInterconn { chassis } => write!(
                f,
                "chassis {chassis}: is-remote, and this chassis is not an interconnection gateway"
            ),
            Exclusion::NoCommonEncapType { chassis } => {
                write!(f, "chassis {chassis}: no encapsulation type in common")
            }
            Exclusion::Exempt { chassis, group } => {
                write!(f, "chassis {chassis}: both in IPsec exempt group {group}")
            }
            Exclusion::NoUsableEncapPair { chassis } => write!(
                f,
                "chassis {chassis}: no usable pair of encap IPs of the same address family"
            ),
            Exclusion::InvalidEncapIp { chassis, ip } => {
                write!(f, "chassis {chassis}: encap IP '{ip}' is not an IP address")
            }
            Exclusion::InvalidDstPort { chassis, ip, value } => write!(
                f,
                "chassis {chassis}: encap {ip} has dst_port '{value}', not a port 1-65535"
            ),
            Exclusion::DuplicateEncapIp { ip, chassis } => {
                let names: Vec<&str> = chassis.iter().map(String::as_str).collect();
                write!(
                    f,
                    "encap IP {ip} is claimed by {}: not used",
                    names.join(", ")
                )
            }
        }
    }
}

/// The desired protected peers of this chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPeers {
    /// Why the set is what it is.
    pub state: DesiredState,
    /// The peers, by their endpoints.
    pub peers: BTreeMap<PeerKey, DesiredPeer>,
    /// Chassis and encaps that yield no peer, and why.
    pub excluded: Vec<Exclusion>,
    /// The encap pairs of opted-out chassis (also in `excluded`, once per chassis), for
    /// `ipsecctl peers`.
    pub exempt: Vec<ExemptPeer>,
}

impl DesiredPeers {
    fn empty(state: DesiredState) -> Self {
        Self {
            state,
            peers: BTreeMap::new(),
            excluded: Vec::new(),
            exempt: Vec::new(),
        }
    }
}

/// An encap pair that would have a tunnel but is not protected: the two chassis share an
/// IPsec exempt group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptPeer {
    /// The two tunnel endpoints.
    pub key: PeerKey,
    /// The Southbound name of the remote chassis.
    pub remote_chassis: String,
    /// The encapsulation of the tunnel.
    pub encap_type: EncapType,
    /// The (first) exempt group both chassis are in.
    pub group: String,
}

/// The preference of an encapsulation type, higher is better (as ovn-controller ranks them);
/// `None` for types no tunnel is made of.
fn preference(t: &EncapType) -> Option<u8> {
    match t {
        EncapType::Geneve => Some(3),
        EncapType::Stt => Some(2),
        EncapType::Vxlan => Some(1),
        EncapType::Other(_) => None,
    }
}

/// The default destination port and transport of an encapsulation type.
pub fn default_port(t: &EncapType) -> Option<(TunnelProtocol, u16)> {
    match t {
        EncapType::Geneve => Some((TunnelProtocol::Udp, GENEVE_PORT)),
        EncapType::Vxlan => Some((TunnelProtocol::Udp, VXLAN_PORT)),
        EncapType::Stt => Some((TunnelProtocol::Tcp, STT_PORT)),
        EncapType::Other(_) => None,
    }
}

/// True for `yes` and `true` in any case.
fn option_enabled(v: Option<&String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"))
}

/// Whether `SB_Global.options` forces UDP encapsulation of ESP.
pub fn force_udp_encap(snapshot: &Snapshot) -> bool {
    FORCE_ENCAPS_OPTIONS
        .iter()
        .any(|k| option_enabled(snapshot.options.get(*k)))
}

fn other_config_true(c: &Chassis, key: &str) -> bool {
    c.other_config.get(key).is_some_and(|v| v == "true")
}

/// The IPsec exempt groups a chassis is in (see the module documentation).
pub fn exempt_groups(c: &Chassis) -> BTreeSet<String> {
    let options = c
        .other_config
        .get(CMS_OPTIONS_KEY)
        .or_else(|| c.external_ids.get(CMS_OPTIONS_KEY));
    let Some(options) = options else {
        return BTreeSet::new();
    };
    options
        .split(',')
        .filter_map(|entry| {
            let (k, v) = entry.split_once('=')?;
            (k.trim() == EXEMPT_GROUP_OPTION && !v.trim().is_empty()).then(|| v.trim().to_owned())
        })
        .collect()
}

/// ovn-controller's rule: a tunnel exists when neither chassis is in a transport zone, or
/// they share one.
fn transport_zones_overlap(a: &Chassis, b: &Chassis) -> bool {
    (a.transport_zones.is_empty() && b.transport_zones.is_empty())
        || !a.transport_zones.is_disjoint(&b.transport_zones)
}

/// The most preferred encapsulation type both chassis have.
fn best_common_type(a: &Chassis, b: &Chassis) -> Option<EncapType> {
    a.encaps
        .iter()
        .filter(|e| b.encaps.iter().any(|o| o.encap_type == e.encap_type))
        .filter_map(|e| preference(&e.encap_type).map(|p| (p, &e.encap_type)))
        .max_by_key(|(p, _)| *p)
        .map(|(_, t)| t.clone())
}

/// An encap that passed validation: its address and the port it receives on.
#[derive(Debug, Clone, Copy)]
struct UsableEncap {
    ip: IpAddr,
    port: u16,
}

/// Which chassis claim each encap IP of the whole snapshot, to find IPs claimed twice.
struct EncapIndex<'a> {
    /// IP -> the first chassis claiming it, and whether another does too.
    owners: HashMap<IpAddr, (&'a str, bool)>,
}

impl<'a> EncapIndex<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut owners: HashMap<IpAddr, (&'a str, bool)> = HashMap::new();
        for c in snapshot.chassis.values() {
            for e in &c.encaps {
                if let Some(ip) = e.ip_addr() {
                    let claim = owners.entry(ip).or_insert((c.name.as_str(), false));
                    if claim.0 != c.name {
                        claim.1 = true;
                    }
                }
            }
        }
        Self { owners }
    }

    /// Every IP claimed by more than one chassis, with all its claimants.
    fn duplicates(&self, snapshot: &Snapshot) -> BTreeMap<IpAddr, BTreeSet<String>> {
        let mut dups: BTreeMap<IpAddr, BTreeSet<String>> = self
            .owners
            .iter()
            .filter(|(_, (_, dup))| *dup)
            .map(|(ip, _)| (*ip, BTreeSet::new()))
            .collect();
        if dups.is_empty() {
            return dups;
        }
        for c in snapshot.chassis.values() {
            for ip in c.encaps.iter().filter_map(Encap::ip_addr) {
                if let Some(owners) = dups.get_mut(&ip) {
                    owners.insert(c.name.clone());
                }
            }
        }
        dups
    }

    fn is_duplicate(&self, ip: &IpAddr) -> bool {
        self.owners.get(ip).is_some_and(|(_, dup)| *dup)
    }

    /// The usable encaps of `c` of type `t`; the unusable ones are reported in `excluded`
    /// (duplicates are reported once for the whole snapshot).
    fn usable(
        &self,
        c: &Chassis,
        t: &EncapType,
        excluded: &mut Vec<Exclusion>,
    ) -> Vec<UsableEncap> {
        let Some((_, default)) = default_port(t) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in c.encaps.iter().filter(|e| &e.encap_type == t) {
            match usable_encap(c, e, default) {
                Ok(u) if self.is_duplicate(&u.ip) => {}
                Ok(u) => out.push(u),
                Err(x) => excluded.push(x),
            }
        }
        out
    }
}

fn usable_encap(c: &Chassis, e: &Encap, default_port: u16) -> Result<UsableEncap, Exclusion> {
    let ip = e.ip_addr().ok_or_else(|| Exclusion::InvalidEncapIp {
        chassis: c.name.clone(),
        ip: e.ip.clone(),
    })?;
    let port = match e.options.get("dst_port") {
        None => default_port,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(Exclusion::InvalidDstPort {
                    chassis: c.name.clone(),
                    ip: e.ip.clone(),
                    value: v.clone(),
                })
            }
        },
    };
    Ok(UsableEncap { ip, port })
}

/// Why `local` and `remote` get no tunnel, or are exempt from protecting it, if they are.
fn pair_exclusion(
    local: &Chassis,
    remote: &Chassis,
    local_groups: &BTreeSet<String>,
) -> Option<Exclusion> {
    let chassis = remote.name.clone();
    if !transport_zones_overlap(local, remote) {
        return Some(Exclusion::TransportZonesDisjoint { chassis });
    }
    // A chassis of another availability zone (OVN interconnection) only has tunnels to the
    // gateways of this one; it does not run against this Southbound, so this one-sided rule
    // never makes two daemons disagree.
    if other_config_true(remote, "is-remote") && !other_config_true(local, "is-interconn") {
        return Some(Exclusion::RemoteNotInterconn { chassis });
    }
    if local_groups.is_empty() {
        return None;
    }
    let group = local_groups
        .intersection(&exempt_groups(remote))
        .next()?
        .clone();
    Some(Exclusion::Exempt { chassis, group })
}

/// The encap pairs `local` and the opted-out `remote` would have a tunnel on, chosen as for a
/// protected peer; unusable encaps are left out without being reported, since nothing is
/// programmed for them.
fn exempt_pairs(
    index: &EncapIndex<'_>,
    local: &Chassis,
    remote: &Chassis,
    group: &str,
) -> Vec<ExemptPeer> {
    let Some(encap_type) = best_common_type(local, remote) else {
        return Vec::new();
    };
    let mut unreported = Vec::new();
    let locals = index.usable(local, &encap_type, &mut unreported);
    let remotes = index.usable(remote, &encap_type, &mut unreported);
    let mut out = Vec::new();
    for l in &locals {
        for r in remotes.iter().filter(|r| r.ip.is_ipv4() == l.ip.is_ipv4()) {
            out.push(ExemptPeer {
                key: PeerKey {
                    local_ip: l.ip,
                    remote_ip: r.ip,
                },
                remote_chassis: remote.name.clone(),
                encap_type: encap_type.clone(),
                group: group.to_owned(),
            });
        }
    }
    out
}

/// Computes the desired protected peers of `local_chassis` from `snapshot` (the rules are in
/// the module documentation).
pub fn desired_peers(snapshot: &Snapshot, local_chassis: &str) -> DesiredPeers {
    if !snapshot.ipsec {
        return DesiredPeers::empty(DesiredState::IpsecDisabled);
    }
    let Some(local) = snapshot.chassis.get(local_chassis) else {
        return DesiredPeers::empty(DesiredState::LocalChassisMissing);
    };

    let index = EncapIndex::new(snapshot);
    let mut out = DesiredPeers::empty(DesiredState::Protecting);
    for (ip, chassis) in index.duplicates(snapshot) {
        out.excluded
            .push(Exclusion::DuplicateEncapIp { ip, chassis });
    }

    let force = force_udp_encap(snapshot);
    let local_groups = exempt_groups(local);
    let mut local_encaps: BTreeMap<EncapType, Vec<UsableEncap>> = BTreeMap::new();
    for remote in snapshot.chassis.values() {
        if remote.name == local.name {
            continue;
        }
        if let Some(x) = pair_exclusion(local, remote, &local_groups) {
            if let Exclusion::Exempt { group, .. } = &x {
                out.exempt
                    .extend(exempt_pairs(&index, local, remote, group));
            }
            out.excluded.push(x);
            continue;
        }

        let Some(encap_type) = best_common_type(local, remote) else {
            out.excluded.push(Exclusion::NoCommonEncapType {
                chassis: remote.name.clone(),
            });
            continue;
        };
        let Some((protocol, _)) = default_port(&encap_type) else {
            continue;
        };
        // Our own encaps of each type are validated (and their problems reported) once.
        let locals = local_encaps
            .entry(encap_type.clone())
            .or_insert_with(|| index.usable(local, &encap_type, &mut out.excluded));
        let remotes = index.usable(remote, &encap_type, &mut out.excluded);

        let mut any = false;
        for l in locals.iter() {
            for r in remotes.iter().filter(|r| r.ip.is_ipv4() == l.ip.is_ipv4()) {
                let key = PeerKey {
                    local_ip: l.ip,
                    remote_ip: r.ip,
                };
                let role = if (local.name.as_str(), l.ip) < (remote.name.as_str(), r.ip) {
                    Role::Initiator
                } else {
                    Role::Responder {
                        initiate_after: RESPONDER_GRACE,
                    }
                };
                out.peers.insert(
                    key,
                    DesiredPeer {
                        key,
                        remote_chassis: remote.name.clone(),
                        encap_type: encap_type.clone(),
                        protocol,
                        local_port: l.port,
                        remote_port: r.port,
                        force_udp_encap: force,
                        role,
                    },
                );
                any = true;
            }
        }
        if !any {
            out.excluded.push(Exclusion::NoUsableEncapPair {
                chassis: remote.name.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
