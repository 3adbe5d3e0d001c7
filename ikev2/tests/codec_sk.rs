//! The SK payloads of the strongSwan exchange: opened with the keys of the capture's
//! decryption table, their plaintext decodes and re-encodes byte for byte, and the prefix we
//! would build for sending is the AAD the peer used.

use ikev2::codec::{
    decode_payloads, encode_encrypted_prefix, encode_payloads, locate_encrypted_payload,
    EncryptedPayloadHeader, Message, Payload, PayloadBody, TrafficSelector,
};
use ikev2::registry::{NotifyType, PayloadType, ProtocolId};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

const MESSAGES: &[&[u8]] = &[
    include_bytes!("fixtures/messages/03-ike_auth-request.bin"),
    include_bytes!("fixtures/messages/04-ike_auth-response.bin"),
    include_bytes!("fixtures/messages/05-create_child_sa-request.bin"),
    include_bytes!("fixtures/messages/06-create_child_sa-response.bin"),
];

const TABLE: &str =
    include_str!("fixtures/strongswan-5.9.8/transport-two-children.ikev2_decryption_table");

/// RFC 5282: 8-byte explicit IV, 16-byte ICV; the key material is key || 4-byte salt.
const IV_LEN: usize = 8;

/// Decrypts the SK payload of `bytes` and returns (first inner type, plaintext without padding).
fn open(bytes: &[u8]) -> (PayloadType, Vec<u8>) {
    let fields: Vec<&str> = TABLE.trim().split(',').collect();
    let message = Message::decode(bytes).unwrap();
    let key_hex = if message.header.flags.is_initiator() {
        fields[2]
    } else {
        fields[3]
    };
    let key_material = hex::decode(key_hex).unwrap();
    let (key, salt) = key_material.split_at(32);

    let location = locate_encrypted_payload(bytes).unwrap().unwrap();
    let body = &bytes[location.body.clone()];
    let (iv, sealed) = body.split_at(IV_LEN);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);

    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let mut in_out = sealed.to_vec();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&bytes[location.aad.clone()]),
            &mut in_out,
        )
        .unwrap();
    // RFC 7296 §3.14: payloads || Padding || Pad Length.
    let pad_len = usize::from(*plaintext.last().unwrap());
    let payloads_len = plaintext.len() - 1 - pad_len;
    (location.first_inner, plaintext[..payloads_len].to_vec())
}

fn sequence(payloads: &[Payload]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| match &p.body {
            PayloadBody::Notify(n) => format!("N({})", n.notify_type),
            _ => p.payload_type().to_string(),
        })
        .collect()
}

#[test]
fn decrypted_sk_plaintext_reencodes_byte_for_byte() {
    for bytes in MESSAGES {
        let (first, plaintext) = open(bytes);
        let payloads = decode_payloads(first, &plaintext).unwrap();
        assert_eq!(encode_payloads(&payloads).unwrap(), (first, plaintext));
    }
}

#[test]
fn ike_auth_request_carries_identity_certificate_auth_and_child_sa() {
    let (first, plaintext) = open(MESSAGES[0]);
    let payloads = decode_payloads(first, &plaintext).unwrap();
    let seq = sequence(&payloads);
    for expected in [
        "IDI",
        "CERT",
        "AUTH",
        "SA",
        "TSI",
        "TSR",
        "N(USE_TRANSPORT_MODE)",
    ] {
        assert!(
            seq.iter().any(|s| s == expected),
            "{expected} missing from {seq:?}"
        );
    }

    // geneve-in: local udp/6081, remote udp.
    let tsi = payloads.iter().find_map(|p| match &p.body {
        PayloadBody::TsI(ts) => Some(ts),
        _ => None,
    });
    let TrafficSelector::Ipv4(range) = &tsi.unwrap().selectors[0] else {
        panic!("not IPv4")
    };
    assert_eq!(range.ip_protocol, 17);
    assert_eq!((range.start_port, range.end_port), (6081, 6081));
    assert_eq!(range.start_address, std::net::Ipv4Addr::new(10, 99, 0, 1));

    let sa = payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Sa(sa) => Some(sa),
        _ => None,
    });
    let proposal = &sa.unwrap().proposals[0];
    assert_eq!(proposal.protocol, ProtocolId::ESP);
    assert_eq!(proposal.spi.len(), 4);
}

#[test]
fn create_child_sa_request_starts_with_use_transport_mode() {
    let (first, plaintext) = open(MESSAGES[2]);
    let payloads = decode_payloads(first, &plaintext).unwrap();
    let PayloadBody::Notify(n) = &payloads[0].body else {
        panic!("not a Notify")
    };
    assert_eq!(n.notify_type, NotifyType::USE_TRANSPORT_MODE);
    let seq = sequence(&payloads);
    for expected in ["SA", "NONCE", "TSI", "TSR"] {
        assert!(
            seq.iter().any(|s| s == expected),
            "{expected} missing from {seq:?}"
        );
    }
}

