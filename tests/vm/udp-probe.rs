//! A tiny UDP sender and receiver for checks inside the rig's guest, where busybox's `nc` has
//! no `-u`. Each datagram carries `ovn-ipsec-probe SEQ`, so the receiver counts exactly the
//! probes it was sent and ignores anything else.
//!
//! ```text
//! udp-probe recv BIND_ADDR:PORT COUNT [TIMEOUT_MS]   # prints "listening on …" once bound
//! udp-probe send [--from ADDR:PORT] [--rate PPS] TO_ADDR:PORT COUNT
//! ```
//! `recv` exits 0 when COUNT probes arrived before the timeout (default 5000 ms), 1 otherwise.
//! It prints `received N/COUNT`, then `lost L of COUNT` and, when some were lost, the missing
//! sequence numbers as ranges (`missing 40-52,97`): with `send --rate`, sequence number S left
//! at S/PPS seconds after the first, so a range is a time window of the stream. `send --rate`
//! paces the probes at PPS per second and keeps going when a send fails (a blocked route during
//! a fault), counting the failures.

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Default time `recv` waits for all probes.
const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// Largest datagram read; probes are a few bytes, anything larger is not ours.
const MAX_DATAGRAM: usize = 2048;
/// Prefix of every probe's payload.
const PROBE_PREFIX: &str = "ovn-ipsec-probe ";
/// Highest rate `send --rate` accepts, probes per second.
const MAX_RATE: u64 = 100_000;
/// Most missing ranges `recv` lists; the count of lost probes is always complete.
const MAX_MISSING_RANGES: usize = 32;

/// What went wrong, naming the argument or socket operation.
#[derive(Debug)]
enum ProbeError {
    /// The command line does not match the usage.
    Usage(String),
    /// An argument that should be `ADDR:PORT` is not.
    BadAddress(String),
    /// An argument that should be a whole number is not.
    BadNumber(String),
    /// `--rate` is zero or above [`MAX_RATE`].
    BadRate(u64),
    /// Binding the socket failed.
    Bind(SocketAddr, io::Error),
    /// Sending a probe failed.
    Send(SocketAddr, io::Error),
    /// Receiving failed for a reason other than the timeout.
    Receive(io::Error),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Usage(why) => write!(
                f,
                "{why}\nusage: udp-probe recv BIND_ADDR:PORT COUNT [TIMEOUT_MS]\n       udp-probe send [--from ADDR:PORT] [--rate PPS] TO_ADDR:PORT COUNT"
            ),
            ProbeError::BadRate(r) => write!(f, "--rate {r}: must be 1 to {MAX_RATE} per second"),
            ProbeError::BadAddress(arg) => write!(f, "not an ADDR:PORT: {arg:?}"),
            ProbeError::BadNumber(arg) => write!(f, "not a whole number: {arg:?}"),
            ProbeError::Bind(addr, e) => write!(f, "cannot bind {addr}: {e}"),
            ProbeError::Send(addr, e) => write!(f, "cannot send to {addr}: {e}"),
            ProbeError::Receive(e) => write!(f, "cannot receive: {e}"),
        }
    }
}

fn parse_addr(arg: &str) -> Result<SocketAddr, ProbeError> {
    arg.parse()
        .map_err(|_| ProbeError::BadAddress(arg.to_owned()))
}

fn parse_number(arg: &str) -> Result<u64, ProbeError> {
    arg.parse()
        .map_err(|_| ProbeError::BadNumber(arg.to_owned()))
}

