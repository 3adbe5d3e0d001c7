//! Property tests: valid messages survive encode → decode unchanged, and no bytes (random,
//! or truncations and corruptions of real messages) make the decoder panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use ikev2::codec::{
    decode_payloads, encode_payloads, locate_encrypted_payload, AddressRange, AttributeValue, Auth,
    Cert, CertReq, CfgAttribute, Config, Delete, Eap, Encrypted, EncryptedFragment, Flags, Header,
    Id, Ke, Message, Nonce, Notify, Payload, PayloadBody, Proposal, Sa, TrafficSelector,
    TrafficSelectors, Transform, TransformAttribute, TransformId, UnknownPayload, VendorId,
};
use ikev2::registry::{
    AuthMethod, CertEncoding, CfgAttributeType, CfgType, ExchangeType, IdType, KeGroup, NotifyType,
    PayloadType, ProtocolId, TransformAttributeType, TransformType, TsType,
};
use proptest::collection::vec;
use proptest::prelude::*;

const REAL_MESSAGES: &[&[u8]] = &[
    include_bytes!("fixtures/messages/01-ike_sa_init-request.bin"),
    include_bytes!("fixtures/messages/02-ike_sa_init-response.bin"),
    include_bytes!("fixtures/messages/03-ike_auth-request.bin"),
    include_bytes!("fixtures/messages/04-ike_auth-response.bin"),
    include_bytes!("fixtures/messages/05-create_child_sa-request.bin"),
    include_bytes!("fixtures/messages/06-create_child_sa-response.bin"),
];

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = TransformAttribute> {
    (
        0u16..0x8000,
        prop_oneof![
            any::<u16>().prop_map(AttributeValue::Tv),
            bytes(8).prop_map(AttributeValue::Tlv)
        ],
    )
        .prop_map(|(t, value)| TransformAttribute {
            attribute_type: TransformAttributeType(t),
            value,
        })
}

fn transform() -> impl Strategy<Value = Transform> {
    (1u8..8, any::<u16>(), vec(attribute(), 0..3)).prop_map(|(t, id, attributes)| Transform {
        id: TransformId::new(TransformType(t), id),
        attributes,
    })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        0u8..5,
        prop_oneof![Just(0usize), Just(4), Just(8)],
        vec(transform(), 0..6),
    )
        .prop_flat_map(|(number, protocol, spi_len, transforms)| {
            vec(any::<u8>(), spi_len).prop_map(move |spi| Proposal {
                number,
                protocol: ProtocolId(protocol),
                spi,
                transforms: transforms.clone(),
            })
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(p, sp, ep, s, e)| {
                TrafficSelector::Ipv4(AddressRange {
                    ip_protocol: p,
                    start_port: sp,
                    end_port: ep,
                    start_address: Ipv4Addr::from(s),
                    end_address: Ipv4Addr::from(e),
                })
            }),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<u128>(),
            any::<u128>()
        )
            .prop_map(|(p, sp, ep, s, e)| {
                TrafficSelector::Ipv6(AddressRange {
                    ip_protocol: p,
                    start_port: sp,
                    end_port: ep,
                    start_address: Ipv6Addr::from(s),
                    end_address: Ipv6Addr::from(e),
                })
            }),
        (9u8..=255, any::<u8>(), bytes(12)).prop_map(|(t, p, data)| TrafficSelector::Unknown {
            ts_type: TsType(t),
            ip_protocol: p,
            data
        }),
    ]
}

fn delete() -> impl Strategy<Value = Delete> {
    (any::<u8>(), 0u8..9, 0usize..4).prop_flat_map(|(protocol, spi_size, n)| {
        vec(vec(any::<u8>(), usize::from(spi_size)), n).prop_map(move |spis| Delete {
            protocol: ProtocolId(protocol),
            spi_size,
            spis,
        })
    })
}

