//! The messages of the control protocol: one JSON object per line in each direction.
//!
//! A request is `{"version":1,"request":{"kind":"status"}}`; its reply is
//! `{"version":1,"ok":{"kind":"status",...}}` or `{"version":1,"error":{"code":...}}`. The
//! server reads `version` before anything else, so a client speaking another version always
//! gets a `version_mismatch` error naming both versions, even when its request kinds are
//! unknown here.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Raised on any change an older peer would misread.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/ovn-ipsec/control.sock";

/// The largest request line (without its newline) a server reads; longer ones are refused.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The largest reply line a client reads: enough for the SAs of a mesh of a few thousand
/// peers.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// The largest chassis name accepted in a request (OVN system-ids are UUIDs or host names).
pub const MAX_PEER_NAME_BYTES: usize = 255;

/// What a client sends: the version it speaks and one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What it asks for.
    pub request: Request,
}

/// Only the version of a request, read first so that a mismatch is reported as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct VersionProbe {
    /// The version the sender speaks.
    pub version: u32,
}

/// One request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The node's overview ([`Status`]).
    Status,
    /// Every desired or exempt peer ([`PeerList`]).
    Peers,
    /// Every IKE SA with its CHILD_SAs and kernel counters ([`SaList`]).
    Sas,
    /// Start an IKE SA with the peer now, instead of waiting for the next reconciliation.
    Initiate {
        /// The remote chassis name.
        peer: String,
    },
    /// Delete the IKE SA (and its CHILD_SAs) with the peer; reconciliation brings it back.
    Terminate {
        /// The remote chassis name.
        peer: String,
    },
    /// Rekey the IKE SA and CHILD_SAs with the peer now.
    Rekey {
        /// The remote chassis name.
        peer: String,
    },
    /// Re-read the configuration and certificates.
    Reload,
    /// The daemon's Prometheus metrics page ([`MetricsPage`]), the same text `/metrics`
    /// serves, also when no HTTP endpoint is configured.
    Metrics,
    /// Remove every kernel state and policy the daemon owns (tunnel traffic then flows in
    /// clear), then stop the daemon; refused unless `confirm` is true.
    Cleanup {
        /// The operator confirmed the removal.
        confirm: bool,
    },
}

impl Request {
    /// The peer a per-peer request names.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Request::Initiate { peer } | Request::Terminate { peer } | Request::Rekey { peer } => {
                Some(peer)
            }
            _ => None,
        }
    }
}

/// What the server sends back: its version and either a response or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A request's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request was carried out.
    Ok(Response),
    /// It was not.
    Error(ErrorReply),
}

/// The successful answer to a request, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(Status),
    /// Answer to [`Request::Peers`].
    Peers(PeerList),
    /// Answer to [`Request::Sas`].
    Sas(SaList),
    /// Answer to initiate, terminate, rekey and reload.
    Done(ActionDone),
    /// Answer to [`Request::Cleanup`].
    Cleanup(CleanupReport),
    /// Answer to [`Request::Metrics`].
    Metrics(MetricsPage),
}

/// The metrics page in the Prometheus text exposition format (0.0.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsPage {
    /// The page, one sample per line.
    pub text: String,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The kind of failure, for scripts.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// The kinds of failure a server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The client speaks another protocol version (the message names both).
    VersionMismatch,
    /// The request line is not valid JSON or not a known request.
    BadRequest,
    /// The request line is longer than [`MAX_REQUEST_BYTES`].
    RequestTooLarge,
    /// The named peer is not a chassis the daemon knows.
    UnknownPeer,
    /// Cleanup was asked for without confirmation.
    NotConfirmed,
    /// The daemon tried and failed.
    Failed,
    /// A code from a newer server that this build does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::NotConfirmed => "not_confirmed",
            ErrorCode::Failed => "failed",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// The node's overview, as `ipsecctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This chassis' name (`external_ids:system-id`).
    pub chassis: String,
    /// The Southbound connection.
    pub southbound: SouthboundStatus,
    /// Peers the Southbound DB says should be protected.
    pub peers_desired: u32,
    /// Peers present but opted out of IPsec.
    pub peers_exempt: u32,
    /// Desired peers with an established IKE SA and CHILD_SAs.
    pub peers_up: u32,
    /// The local certificate, when one is loaded.
    pub certificate: Option<CertificateStatus>,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// The state of the connection to the Southbound DB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SouthboundStatus {
    /// The remote connected to or being tried (`ssl:10.0.0.1:6642`).
    pub remote: Option<String>,
    /// Connected, connecting, or disconnected.
    pub state: ConnectionState,
    /// The RAFT role of the member connected to, when the server reports it.
    pub member_role: Option<MemberRole>,
    /// When the table cache last caught up with the server (Unix seconds).
    pub last_sync_unix: Option<u64>,
}

/// The state of the Southbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Monitoring and in sync.
    Connected,
    /// Connecting or re-synchronising.
    Connecting,
    /// No connection; retrying.
    Disconnected,
}

