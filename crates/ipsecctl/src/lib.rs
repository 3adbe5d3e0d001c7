//! `ipsecctl`'s library: reading IKEv2 captures and decoding what they hold.
//!
//! - [`capture`]: pcap and pcapng files.
//! - [`link`], [`ip`], [`udp`]: from a frame to the UDP payload.
//! - [`reassembly`]: IP fragment reassembly.
//! - [`datagrams`]: the IKE datagrams (and ESP packets) of a capture, in frame order.
//! - [`key_table`]: Wireshark's `ikev2_decryption_table`.
//! - [`view`]: the printable view of decoded payloads.
//! - [`time_format`]: UTC timestamps.

pub mod capture;
pub mod datagrams;
pub mod decode;
pub mod ip;
pub mod key_table;
pub mod link;
pub mod reassembly;
pub mod render;
pub mod time_format;
pub mod udp;
pub mod view;