/// Bodies that may appear anywhere in a chain (everything but SK and SKF).
fn plain_body() -> impl Strategy<Value = PayloadBody> {
    prop_oneof![
        vec(proposal(), 0..4).prop_map(|proposals| PayloadBody::Sa(Sa { proposals })),
        (any::<u16>(), bytes(64)).prop_map(|(g, data)| PayloadBody::Ke(Ke {
            group: KeGroup(g),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| PayloadBody::IdI(Id {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(32)).prop_map(|(t, data)| PayloadBody::IdR(Id {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| PayloadBody::Cert(Cert {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(e, data)| PayloadBody::CertReq(CertReq {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(64)).prop_map(|(m, data)| PayloadBody::Auth(Auth {
            method: AuthMethod(m),
            data
        })),
        bytes(64).prop_map(|data| PayloadBody::Nonce(Nonce { data })),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(32)).prop_map(|(p, spi, t, data)| {
            PayloadBody::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                notify_type: NotifyType(t),
                data,
            })
        }),
        delete().prop_map(PayloadBody::Delete),
        bytes(32).prop_map(|data| PayloadBody::VendorId(VendorId { data })),
        vec(selector(), 0..4)
            .prop_map(|selectors| PayloadBody::TsI(TrafficSelectors { selectors })),
        vec(selector(), 0..4)
            .prop_map(|selectors| PayloadBody::TsR(TrafficSelectors { selectors })),
        (any::<u8>(), vec((0u16..0x8000, bytes(16)), 0..4)).prop_map(|(t, attrs)| {
            PayloadBody::Cp(Config {
                cfg_type: CfgType(t),
                attributes: attrs
                    .into_iter()
                    .map(|(a, value)| CfgAttribute {
                        attribute_type: CfgAttributeType(a),
                        value,
                    })
                    .collect(),
            })
        }),
        bytes(32).prop_map(|data| PayloadBody::Eap(Eap { data })),
        // Unknown types only with the critical bit clear (set, they are a decode error).
        (prop_oneof![1u8..33, 49u8..53, 54u8..=255], bytes(16)).prop_map(|(t, data)| {
            PayloadBody::Unknown(UnknownPayload {
                payload_type: PayloadType(t),
                data,
            })
        }),
    ]
}

fn plain_payload() -> impl Strategy<Value = Payload> {
    (any::<bool>(), plain_body()).prop_map(|(critical, body)| {
        // RFC 7296 §2.5 keeps unknown payloads only when not critical.
        let critical = critical && !matches!(body, PayloadBody::Unknown(_));
        Payload { critical, body }
    })
}

fn encrypted_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u8>(), bytes(64)).prop_map(|(first, body)| {
            Payload::new(Encrypted {
                first_inner: PayloadType(first),
                body,
            })
        }),
        (any::<u8>(), 1u16..10, 0u16..10, bytes(64)).prop_map(|(first, total, n, body)| {
            Payload::new(EncryptedFragment {
                first_inner: PayloadType(first),
                fragment_number: n % total + 1,
                total_fragments: total,
                body,
            })
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0u8..16,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        vec(plain_payload(), 0..6),
        proptest::option::of(encrypted_payload()),
    )
        .prop_map(
            |(spi_i, spi_r, minor, exchange, flags, mid, mut payloads, sk)| {
                let mut header =
                    Header::new(spi_i, spi_r, ExchangeType(exchange), Flags(flags), mid);
                header.minor_version = minor;
                payloads.extend(sk);
                Message { header, payloads }
            },
        )
}

/// The message as decoding reports it: the header's Next Payload and Length filled in.
fn as_received(mut message: Message, encoded_len: usize) -> Message {
    message.header.next_payload = message
        .payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type);
    message.header.length = u32::try_from(encoded_len).unwrap();
    message
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encoded_messages_decode_to_the_same_value(message in message()) {
        let bytes = message.encode().unwrap();
        let decoded = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &as_received(message, bytes.len()));
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn encoded_plaintexts_decode_to_the_same_payloads(payloads in vec(plain_payload(), 0..8)) {
        let (first, bytes) = encode_payloads(&payloads).unwrap();
        prop_assert_eq!(decode_payloads(first, &bytes).unwrap(), payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(600), first in any::<u8>()) {
        let _ = Message::decode(&data);
        let _ = locate_encrypted_payload(&data);
        let _ = decode_payloads(PayloadType(first), &data);
    }

    #[test]
    fn corrupted_real_messages_never_panic(which in 0..REAL_MESSAGES.len(), at in any::<usize>(), value in any::<u8>()) {
        let mut data = REAL_MESSAGES[which].to_vec();
        let at = at % data.len();
        data[at] = value;
        if let Ok(message) = Message::decode(&data) {
            // Whatever still decodes must re-encode to bytes that decode the same.
            let bytes = message.encode().unwrap();
            prop_assert_eq!(Message::decode(&bytes).unwrap().payloads, message.payloads);
        }
        let _ = locate_encrypted_payload(&data);
    }
}

#[test]
fn every_truncation_of_a_real_message_is_an_error() {
    for bytes in REAL_MESSAGES {
        for len in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..len]).is_err(),
                "truncated to {len} bytes"
            );
            // With the Length field patched to match, the payload chain itself is truncated.
            let mut patched = bytes[..len].to_vec();
            if len >= 28 {
                patched[24..28].copy_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
                let result = Message::decode(&patched);
                if len >= 28 + 4 {
                    assert!(result.is_err(), "patched truncation to {len} bytes decoded");
                }
                let _ = locate_encrypted_payload(&patched);
            }
        }
    }
}
