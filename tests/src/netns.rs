//! Network namespaces for tests on the host and checks in the qemu guest: a veth pair between
//! two namespaces (the smallest network two IKE peers need), running code inside a namespace
//! (a fresh one, or a named one entered for a while), nftables counters, UDP probes, and
//! readers of `ip xfrm` listings.
//!
//! Only needs what the guest has: `ip` (iproute2), `nft` and std. [`NetnsPair`] deletes both
//! namespaces when it drops; its names are unique per process and pair, so tests run in
//! parallel.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::peers::process::run_checked;
use crate::peers::PeerError;

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

    /// The namespace's XFRM policies, read from the kernel (`ip xfrm policy list`): the trap
    /// policies of `auto=route` / `start_action = trap` show up here. Per-socket policies
    /// (the IKE daemons' bypass for their own sockets) are left out.
    pub fn xfrm_policies(&self) -> Result<Vec<XfrmPolicy>, PeerError> {
        let out =
            run_checked(Command::new("ip").args(["-n", &self.name, "xfrm", "policy", "list"]))?;
        Ok(parse_xfrm_policies(&out.stdout))
    }

    /// The namespace's XFRM states (SAs), read from the kernel (`ip xfrm state list`), one
    /// line each: every line of a state joined, with key material left out (`aead
    /// rfc4106(gcm(aes))` stays, the key and ICV length after it do not).
    pub fn xfrm_states(&self) -> Result<Vec<String>, PeerError> {
        let out =
            run_checked(Command::new("ip").args(["-n", &self.name, "xfrm", "state", "list"]))?;
        Ok(summarize_xfrm_states(&out.stdout))
    }

    /// Runs `f` on a thread that has entered this namespace (setns(2) changes only that
    /// thread), e.g. to bind a socket there: a socket stays in the namespace it was made in.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PeerError> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let _inside = EnteredNetns::enter(&name)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(PeerError::File {
                what: "running a closure in",
                path: PathBuf::from(&self.name),
                source: std::io::Error::other("the closure panicked"),
            })
        })
    }

    /// Packets counted by the ESP states from `src` to `dst` in this namespace
    /// (`ip -s xfrm state`): outbound states count what they encrypted, inbound ones what
    /// they decrypted.
    pub fn esp_packets(&self, src: IpAddr, dst: IpAddr) -> Result<u64, PeerError> {
        let out = run_checked(
            Command::new("ip").args(["-s", "-n", &self.name, "xfrm", "state", "list"]),
        )?;
        let prefix = format!("src {src} dst {dst} proto esp");
        Ok(summarize_xfrm_states(&out.stdout)
            .iter()
            .filter(|s| s.starts_with(&prefix))
            .filter_map(|s| packets_of(s))
            .sum())
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
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(PeerError::NotRoot);
        }
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
        create_veth_pair(
            &VethEnd {
                netns: &pair.a.name,
                dev: &veth_a,
                v4: pair.a.v4,
                v6: pair.a.v6,
            },
            &VethEnd {
                netns: &pair.b.name,
                dev: &veth_b,
                v4: pair.b.v4,
                v6: pair.b.v6,
            },
        )?;
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

/// The `N` of the first `N(packets)` in a state's summary (`lifetime current:` counters).
fn packets_of(state: &str) -> Option<u64> {
    // `lifetime config:` (limits) comes first and also says `(packets)`.
    let current = state.get(state.find("lifetime current:")?..)?;
    let end = current.find("(packets)")?;
    let head = current.get(..end)?;
    let start = head
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    head.get(start..)?.parse().ok()
}

/// Joins each state of `ip xfrm state list` output into one line, dropping keys.
pub fn summarize_xfrm_states(text: &str) -> Vec<String> {
    let mut states: Vec<String> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kept = match words.as_slice() {
            [kind @ ("aead" | "enc" | "auth" | "auth-trunc" | "comp"), alg, ..] => {
                format!("{kind} {alg}")
            }
            _ => words.join(" "),
        };
        if !line.starts_with(char::is_whitespace) {
            states.push(kept);
        } else if let Some(state) = states.last_mut() {
            state.push(' ');
            state.push_str(&kept);
        }
    }
    states
}

/// One XFRM policy, as `ip xfrm policy list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfrmPolicy {
    /// The selector line (`src 10.77.0.1/32 dst 10.77.0.2/32 proto udp dport 6081`).
    pub selector: String,
    /// The direction: `out`, `in` or `fwd`.
    pub dir: String,
    /// The template's protocol and mode (`esp transport`), if the policy has a template.
    pub template: Option<String>,
}

