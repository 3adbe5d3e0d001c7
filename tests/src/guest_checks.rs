//! What the guest-check binaries (examples run as root inside the qemu guest) share: the two
//! namespaces `a` and `b` on a veth pair they check between, and their report, one line per
//! check (`ok - NAME` / `not ok - NAME: REASON`) then `N passed, M failed`.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::netns::VethEnd;

/// Side `a` of the guest's pair: interface `va`, 10.0.0.1/24 and fd00::1/64.
pub const SIDE_A: VethEnd<'static> = VethEnd {
    netns: "a",
    dev: "va",
    v4: Ipv4Addr::new(10, 0, 0, 1),
    v6: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
};

/// Side `b` of the guest's pair: interface `vb`, 10.0.0.2/24 and fd00::2/64.
pub const SIDE_B: VethEnd<'static> = VethEnd {
    netns: "b",
    dev: "vb",
    v4: Ipv4Addr::new(10, 0, 0, 2),
    v6: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
};

/// The outcome of one check: `Err` says what was wrong.
pub type CheckResult = Result<(), String>;

/// Counts and prints the checks of one run.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Checks that passed so far.
    pub passed: usize,
    /// Checks that failed so far.
    pub failed: usize,
}

impl CheckReport {
    /// Records and prints the outcome of check `name`.
    pub fn check(&mut self, name: &str, r: CheckResult) {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name}");
            }
            Err(e) => {
                self.failed += 1;
                println!("not ok - {name}: {e}");
            }
        }
    }

    /// Prints the totals and exits the process, non-zero if any check failed.
    pub fn finish(self) -> ! {
        println!("{} passed, {} failed", self.passed, self.failed);
        std::process::exit(if self.failed == 0 { 0 } else { 1 });
    }
}
