//! Sending a UDP datagram from a chosen source address through a socket bound to the wildcard
//! address: `sendmsg(2)` with an `IP_PKTINFO` or `IPV6_PKTINFO` control message naming it.
//!
//! Without this the kernel picks the source by route, which on a host with several addresses
//! (IPv6 hosts nearly always have several: SLAAC, temporary addresses) may not be our encap
//! IP, and the peer would see our IKE messages come from an address it has no configuration
//! for.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Room for one control message with an `in6_pktinfo` (the larger of the two), 8-byte
/// aligned as `cmsghdr` requires.
const CONTROL_WORDS: usize = 8;

/// Sends `bytes` to `remote` from `local` (which must be an address of this host, of the
/// socket's family) through `socket`, without blocking. An unspecified `local` leaves the
/// choice to the kernel.
pub fn send_from(
    socket: &impl AsRawFd,
    local: IpAddr,
    remote: SocketAddr,
    bytes: &[u8],
) -> std::io::Result<usize> {
    let dest = SockAddr::from(remote);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: an all-zero msghdr is valid (no name, no buffers); the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = dest.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = dest.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;

    if !local.is_unspecified() {
        match local {
            IpAddr::V4(a) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                put_control(
                    &mut msg,
                    &mut control,
                    libc::IPPROTO_IP,
                    libc::IP_PKTINFO,
                    info,
                );
            }
            IpAddr::V6(a) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let (level, kind) = (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO);
                put_control(&mut msg, &mut control, level, kind, info);
            }
        }
    }

    // SAFETY: `msg` points at `dest`, `iov` (over `bytes`) and `control`, all alive for the
    // call; the kernel only reads them.
    let rc = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    usize::try_from(rc).map_err(|_| std::io::Error::last_os_error())
}

/// Makes `control` the message's control buffer, holding one control message of `level` and
/// `kind` with `data`.
fn put_control<T: Copy>(
    msg: &mut libc::msghdr,
    control: &mut [u64; CONTROL_WORDS],
    level: libc::c_int,
    kind: libc::c_int,
    data: T,
) {
    let data_len = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
    let (space, len) = unsafe { (libc::CMSG_SPACE(data_len), libc::CMSG_LEN(data_len)) };
    debug_assert!(space as usize <= std::mem::size_of_val(control));
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as usize;
    // SAFETY: the buffer is aligned for cmsghdr and at least CMSG_SPACE(size of T) long (one
    // in6_pktinfo needs 32 bytes of the 64), so the first header and its data fit in it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = len as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<T>(), data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn datagram_over_loopback_arrives_from_the_chosen_source() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("0.0.0.0:0").unwrap();
        let to = rx.local_addr().unwrap();
        // 127.0.0.2 is on lo as part of 127/8, but the route would pick 127.0.0.1.
        let local: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(send_from(&tx, local, to, b"from .2").unwrap(), 7);
        let mut buf = [0u8; 16];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from .2");
        assert_eq!(from.ip(), local);
        assert_eq!(from.port(), tx.local_addr().unwrap().port());

        // Unspecified: the kernel chooses.
        send_from(&tx, "0.0.0.0".parse().unwrap(), to, b"any").unwrap();
        let (_, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn source_that_is_not_ours_is_refused_by_the_kernel() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("0.0.0.0:0").unwrap();
        let err = send_from(
            &tx,
            "192.0.2.77".parse().unwrap(),
            rx.local_addr().unwrap(),
            b"x",
        );
        assert!(err.is_err(), "{err:?}");
    }
}