/// Splits `ip xfrm policy list` output into policies (one unindented selector line, then
/// indented lines); socket policies are skipped.
pub fn parse_xfrm_policies(text: &str) -> Vec<XfrmPolicy> {
    let mut policies = Vec::new();
    let mut current: Option<XfrmPolicy> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            policies.extend(current.take());
            current = Some(XfrmPolicy {
                selector: line.trim().to_string(),
                dir: String::new(),
                template: None,
            });
            continue;
        }
        let Some(policy) = current.as_mut() else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["dir", dir, ..] => policy.dir = (*dir).to_string(),
            ["socket", dir, ..] => policy.dir = format!("socket {dir}"),
            ["proto", proto, rest @ ..] => {
                let mode = rest
                    .iter()
                    .position(|w| *w == "mode")
                    .and_then(|i| rest.get(i + 1));
                policy.template = Some(format!("{proto} {}", mode.unwrap_or(&"?")));
            }
            _ => {}
        }
    }
    policies.extend(current);
    policies.retain(|p| !p.dir.starts_with("socket"));
    policies
}

/// One end of a veth pair for [`create_veth_pair`]: its namespace, interface and addresses.
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    /// The namespace (created by [`create_veth_pair`]).
    pub netns: &'a str,
    /// The interface name (at most 15 bytes).
    pub dev: &'a str,
    /// The IPv4 address, on a /24.
    pub v4: Ipv4Addr,
    /// The IPv6 address, on a /64 (without duplicate address detection, usable at once).
    pub v6: Ipv6Addr,
}

impl VethEnd<'_> {
    /// The address of the given family.
    pub fn addr(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.v6)
        } else {
            IpAddr::V4(self.v4)
        }
    }
}

/// Creates the namespaces of `a` and `b` and a veth pair between them, with the addresses
/// and loopback up in both. On failure what was made stays: the caller deletes the
/// namespaces (which takes the veth with them).
pub fn create_veth_pair(a: &VethEnd<'_>, b: &VethEnd<'_>) -> Result<(), PeerError> {
    ip(&["netns", "add", a.netns])?;
    ip(&["netns", "add", b.netns])?;
    ip(&[
        "link", "add", a.dev, "netns", a.netns, "type", "veth", "peer", "name", b.dev, "netns",
        b.netns,
    ])?;
    for end in [a, b] {
        let v4 = format!("{}/24", end.v4);
        let v6 = format!("{}/64", end.v6);
        ip(&["-n", end.netns, "link", "set", "lo", "up"])?;
        ip(&["-n", end.netns, "addr", "add", &v4, "dev", end.dev])?;
        ip(&["-n", end.netns, "addr", "add", &v6, "dev", end.dev, "nodad"])?;
        ip(&["-n", end.netns, "link", "set", end.dev, "up"])?;
    }
    Ok(())
}

/// Runs `ip ARGS…` in the calling thread's namespace and returns what it printed on stdout.
pub fn ip(args: &[&str]) -> Result<String, PeerError> {
    run_checked(Command::new("ip").args(args)).map(|out| out.stdout)
}

/// Runs the future `f` makes on a thread of its own, in a new, empty network namespace
/// (unshare(2) changes only that thread; the namespace goes when the thread ends), under a
/// current-thread tokio runtime. A panic in `f` is passed on to the caller; so is failing to
/// unshare (which needs root).
pub fn in_fresh_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's namespaces.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) failed (run as root): {}",
            std::io::Error::last_os_error()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime");
        rt.block_on(f());
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// The calling thread inside a named namespace (`/run/netns/NAME`) until this guard drops,
/// when it goes back to the namespace it came from. Sockets made meanwhile stay in the
/// named namespace.
#[derive(Debug)]
pub struct EnteredNetns {
    home: File,
}

impl EnteredNetns {
    /// Moves the calling thread into the namespace `name` (as `ip netns` knows it).
    pub fn enter(name: &str) -> Result<EnteredNetns, PeerError> {
        let own = PathBuf::from("/proc/thread-self/ns/net");
        let home = File::open(&own).map_err(|source| PeerError::File {
            what: "opening",
            path: own,
            source,
        })?;
        let path = PathBuf::from("/run/netns").join(name);
        let target = File::open(&path).map_err(|source| PeerError::File {
            what: "opening",
            path: path.clone(),
            source,
        })?;
        // SAFETY: setns(2) with a valid namespace file descriptor we hold open; it only
        // changes the network namespace of the calling thread.
        if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let source = std::io::Error::last_os_error();
            return Err(PeerError::File {
                what: "entering namespace",
                path,
                source,
            });
        }
        Ok(EnteredNetns { home })
    }
}