#[test]
fn encrypted_prefix_is_the_aad_the_peer_authenticated() {
    for bytes in MESSAGES {
        let message = Message::decode(bytes).unwrap();
        let location = locate_encrypted_payload(bytes).unwrap().unwrap();
        let prefix = encode_encrypted_prefix(
            &message.header,
            &[],
            EncryptedPayloadHeader {
                first_inner: location.first_inner,
                fragment: None,
            },
            location.body.len(),
        )
        .unwrap();
        assert_eq!(prefix, &bytes[location.aad.clone()]);
    }
}

#[test]
fn inner_payload_sequences_match_what_strongswan_sent() {
    let child = [
        "N(USE_TRANSPORT_MODE)",
        "N(ESP_TFC_PADDING_NOT_SUPPORTED)",
        "SA",
        "NONCE",
        "TSI",
        "TSR",
    ];
    let expected: [&[&str]; 4] = [
        &[
            "IDI",
            "CERT",
            "N(INITIAL_CONTACT)",
            "CERTREQ",
            "IDR",
            "AUTH",
            "N(USE_TRANSPORT_MODE)",
            "N(ESP_TFC_PADDING_NOT_SUPPORTED)",
            "SA",
            "TSI",
            "TSR",
            "N(MOBIKE_SUPPORTED)",
            "N(NO_ADDITIONAL_ADDRESSES)",
            "N(MULTIPLE_AUTH_SUPPORTED)",
            "N(EAP_ONLY_AUTHENTICATION)",
            "N(IKEV2_MESSAGE_ID_SYNC_SUPPORTED)",
        ],
        &[
            "IDR",
            "CERT",
            "AUTH",
            "N(USE_TRANSPORT_MODE)",
            "N(ESP_TFC_PADDING_NOT_SUPPORTED)",
            "SA",
            "TSI",
            "TSR",
            "N(MOBIKE_SUPPORTED)",
            "N(NO_ADDITIONAL_ADDRESSES)",
        ],
        &child,
        &child,
    ];
    for (bytes, expected) in MESSAGES.iter().zip(expected) {
        let (first, plaintext) = open(bytes);
        assert_eq!(
            sequence(&decode_payloads(first, &plaintext).unwrap()),
            expected
        );
    }
}

#[test]
fn skf_prefix_and_location_agree_on_the_aad_through_total_fragments() {
    use ikev2::codec::{Flags, Fragment, Header, Notify};
    use ikev2::registry::ExchangeType;

    let header = Header::new([1; 8], [2; 8], ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let unencrypted = [Payload::new(Notify::status(NotifyType(40000)))];
    let fragment = Some(Fragment {
        number: 2,
        total: 3,
    });
    let body = [0x5a; 40];
    let mut bytes = encode_encrypted_prefix(
        &header,
        &unencrypted,
        EncryptedPayloadHeader {
            first_inner: PayloadType::NONE,
            fragment,
        },
        body.len(),
    )
    .unwrap();
    let prefix_len = bytes.len();
    bytes.extend_from_slice(&body);

    // Header 28, Notify 8, SKF generic header 4 + Fragment Number and Total Fragments 4.
    assert_eq!(prefix_len, 28 + 8 + 8);
    let location = locate_encrypted_payload(&bytes).unwrap().unwrap();
    assert_eq!(location.payload_type, PayloadType::SKF);
    assert_eq!(location.fragment, fragment);
    assert_eq!(location.offset, 36);
    assert_eq!(location.aad, 0..prefix_len);
    assert_eq!(location.body, prefix_len..bytes.len());

    let message = Message::decode(&bytes).unwrap();
    assert_eq!(message.payloads[0], unencrypted[0]);
    let PayloadBody::Skf(skf) = &message.payloads[1].body else {
        panic!("not SKF")
    };
    assert_eq!(
        (
            skf.fragment_number,
            skf.total_fragments,
            skf.body.as_slice()
        ),
        (2, 3, &body[..])
    );
    assert_eq!(message.encode().unwrap(), bytes);
}

#[test]
fn encrypted_prefix_refuses_a_body_too_long_for_the_payload_length() {
    use ikev2::codec::{EncodeError, Flags, Header};
    use ikev2::registry::ExchangeType;

    let header = Header::new([1; 8], [2; 8], ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let sk = EncryptedPayloadHeader {
        first_inner: PayloadType::IDI,
        fragment: None,
    };
    assert_eq!(
        encode_encrypted_prefix(&header, &[], sk, 65_532),
        Err(EncodeError::TooLong {
            what: "encrypted payload",
            length: 65_536,
            max: 65_535
        })
    );
}
