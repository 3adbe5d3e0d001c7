//! The control API of the running daemon: the loop publishes a [`SharedView`] after every
//! step, and [`DaemonHandler`] answers status/peers/sas from it and queues actions back to
//! the loop.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use control_api::protocol::{
    ike_spi_hex, ActionDone, CertificateStatus, ChildSaInfo, CleanupReport, ConnectionState,
    IkeSaInfo, IkeSaState, KernelCounters, PeerError, PeerInfo, PeerPolicy, Role, SaLifetime,
    SaList, SaMode, SouthboundStatus, Status, TrafficSelector, UdpEncapsulation,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::control::{ActionError, ControlHandler};
use crate::daemon::Daemon;
use crate::kernel::{ChildKind, SaDirection};
use crate::metrics::{ChildSaState, PeerCount};
use crate::peers::{IkeState, Peer};

/// What the loop last published for the control API.
#[derive(Debug, Clone, Default)]
pub struct SharedView {
    /// The node overview.
    pub status: Option<Status>,
    /// Every desired peer.
    pub peers: Vec<PeerInfo>,
    /// Every IKE SA with its CHILD_SAs.
    pub sas: Vec<IkeSaInfo>,
}

/// An action the control API asks the loop to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Re-read configuration and certificates (as SIGHUP).
    Reload,
    /// Initiate to the chassis now.
    Initiate(String),
    /// Delete the IKE SAs with the chassis (the daemon initiates again later).
    Terminate(String),
}

/// The [`ControlHandler`] of the daemon.
#[derive(Debug)]
pub struct DaemonHandler {
    view: Arc<Mutex<SharedView>>,
    commands: UnboundedSender<Command>,
}

impl DaemonHandler {
    /// A handler reading `view` and queueing actions on `commands`.
    pub fn new(view: Arc<Mutex<SharedView>>, commands: UnboundedSender<Command>) -> Self {
        DaemonHandler { view, commands }
    }