/// The role of the Southbound cluster member the daemon talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// The RAFT leader.
    Leader,
    /// A RAFT follower.
    Follower,
    /// A server that is not clustered.
    Standalone,
}

/// The loaded local certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// Its subject, RFC 4514 string form.
    pub subject: String,
    /// Its notAfter time (Unix seconds).
    pub not_after_unix: i64,
}

/// Every peer of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerList {
    /// One entry per remote chassis and encap pair.
    pub peers: Vec<PeerInfo>,
}

/// One remote chassis and encap pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The remote chassis name.
    pub chassis: String,
    /// The local encap IP.
    pub local_ip: IpAddr,
    /// The remote encap IP.
    pub remote_ip: IpAddr,
    /// The encap type (`geneve`, `vxlan`).
    pub encap: String,
    /// Whether the pair is to be protected.
    pub policy: PeerPolicy,
    /// For an exempt pair, the IPsec exempt group both chassis are in (their
    /// `ovn-cms-options` entry `ipsec-exempt-group=NAME`).
    #[serde(default)]
    pub exempt_group: Option<String>,
    /// The state of its IKE SA.
    pub ike_state: IkeSaState,
    /// Our role in the current IKE SA.
    pub role: Option<Role>,
    /// The negotiated suite (`AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256`).
    pub suite: Option<String>,
    /// Seconds since the current IKE SA was established.
    pub age_secs: Option<u64>,
    /// Seconds until the current IKE SA is next rekeyed (or reauthenticated, when that comes
    /// first); its CHILD_SAs' rekeys are in [`ChildSaInfo::rekey_in_secs`].
    pub next_rekey_secs: Option<u64>,
    /// The most recent failure with this peer (cleared when an IKE SA comes up).
    pub last_error: Option<PeerError>,
    /// With an established IKE SA: whether the kernel holds both states of every configured
    /// CHILD_SA (`false` when it refused them, e.g. lacking the ESP algorithm); the peer is
    /// up only when it does. Absent without an IKE SA, and from daemons before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp_installed: Option<bool>,
}

/// Whether a pair is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerPolicy {
    /// IPsec is wanted for the pair.
    Desired,
    /// The pair is opted out.
    Exempt,
}

/// The state of an IKE SA, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IkeSaState {
    /// No IKE SA (exempt, or not yet started).
    None,
    /// IKE_SA_INIT or IKE_AUTH in progress.
    Connecting,
    /// Established.
    Established,
    /// Being rekeyed.
    Rekeying,
    /// Being deleted.
    Deleting,
    /// The last attempt failed; retrying later.
    Failed,
}

/// Our role in an IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// We sent IKE_SA_INIT.
    Initiator,
    /// The peer did.
    Responder,
}

/// A failure with a peer and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerError {
    /// What failed (`AUTHENTICATION_FAILED from peer`).
    pub message: String,
    /// When it happened (Unix seconds).
    pub at_unix: u64,
}

/// Every IKE SA of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaList {
    /// The IKE SAs, each with its CHILD_SAs.
    pub ike_sas: Vec<IkeSaInfo>,
}

/// One IKE SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaInfo {
    /// The remote chassis name.
    pub peer: String,
    /// Local IP address.
    pub local_ip: IpAddr,
    /// Local UDP port (500, or 4500 after NAT detection).
    pub local_port: u16,
    /// Remote IP address.
    pub remote_ip: IpAddr,
    /// Remote UDP port.
    pub remote_port: u16,
    /// SPIi, as 16 hex digits (a JSON number would lose bits in many consumers).
    pub spi_i: String,
    /// SPIr, as 16 hex digits.
    pub spi_r: String,
    /// Our role.
    pub role: Role,
    /// Its state.
    pub state: IkeSaState,
    /// Encryption transform (`AES_GCM_16_256`).
    pub encryption: String,
    /// Integrity transform, absent with AEAD.
    pub integrity: Option<String>,
    /// PRF transform.
    pub prf: String,
    /// Key exchange group (`ECP_256`).
    pub dh_group: String,
    /// Seconds since establishment.
    pub age_secs: u64,
    /// Seconds until its scheduled rekey (or reauthentication, when that comes first); none
    /// while it is being replaced or deleted.
    pub rekey_in_secs: Option<u64>,
    /// Its CHILD_SAs.
    pub child_sas: Vec<ChildSaInfo>,
}

