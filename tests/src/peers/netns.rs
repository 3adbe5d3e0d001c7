//! Two network namespaces joined by a veth pair, the smallest network two IKE peers need.
//! Both are deleted when the guard drops; names are unique per process and pair, so tests
//! run in parallel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
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
        let path = PathBuf::from("/run/netns").join(&self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|source| PeerError::File {
                what: "opening",
                path: path.clone(),
                source,
            })?;
            // SAFETY: setns(2) with a valid namespace file descriptor we hold open; it only
            // changes the network namespace of the calling thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let source = std::io::Error::last_os_error();
                return Err(PeerError::File {
                    what: "entering namespace",
                    path,
                    source,
                });
            }
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

fn ip(args: &[&str]) -> Result<(), PeerError> {
    run_checked(Command::new("ip").args(args)).map(|_| ())
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