impl Drop for EnteredNetns {
    fn drop(&mut self) {
        // SAFETY: as in `enter`: back to the namespace the thread came from, still held open.
        unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

/// Packet counts of the named counters of nftables table `FAMILY TABLE` in namespace `ns`.
pub fn nft_counters(
    ns: &str,
    family: &str,
    table: &str,
) -> Result<HashMap<String, u64>, PeerError> {
    let text = ip(&["netns", "exec", ns, "nft", "list", "table", family, table])?;
    Ok(parse_nft_counters(&text))
}

/// The named counters of an `nft list table` listing (`counter NAME {` then `packets N bytes M`).
pub fn parse_nft_counters(text: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("counter ")
            .and_then(|r| r.strip_suffix(" {"))
        {
            current = Some(name.to_owned());
            continue;
        }
        if let (Some(name), Some(rest)) = (current.as_ref(), line.strip_prefix("packets ")) {
            let n = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            out.insert(name.clone(), n);
            current = None;
        }
    }
    out
}

/// How much counter `name` grew from `before` to `after` (a missing counter counts as 0).
pub fn counter_delta(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
    name: &str,
) -> u64 {
    let get = |m: &HashMap<String, u64>| m.get(name).copied().unwrap_or(0);
    get(after).saturating_sub(get(before))
}

/// Sends `n` datagrams (`TAG-i`) from `tx` to `to`, reading each back from `rx` (which needs
/// a read timeout); returns how many arrived intact.
pub fn send_and_receive(tx: &UdpSocket, rx: &UdpSocket, to: SocketAddr, n: u64, tag: &str) -> u64 {
    let mut got = 0;
    let mut buf = [0u8; 256];
    for i in 0..n {
        let msg = format!("{tag}-{i}");
        if tx.send_to(msg.as_bytes(), to).is_err() {
            continue;
        }
        if let Ok((len, _)) = rx.recv_from(&mut buf) {
            if buf.get(..len) == Some(msg.as_bytes()) {
                got += 1;
            }
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_listing_is_joined_per_state_without_key_material() {
        let text = "src 10.77.0.1 dst 10.77.0.2\n\
                    \tproto esp spi 0xfea17436 reqid 1 mode transport\n\
                    \treplay-window 0 \n\
                    \taead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff00112233 128\n\
                    \tsel src 10.77.0.1/32 dst 10.77.0.2/32 proto udp dport 6081 \n";
        let states = summarize_xfrm_states(text);
        assert_eq!(states.len(), 1);
        assert!(
            states[0].contains("aead rfc4106(gcm(aes)) sel src"),
            "{states:?}"
        );
        assert!(!states[0].contains("0x0011"), "{states:?}");
    }

    #[test]
    fn packet_counter_is_read_from_the_lifetime_current_line() {
        let state = "src a dst b proto esp spi 0x1 lifetime config: limit: soft \
                     8986376364555581099(packets), hard (INF)(packets) \
                     lifetime current: 84(bytes), 3(packets) add 1";
        assert_eq!(packets_of(state), Some(3));
        assert_eq!(packets_of("no counters"), None);
    }

    #[test]
    fn nft_listing_gives_each_named_counter_its_packet_count() {
        let text = "table inet t {\n\tcounter esp_in {\n\t\tpackets 5 bytes 640\n\t}\n\
                    \tcounter plain_7000 {\n\t\tpackets 0 bytes 0\n\t}\n}\n";
        let counters = parse_nft_counters(text);
        assert_eq!(counters.get("esp_in"), Some(&5));
        assert_eq!(counters.get("plain_7000"), Some(&0));
        assert_eq!(counter_delta(&HashMap::new(), &counters, "esp_in"), 5);
        assert_eq!(counter_delta(&counters, &HashMap::new(), "esp_in"), 0);
    }

    #[test]
    fn policy_listing_splits_into_policies_without_socket_policies() {
        let text = "src 10.77.0.1/32 dst 10.77.0.2/32 proto udp dport 6081 \n\
                    \tdir out priority 366912 ptype main \n\
                    \ttmpl src 0.0.0.0 dst 0.0.0.0\n\
                    \t\tproto esp reqid 2 mode transport\n\
                    src 0.0.0.0/0 dst 0.0.0.0/0 \n\
                    \tsocket in priority 0 ptype main \n";
        let policies = parse_xfrm_policies(text);
        assert_eq!(
            policies,
            vec![XfrmPolicy {
                selector: "src 10.77.0.1/32 dst 10.77.0.2/32 proto udp dport 6081".into(),
                dir: "out".into(),
                template: Some("esp transport".into()),
            }]
        );
    }
}
