//! Remotes as OVN writes them (`tcp:IP:PORT`, `ssl:IP:PORT`, `unix:PATH`, comma-separated
//! lists) and the byte streams they open.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::error::Error;

/// The port an OVSDB remote without one means (ovsdb-server's registered port).
pub const DEFAULT_PORT: u16 = 6640;

/// How long a TCP connect plus TLS handshake may take before the next remote is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One place an OVSDB server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Remote {
    /// Plain TCP to a host (IP literal or name) and port.
    Tcp {
        /// IP literal (IPv6 without brackets) or host name.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// TLS over TCP.
    Ssl {
        /// IP literal (IPv6 without brackets) or host name.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hostport = |f: &mut fmt::Formatter<'_>, kind, host: &str, port| {
            if host.contains(':') {
                write!(f, "{kind}:[{host}]:{port}")
            } else {
                write!(f, "{kind}:{host}:{port}")
            }
        };
        match self {
            Remote::Tcp { host, port } => hostport(f, "tcp", host, port),
            Remote::Ssl { host, port } => hostport(f, "ssl", host, port),
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromStr for Remote {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason| Error::BadRemote {
            remote: s.to_string(),
            reason,
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("no kind prefix"))?;
        match kind {
            "unix" if rest.is_empty() => Err(bad("empty path")),
            "unix" => Ok(Remote::Unix(PathBuf::from(rest))),
            "tcp" | "ssl" => {
                let (host, port) = split_host_port(rest).map_err(bad)?;
                Ok(if kind == "tcp" {
                    Remote::Tcp { host, port }
                } else {
                    Remote::Ssl { host, port }
                })
            }
            _ => Err(bad("kind is not tcp, ssl or unix")),
        }
    }
}

/// `HOST[:PORT]`, `[V6][:PORT]`; a bare IPv6 literal (more than one colon) has no port.
fn split_host_port(s: &str) -> Result<(String, u16), &'static str> {
    let parse_port = |p: &str| p.parse::<u16>().map_err(|_| "port is not a number 0-65535");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in IPv6 literal")?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => parse_port(p.strip_prefix(':').ok_or("junk after ']'")?)?,
        };
        return Ok((host.to_string(), port));
    }
    if s.matches(':').count() > 1 {
        return Ok((s.to_string(), DEFAULT_PORT));
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (s, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err("empty host");
    }
    Ok((host.to_string(), port))
}

/// Parses OVN's comma-separated remote list (`ssl:a:6642,ssl:b:6642`).
pub fn parse_remotes(list: &str) -> Result<Vec<Remote>, Error> {
    let remotes = list
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(Remote::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if remotes.is_empty() {
        return Err(Error::NoRemotes);
    }
    Ok(remotes)
}

/// Shuffles a remote list so that many chassis spread over the cluster members.
pub fn shuffled(remotes: &[Remote], rng: &mut impl rand::Rng) -> Vec<Remote> {
    let mut v = remotes.to_vec();
    v.shuffle(rng);
    v
}

/// A connected byte stream of any transport.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed connected stream.
pub type BoxStream = Pin<Box<dyn Stream>>;

/// Opens `remote`; `tls` must be set for `ssl:` remotes.
pub async fn connect(
    remote: &Remote,
    tls: Option<&Arc<tokio_rustls::rustls::ClientConfig>>,
) -> Result<BoxStream, Error> {
    let name = remote.to_string();
    let work = async {
        match remote {
            Remote::Unix(path) => {
                let s = UnixStream::connect(path)
                    .await
                    .map_err(|source| Error::Connect {
                        remote: name.clone(),
                        source,
                    })?;
                Ok(Box::pin(s) as BoxStream)
            }
            Remote::Tcp { host, port } => Ok(Box::pin(tcp(&name, host, *port).await?) as BoxStream),
            Remote::Ssl { host, port } => {
                let config = tls.ok_or_else(|| Error::TlsNotConfigured(name.clone()))?;
                let tcp = tcp(&name, host, *port).await?;
                let s = crate::tls::handshake(config.clone(), host, tcp).await?;
                Ok(Box::pin(s) as BoxStream)
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| Error::ConnectTimeout {
            remote: name.clone(),
            after: CONNECT_TIMEOUT,
        })?
}

async fn tcp(name: &str, host: &str, port: u16) -> Result<TcpStream, Error> {
    let s = TcpStream::connect((host, port))
        .await
        .map_err(|source| Error::Connect {
            remote: name.to_string(),
            source,
        })?;
    // Updates are written whole; Nagle would only delay the last segment of each.
    let _ = s.set_nodelay(true);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovn_style_remote_lists_parse_including_ipv6_literals() {
        let r =
            parse_remotes("ssl:192.0.2.1:6642, tcp:[2001:db8::1]:6641,unix:/run/sb.sock").unwrap();
        assert_eq!(
            r,
            vec![
                Remote::Ssl {
                    host: "192.0.2.1".into(),
                    port: 6642
                },
                Remote::Tcp {
                    host: "2001:db8::1".into(),
                    port: 6641
                },
                Remote::Unix("/run/sb.sock".into()),
            ]
        );
        assert_eq!(r[1].to_string(), "tcp:[2001:db8::1]:6641");
        assert_eq!(
            "tcp:10.0.0.1".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "10.0.0.1".into(),
                port: DEFAULT_PORT
            }
        );
    }

    #[test]
    fn malformed_remotes_name_the_problem() {
        for bad in [
            "http:1.2.3.4:80",
            "tcp:1.2.3.4:99999",
            "tcp:[::1",
            "unix:",
            "tcp::5",
            "x",
        ] {
            assert!(
                matches!(bad.parse::<Remote>(), Err(Error::BadRemote { .. })),
                "{bad}"
            );
        }
        assert!(matches!(parse_remotes(" , "), Err(Error::NoRemotes)));
    }

    #[test]
    fn shuffling_keeps_every_remote() {
        use rand::SeedableRng;
        let r = parse_remotes("tcp:a:1,tcp:b:2,tcp:c:3").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut s = shuffled(&r, &mut rng);
        s.sort_by_key(|r| r.to_string());
        assert_eq!(s, r);
    }

    #[test]
    fn remote_order_differs_between_chassis() {
        use rand::SeedableRng;
        let r = parse_remotes("ssl:a:6642,ssl:b:6642,ssl:c:6642").unwrap();
        let firsts: std::collections::BTreeSet<String> = (0..32)
            .map(|seed| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                shuffled(&r, &mut rng)[0].to_string()
            })
            .collect();
        assert_eq!(firsts.len(), 3, "every member is somebody's first choice");
    }
}
