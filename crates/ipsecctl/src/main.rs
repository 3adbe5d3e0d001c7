//! `ipsecctl`: the operator's command-line tool for ovn-ipsec.
//!
//! Exit codes (also in `--help`): 0 when the command did its work (for `decode`: the capture
//! was read, even if some messages in it are malformed), 1 when the operation failed or an
//! input file is unreadable or invalid, 2 for usage errors, 3 when the daemon is not running,
//! 4 when the control socket denies permission, 5 on a protocol version mismatch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use control_api::protocol::{Request, DEFAULT_SOCKET_PATH};
use ipsecctl::commands;
use ipsecctl::control_client::{Exit, EXIT_CODES_HELP};

use ikev2::auth::TrustStore;
use ipsecctl::capture::{read_capture_file, read_capture_stream};
use ipsecctl::decode::decode_capture;
use ipsecctl::key_table::KeyTable;
use ipsecctl::render::{render_with, Options};

/// The largest `--ca` file read.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Inspect and drive ovn-ipsecd.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Output options shared by the commands that ask the daemon.
#[derive(clap::Args)]
struct Output {
    /// Print the daemon's reply as JSON (the control protocol's types) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show the node: chassis, Southbound connection, peers desired and up, certificate,
    /// version.
    Status(Output),
    /// List every remote chassis and encap pair: policy, IKE SA state, role, suite, age, next
    /// rekey, last error.
    Peers(Output),
    /// List IKE SAs and their CHILD_SAs: SPIs, selectors, mode, encapsulation, algorithms,
    /// kernel counters, lifetimes.
    Sas(Output),
    /// Start an IKE SA with a peer now.
    Initiate {
        /// The remote chassis name.
        peer: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete the IKE SA with a peer (the daemon negotiates a new one when it is desired).
    Terminate {
        /// The remote chassis name.
        peer: String,
        #[command(flatten)]
        output: Output,
    },
    /// Rekey the IKE SA and CHILD_SAs with a peer now.
    Rekey {
        /// The remote chassis name.
        peer: String,
        #[command(flatten)]
        output: Output,
    },
    /// Re-read the configuration and certificates.
    Reload(Output),
    /// Print the daemon's Prometheus metrics page (what its /metrics endpoint serves), read
    /// over the control socket.
    Metrics(Output),
    /// Remove every kernel state and policy the daemon installed, and stop the daemon (it
    /// would program them again). Tunnel traffic then flows unprotected; refused without
    /// --yes-remove-all.
    Cleanup {
        /// Confirm the removal.
        #[arg(long)]
        yes_remove_all: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (ipsecctl.1 and one per command) into a directory, for packaging.
    #[command(hide = true)]
    Man {
        /// The directory, created if missing.
        dir: PathBuf,
    },
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
    let cli = Cli::parse();
    let socket = cli.socket.as_path();
    let exit = match cli.command {
        Command::Status(o) => commands::status::run(socket, o.json),
        Command::Peers(o) => commands::peers::run(socket, o.json),
        Command::Sas(o) => commands::sas::run(socket, o.json),
        Command::Initiate { peer, output } => {
            commands::actions::run("initiate", socket, Request::Initiate { peer }, output.json)
        }
        Command::Terminate { peer, output } => commands::actions::run(
            "terminate",
            socket,
            Request::Terminate { peer },
            output.json,
        ),
        Command::Rekey { peer, output } => {
            commands::actions::run("rekey", socket, Request::Rekey { peer }, output.json)
        }
        Command::Reload(o) => commands::actions::run("reload", socket, Request::Reload, o.json),
        Command::Metrics(o) => commands::metrics::run(socket, o.json),
        Command::Cleanup {
            yes_remove_all,
            output,
        } => commands::actions::cleanup(socket, yes_remove_all, output.json),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ipsecctl",
                &mut std::io::stdout(),
            );
            Exit::Ok
        }
        Command::Man { dir } => write_man_pages(&dir),
        Command::Decode {
            file,
            keys,
            ca,
            json,
            full_hex,
        } => return decode(file, keys, ca, json, full_hex),
    };
    exit.into()
}

/// Writes `ipsecctl.1` and `ipsecctl-COMMAND.1` for every visible command.
fn write_man_pages(dir: &Path) -> Exit {
    let write = |name: &str, cmd: clap::Command| -> std::io::Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)
    };
    let result = std::fs::create_dir_all(dir).and_then(|()| {
        let cli = Cli::command().name("ipsecctl");
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("ipsecctl-{}", sub.get_name());
            write(&name, sub.clone().name(name.clone()))?;
        }
        write("ipsecctl", cli)
    });
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!(
                "ipsecctl man: cannot write man pages into {}: {e}",
                dir.display()
            );
            Exit::Failed
        }
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
