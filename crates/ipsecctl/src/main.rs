//! `ipsecctl`: the operator's command-line tool for ovn-ipsec.

use clap::Parser;

/// Inspect and drive ovn-ipsecd.
#[derive(Parser)]
#[command(version, about)]
enum Cli {}

fn main() {
    let _ = Cli::parse();
}
