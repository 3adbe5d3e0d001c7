//! `ipsecctl initiate|terminate|rekey PEER`, `reload` and `cleanup`: ask the daemon to act and
//! report what it did.

use std::path::Path;

use control_api::protocol::{Request, Response};

use crate::commands::{print, print_json};
use crate::control_client::{call, unexpected, Exit};

/// Runs an action request; `command` names it in messages.
pub fn run(command: &str, socket: &Path, request: Request, json: bool) -> Exit {
    match call(command, socket, request) {
        Ok(Response::Done(done)) if json => print_json(command, &done),
        Ok(Response::Done(done)) => {
            print(&format!("{}\n", done.message));
            Exit::Ok
        }
        Ok(Response::Cleanup(report)) if json => print_json(command, &report),
        Ok(Response::Cleanup(report)) => {
            print(&format!(
                "removed {} states and {} policies\n",
                report.states_removed, report.policies_removed
            ));
            Exit::Ok
        }
        Ok(other) => unexpected(command, &other),
        Err(exit) => exit,
    }
}

/// Runs `cleanup`, which removes protection from every tunnel; only with the flag given.
pub fn cleanup(socket: &Path, confirmed: bool, json: bool) -> Exit {
    if !confirmed {
        eprintln!(
            "ipsecctl cleanup: refusing without --yes-remove-all: it removes every IPsec state \
             and policy of ovn-ipsecd, and tunnel traffic then flows unprotected"
        );
        return Exit::Usage;
    }
    run("cleanup", socket, Request::Cleanup { confirm: true }, json)
}
