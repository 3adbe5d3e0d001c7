//! `ipsecctl`: the operator's command-line tool for ovn-ipsec.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect and drive ovn-ipsecd.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every IKE message of a capture (not implemented yet).
    Decode,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Decode => {
            eprintln!("ipsecctl decode: not implemented yet");
            ExitCode::from(2)
        }
    }
}
