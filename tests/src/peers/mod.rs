//! Real IKEv2 peers for interop tests: Debian's strongSwan 5.9.8 (charon) and Libreswan 4.10
//! (pluto), each in a network namespace, configured the way ovs-monitor-ipsec configures them
//! for an OVN chassis (two transport-mode Geneve CHILD_SAs per remote chassis, certificate
//! auth with FQDN identities = chassis names, the same proposals).
//!
//! Drive either daemon through [`IkePeer`]; its state comes from the daemon's structured
//! status (charon's vici `list-sas`, pluto's `whack --showstates`), never from its log. Every
//! namespace, daemon and folder is a guard that cleans up when dropped. See
//! `tests/peers/README.md` for what the harness proves on the host kernel.

pub mod error;
pub mod libreswan;
pub mod netns;
pub mod our_endpoint;
pub mod pki;
pub mod process;
pub mod strongswan;
pub mod vici;

use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use error::PeerError;
pub use libreswan::Libreswan;
pub use netns::{Netns, NetnsPair, XfrmPolicy};
pub use pki::{ChassisCert, Pki};
pub use strongswan::StrongSwan;

/// Geneve's UDP port, the selector port of ovs-monitor-ipsec's two children.
pub const GENEVE_PORT: u16 = 6081;
/// How often [`wait_for`] re-checks its condition.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// A remote chassis this chassis has a Geneve tunnel to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePeer {
    /// The remote chassis name: its certificate's CN/SAN and its expected IKE identity.
    pub name: String,
    /// The remote encap IP.
    pub ip: IpAddr,
    /// The tunnel's destination UDP port (6081 for Geneve).
    pub dst_port: u16,
}

impl RemotePeer {
    /// A Geneve tunnel to `name` at `ip`.
    pub fn geneve(name: &str, ip: IpAddr) -> RemotePeer {
        RemotePeer {
            name: name.to_string(),
            ip,
            dst_port: GENEVE_PORT,
        }
    }

    /// The names ovs-monitor-ipsec gives this tunnel's connections. ovn-controller names the
    /// tunnel port `ovn-<remote chassis>-0`; ovs-monitor-ipsec appends `-in-1` / `-out-1`
    /// (direction and configuration version).
    // Limitation: ovn-controller shortens long chassis names in port names; not modelled.
    pub fn conn_names(&self) -> ConnNames {
        let tunnel = format!("ovn-{}-0", self.name);
        ConnNames {
            child_in: format!("{tunnel}-in-1"),
            child_out: format!("{tunnel}-out-1"),
            ike: tunnel,
        }
    }
}

/// Connection names of one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnNames {
    /// strongSwan's connection (IKE SA configuration) name: the tunnel port name.
    pub ike: String,
    /// The "in" child: local udp/6081 ← remote udp/any.
    pub child_in: String,
    /// The "out" child: local udp/any → remote udp/6081.
    pub child_out: String,
}

impl ConnNames {
    /// The child's name for `direction`.
    pub fn child(&self, direction: Direction) -> &str {
        match direction {
            Direction::In => &self.child_in,
            Direction::Out => &self.child_out,
        }
    }
}

/// Which of a tunnel's two CHILD_SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to our Geneve port.
    In,
    /// Traffic to the remote's Geneve port.
    Out,
}

/// What one chassis's IKE daemon is configured with, as ovs-monitor-ipsec derives it from
/// the local Open_vSwitch database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisConfig {
    /// The local chassis name (certificate CN and local IKE identity).
    pub name: String,
    /// The local encap IP.
    pub local_ip: IpAddr,
    /// The chassis this one has tunnels to.
    pub remote_peers: Vec<RemotePeer>,
    /// Forced UDP encapsulation, as ovn-controller asks for it on every tunnel when
    /// SB_Global.options has `ipsec_encapsulation=yes` / `ipsec_forceencaps=yes`
    /// (ovs-monitor-ipsec appends `encapsulation=yes` for Libreswan, `forceencaps=yes` for
    /// strongSwan).
    pub force_encaps: bool,
}

impl ChassisConfig {
    /// The remote peer named `name`.
    pub fn peer(&self, name: &str) -> Result<&RemotePeer, PeerError> {
        self.remote_peers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PeerError::UnknownPeer {
                chassis: self.name.clone(),
                peer: name.to_string(),
            })
    }
}

/// The state of an IKE SA as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeSaState {
    /// IKE_AUTH completed: both sides authenticated.
    Established,
    /// An exchange is under way (IKE_SA_INIT or IKE_AUTH not complete).
    Connecting,
    /// Any other state, by the daemon's own name.
    Other(String),
}

/// One IKE SA, from the daemon's structured status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaStatus {
    /// The remote chassis this IKE SA belongs to (by the daemon's configuration).
    pub peer: String,
    /// The authenticated remote identity, where the daemon reports it (charon).
    pub remote_id: Option<String>,
    /// The state.
    pub state: IkeSaState,
    /// Whether this side initiated, where the daemon reports it (charon).
    pub initiator: Option<bool>,
    /// The negotiated IKE algorithms (`AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048`), where
    /// reported (charon).
    pub proposal: Option<String>,
    /// Whether IKE and ESP are UDP-encapsulated (NAT detected or faked by forced
    /// encapsulation), where reported (charon).
    pub udp_encap: Option<bool>,
    /// The CHILD_SAs under it.
    pub child_sas: Vec<ChildSaStatus>,
}

