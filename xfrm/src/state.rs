//! XFRM states (security associations): what we install, and what the kernel reports back.

use std::net::IpAddr;

use netlink_packet_xfrm::{
    Address, Alg, AlgAead, AlgAuth, EncapTmpl, Id, Mark as KernelMark, ReplayEsn, UserOffloadDev,
    UserSaId, UserSaInfo, XfrmAttrs, UDP_ENCAP_ESPINUDP, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL,
    XFRM_OFFLOAD_INBOUND, XFRM_OFFLOAD_IPV6, XFRM_STATE_ESN,
};

use crate::algorithm::{self, Algorithm, HMAC_SHA256_NAME, HMAC_SHA256_TRUNC_BITS, ICV_BITS};
use crate::error::{Error, ObjectKind, Result};
use crate::lifetime::{Lifetimes, Usage};
use crate::selector::{ip_from_kernel, Family, Selector, IPPROTO_ESP};
use crate::stats::StateCounters;

/// Replay window used when none is configured: large enough for reordering on busy links.
pub const DEFAULT_REPLAY_WINDOW: u32 = 1024;
/// Largest replay window the kernel accepts (XFRMA_REPLAY_ESN_MAX bytes of bitmap).
pub const MAX_REPLAY_WINDOW: u32 = 4096;

/// ESP encapsulation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Transport mode: the ESP header sits between the IP header and the payload.
    Transport,
    /// Tunnel mode: the whole inner packet is encrypted inside a new outer IP header.
    Tunnel,
}

impl Mode {
    pub(crate) fn to_kernel(self) -> u8 {
        match self {
            Mode::Transport => XFRM_MODE_TRANSPORT,
            Mode::Tunnel => XFRM_MODE_TUNNEL,
        }
    }

    pub(crate) fn from_kernel(m: u8) -> Mode {
        if m == XFRM_MODE_TUNNEL {
            Mode::Tunnel
        } else {
            Mode::Transport
        }
    }
}

/// An XFRM mark: the object applies to packets whose mark & `mask` == `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mark {
    /// Value to match.
    pub value: u32,
    /// Bits that take part.
    pub mask: u32,
}

impl Mark {
    pub(crate) fn attr(self) -> XfrmAttrs {
        XfrmAttrs::Mark(KernelMark {
            value: self.value,
            mask: self.mask,
        })
    }
}

/// What identifies a state in the kernel: destination, SPI, protocol (always ESP here) and
/// mark; the source address is passed along as the kernel's lookups want it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateId {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// The SPI (host byte order).
    pub spi: u32,
    /// The state's mark, if it has one.
    pub mark: Option<Mark>,
}

impl StateId {
    /// The address family, checking both ends agree.
    pub fn family(&self) -> Result<Family> {
        let f = Family::of(&self.src);
        if Family::of(&self.dst) != f {
            return Err(Error::MixedFamilies(ObjectKind::State));
        }
        Ok(f)
    }

    /// The netlink payload naming this state (for XFRM_MSG_GETSA / DELSA).
    pub(crate) fn to_kernel(self) -> Result<(UserSaId, Vec<XfrmAttrs>)> {
        let family = self.family()?;
        let id = UserSaId {
            daddr: Address::from_ip(&self.dst),
            spi: self.spi,
            family: family.af(),
            proto: IPPROTO_ESP,
        };
        let mut nlas = vec![XfrmAttrs::SrcAddr(Address::from_ip(&self.src))];
        nlas.extend(self.mark.map(Mark::attr));
        Ok((id, nlas))
    }
}

/// ESP-in-UDP encapsulation (RFC 3948, UDP_ENCAP_ESPINUDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// Our UDP port (usually 4500).
    pub sport: u16,
    /// The peer's UDP port (usually 4500, or what NAT mapped it to).
    pub dport: u16,
    /// Original address before NAT (for transport-mode checksum fix-up), if known.
    pub original_address: Option<IpAddr>,
}