/// An unspecified address of the same family as `to`, port 0.
fn any_of_family(to: &SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

fn send(args: &[String]) -> Result<bool, ProbeError> {
    let mut from = None;
    let mut rate = None;
    let mut rest = args;
    loop {
        match rest {
            [flag, value, more @ ..] if flag == "--from" => {
                from = Some(parse_addr(value)?);
                rest = more;
            }
            [flag, value, more @ ..] if flag == "--rate" => {
                let r = parse_number(value)?;
                if r == 0 || r > MAX_RATE {
                    return Err(ProbeError::BadRate(r));
                }
                rate = Some(r);
                rest = more;
            }
            _ => break,
        }
    }
    let [to, count] = rest else {
        return Err(ProbeError::Usage("send takes TO_ADDR:PORT COUNT".into()));
    };
    let to = parse_addr(to)?;
    let count = parse_number(count)?;
    let from = from.unwrap_or_else(|| any_of_family(&to));
    let socket = UdpSocket::bind(from).map_err(|e| ProbeError::Bind(from, e))?;
    let Some(rate) = rate else {
        for seq in 0..count {
            let payload = format!("{PROBE_PREFIX}{seq}");
            socket
                .send_to(payload.as_bytes(), to)
                .map_err(|e| ProbeError::Send(to, e))?;
        }
        println!("sent {count} to {to}");
        return Ok(true);
    };

    // Paced: probe S leaves at start + S/rate, however long the previous sends took.
    let start = Instant::now();
    let mut failures = 0u64;
    for seq in 0..count {
        let due = start + Duration::from_nanos(seq.saturating_mul(1_000_000_000) / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let payload = format!("{PROBE_PREFIX}{seq}");
        if socket.send_to(payload.as_bytes(), to).is_err() {
            failures = failures.saturating_add(1);
        }
    }
    println!(
        "sent {count} to {to} at {rate}/s in {:.1} s ({failures} sends failed)",
        start.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// The sequence numbers below `count` not in `seen`, as ranges `a-b` or `a`, comma-separated;
/// at most [`MAX_MISSING_RANGES`] of them, then `...`.
fn missing_ranges(seen: &std::collections::BTreeSet<u64>, count: u64) -> String {
    let mut ranges: Vec<String> = Vec::new();
    let mut open: Option<(u64, u64)> = None;
    let mut truncated = false;
    for seq in (0..count).filter(|s| !seen.contains(s)) {
        open = match open {
            Some((a, b)) if b.checked_add(1) == Some(seq) => Some((a, seq)),
            Some((a, b)) => {
                if ranges.len() == MAX_MISSING_RANGES {
                    truncated = true;
                    break;
                }
                ranges.push(if a == b {
                    format!("{a}")
                } else {
                    format!("{a}-{b}")
                });
                Some((seq, seq))
            }
            None => Some((seq, seq)),
        };
    }
    if let (Some((a, b)), false) = (open, truncated) {
        if ranges.len() < MAX_MISSING_RANGES {
            ranges.push(if a == b {
                format!("{a}")
            } else {
                format!("{a}-{b}")
            });
        } else {
            truncated = true;
        }
    }
    let mut out = ranges.join(",");
    if truncated {
        out.push_str(",...");
    }
    out
}

fn recv(args: &[String]) -> Result<bool, ProbeError> {
    let (bind, count, timeout_ms) = match args {
        [bind, count] => (bind, count, DEFAULT_TIMEOUT_MS),
        [bind, count, timeout] => (bind, count, parse_number(timeout)?),
        _ => {
            return Err(ProbeError::Usage(
                "recv takes BIND_ADDR:PORT COUNT [TIMEOUT_MS]".into(),
            ))
        }
    };
    let bind = parse_addr(bind)?;
    let count = parse_number(count)?;
    let socket = UdpSocket::bind(bind).map_err(|e| ProbeError::Bind(bind, e))?;
    println!("listening on {bind}");
    // The script waits for the line above before it starts the sender.
    let _ = io::stdout().flush();
    let start = Instant::now();
    let timeout = Duration::from_millis(timeout_ms);
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    while (seen.len() as u64) < count {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(ProbeError::Receive)?;
        match socket.recv_from(&mut buf) {
            Ok((n, _peer)) => {
                let payload = buf.get(..n).unwrap_or_default();
                let seq = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|s| s.strip_prefix(PROBE_PREFIX))
                    .and_then(|s| s.parse::<u64>().ok());
                if let Some(seq) = seq.filter(|s| *s < count) {
                    seen.insert(seq);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(ProbeError::Receive(e)),
        }
    }
    println!("received {}/{count} on {bind}", seen.len());
    let lost = count.saturating_sub(seen.len() as u64);
    if lost == 0 {
        println!("lost 0 of {count}");
    } else {
        println!(
            "lost {lost} of {count}; missing {}",
            missing_ranges(&seen, count)
        );
    }
    Ok(seen.len() as u64 == count)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, rest)) if cmd == "send" => send(rest),
        Some((cmd, rest)) if cmd == "recv" => recv(rest),
        _ => Err(ProbeError::Usage(
            "first argument must be send or recv".into(),
        )),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("udp-probe: {e}");
            ExitCode::from(2)
        }
    }
}
