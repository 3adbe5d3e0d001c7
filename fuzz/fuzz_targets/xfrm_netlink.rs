//! Fuzzes the decoding of what the kernel sends on XFRM netlink sockets: datagrams of replies
//! (acks, errors with extended-ack text, dump entries) and multicast events, and their
//! conversion into the crate's typed states, policies and events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xfrm::wire::{decode_datagram, Reply};

fuzz_target!(|data: &[u8]| {
    let Ok(messages) = decode_datagram(data) else {
        return;
    };
    for (frame, reply) in messages {
        if let Reply::Xfrm(message) = reply {
            let _ = xfrm::events::event_from_message(&message, frame.pid == 1);
        }
    }
});