/// One CHILD_SA: an inbound and an outbound kernel state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildSaInfo {
    /// Inbound SPI (ours).
    pub spi_in: u32,
    /// Outbound SPI (the peer's).
    pub spi_out: u32,
    /// The kernel reqid of its states and policies.
    pub reqid: u32,
    /// Transport or tunnel.
    pub mode: SaMode,
    /// ESP in UDP (RFC 3948) ports when encapsulated.
    pub encapsulation: Option<UdpEncapsulation>,
    /// Local traffic selectors (TSi when we initiated).
    pub local_ts: Vec<TrafficSelector>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Encryption transform.
    pub encryption: String,
    /// Integrity transform, absent with AEAD.
    pub integrity: Option<String>,
    /// Extended sequence numbers in use.
    pub esn: bool,
    /// Inbound state counters from the kernel.
    pub inbound: KernelCounters,
    /// Outbound state counters from the kernel.
    pub outbound: KernelCounters,
    /// Lifetimes and age.
    pub lifetime: SaLifetime,
    /// Seconds until it is rekeyed (its soft lifetime, with jitter); none while a rekey of
    /// it is in progress.
    #[serde(default)]
    pub rekey_in_secs: Option<u64>,
    /// Whether the kernel holds both of its states; when not (the kernel refused them), the
    /// counters and lifetimes are empty. Daemons before this field listed installed ones only.
    #[serde(default = "installed_by_default")]
    pub installed: bool,
}

fn installed_by_default() -> bool {
    true
}

/// ESP SA mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaMode {
    /// Transport mode (what OVN tunnels use).
    Transport,
    /// Tunnel mode.
    Tunnel,
}

/// UDP encapsulation ports of an ESP SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpEncapsulation {
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
}

/// A traffic selector (RFC 7296 §3.13.1): an address range, an IP protocol and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficSelector {
    /// First address.
    pub start_address: IpAddr,
    /// Last address.
    pub end_address: IpAddr,
    /// IP protocol, 0 for any.
    pub ip_protocol: u8,
    /// First port.
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
}

/// Counters of one kernel state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    /// Bytes protected.
    pub bytes: u64,
    /// Packets protected.
    pub packets: u64,
    /// Packets dropped as replays or outside the replay window.
    pub replay_failures: u64,
    /// Packets that failed the integrity check.
    pub integrity_failures: u64,
}

/// Lifetimes of a CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaLifetime {
    /// Seconds since it was installed.
    pub age_secs: u64,
    /// Soft lifetime (rekey) in seconds.
    pub soft_secs: Option<u64>,
    /// Hard lifetime (expiry) in seconds.
    pub hard_secs: Option<u64>,
    /// Soft lifetime in bytes.
    pub soft_bytes: Option<u64>,
    /// Hard lifetime in bytes.
    pub hard_bytes: Option<u64>,
}

/// The answer to an action that only succeeds or fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDone {
    /// What was done, for people (`rekey of chassis-b started`).
    pub message: String,
}

/// What cleanup removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Kernel states removed.
    pub states_removed: u32,
    /// Kernel policies removed.
    pub policies_removed: u32,
}

/// Formats an IKE SPI the way [`IkeSaInfo::spi_i`] carries it.
pub fn ike_spi_hex(spi: u64) -> String {
    format!("{spi:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_and_child_sa_of_a_server_without_the_newer_fields_still_decode() {
        let peer = r#"{"chassis":"chassis-2","local_ip":"10.0.0.1","remote_ip":"10.0.0.2",
            "encap":"geneve","policy":"desired","ike_state":"established","role":"initiator",
            "suite":null,"age_secs":5,"next_rekey_secs":100,"last_error":null}"#;
        let peer: PeerInfo = serde_json::from_str(peer).unwrap();
        assert_eq!(peer.exempt_group, None);
        assert_eq!(peer.esp_installed, None);

        let child = r#"{"spi_in":1,"spi_out":2,"reqid":3,"mode":"transport",
            "encapsulation":null,"local_ts":[],"remote_ts":[],"encryption":"AES_GCM_16_256",
            "integrity":null,"esn":false,
            "inbound":{"bytes":0,"packets":0,"replay_failures":0,"integrity_failures":0},
            "outbound":{"bytes":0,"packets":0,"replay_failures":0,"integrity_failures":0},
            "lifetime":{"age_secs":1,"soft_secs":null,"hard_secs":null,"soft_bytes":null,
            "hard_bytes":null}}"#;
        let child: ChildSaInfo = serde_json::from_str(child).unwrap();
        assert_eq!(child.rekey_in_secs, None);
        // Such a server listed only CHILD_SAs the kernel held.
        assert!(child.installed);
    }

    #[test]
    fn exempt_peer_carries_its_group_on_the_wire() {
        let peer = PeerInfo {
            chassis: "chassis-4".into(),
            local_ip: "10.0.0.1".parse().unwrap(),
            remote_ip: "10.0.0.4".parse().unwrap(),
            encap: "geneve".into(),
            policy: PeerPolicy::Exempt,
            exempt_group: Some("rack7".into()),
            ike_state: IkeSaState::None,
            role: None,
            suite: None,
            age_secs: None,
            next_rekey_secs: None,
            last_error: None,
            esp_installed: None,
        };
        let v = serde_json::to_value(&peer).unwrap();
        assert_eq!(v["policy"], "exempt");
        assert_eq!(v["exempt_group"], "rack7");
        assert_eq!(v["ike_state"], "none");
    }
}
