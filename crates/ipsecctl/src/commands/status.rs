//! `ipsecctl status`: the node at a glance.

use std::path::Path;

use control_api::protocol::{ConnectionState, MemberRole, Request, Response, Status};

use crate::commands::{print, print_json};
use crate::control_client::{call, unexpected, Exit};
use crate::table::{opt, timestamp, Table};

/// Runs `status`.
pub fn run(socket: &Path, json: bool) -> Exit {
    match call("status", socket, Request::Status) {
        Ok(Response::Status(status)) if json => print_json("status", &status),
        Ok(Response::Status(status)) => {
            print(&render(&status));
            Exit::Ok
        }
        Ok(other) => unexpected("status", &other),
        Err(exit) => exit,
    }
}

/// The status as a two-column table.
pub fn render(s: &Status) -> String {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let sb = &s.southbound;
    let state = match sb.state {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnected => "disconnected",
    };
    let role = sb.member_role.map(|r| match r {
        MemberRole::Leader => "leader",
        MemberRole::Follower => "follower",
        MemberRole::Standalone => "standalone",
    });
    let rows = [
        ("chassis", s.chassis.clone()),
        ("version", s.version.clone()),
        ("southbound", state.to_owned()),
        ("southbound remote", opt(sb.remote.as_deref())),
        ("southbound member", opt(role)),
        (
            "southbound last sync",
            opt(sb
                .last_sync_unix
                .map(|t| timestamp(t.min(i64::MAX as u64) as i64))),
        ),
        (
            "peers",
            format!(
                "{} up / {} desired, {} exempt",
                s.peers_up, s.peers_desired, s.peers_exempt
            ),
        ),
        (
            "certificate",
            opt(s.certificate.as_ref().map(|c| c.subject.clone())),
        ),
        (
            "certificate expires",
            opt(s.certificate.as_ref().map(|c| timestamp(c.not_after_unix))),
        ),
    ];
    for (field, value) in rows {
        t.row(vec![field.to_owned(), value]);
    }
    t.render()
}