/// One CHILD_SA, from the daemon's structured status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaStatus {
    /// The child configuration's name (`ovn-ch2-0-out-1`).
    pub name: String,
    /// The daemon's state name (`INSTALLED`, `STATE_V2_ESTABLISHED_CHILD_SA`).
    pub state: String,
    /// Mode (`TRANSPORT`), where reported.
    pub mode: Option<String>,
    /// Inbound SPI (hex), where reported.
    pub spi_in: Option<String>,
    /// Outbound SPI (hex), where reported.
    pub spi_out: Option<String>,
    /// Local traffic selectors, where reported.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors, where reported.
    pub remote_ts: Vec<String>,
}

/// The result of asking a daemon to initiate a CHILD_SA (and its IKE SA if needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiateOutcome {
    /// Whether the daemon reported the CHILD_SA established.
    pub success: bool,
    /// The daemon's report of this initiation, line by line: charon's vici `control-log`
    /// stream, pluto's `whack` replies.
    pub log: Vec<String>,
    /// The daemon's error message, where it gives one.
    pub error: Option<String>,
}

impl InitiateOutcome {
    /// Whether any line of the initiation report contains `needle` (a notify name such as
    /// `NO_PROPOSAL_CHOSEN`).
    pub fn log_mentions(&self, needle: &str) -> bool {
        self.log.iter().any(|l| l.contains(needle))
    }
}

/// An IKE daemon under test, whichever implementation: what a test asks of any peer.
pub trait IkePeer {
    /// The implementation and its namespace, for messages (`charon in oip-…-a`).
    fn label(&self) -> String;

    /// The configuration the daemon was started with.
    fn config(&self) -> &ChassisConfig;

    /// Initiates the tunnel's `direction` child towards `peer` (and the IKE SA first if
    /// there is none), waiting for the exchange to end.
    fn initiate(&self, peer: &str, direction: Direction) -> Result<InitiateOutcome, PeerError>;

    /// Deletes every IKE SA (and its CHILD_SAs) with `peer`.
    fn terminate(&self, peer: &str) -> Result<(), PeerError>;

    /// Every IKE SA the daemon has, with its CHILD_SAs.
    fn ike_sas(&self) -> Result<Vec<IkeSaStatus>, PeerError>;

    /// The daemon's log so far (for failure messages and reports; not for assertions where
    /// a structured status exists).
    fn log(&self) -> String;

    /// Every CHILD_SA the daemon has, under any IKE SA.
    fn child_sas(&self) -> Result<Vec<ChildSaStatus>, PeerError> {
        Ok(self
            .ike_sas()?
            .into_iter()
            .flat_map(|sa| sa.child_sas)
            .collect())
    }

    /// Whether an IKE SA with `peer` is established.
    fn ike_sa_established(&self, peer: &str) -> Result<bool, PeerError> {
        Ok(self
            .ike_sas()?
            .iter()
            .any(|sa| sa.peer == peer && sa.state == IkeSaState::Established))
    }

    /// Waits until an IKE SA with `peer` is established (for a peer that another endpoint,
    /// e.g. the daemon under test, initiates to).
    fn wait_for_ike_sa(&self, peer: &str, timeout: Duration) -> Result<(), PeerError> {
        wait_for(
            &format!("{} to establish an IKE SA with {peer}", self.label()),
            timeout,
            || self.ike_sa_established(peer),
        )
    }
}

/// The usual two-chassis setup on a namespace pair: `ch1` on side A and `ch2` on side B,
/// each with a Geneve tunnel to the other, over IPv4 or IPv6.
pub fn chassis_pair(pair: &NetnsPair, v6: bool) -> (ChassisConfig, ChassisConfig) {
    let (a, b) = (pair.a.addr(v6), pair.b.addr(v6));
    (
        ChassisConfig {
            name: "ch1".into(),
            local_ip: a,
            remote_peers: vec![RemotePeer::geneve("ch2", b)],
            force_encaps: false,
        },
        ChassisConfig {
            name: "ch2".into(),
            local_ip: b,
            remote_peers: vec![RemotePeer::geneve("ch1", a)],
            force_encaps: false,
        },
    )
}

/// Polls `condition` until it returns true or `timeout` passes; errors from it end the wait.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Result<bool, PeerError>,
) -> Result<(), PeerError> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PeerError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(WAIT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_names_follow_ovs_monitor_ipsec_tunnel_naming() {
        let names = RemotePeer::geneve("ch2", "10.77.0.2".parse().unwrap()).conn_names();
        assert_eq!(names.ike, "ovn-ch2-0");
        assert_eq!(names.child(Direction::In), "ovn-ch2-0-in-1");
        assert_eq!(names.child(Direction::Out), "ovn-ch2-0-out-1");
    }

    #[test]
    fn wait_for_reports_what_timed_out() {
        let err = wait_for("nothing", Duration::from_millis(1), || Ok(false)).unwrap_err();
        assert!(err.to_string().contains("nothing"), "{err}");
    }
}