/// Hand an SA to a NIC that can do the ESP itself (XFRMA_OFFLOAD_DEV).
// Limitation: encoded as the kernel expects but untested: neither the host nor the guest has
// a NIC with IPsec offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    /// Interface index of the device.
    pub ifindex: i32,
    /// True for an inbound SA.
    pub inbound: bool,
}

/// A state to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Addresses, SPI and mark.
    pub id: StateId,
    /// Request id: ties the state to policy templates, and tags it as ours.
    pub reqid: u32,
    /// Transport or tunnel mode.
    pub mode: Mode,
    /// Transform and keys.
    pub algorithm: Algorithm,
    /// Traffic the state may carry; `None` means any (the policy decides).
    pub selector: Option<Selector>,
    /// Anti-replay window in packets (RFC 4303 §3.4.3), 1..=`MAX_REPLAY_WINDOW`.
    pub replay_window: u32,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Soft and hard lifetimes.
    pub lifetimes: Lifetimes,
    /// ESP-in-UDP encapsulation, when NAT is in the path or forced.
    pub encap: Option<Encap>,
    /// XFRM interface id, when states are bound to an xfrm interface.
    pub if_id: Option<u32>,
    /// Hardware offload, only when asked for.
    pub offload: Option<Offload>,
}

impl State {
    /// A state with the defaults: replay window `DEFAULT_REPLAY_WINDOW`, ESN on, no lifetime
    /// limits, no encapsulation, any selector.
    pub fn new(id: StateId, reqid: u32, mode: Mode, algorithm: Algorithm) -> State {
        State {
            id,
            reqid,
            mode,
            algorithm,
            selector: None,
            replay_window: DEFAULT_REPLAY_WINDOW,
            esn: true,
            lifetimes: Lifetimes::default(),
            encap: None,
            if_id: None,
            offload: None,
        }
    }

    /// The netlink payload for XFRM_MSG_NEWSA / UPDSA.
    pub(crate) fn to_kernel(&self) -> Result<(UserSaInfo, Vec<XfrmAttrs>)> {
        let family = self.id.family()?;
        if self.replay_window == 0 || self.replay_window > MAX_REPLAY_WINDOW {
            return Err(Error::InvalidReplayWindow(self.replay_window));
        }
        let selector = match self.selector {
            Some(s) => {
                if s.family()? != family {
                    return Err(Error::MixedFamilies(ObjectKind::State));
                }
                s.to_kernel()?
            }
            None => netlink_packet_xfrm::Selector::default(),
        };
        let info = UserSaInfo {
            selector,
            id: Id {
                daddr: Address::from_ip(&self.id.dst),
                spi: self.id.spi,
                proto: IPPROTO_ESP,
            },
            saddr: Address::from_ip(&self.id.src),
            lifetime_cfg: self.lifetimes.to_kernel(),
            reqid: self.reqid,
            family: family.af(),
            mode: self.mode.to_kernel(),
            // With XFRMA_REPLAY_ESN_VAL the legacy 8-bit window must be 0.
            replay_window: 0,
            flags: if self.esn { XFRM_STATE_ESN } else { 0 },
            ..UserSaInfo::default()
        };

        let mut nlas = algorithm_attrs(&self.algorithm);
        let bmp_len = self.replay_window.div_ceil(32);
        nlas.push(XfrmAttrs::ReplayStateEsn(ReplayEsn {
            bmp_len,
            replay_window: self.replay_window,
            bmp: vec![0; bmp_len as usize],
            ..ReplayEsn::default()
        }));
        if let Some(e) = self.encap {
            nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
                encap_type: UDP_ENCAP_ESPINUDP,
                encap_sport: e.sport,
                encap_dport: e.dport,
                encap_oa: e
                    .original_address
                    .map(|a| Address::from_ip(&a))
                    .unwrap_or_default(),
            }));
        }
        nlas.extend(self.id.mark.map(Mark::attr));
        nlas.extend(self.if_id.map(XfrmAttrs::IfId));
        if let Some(o) = self.offload {
            let mut flags = 0;
            if o.inbound {
                flags |= XFRM_OFFLOAD_INBOUND;
            }
            if family == Family::V6 {
                flags |= XFRM_OFFLOAD_IPV6;
            }
            nlas.push(XfrmAttrs::OffloadDevice(UserOffloadDev {
                ifindex: o.ifindex,
                flags,
            }));
        }
        Ok((info, nlas))
    }
}

