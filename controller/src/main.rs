//! `ovn-ipsecd` entry point.

fn main() -> std::process::ExitCode {
    eprintln!("ovn-ipsecd: the daemon is not implemented yet; see README.md for what works today");
    std::process::ExitCode::from(2)
}
