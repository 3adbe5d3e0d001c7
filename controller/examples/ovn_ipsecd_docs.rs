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
