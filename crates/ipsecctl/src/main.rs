//! `ipsecctl`: the operator's command-line tool for ovn-ipsec.
//!
//! Exit codes: 0 when the command did its work (for `decode`: the capture was read, even if
//! some messages in it are malformed), 1 when an input file is unreadable or invalid, 2 for
//! usage errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ikev2::auth::TrustStore;
use ipsecctl::capture::{read_capture_file, read_capture_stream};
use ipsecctl::decode::decode_capture;
use ipsecctl::key_table::KeyTable;
use ipsecctl::render::{render_with, Options};

/// The largest `--ca` file read.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

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
        /// The capture file (pcap or pcapng, as tcpdump, tshark or dumpcap write them); `-`
        /// reads standard input.
        file: PathBuf,
        /// A Wireshark `ikev2_decryption_table` file with the keys of the IKE SAs.
        #[arg(long, value_name = "TABLE")]
        keys: Option<PathBuf>,
        /// Print JSON (layout in crates/ipsecctl/docs/decode-json.md) instead of text.
        #[arg(long)]
        json: bool,
        /// CA certificates (PEM, several allowed, text before the PEM blocks is skipped) to
        /// validate each sender's CERT against, at the time the message was captured.
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        /// In the text output, print keys, nonces, hashes and other hex values whole (the
        /// JSON output always has them whole).
        #[arg(long)]
        full_hex: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Decode {
            file,
            keys,
            ca,
            json,
            full_hex,
        } => decode(file, keys, ca, json, full_hex),
    }
}

fn decode(
    file: PathBuf,
    keys: Option<PathBuf>,
    ca: Option<PathBuf>,
    json: bool,
    full_hex: bool,
) -> ExitCode {
    let table = match keys.as_deref().map(KeyTable::read_file).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ipsecctl decode: {e}");
            return ExitCode::from(1);
        }
    };
    let trust = match ca.as_deref().map(read_trust_store).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ipsecctl decode: {e}");
            return ExitCode::from(1);
        }
    };
    // "-" is standard input, for `tcpdump -w - | ipsecctl decode -`.
    let read = if file.as_os_str() == "-" {
        read_capture_stream("standard input", std::io::stdin().lock())
    } else {
        read_capture_file(&file)
    };
    let capture = match read {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipsecctl decode: {e}");
            return ExitCode::from(1);
        }
    };

    let file_name = file.display().to_string();
    let keys_name = keys.as_ref().map(|k| k.display().to_string());
    let ca_name = ca.as_ref().map(|c| c.display().to_string());
    let report = decode_capture(
        &file_name,
        &capture,
        keys_name.as_deref().zip(table.as_ref()),
        ca_name.as_deref().zip(trust.as_ref()),
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
        render_with(&report, Options { full_hex })
    };
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// Reads the `--ca` PEM file (bounded, like every input).
fn read_trust_store(path: &Path) -> Result<TrustStore, String> {
    use std::io::Read;
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read CA file {shown}: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read CA file {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "CA file {shown} is larger than {MAX_CA_FILE_BYTES} bytes"
        ));
    }
    TrustStore::from_pem(&pem).map_err(|e| format!("CA file {shown}: {e}"))
}
