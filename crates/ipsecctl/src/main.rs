//! `ipsecctl`: the operator's command-line tool for ovn-ipsec.
//!
//! Exit codes: 0 when the command did its work (for `decode`: the capture was read, even if
//! some messages in it are malformed), 1 when an input file is unreadable or invalid, 2 for
//! usage errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ipsecctl::capture::read_capture_file;
use ipsecctl::decode::decode_capture;
use ipsecctl::key_table::KeyTable;
use ipsecctl::render::render;

/// Inspect and drive ovn-ipsecd.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every IKE message of a pcap or pcapng capture, payload by payload.
    ///
    /// UDP 500 and 4500 (behind the non-ESP marker) are decoded, IP fragments reassembled;
    /// ESP on port 4500 is listed, not decoded. With --keys, SK and SKF payloads are
    /// decrypted (SKF fragments reassembled) and their inner payloads shown.
    Decode {
        /// The capture file (pcap or pcapng, as tcpdump, tshark or dumpcap write them).
        file: PathBuf,
        /// A Wireshark `ikev2_decryption_table` file with the keys of the IKE SAs.
        #[arg(long, value_name = "TABLE")]
        keys: Option<PathBuf>,
        /// Print JSON (layout in crates/ipsecctl/docs/decode-json.md) instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Decode { file, keys, json } => decode(file, keys, json),
    }
}

fn decode(file: PathBuf, keys: Option<PathBuf>, json: bool) -> ExitCode {
    let table = match keys.as_deref().map(KeyTable::read_file).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ipsecctl decode: {e}");
            return ExitCode::from(1);
        }
    };
    let capture = match read_capture_file(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipsecctl decode: {e}");
            return ExitCode::from(1);
        }
    };

    let file_name = file.display().to_string();
    let keys_name = keys.as_ref().map(|k| k.display().to_string());
    let report = decode_capture(
        &file_name,
        &capture,
        keys_name.as_deref().zip(table.as_ref()),
    );

    let text = if json {
        match serde_json::to_string_pretty(&report) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            Err(e) => {
                eprintln!("ipsecctl decode: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        render(&report)
    };
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