fn algorithm_attrs(alg: &Algorithm) -> Vec<XfrmAttrs> {
    let bits = |k: &[u8]| (k.len() as u32).saturating_mul(8);
    match alg {
        Algorithm::AesGcm { key } | Algorithm::ChaCha20Poly1305 { key } => {
            vec![XfrmAttrs::EncryptionAlgAead(AlgAead {
                alg_name: algorithm::name_field(alg.kernel_name()),
                alg_key_len: bits(key.expose()),
                alg_icv_len: ICV_BITS,
                // Limitation: this copy of the key lives in netlink-packet-xfrm's plain Vec
                // until the request is encoded; it is not zeroized.
                alg_key: key.expose().to_vec(),
            })]
        }
        Algorithm::AesCbcHmacSha256 { enc_key, auth_key } => vec![
            XfrmAttrs::EncryptionAlg(Alg {
                alg_name: algorithm::name_field(alg.kernel_name()),
                alg_key_len: bits(enc_key.expose()),
                alg_key: enc_key.expose().to_vec(),
            }),
            XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
                alg_name: algorithm::name_field(HMAC_SHA256_NAME),
                alg_key_len: bits(auth_key.expose()),
                alg_trunc_len: HMAC_SHA256_TRUNC_BITS,
                alg_key: auth_key.expose().to_vec(),
            }),
        ],
    }
}

/// Sequence numbers of an ESN / large-window state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceNumbers {
    /// Highest outbound sequence number used (64-bit with ESN).
    pub outbound: u64,
    /// Highest inbound sequence number seen (64-bit with ESN).
    pub inbound: u64,
}

/// A state as the kernel reports it (dump, get, events). Keys are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInfo {
    /// Addresses, SPI and mark.
    pub id: StateId,
    /// Request id.
    pub reqid: u32,
    /// Transport or tunnel mode.
    pub mode: Mode,
    /// Kernel name of the encryption or AEAD transform; `None` for a larval (SPI-only) state.
    pub algorithm: Option<String>,
    /// The state's selector.
    pub selector: Selector,
    /// Replay window in packets.
    pub replay_window: u32,
    /// Whether extended sequence numbers are on.
    pub esn: bool,
    /// Sequence numbers, when the kernel reported them.
    pub sequence: Option<SequenceNumbers>,
    /// ESP-in-UDP encapsulation.
    pub encap: Option<Encap>,
    /// XFRM interface id.
    pub if_id: Option<u32>,
    /// Configured lifetimes.
    pub lifetimes: Lifetimes,
    /// Use so far.
    pub usage: Usage,
    /// Traffic and error counters.
    pub counters: StateCounters,
}

