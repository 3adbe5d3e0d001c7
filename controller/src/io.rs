//! The daemon's UDP sockets: the IKE port and the NAT-T port, the latter with the ESP-in-UDP
//! socket option so the kernel decapsulates ESP arriving there (RFC 3948) and only IKE
//! messages (with the non-ESP marker) and keepalives reach us.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use ikev2::engine::Transmit;
use tokio::net::UdpSocket;

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
    #[error("cannot bind UDP port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// The ESP-in-UDP socket option was refused (kernel without `CONFIG_XFRM`/ESP-in-UDP).
    #[error("cannot enable ESP-in-UDP on port {port}: {source}")]
    EspInUdp {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The IKE and NAT-T sockets.
#[derive(Debug)]
pub struct Sockets {
    ike: UdpSocket,
    nat_t: UdpSocket,
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

impl Sockets {
    /// Binds both ports on the IPv4 wildcard address and enables ESP-in-UDP on the NAT-T one.
    // Limitation: IPv4 only; IPv6 encaps would need a second pair of sockets.
    pub async fn bind(ike_port: u16, nat_t_port: u16) -> Result<Sockets, IoError> {
        let bind = |port: u16| async move {
            UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                .await
                .map_err(|source| IoError::Bind { port, source })
        };
        let ike = bind(ike_port).await?;
        let nat_t = bind(nat_t_port).await?;
        let value: libc::c_int = UDP_ENCAP_ESPINUDP;
        // SAFETY: a valid socket fd, a pointer to a c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                nat_t.as_raw_fd(),
                libc::IPPROTO_UDP,
                UDP_ENCAP,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(IoError::EspInUdp {
                port: nat_t_port,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Sockets {
            ike,
            nat_t,
            ike_port,
            nat_t_port,
        })
    }

    /// Waits for the next datagram on either port, into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<Received> {
        loop {
            let (socket, local_port) = tokio::select! {
                r = self.ike.readable() => { r?; (&self.ike, self.ike_port) }
                r = self.nat_t.readable() => { r?; (&self.nat_t, self.nat_t_port) }
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

    /// Sends one datagram of the engine from the socket of its local port; errors are logged,
    /// as IKE retransmits on its own.
    pub async fn send(&self, t: &Transmit) {
        let socket = if t.local.port() == self.nat_t_port {
            &self.nat_t
        } else {
            &self.ike
        };
        if let Err(error) = socket.send_to(&t.bytes, t.remote).await {
            tracing::debug!(remote = %t.remote, %error, "sending an IKE datagram failed");
        }
    }
}
