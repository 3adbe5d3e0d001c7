//! The commands that talk to the daemon, one file per command, each turning a reply into a
//! table or JSON.

pub mod actions;
pub mod metrics;
pub mod peers;
pub mod sas;
pub mod status;

use std::io::Write;

use crate::control_client::Exit;

/// Writes text to standard output; a closed pipe (`| head`) is not an error worth reporting.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes a value as pretty JSON followed by a newline.
pub fn print_json<T: serde::Serialize>(command: &str, value: &T) -> Exit {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            print(&s);
            Exit::Ok
        }
        Err(e) => {
            eprintln!("ipsecctl {command}: cannot write JSON: {e}");
            Exit::Failed
        }
    }
}
