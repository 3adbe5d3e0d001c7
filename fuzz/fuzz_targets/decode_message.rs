//! Decoding arbitrary bytes as an IKE message and as an SK plaintext never panics, and what
//! decodes encodes to bytes that decode to the same value again.
#![no_main]

use ikev2::codec::{decode_payloads, encode_payloads, locate_encrypted_payload, Message};
use ikev2::registry::PayloadType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A datagram as received on port 500 (or 4500 after the non-ESP marker).
    if let Ok(message) = Message::decode(data) {
        let bytes = message.encode().expect("a decoded message encodes");
        let again = Message::decode(&bytes).expect("a re-encoded message decodes");
        assert_eq!(again, message);
        assert_eq!(again.encode().expect("encodes"), bytes);
    }
    let _ = locate_encrypted_payload(data);

    // A decrypted SK plaintext: the first byte plays the SK payload's Next Payload.
    if let Some((&first, plaintext)) = data.split_first() {
        if let Ok(payloads) = decode_payloads(PayloadType(first), plaintext) {
            let (first_again, bytes) = encode_payloads(&payloads).expect("decoded payloads encode");
            let again = decode_payloads(first_again, &bytes).expect("re-encoded payloads decode");
            assert_eq!(again, payloads);
        }
    }
});
