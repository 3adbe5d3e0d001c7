//! Two network namespaces joined by a veth pair, the smallest network two IKE peers need.
//! Both are deleted when the guard drops; names are unique per process and pair, so tests
//! run in parallel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::process::run_checked;
use super::PeerError;

/// The IPv4 address of side A of every pair (each pair has its own namespaces).
pub const SIDE_A_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The IPv4 address of side B.
pub const SIDE_B_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The IPv6 (ULA) address of side A.
pub const SIDE_A_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
/// The IPv6 (ULA) address of side B.
pub const SIDE_B_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

/// One network namespace of a [`NetnsPair`], with the addresses of its veth end.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The veth end's IPv4 address.
    pub v4: Ipv4Addr,
    /// The veth end's IPv6 address.
    pub v6: Ipv6Addr,
}

impl Netns {
    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The veth end's address of the given family.
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.v6)
        } else {
            IpAddr::V4(self.v4)
        }
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`).
    /// `ip netns exec` gives it a private mount namespace too, so mounts it makes stay there.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

/// Two namespaces `A` and `B` joined by a veth pair with 10.77.0.1/24 and fd77::1/64 on A,
/// 10.77.0.2/24 and fd77::2/64 on B, loopback up in both.
#[derive(Debug)]
pub struct NetnsPair {
    /// Side A.
    pub a: Netns,
    /// Side B.
    pub b: Netns,
}

impl NetnsPair {
    /// Creates the pair. `label` goes into the namespace names, to tell tests apart in
    /// `ip netns list`.
    pub fn create(label: &str) -> Result<NetnsPair, PeerError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let base = format!("oip-{label}-{pid}-{n}");
        let pair = NetnsPair {
            a: Netns {
                name: format!("{base}-a"),
                v4: SIDE_A_V4,
                v6: SIDE_A_V6,
            },
            b: Netns {
                name: format!("{base}-b"),
                v4: SIDE_B_V4,
                v6: SIDE_B_V6,
            },
        };

        // Interface names are limited to 15 bytes: build them from the PID and counter only.
        let veth_a = format!("vp{:x}x{n}a", pid & 0xffff);
        let veth_b = format!("vp{:x}x{n}b", pid & 0xffff);

        // From here on `pair` drops (and deletes what exists) if a step fails.
        ip(&["netns", "add", &pair.a.name])?;
        ip(&["netns", "add", &pair.b.name])?;
        ip(&[
            "link",
            "add",
            &veth_a,
            "netns",
            &pair.a.name,
            "type",
            "veth",
            "peer",
            "name",
            &veth_b,
            "netns",
            &pair.b.name,
        ])?;
        for (ns, dev) in [(&pair.a, &veth_a), (&pair.b, &veth_b)] {
            let v4 = format!("{}/24", ns.v4);
            let v6 = format!("{}/64", ns.v6);
            ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns.name, "addr", "add", &v4, "dev", dev])?;
            ip(&["-n", &ns.name, "addr", "add", &v6, "dev", dev, "nodad"])?;
            ip(&["-n", &ns.name, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace also deletes its end of the veth, and so the whole pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns.name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), PeerError> {
    run_checked(Command::new("ip").args(args)).map(|_| ())
}
