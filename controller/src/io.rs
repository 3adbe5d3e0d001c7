//! The daemon's UDP sockets: the IKE port and the NAT-T port, for IPv4 and for IPv6, the NAT-T
//! ones with the ESP-in-UDP socket option so the kernel decapsulates ESP arriving there
//! (RFC 3948) and only IKE messages (with the non-ESP marker) and keepalives reach us.
//!
//! The IPv6 sockets are IPv6-only (`IPV6_V6ONLY`), so IPv4 peers never appear as mapped
//! addresses and both families can hold the same ports. A host without IPv6 runs on IPv4
//! alone, with a warning.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use ikev2::engine::Transmit;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::udp_source::send_from;

/// `UDP_ENCAP` from `<linux/udp.h>`: the socket option selecting UDP encapsulation.
const UDP_ENCAP: libc::c_int = 100;
/// `UDP_ENCAP_ESPINUDP` (RFC 3948): non-ESP marker for IKE, ESP otherwise.
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

/// Largest datagram read; IKE messages above the fragment size arrive as RFC 7383 fragments.
pub const MAX_DATAGRAM: usize = 65_535;

/// Why the sockets could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// Binding a port failed (in use, or no permission).
    #[error("cannot bind UDP {address}: {source}")]
    Bind {
        /// The wildcard address and port.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The ESP-in-UDP socket option was refused (kernel without `CONFIG_XFRM`/ESP-in-UDP).
    #[error("cannot enable ESP-in-UDP on UDP {address}: {source}")]
    EspInUdp {
        /// The wildcard address and port.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The IKE and NAT-T sockets of one address family.
#[derive(Debug)]
struct FamilySockets {
    ike: UdpSocket,
    nat_t: UdpSocket,
}

impl FamilySockets {
    /// Binds both ports on `wildcard` and enables ESP-in-UDP on the NAT-T one.
    fn bind(
        wildcard: std::net::IpAddr,
        ike_port: u16,
        nat_t_port: u16,
    ) -> Result<FamilySockets, IoError> {
        let ike = bind_udp(SocketAddr::new(wildcard, ike_port))?;
        let nat_t_address = SocketAddr::new(wildcard, nat_t_port);
        let nat_t = bind_udp(nat_t_address)?;
        enable_esp_in_udp(&nat_t).map_err(|source| IoError::EspInUdp {
            address: nat_t_address,
            source,
        })?;
        Ok(FamilySockets { ike, nat_t })
    }
}

/// A non-blocking UDP socket bound to `address`; IPv6-only for an IPv6 address.
fn bind_udp(address: SocketAddr) -> Result<UdpSocket, IoError> {
    let fail = |source| IoError::Bind { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(fail)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&address.into()).map_err(fail)?;
    UdpSocket::from_std(socket.into()).map_err(fail)
}

/// Sets `UDP_ENCAP_ESPINUDP` on `socket` (the same option for IPv4 and IPv6 sockets).
fn enable_esp_in_udp(socket: &UdpSocket) -> std::io::Result<()> {
    let value: libc::c_int = UDP_ENCAP_ESPINUDP;
    // SAFETY: a valid socket fd, a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_UDP,
            UDP_ENCAP,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The IKE and NAT-T sockets of both address families.
#[derive(Debug)]
pub struct Sockets {
    v4: FamilySockets,
    v6: Option<FamilySockets>,
    ike_port: u16,
    nat_t_port: u16,
}

/// A datagram received on one of the sockets.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Our port it arrived on.
    pub local_port: u16,
    /// Who sent it.
    pub remote: SocketAddr,
    /// Its bytes.
    pub len: usize,
}

/// Waits until `socket` is readable and returns it; never, for a family without sockets.
async fn readable(socket: Option<&UdpSocket>) -> std::io::Result<&UdpSocket> {
    match socket {
        Some(s) => s.readable().await.map(|()| s),
        None => std::future::pending().await,
    }
}

impl Sockets {
    /// Binds both ports on the IPv4 and the IPv6 wildcard address and enables ESP-in-UDP on
    /// the NAT-T ones. IPv4 is required; without IPv6 on the host, the daemon runs without.
    pub async fn bind(ike_port: u16, nat_t_port: u16) -> Result<Sockets, IoError> {
        let v4 = FamilySockets::bind(Ipv4Addr::UNSPECIFIED.into(), ike_port, nat_t_port)?;
        let v6 = match FamilySockets::bind(Ipv6Addr::UNSPECIFIED.into(), ike_port, nat_t_port) {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::warn!(%error, "no IPv6 IKE sockets: IPv6 encaps cannot be protected");
                None
            }
        };
        Ok(Sockets {
            v4,
            v6,
            ike_port,
            nat_t_port,
        })
    }

    /// Whether the IPv6 sockets are bound.
    pub fn has_ipv6(&self) -> bool {
        self.v6.is_some()
    }

    /// Waits for the next datagram on any of the sockets, into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<Received> {
        let v6_ike = self.v6.as_ref().map(|f| &f.ike);
        let v6_nat_t = self.v6.as_ref().map(|f| &f.nat_t);
        loop {
            let (socket, local_port) = tokio::select! {
                r = readable(Some(&self.v4.ike)) => (r?, self.ike_port),
                r = readable(Some(&self.v4.nat_t)) => (r?, self.nat_t_port),
                r = readable(v6_ike) => (r?, self.ike_port),
                r = readable(v6_nat_t) => (r?, self.nat_t_port),
            };
            match socket.try_recv_from(buf) {
                Ok((len, remote)) => {
                    return Ok(Received {
                        local_port,
                        remote,
                        len,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datagram of the engine from the socket of its local port and the remote's
    /// address family, with its local address as the source (not the one the route would
    /// pick); errors are logged, as IKE retransmits on its own.
    pub async fn send(&self, t: &Transmit) {
        let family = if t.remote.is_ipv4() {
            &self.v4
        } else if let Some(v6) = &self.v6 {
            v6
        } else {
            tracing::debug!(remote = %t.remote, "no IPv6 socket to send from");
            return;
        };
        let socket = if t.local.port() == self.nat_t_port {
            &family.nat_t
        } else {
            &family.ike
        };
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                send_from(socket, t.local.ip(), t.remote, &t.bytes)
            })
            .await;
        // The kernel refuses a source that is not (or not usably) on this host, e.g. an encap
        // IP the Southbound names but that is translated on the way: then the route's choice
        // of source is the best there is. Other errors fail again and are logged below.
        let sent = match sent {
            Err(error) => {
                tracing::debug!(local = %t.local.ip(), %error, "cannot send from our encap IP; sending from the route's source");
                socket.send_to(&t.bytes, t.remote).await
            }
            ok => ok,
        };
        if let Err(error) = sent {
            tracing::debug!(remote = %t.remote, %error, "sending an IKE datagram failed");
        }
    }
}
