//! The netlink connection: one XFRM netlink socket, requests with sequence numbers, acks, and
//! batching many requests into one datagram.
//!
//! Built on `netlink-sys` directly rather than `netlink-proto`: `netlink-proto` sends one
//! datagram per request and always waits for each reply stream, while batching needs many
//! requests in one datagram with acks requested only on the last (the kernel processes a
//! datagram's messages in order and reports any failure as an error with its sequence number,
//! so one ack proves the whole batch was handled).

use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_xfrm::{XfrmMessage, XFRM_MSG_BASE};
use netlink_sys::{protocols::NETLINK_XFRM, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use crate::error::Error;
use crate::wire::{self, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// Most requests sent in one datagram (bounds the acks/errors queued for us at once).
pub const MAX_BATCH_MESSAGES: usize = 256;
/// Most bytes sent in one datagram (well below the default netlink send buffer).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Receive buffer per datagram: the kernel's dump datagrams stay below 32 KiB.
const RECV_BUFFER_BYTES: usize = 64 * 1024;
/// Socket receive queue we ask for, so bursts of events or errors are not dropped.
const SOCKET_RCVBUF_BYTES: usize = 4 * 1024 * 1024;

/// One request to the kernel.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The message.
    pub message: XfrmMessage,
    /// Whether it is a dump (`NLM_F_DUMP`, answered by many messages and `NLMSG_DONE`).
    pub dump: bool,
}

/// The kernel's errno and extended-ack text for a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelError {
    pub errno: i32,
    pub message: Option<String>,
}

/// What the kernel answered to one request.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub error: Option<KernelError>,
    pub replies: Vec<XfrmMessage>,
}

/// An XFRM netlink socket.
pub(crate) struct NetlinkSocket {
    socket: TokioSocket,
    port_id: u32,
    next_seq: u32,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl NetlinkSocket {
    /// Opens a socket in the calling thread's network namespace, joined to `groups`
    /// (XFRMNLGRP_* numbers) when it is for events.
    pub fn open(groups: &[u32]) -> io::Result<NetlinkSocket> {
        let mut socket = TokioSocket::new(NETLINK_XFRM)?;
        let addr = socket.socket_mut().bind_auto()?;
        let s = socket.socket_ref();
        s.set_ext_ack(true)?;
        s.set_cap_ack(true)?;
        grow_receive_buffer(s.as_raw_fd(), s);
        for g in groups {
            s.add_membership(*g)?;
        }
        if groups.is_empty() {
            s.connect(&SocketAddr::new(0, 0))?;
        }
        Ok(NetlinkSocket {
            socket,
            port_id: addr.port_number(),
            // Start from a value unlikely to collide with replies to an earlier process.
            next_seq: std::process::id().wrapping_mul(0x9e37_79b9) | 1,
            out: Vec::with_capacity(MAX_BATCH_BYTES),
            buf: Vec::with_capacity(RECV_BUFFER_BYTES),
        })
    }

    /// Our netlink port id; the kernel puts it into notifications our requests cause.
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    /// Receives one datagram (for event sockets).
    pub async fn recv_datagram(&mut self) -> io::Result<&[u8]> {
        self.buf.clear();
        self.socket.recv(&mut self.buf).await?;
        Ok(&self.buf)
    }

    /// Sends every request, batched, and collects what the kernel answered to each.
    /// Only socket and decoding failures are errors here; kernel errors are per request.
    pub async fn execute(&mut self, requests: &[Request]) -> Result<Vec<Outcome>, Error> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(requests.len());
        let mut start = 0;
        while start < requests.len() {
            let end = self.chunk_end(requests, start);
            let chunk = requests.get(start..end).unwrap_or_default();
            outcomes.extend(self.execute_chunk(chunk).await?);
            start = end;
        }
        Ok(outcomes)
    }

    /// End of the batch starting at `start`: bounded in count and bytes, and a dump always
    /// ends its batch (its replies are terminated by `NLMSG_DONE`, not an ack).
    fn chunk_end(&self, requests: &[Request], start: usize) -> usize {
        let mut bytes = 0usize;
        let mut end = start;
        for r in requests.iter().skip(start).take(MAX_BATCH_MESSAGES) {
            let len = wire::NLMSG_HDR_LEN + netlink_packet_core::Emitable::buffer_len(&r.message);
            if end > start && bytes + len > MAX_BATCH_BYTES {
                break;
            }
            bytes += len;
            end += 1;
            if r.dump {
                break;
            }
        }
        end
    }

    async fn execute_chunk(&mut self, chunk: &[Request]) -> Result<Vec<Outcome>, Error> {
        let n = chunk.len();
        let base = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(n as u32);
        self.out.clear();
        for (i, r) in chunk.iter().enumerate() {
            let last = i + 1 == n;
            let flags = NLM_F_REQUEST
                | if r.dump {
                    NLM_F_DUMP
                } else if last {
                    NLM_F_ACK
                } else {
                    0
                };
            wire::encode_request(
                &mut self.out,
                &r.message,
                flags,
                base.wrapping_add(i as u32),
                self.port_id,
            );
        }
        self.socket.send(&self.out).await?;

        let mut outcomes: Vec<Outcome> = (0..n).map(|_| Outcome::default()).collect();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf).await?;
            let mut finished = false;
            for frame in wire::frames(&self.buf) {
                let frame = frame?;
                let index = frame.seq.wrapping_sub(base) as usize;
                let Some(outcome) = outcomes.get_mut(index) else {
                    // A late reply to an abandoned request: skip it.
                    continue;
                };
                let last = index + 1 == n;
                match frame.message_type {
                    NLMSG_DONE => {
                        let errno = done_errno(frame.payload);
                        if errno != 0 {
                            outcome.error = Some(KernelError {
                                errno,
                                message: None,
                            });
                        }
                        finished |= last;
                    }
                    NLMSG_ERROR => {
                        let ack = wire::decode_ack(&frame)?;
                        if ack.errno != 0 {
                            outcome.error = Some(KernelError {
                                errno: ack.errno,
                                message: ack.message,
                            });
                        }
                        finished |= last;
                    }
                    t if t >= XFRM_MSG_BASE => match wire::decode_xfrm(t, frame.payload) {
                        Ok(m) => outcome.replies.push(m),
                        // One odd dump entry must not fail the whole dump.
                        Err(e) => tracing::warn!(error = %e, "skipping undecodable XFRM reply"),
                    },
                    _ => {}
                }
            }
            if finished {
                return Ok(outcomes);
            }
        }
    }
}

/// `NLMSG_DONE` of a dump carries an int: 0, or the negative errno that ended the dump.
fn done_errno(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(i32::checked_neg)
        .unwrap_or(0)
        .max(0)
}

/// Asks for a large receive queue; as root SO_RCVBUFFORCE passes `rmem_max`.
fn grow_receive_buffer(fd: i32, s: &netlink_sys::Socket) {
    let size = SOCKET_RCVBUF_BYTES as libc::c_int;
    // SAFETY: plain setsockopt on a socket we own, with a pointer to a live c_int.
    let forced = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        // Without CAP_NET_ADMIN the kernel caps this at rmem_max; that is still fine.
        let _ = s.set_rx_buf_sz(SOCKET_RCVBUF_BYTES);
    }
}
