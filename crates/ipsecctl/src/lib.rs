//! `ipsecctl`'s library: reading IKEv2 captures and decoding what they hold.
//!
//! - [`capture`]: pcap and pcapng files.
//! - [`link`], [`ip`], [`udp`]: from a frame to the UDP payload.
//! - [`reassembly`]: IP fragment reassembly.
//! - [`key_table`]: Wireshark's `ikev2_decryption_table`.

pub mod capture;
pub mod ip;
pub mod key_table;
pub mod link;
pub mod reassembly;
pub mod udp;
