//! The SK payloads of a real strongSwan 5.9.8 exchange (AES-GCM-256, SK_ei/SK_er from the
//! capture's Wireshark decryption table) open with our `sk::open`, their inner payload chains
//! are well formed, and sealing the plaintext again with the same IV gives strongSwan's bytes.
//!
//! The `.bin` files are the UDP payloads (port 4500, so they start with the 4-byte non-ESP
//! marker) of the messages after IKE_SA_INIT in
//! `tests/fixtures/strongswan-5.9.8/transport-two-children.pcap`; the IKE_AUTH request was
//! reassembled from its two IP fragments.

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::aead::{AeadCipher, ICV_LEN, IV_LEN};
use ikev2::crypto::{sk, RingProvider};
use ikev2::registry::PayloadType;

const NON_ESP_MARKER_LEN: usize = 4;
const IKE_HEADER_LEN: usize = 28;
const GENERIC_HEADER_LEN: usize = 4;
/// IKE header flags: the Initiator bit (RFC 7296 §3.1).
const FLAG_INITIATOR: u8 = 0x08;

struct Keys {
    spi_i: Vec<u8>,
    spi_r: Vec<u8>,
    sk_ei: Vec<u8>,
    sk_er: Vec<u8>,
}

fn decryption_table() -> Keys {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/strongswan-5.9.8/transport-two-children.ikev2_decryption_table");
    let line = std::fs::read_to_string(path).unwrap();
    let fields: Vec<&str> = line.trim().split(',').collect();
    Keys {
        spi_i: hex::decode(fields[0]).unwrap(),
        spi_r: hex::decode(fields[1]).unwrap(),
        sk_ei: hex::decode(fields[2]).unwrap(),
        sk_er: hex::decode(fields[3]).unwrap(),
    }
}

/// Walks a payload chain, checking every length, and returns the payload types in order.
fn payload_types(first: u8, mut chain: &[u8]) -> Vec<PayloadType> {
    let mut types = Vec::new();
    let mut next = first;
    while next != 0 {
        types.push(PayloadType(next));
        assert!(
            chain.len() >= GENERIC_HEADER_LEN,
            "truncated payload header"
        );
        let len = usize::from(u16::from_be_bytes([chain[2], chain[3]]));
        assert!(
            len >= GENERIC_HEADER_LEN && len <= chain.len(),
            "bad payload length {len}"
        );
        next = chain[0];
        chain = &chain[len..];
    }
    assert!(
        chain.is_empty(),
        "{} bytes after the last payload",
        chain.len()
    );
    types
}

fn check_message(file: &str, expected: &[PayloadType]) {
    let keys = decryption_table();
    let datagram = kv::read_bytes(file);
    assert_eq!(&datagram[..NON_ESP_MARKER_LEN], &[0, 0, 0, 0]);
    let ike = &datagram[NON_ESP_MARKER_LEN..];
    assert_eq!(&ike[..8], &keys.spi_i[..]);
    assert_eq!(&ike[8..16], &keys.spi_r[..]);

    // The SK payload is the only outer payload of these messages.
    assert_eq!(PayloadType(ike[16]), PayloadType::SK);
    let sk_header = &ike[IKE_HEADER_LEN..IKE_HEADER_LEN + GENERIC_HEADER_LEN];
    let sk_len = usize::from(u16::from_be_bytes([sk_header[2], sk_header[3]]));
    assert_eq!(IKE_HEADER_LEN + sk_len, ike.len());
    let (aad, body) = ike.split_at(IKE_HEADER_LEN + GENERIC_HEADER_LEN);

    let from_initiator = ike[19] & FLAG_INITIATOR != 0;
    let sk_e = if from_initiator {
        &keys.sk_ei
    } else {
        &keys.sk_er
    };
    let cipher = AeadCipher::AesGcm16_256;
    let inner = sk::open(&RingProvider, cipher, sk_e, aad, body).unwrap();

    let types = payload_types(sk_header[0], &inner);
    assert_eq!(types, expected, "{file}: inner payloads");

    // The other direction's key must not open it.
    let other = if from_initiator {
        &keys.sk_er
    } else {
        &keys.sk_ei
    };
    assert!(sk::open(&RingProvider, cipher, other, aad, body).is_err());

    // strongSwan adds no padding with AEAD ciphers (only the Pad Length octet), as we do, so
    // sealing the same plaintext under the same IV must give its body back byte for byte.
    assert_eq!(
        body.len(),
        IV_LEN + inner.len() + 1 + ICV_LEN,
        "{file}: padding"
    );
    let iv: [u8; IV_LEN] = body[..IV_LEN].try_into().unwrap();
    let resealed = sk::seal(&RingProvider, cipher, sk_e, &iv, aad, &inner).unwrap();
    assert_eq!(resealed, body, "{file}: re-sealed body differs");
}

#[test]
fn strongswan_ike_auth_request_opens_with_sk_ei() {
    use PayloadType as P;
    check_message(
        "strongswan-ike-auth-request.bin",
        &[
            P::IDI,
            P::CERT,
            P::NOTIFY,
            P::CERTREQ,
            P::IDR,
            P::AUTH,
            P::NOTIFY,
            P::NOTIFY,
            P::SA,
            P::TSI,
            P::TSR,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
        ],
    );
}

#[test]
fn strongswan_ike_auth_response_opens_with_sk_er() {
    use PayloadType as P;
    check_message(
        "strongswan-ike-auth-response.bin",
        &[
            P::IDR,
            P::CERT,
            P::AUTH,
            P::NOTIFY,
            P::NOTIFY,
            P::SA,
            P::TSI,
            P::TSR,
            P::NOTIFY,
            P::NOTIFY,
        ],
    );
}

#[test]
fn strongswan_create_child_sa_request_opens_with_sk_ei() {
    use PayloadType as P;
    check_message(
        "strongswan-create-child-sa-request.bin",
        &[P::NOTIFY, P::NOTIFY, P::SA, P::NONCE, P::TSI, P::TSR],
    );
}

#[test]
fn strongswan_create_child_sa_response_opens_with_sk_er() {
    use PayloadType as P;
    check_message(
        "strongswan-create-child-sa-response.bin",
        &[P::NOTIFY, P::NOTIFY, P::SA, P::NONCE, P::TSI, P::TSR],
    );
}
