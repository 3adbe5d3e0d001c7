//! `ovn-ipsecd` entry point.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use controller::config::{self, Args};
use controller::daemon;
use controller::identity_check::{check_local_identity, EXPIRY_WARNING};

fn main() -> ExitCode {
    let args = Args::parse();
    let print_only = args.print_config;
    let args_for_reload = args.clone();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ovn-ipsecd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match runtime.block_on(config::load(args)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ovn-ipsecd: {e}");
            return ExitCode::FAILURE;
        }
    };

    if print_only {
        print!("{}", config.render());
        return match config.required() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ovn-ipsecd: {e}");
                ExitCode::FAILURE
            }
        };
    }

    for note in &config.notes {
        eprintln!("ovn-ipsecd: {note}");
    }
    let required = match config.required() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ovn-ipsecd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = SystemTime::now();
    let identity = match check_local_identity(&required.identity, &required.chassis_name, now) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("ovn-ipsecd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(left) = identity.expires_within(now, EXPIRY_WARNING) {
        eprintln!(
            "ovn-ipsecd: certificate {} expires in {} hours: replace it",
            required.identity.certificate.display(),
            left.as_secs() / 3600
        );
    }
    eprintln!(
        "ovn-ipsecd: configuration and identity of chassis '{}' are valid; starting",
        required.chassis_name
    );
    init_tracing();
    match runtime.block_on(daemon::run(args_for_reload, config, identity)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovn-ipsecd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG`-style filtering through `OVN_IPSECD_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OVN_IPSECD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