impl StateInfo {
    /// Reads a state from `xfrm_usersa_info` and its attributes.
    pub(crate) fn from_kernel(info: &UserSaInfo, nlas: &[XfrmAttrs]) -> StateInfo {
        let family = Family::from_af(info.family).unwrap_or(Family::V4);
        let mut s = StateInfo {
            id: StateId {
                src: ip_from_kernel(&info.saddr, family),
                dst: ip_from_kernel(&info.id.daddr, family),
                spi: info.id.spi,
                mark: None,
            },
            reqid: info.reqid,
            mode: Mode::from_kernel(info.mode),
            algorithm: None,
            selector: Selector::from_kernel(&info.selector, family),
            replay_window: u32::from(info.replay_window),
            esn: info.flags & XFRM_STATE_ESN != 0,
            sequence: None,
            encap: None,
            if_id: None,
            lifetimes: Lifetimes::from_kernel(&info.lifetime_cfg),
            usage: Usage::from_kernel(&info.lifetime_cur),
            counters: StateCounters::from_kernel(&info.stats, &info.lifetime_cur),
        };
        for nla in nlas {
            match nla {
                XfrmAttrs::EncryptionAlgAead(a) => {
                    s.algorithm = Some(algorithm::name_from_field(&a.alg_name))
                }
                XfrmAttrs::EncryptionAlg(a) => {
                    s.algorithm = Some(algorithm::name_from_field(&a.alg_name))
                }
                XfrmAttrs::ReplayStateEsn(r) => {
                    s.replay_window = r.replay_window;
                    s.sequence = Some(SequenceNumbers {
                        outbound: (u64::from(r.oseq_hi) << 32) | u64::from(r.oseq),
                        inbound: (u64::from(r.seq_hi) << 32) | u64::from(r.seq),
                    });
                }
                XfrmAttrs::ReplayState(r) => {
                    s.sequence.get_or_insert(SequenceNumbers {
                        outbound: u64::from(r.oseq),
                        inbound: u64::from(r.seq),
                    });
                }
                XfrmAttrs::EncapsulationTemplate(e) => {
                    let oa = ip_from_kernel(&e.encap_oa, family);
                    s.encap = Some(Encap {
                        sport: e.encap_sport,
                        dport: e.encap_dport,
                        original_address: if oa.is_unspecified() { None } else { Some(oa) },
                    });
                }
                XfrmAttrs::Mark(m) if m.mask != 0 || m.value != 0 => {
                    s.id.mark = Some(Mark {
                        value: m.value,
                        mask: m.mask,
                    })
                }
                XfrmAttrs::IfId(id) if *id != 0 => s.if_id = Some(*id),
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> StateId {
        StateId {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            spi: 0x1234,
            mark: None,
        }
    }

    #[test]
    fn esn_state_encodes_large_window_with_zero_legacy_window() {
        let mut st = State::new(
            id(),
            7,
            Mode::Transport,
            Algorithm::aes_gcm_128(&[1; 20]).unwrap(),
        );
        st.replay_window = 2048;
        let (info, nlas) = st.to_kernel().unwrap();
        assert_eq!(
            (info.replay_window, info.flags & XFRM_STATE_ESN),
            (0, XFRM_STATE_ESN)
        );
        let esn = nlas
            .iter()
            .find_map(|n| match n {
                XfrmAttrs::ReplayStateEsn(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            (esn.bmp_len, esn.replay_window, esn.bmp.len()),
            (64, 2048, 64)
        );
    }

    #[test]
    fn replay_window_beyond_kernel_limit_is_rejected() {
        let mut st = State::new(
            id(),
            7,
            Mode::Transport,
            Algorithm::aes_gcm_128(&[1; 20]).unwrap(),
        );
        st.replay_window = MAX_REPLAY_WINDOW + 1;
        assert!(matches!(
            st.to_kernel(),
            Err(Error::InvalidReplayWindow(4097))
        ));
    }

    #[test]
    fn decoded_state_keeps_no_key_material() {
        let st = State::new(
            id(),
            7,
            Mode::Tunnel,
            Algorithm::chacha20_poly1305(&[9; 36]).unwrap(),
        );
        let (info, nlas) = st.to_kernel().unwrap();
        let back = StateInfo::from_kernel(&info, &nlas);
        assert_eq!(
            back.algorithm.as_deref(),
            Some(algorithm::CHACHA20_POLY1305_NAME)
        );
        assert_eq!(
            (back.id, back.reqid, back.mode, back.replay_window),
            (id(), 7, Mode::Tunnel, 1024)
        );
    }
}