    fn read(&self) -> SharedView {
        self.view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn queue_for(&self, peer: &str, cmd: Command) -> Result<ActionDone, ActionError> {
        if !self.read().peers.iter().any(|p| p.chassis == peer) {
            return Err(ActionError::UnknownPeer { peer: peer.into() });
        }
        self.commands.send(cmd).map_err(|_| ActionError::Failed {
            message: "the daemon loop is stopping".into(),
        })?;
        Ok(ActionDone {
            message: format!("queued for {peer}"),
        })
    }
}

impl ControlHandler for DaemonHandler {
    fn status(&self) -> Status {
        self.read().status.unwrap_or_else(|| Status {
            chassis: String::new(),
            southbound: SouthboundStatus {
                remote: None,
                state: ConnectionState::Connecting,
                member_role: None,
                last_sync_unix: None,
            },
            peers_desired: 0,
            peers_exempt: 0,
            peers_up: 0,
            certificate: None,
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn peers(&self) -> Vec<PeerInfo> {
        self.read().peers
    }

    fn sas(&self) -> SaList {
        SaList {
            ike_sas: self.read().sas,
        }
    }

    fn initiate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        self.queue_for(peer, Command::Initiate(peer.into()))
    }

    fn terminate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        self.queue_for(peer, Command::Terminate(peer.into()))
    }

    fn rekey(&self, _peer: &str) -> Result<ActionDone, ActionError> {
        Err(ActionError::Failed {
            message: "IKE SA rekey is not implemented by the engine yet".into(),
        })
    }

    fn reload(&self) -> Result<ActionDone, ActionError> {
        self.commands
            .send(Command::Reload)
            .map_err(|_| ActionError::Failed {
                message: "the daemon loop is stopping".into(),
            })?;
        Ok(ActionDone {
            message: "reload queued".into(),
        })
    }

    fn cleanup(&self) -> Result<CleanupReport, ActionError> {
        // The running daemon would program everything again at its next reconcile.
        Err(ActionError::Failed {
            message: "stop ovn-ipsecd first: a running daemon re-programs what cleanup removes"
                .into(),
        })
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ike_state(p: &Peer) -> IkeSaState {
    match p.ike {
        IkeState::Idle => IkeSaState::None,
        IkeState::Connecting => IkeSaState::Connecting,
        IkeState::Up => IkeSaState::Established,
        IkeState::Failed => IkeSaState::Failed,
    }
}

fn host_ts(ip: IpAddr, proto: u8, port: Option<u16>) -> TrafficSelector {
    TrafficSelector {
        start_address: ip,
        end_address: ip,
        ip_protocol: proto,
        start_port: port.unwrap_or(0),
        end_port: port.unwrap_or(u16::MAX),
    }
}

impl Daemon {
    /// Publishes the state for the control API and the metrics.
    pub(crate) fn publish(&self) {
        let now = Instant::now();
        let up = self
            .peers
            .peers
            .values()
            .filter(|p| p.ike == IkeState::Up)
            .count();
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let status = Status {
            chassis: self.chassis.clone(),
            southbound: SouthboundStatus {
                remote: self.southbound.remote.clone(),
                state: if self.southbound.connected {
                    ConnectionState::Connected
                } else {
                    ConnectionState::Disconnected
                },
                member_role: None,
                last_sync_unix: self.southbound.last_sync.map(unix),
            },
            peers_desired: to_u32(self.desired.peers.len()),
            peers_exempt: to_u32(self.desired.excluded.len()),
            peers_up: to_u32(up),
            certificate: Some(CertificateStatus {
                subject: self.certificate.0.clone(),
                not_after_unix: i64::try_from(unix(self.certificate.1)).unwrap_or(i64::MAX),
            }),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        self.metrics
            .set_peers(PeerCount::Desired, status.peers_desired);
        self.metrics
            .set_peers(PeerCount::Exempt, status.peers_exempt);
        self.metrics.set_peers(PeerCount::Up, status.peers_up);
        let connecting = self
            .peers
            .peers
            .values()
            .filter(|p| p.ike == IkeState::Connecting)
            .count();
        self.metrics
            .set_ike_sas(IkeSaState::Established, status.peers_up);
        self.metrics
            .set_ike_sas(IkeSaState::Connecting, to_u32(connecting));
        // Each CHILD_SA is two kernel states, one per direction.
        self.metrics.set_child_sas(
            ChildSaState::Installed,
            to_u32(self.peers.child_sas().len() / 2),
        );
        self.metrics.set_southbound_state(status.southbound.state);
        self.metrics
            .cookies_sent_total(self.endpoint.stats().cookies_sent);

        let age = |p: &Peer| {
            p.up_since
                .map(|t| now.saturating_duration_since(t).as_secs())
        };
        // Limitation: exempt chassis are counted in the status but not listed as peers.
        let peers = self
            .peers
            .peers
            .values()
            .map(|p| PeerInfo {
                chassis: p.desired.remote_chassis.clone(),
                local_ip: p.desired.key.local_ip,
                remote_ip: p.desired.key.remote_ip,
                encap: format!("{:?}", p.desired.encap_type).to_lowercase(),
                policy: PeerPolicy::Desired,
                ike_state: ike_state(p),
                role: Some(match p.desired.role {
                    crate::desired::Role::Initiator => Role::Initiator,
                    crate::desired::Role::Responder { .. } => Role::Responder,
                }),
                suite: None,
                age_secs: age(p),
                next_rekey_secs: None,
                last_error: p.last_error.as_ref().map(|m| PeerError {
                    message: m.clone(),
                    at_unix: unix(SystemTime::now()),
                }),
            })
            .collect();

        let mut sas = Vec::new();
        for id in self.endpoint.ike_sas() {
            let Some(info) = self.endpoint.ike_sa_info(id) else {
                continue;
            };
            let Some(peer) = self
                .peers
                .peers
                .values()
                .find(|p| p.engine_id == Some(info.peer))
            else {
                continue;
            };
            let established = info.state == "established";
            let mut child_sas = Vec::new();
            if established {
                for kind in [ChildKind::Out, ChildKind::In] {
                    child_sas.extend(self.child_info(peer, kind, age(peer).unwrap_or(0)));
                }
            }
            sas.push(IkeSaInfo {
                peer: peer.desired.remote_chassis.clone(),
                local_ip: info.local.ip(),
                local_port: info.local.port(),
                remote_ip: info.remote.ip(),
                remote_port: info.remote.port(),
                spi_i: ike_spi_hex(info.spi_i),
                spi_r: ike_spi_hex(info.spi_r),
                role: match info.role {
                    ikev2::engine::Role::Initiator => Role::Initiator,
                    ikev2::engine::Role::Responder => Role::Responder,
                },
                state: if established {
                    IkeSaState::Established
                } else {
                    IkeSaState::Connecting
                },
                encryption: info
                    .algorithms
                    .map(|a| match a.key_bits {
                        Some(bits) => format!("{}-{bits}", a.encryption),
                        None => a.encryption.to_string(),
                    })
                    .unwrap_or_default(),
                integrity: None,
                prf: info
                    .algorithms
                    .map(|a| a.prf.to_string())
                    .unwrap_or_default(),
                dh_group: info
                    .algorithms
                    .map(|a| a.ke.to_string())
                    .unwrap_or_default(),
                age_secs: age(peer).unwrap_or(0),
                rekey_in_secs: None,
                child_sas,
            });
        }
        let mut view = self
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *view = SharedView {
            status: Some(status),
            peers,
            sas,
        };
    }

    /// The newest CHILD_SA of one kind, from its two directions.
    fn child_info(&self, p: &Peer, kind: ChildKind, age_secs: u64) -> Option<ChildSaInfo> {
        let newest = |dir| {
            p.child_sas
                .iter()
                .rev()
                .find(|s| s.child == kind && s.dir == dir)
        };
        let (inbound, outbound) = (
            newest(SaDirection::Inbound)?,
            newest(SaDirection::Outbound)?,
        );
        let reqid = self.kernel.config().reqid(p.index, kind).ok()?;
        let proto = p.desired.protocol.ip_proto();
        let port = p.desired.remote_port;
        let (l, r) = (p.desired.key.local_ip, p.desired.key.remote_ip);
        let (local_ts, remote_ts) = match kind {
            ChildKind::Out => (host_ts(l, proto, None), host_ts(r, proto, Some(port))),
            ChildKind::In => (host_ts(l, proto, Some(port)), host_ts(r, proto, None)),
        };
        Some(ChildSaInfo {
            spi_in: inbound.spi,
            spi_out: outbound.spi,
            reqid,
            mode: SaMode::Transport,
            encapsulation: inbound.encap.map(|e| UdpEncapsulation {
                source_port: e.local_port,
                destination_port: e.remote_port,
            }),
            local_ts: vec![local_ts],
            remote_ts: vec![remote_ts],
            encryption: format!("{:?}", inbound.algorithm),
            integrity: None,
            esn: inbound.esn,
            // Limitation: kernel byte/packet counters are not read into the SA list yet.
            inbound: KernelCounters::default(),
            outbound: KernelCounters::default(),
            lifetime: SaLifetime {
                age_secs,
                soft_secs: inbound.lifetimes.soft.add_seconds,
                hard_secs: inbound.lifetimes.hard.add_seconds,
                soft_bytes: None,
                hard_bytes: None,
            },
        })
    }
}
