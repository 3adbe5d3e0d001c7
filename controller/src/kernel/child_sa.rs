//! One direction of a negotiated CHILD_SA, as the IKE layer hands it over, and the kernel state
//! it becomes.

use xfrm::{Algorithm, Encap, Key, Lifetimes, Mode, Selector, State, StateId};

use crate::kernel::error::PlanError;
use crate::kernel::pair::{ChildKind, ProtectedPair, SaDirection};
use crate::kernel::KernelConfig;

/// The ESP AEAD transforms we install (RFC 4106, RFC 7634).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-GCM with a 128-bit key and 16-octet ICV; key ‖ salt is 20 bytes.
    AesGcm128,
    /// AES-GCM with a 256-bit key and 16-octet ICV; key ‖ salt is 36 bytes.
    AesGcm256,
    /// ChaCha20-Poly1305; key ‖ salt is 36 bytes.
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    fn with_key(self, key: &Key) -> Result<Algorithm, xfrm::Error> {
        let k = key.expose();
        match self {
            AeadAlgorithm::AesGcm128 => Algorithm::aes_gcm_128(k),
            AeadAlgorithm::AesGcm256 => Algorithm::aes_gcm_256(k),
            AeadAlgorithm::ChaCha20Poly1305 => Algorithm::chacha20_poly1305(k),
        }
    }
}

/// ESP-in-UDP encapsulation ports (RFC 3948), seen from this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    /// Our UDP port (4500).
    pub local_port: u16,
    /// The peer's UDP port (4500, or what a NAT mapped it to).
    pub remote_port: u16,
}

/// One SA (one kernel state) of a pair's CHILD_SA. The key is zeroized on drop and never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    /// The [`ProtectedPair::index`] of the pair it protects.
    pub pair: u32,
    /// Which of the pair's two CHILD_SAs.
    pub child: ChildKind,
    /// Which way it carries packets.
    pub dir: SaDirection,
    /// The SPI: ours (allocated by us) for inbound, the peer's for outbound.
    pub spi: u32,
    /// The AEAD transform.
    pub algorithm: AeadAlgorithm,
    /// Key ‖ salt, from the CHILD_SA key schedule (RFC 7296 §2.17).
    pub key: Key,
    /// The traffic selectors as negotiated for this direction; `None` takes the pair's own
    /// ([`ProtectedPair::selector`]).
    pub selector: Option<Selector>,
    /// ESP-in-UDP, when NAT was detected or encapsulation is forced.
    pub encap: Option<UdpEncap>,
    /// Soft and hard lifetimes.
    pub lifetimes: Lifetimes,
    /// Anti-replay window in packets.
    pub replay_window: u32,
    /// Extended sequence numbers, as negotiated.
    pub esn: bool,
}

impl ChildSa {
    /// The kernel id of this SA within `pair`.
    pub fn state_id(&self, pair: &ProtectedPair, config: &KernelConfig) -> StateId {
        let (src, dst) = pair.endpoints(self.dir);
        StateId {
            src,
            dst,
            spi: self.spi,
            mark: config.mark,
        }
    }

    /// The kernel state to install for this SA of `pair`.
    pub fn to_state(
        &self,
        pair: &ProtectedPair,
        config: &KernelConfig,
    ) -> Result<State, PlanError> {
        let reqid = config.reqid(pair.index, self.child)?;
        let algorithm =
            self.algorithm
                .with_key(&self.key)
                .map_err(|source| PlanError::InvalidChildSa {
                    pair: self.pair,
                    spi: self.spi,
                    source,
                })?;
        let mut state = State::new(
            self.state_id(pair, config),
            reqid,
            Mode::Transport,
            algorithm,
        );
        state.selector = Some(
            self.selector
                .unwrap_or_else(|| pair.selector(self.child, self.dir)),
        );
        state.replay_window = self.replay_window;
        state.esn = self.esn;
        state.lifetimes = self.lifetimes;
        // The kernel's encap template is in the state's own src → dst terms.
        state.encap = self.encap.map(|e| {
            let (sport, dport) = match self.dir {
                SaDirection::Outbound => (e.local_port, e.remote_port),
                SaDirection::Inbound => (e.remote_port, e.local_port),
            };
            Encap {
                sport,
                dport,
                original_address: None,
            }
        });
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(dir: SaDirection, key_len: usize) -> ChildSa {
        ChildSa {
            pair: 0,
            child: ChildKind::In,
            dir,
            spi: 0x1234,
            algorithm: AeadAlgorithm::AesGcm256,
            key: Key::new(&vec![9; key_len]),
            selector: None,
            encap: Some(UdpEncap {
                local_port: 4500,
                remote_port: 31000,
            }),
            lifetimes: Lifetimes::default(),
            replay_window: 64,
            esn: true,
        }
    }

    #[test]
    fn inbound_state_runs_remote_to_local_with_encap_ports_swapped() {
        let pair = ProtectedPair::geneve(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            0,
        );
        let c = KernelConfig::default();
        let st = sa(SaDirection::Inbound, 36).to_state(&pair, &c).unwrap();
        assert_eq!(st.id.src, pair.remote);
        assert_eq!(st.id.dst, pair.local);
        assert_eq!(st.reqid, c.reqid(0, ChildKind::In).unwrap());
        assert_eq!(st.encap.map(|e| (e.sport, e.dport)), Some((31000, 4500)));
        assert_eq!(st.selector.unwrap().dport, Some(6081));
        assert_eq!(st.selector.unwrap().dst.addr, pair.local);
    }

    #[test]
    fn wrong_key_length_names_the_pair_and_spi() {
        let pair = ProtectedPair::geneve(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            0,
        );
        let e = sa(SaDirection::Outbound, 20)
            .to_state(&pair, &KernelConfig::default())
            .unwrap_err();
        assert!(matches!(
            e,
            PlanError::InvalidChildSa {
                pair: 0,
                spi: 0x1234,
                ..
            }
        ));
    }

    #[test]
    fn child_sa_debug_output_hides_the_key() {
        let text = format!("{:?}", sa(SaDirection::Outbound, 36));
        assert!(
            text.contains("redacted") && !text.contains("9, 9"),
            "{text}"
        );
    }
}
