//! `ovn-ipsecd` entry point.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use controller::config::{self, Args};
use controller::daemon;
use controller::identity_check::{check_local_identity, EXPIRY_WARNING};
use controller::logging::{self, stderr_line};
use tracing::Level;

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
            stderr_line(&Level::ERROR, format_args!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let config = match runtime.block_on(config::load(args)) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&Level::ERROR, format_args!("{e}"));
            return ExitCode::FAILURE;
        }
    };

    if print_only {
        print!("{}", config.render());
        return match config.required() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                stderr_line(&Level::ERROR, format_args!("{e}"));
                ExitCode::FAILURE
            }
        };
    }

    for note in &config.notes {
        stderr_line(&Level::INFO, format_args!("{note}"));
    }
    let required = match config.required() {
        Ok(r) => r,
        Err(e) => {
            stderr_line(&Level::ERROR, format_args!("{e}"));
            return ExitCode::FAILURE;
        }
    };
    let now = SystemTime::now();
    let identity = match check_local_identity(&required.identity, &required.chassis_name, now) {
        Ok(id) => id,
        Err(e) => {
            stderr_line(&Level::ERROR, format_args!("{e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Some(left) = identity.expires_within(now, EXPIRY_WARNING) {
        stderr_line(
            &Level::WARN,
            format_args!(
                "certificate {} expires in {} hours: replace it",
                required.identity.certificate.display(),
                left.as_secs() / 3600
            ),
        );
    }
    stderr_line(
        &Level::INFO,
        format_args!(
            "configuration and identity of chassis '{}' are valid; starting",
            required.chassis_name
        ),
    );
    logging::init();
    match runtime.block_on(daemon::run(args_for_reload, config, identity)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            stderr_line(&Level::ERROR, format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}
