//! Writes the packaged documentation of `ovn-ipsecd` from its clap command line, so that the
//! man page and completions never drift from the real options: `ovn-ipsecd.8` and the bash,
//! zsh and fish completion scripts (`ovn-ipsecd.bash`, `_ovn-ipsecd`, `ovn-ipsecd.fish`).
//!
//! `cargo run -p controller --example ovn_ipsecd_docs -- DIR` (packaging/build-deb.sh runs it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use controller::config::Args;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: ovn_ipsecd_docs DIR");
        return ExitCode::from(2);
    };
    match write_all(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovn_ipsecd_docs: cannot write into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;

    // Section 8: a daemon run by the administrator.
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section("8")
        .render(&mut page)?;
    page.extend_from_slice(extra_sections().as_bytes());
    std::fs::write(dir.join("ovn-ipsecd.8"), page)?;

    for (shell, name) in [
        (Shell::Bash, "ovn-ipsecd.bash"),
        (Shell::Zsh, "_ovn-ipsecd"),
        (Shell::Fish, "ovn-ipsecd.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Args::command(), "ovn-ipsecd", &mut script);
        std::fs::write(dir.join(name), script)?;
    }
    Ok(())
}

/// Escapes text for roff: backslashes and hyphens (a bare `-` may become a typographic hyphen).
fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// FILES, ENVIRONMENT, SIGNALS and SEE ALSO, which clap knows nothing of; the paths come from
/// the daemon's own constants.
fn extra_sections() -> String {
    let tp = |name: &str, text: &str| format!(".TP\n\\fB{}\\fR\n{}\n", roff(name), roff(text));
    let mut out = String::from(".SH FILES\n");
    out += &tp(
        controller::config::DEFAULT_CONFIG_PATH,
        "The configuration file (TOML); every key is optional. ovn-ipsecd \
         --print-config shows the effective value of each and where it came from.",
    );
    out += &tp(
        controller::config::DEFAULT_CONTROL_SOCKET,
        "The control socket ipsecctl(1) talks to (root only).",
    );
    out += &tp(
        controller::config::DEFAULT_OVS_DB,
        "The local Open_vSwitch database, read at start for the chassis name, Southbound \
         remotes, encap IPs and certificate paths.",
    );
    out += ".SH ENVIRONMENT\n";
    out += &tp(
        "OVN_IPSECD_LOG",
        "Log filter in tracing-subscriber EnvFilter syntax, e.g. debug or \
         controller=debug,info (default info). Logs go to standard error.",
    );
    out += &tp(
        "NOTIFY_SOCKET",
        "Set by systemd for Type=notify: READY=1 once the Southbound view is synced and its \
         policies are in the kernel, STATUS= with the peers up, RELOADING=1 and STOPPING=1. \
         Unset: nothing is sent.",
    );
    out += &tp(
        "WATCHDOG_USEC",
        "Set by systemd for WatchdogSec=: WATCHDOG=1 is sent from the main loop every half \
         of it.",
    );
    out += ".SH SIGNALS\n";
    out += &tp(
        "SIGHUP",
        "Re-read the configuration, the certificate and the key (as ipsecctl reload).",
    );
    out += &tp(
        "SIGTERM, SIGINT",
        "Stop, exit status 0. Policies and SAs stay in the kernel, so tunnel traffic is \
         neither interrupted by a restart nor sent in clear while the daemon is down.",
    );
    out += ".SH SEE ALSO\n";
    out += &roff("ipsecctl(1), systemd.service(5), ovn-controller(8), ovs-monitor-ipsec(8)");
    out += "\n";
    out
}
