//! `ipsecctl peers`: one row per remote chassis and encap pair.

use std::path::Path;

use control_api::protocol::{IkeSaState, PeerInfo, PeerPolicy, Request, Response, Role};

use crate::commands::{print, print_json};
use crate::control_client::{call, unexpected, Exit};
use crate::table::{duration, opt, timestamp, Table};

/// Runs `peers`.
pub fn run(socket: &Path, json: bool) -> Exit {
    match call("peers", socket, Request::Peers) {
        Ok(Response::Peers(list)) if json => print_json("peers", &list),
        Ok(Response::Peers(list)) => {
            print(&render(&list.peers));
            Exit::Ok
        }
        Ok(other) => unexpected("peers", &other),
        Err(exit) => exit,
    }
}

/// The peers as a table.
pub fn render(peers: &[PeerInfo]) -> String {
    let mut t = Table::new(&[
        "CHASSIS",
        "LOCAL",
        "REMOTE",
        "ENCAP",
        "POLICY",
        "IKE SA",
        "ROLE",
        "SUITE",
        "AGE",
        "REKEY IN",
        "LAST ERROR",
    ]);
    for p in peers {
        // An exempt pair names the group that exempted it.
        let policy = match (p.policy, &p.exempt_group) {
            (PeerPolicy::Desired, _) => "desired".to_owned(),
            (PeerPolicy::Exempt, Some(group)) => format!("exempt:{group}"),
            (PeerPolicy::Exempt, None) => "exempt".to_owned(),
        };
        let last_error = p.last_error.as_ref().map(|e| {
            let at = timestamp(e.at_unix.min(i64::MAX as u64) as i64);
            format!("{at} {}", e.message)
        });
        t.row(vec![
            p.chassis.clone(),
            p.local_ip.to_string(),
            p.remote_ip.to_string(),
            p.encap.clone(),
            policy,
            peer_state(p),
            opt(p.role.map(role)),
            opt(p.suite.as_deref()),
            opt(p.age_secs.map(duration)),
            opt(p.next_rekey_secs.map(duration)),
            opt(last_error),
        ]);
    }
    t.render()
}

/// A peer's IKE SA state, saying so when the kernel does not hold its ESP states (the
/// tunnel carries nothing then, though the IKE SA is up).
fn peer_state(p: &PeerInfo) -> String {
    match p.esp_installed {
        Some(false) => format!("{}, ESP not installed", ike_state(p.ike_state)),
        _ => ike_state(p.ike_state).to_owned(),
    }
}

/// An IKE SA state as the tables write it.
pub fn ike_state(s: IkeSaState) -> &'static str {
    match s {
        IkeSaState::None => "none",
        IkeSaState::Connecting => "connecting",
        IkeSaState::Established => "established",
        IkeSaState::Rekeying => "rekeying",
        IkeSaState::Deleting => "deleting",
        IkeSaState::Failed => "failed",
    }
}

/// A role as the tables write it.
pub fn role(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_api::protocol::PeerError;

    #[test]
    fn established_peer_whose_esp_states_the_kernel_refused_says_so_with_the_error() {
        let peer = PeerInfo {
            chassis: "chassis-2".into(),
            local_ip: "10.0.0.1".parse().unwrap(),
            remote_ip: "10.0.0.2".parse().unwrap(),
            encap: "geneve".into(),
            policy: PeerPolicy::Desired,
            exempt_group: None,
            ike_state: IkeSaState::Established,
            role: Some(Role::Initiator),
            suite: None,
            age_secs: Some(5),
            next_rekey_secs: None,
            last_error: Some(PeerError {
                message: "kernel refused the inbound ESP state c0000001: no AEAD".into(),
                at_unix: 1_800_000_000,
            }),
            esp_installed: Some(false),
        };
        let table = render(std::slice::from_ref(&peer));
        assert!(table.contains("established, ESP not installed"), "{table}");
        assert!(
            table.contains("kernel refused the inbound ESP state"),
            "{table}"
        );

        let installed = PeerInfo {
            esp_installed: Some(true),
            ..peer
        };
        let table = render(&[installed]);
        assert!(!table.contains("ESP not installed"), "{table}");
    }
}
