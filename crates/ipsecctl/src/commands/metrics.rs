//! `ipsecctl metrics`: the daemon's Prometheus page over the control socket, for a look
//! without an HTTP endpoint (or to feed `promtool check metrics`).

use std::path::Path;

use control_api::protocol::{Request, Response};

use crate::commands::{print, print_json};
use crate::control_client::{call, unexpected, Exit};

/// Runs `metrics`: the page as text, or `{"text": ...}` with `--json`.
pub fn run(socket: &Path, json: bool) -> Exit {
    match call("metrics", socket, Request::Metrics) {
        Ok(Response::Metrics(page)) if json => print_json("metrics", &page),
        Ok(Response::Metrics(page)) => {
            print(&page.text);
            Exit::Ok
        }
        Ok(other) => unexpected("metrics", &other),
        Err(exit) => exit,
    }
}
