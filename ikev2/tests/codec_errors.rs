//! Every way a message can be malformed gives a precise error naming what and where.
//!
//! Most cases corrupt one field of strongSwan's IKE_SA_INIT request, whose layout is: header
//! 0..28, SA 28..104 (proposal 1 at 32, its first transform at 40; proposal 2 at 68), KE
//! 104..176, Nonce 176..212, then Notify payloads from 212.

use ikev2::codec::{
    decode_payloads, encode_payloads, DecodeError, EncodeError, Encrypted, Flags, Header, Message,
    Nonce, Notify, Payload, PayloadBody, TrafficSelector, TrafficSelectors, UnknownPayload,
    MAX_MESSAGE_SIZE, MAX_PAYLOADS,
};
use ikev2::registry::{ExchangeType, NotifyType, PayloadType, TsType};

const IKE_SA_INIT: &[u8] = include_bytes!("fixtures/messages/01-ike_sa_init-request.bin");
const IKE_AUTH: &[u8] = include_bytes!("fixtures/messages/03-ike_auth-request.bin");

fn corrupt(at: usize, with: &[u8]) -> Vec<u8> {
    let mut bytes = IKE_SA_INIT.to_vec();
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}

fn with_length(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(bytes.len()).unwrap();
    bytes[24..28].copy_from_slice(&len.to_be_bytes());
    bytes
}

#[test]
fn decoding_less_than_a_header_reports_the_length() {
    assert_eq!(
        Message::decode(&IKE_SA_INIT[..27]),
        Err(DecodeError::MessageTooShort { length: 27 })
    );
}

#[test]
fn decoding_more_than_the_size_limit_is_refused_before_parsing() {
    let big = vec![0u8; MAX_MESSAGE_SIZE + 1];
    assert_eq!(
        Message::decode(&big),
        Err(DecodeError::MessageTooLarge {
            length: MAX_MESSAGE_SIZE + 1,
            max: MAX_MESSAGE_SIZE
        })
    );
}

#[test]
fn decoding_with_a_wrong_header_length_reports_both_lengths() {
    assert_eq!(
        Message::decode(&corrupt(24, &[0, 0, 1, 0])),
        Err(DecodeError::LengthMismatch {
            declared: 256,
            received: 292
        })
    );
}

#[test]
fn decoding_a_payload_longer_than_the_message_reports_its_offset() {
    let err = Message::decode(&corrupt(30, &[0xff, 0xff])).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PayloadOverrun {
            payload: PayloadType::SA,
            offset: 28,
            length: 0xffff,
            available: 264
        }
    );
    assert_eq!(
        err.to_string(),
        "SA payload at offset 28: Payload Length 65535 exceeds the 264 bytes left"
    );
}

#[test]
fn decoding_a_payload_length_below_the_generic_header_is_an_error() {
    assert_eq!(
        Message::decode(&corrupt(106, &[0, 3])),
        Err(DecodeError::PayloadLengthTooShort {
            payload: PayloadType::KE,
            offset: 104,
            length: 3
        })
    );
}

#[test]
fn decoding_truncated_ke_fixed_fields_names_the_field_and_offset() {
    assert_eq!(
        Message::decode(&corrupt(106, &[0, 5])),
        Err(DecodeError::Truncated {
            payload: PayloadType::KE,
            field: "Diffie-Hellman Group Num",
            offset: 108,
            needed: 2,
            available: 1,
        })
    );
}

#[test]
fn decoding_truncated_sa_payload_reports_the_proposal_offset() {
    assert_eq!(
        Message::decode(&corrupt(34, &[0, 0xff])),
        Err(DecodeError::SubstructureLength {
            payload: PayloadType::SA,
            what: "proposal",
            offset: 32,
            length: 255
        })
    );
}

#[test]
fn decoding_a_wrong_last_substruc_is_an_error() {
    assert_eq!(
        Message::decode(&corrupt(32, &[0])),
        Err(DecodeError::InvalidLastSubstructure {
            payload: PayloadType::SA,
            what: "proposal",
            offset: 32,
            value: 0
        })
    );
    assert_eq!(
        Message::decode(&corrupt(40, &[0])),
        Err(DecodeError::InvalidLastSubstructure {
            payload: PayloadType::SA,
            what: "transform",
            offset: 40,
            value: 0
        })
    );
}

#[test]
fn decoding_a_wrong_transform_count_reports_declared_and_found() {
    assert_eq!(
        Message::decode(&corrupt(39, &[4])),
        Err(DecodeError::CountMismatch {
            payload: PayloadType::SA,
            what: "transforms",
            offset: 32,
            declared: 4,
            found: 3,
        })
    );
}

#[test]
fn decoding_unknown_critical_payload_reports_its_type_for_the_notify() {
    // The KE payload's Next Payload names type 200 for the payload at 176, critical bit set.
    let bytes = corrupt(104, &[200]);
    let mut critical = bytes.clone();
    critical[177] = 0x80;
    assert_eq!(
        Message::decode(&critical),
        Err(DecodeError::UnsupportedCriticalPayload {
            payload: PayloadType(200),
            offset: 176
        })
    );

    // Not critical: skipped as Unknown, and the message still re-encodes byte for byte.
    let message = Message::decode(&bytes).unwrap();
    assert!(matches!(
        &message.payloads[2].body,
        PayloadBody::Unknown(UnknownPayload { payload_type: PayloadType(200), data }) if data.len() == 32
    ));
    assert_eq!(message.encode().unwrap(), bytes);
}

#[test]
fn decoding_bytes_after_the_last_payload_is_an_error() {
    let mut bytes = IKE_SA_INIT.to_vec();
    bytes.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        Message::decode(&with_length(bytes)),
        Err(DecodeError::TrailingBytes {
            payload: PayloadType::NONE,
            offset: 292,
            count: 3
        })
    );
}

#[test]
fn decoding_a_payload_after_sk_is_an_error() {
    let mut bytes = IKE_AUTH.to_vec();
    let sk_len = u16::try_from(bytes.len() - 28).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 4]);
    let mut bytes = with_length(bytes);
    bytes[30..32].copy_from_slice(&sk_len.to_be_bytes());
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::EncryptedPayloadNotLast {
            payload: PayloadType::SK,
            offset: 28,
            count: 4
        })
    );
}

#[test]
fn decoding_sk_inside_a_plaintext_is_an_error() {
    assert_eq!(
        decode_payloads(PayloadType::SK, &[0, 0, 0, 4]),
        Err(DecodeError::NestedEncryptedPayload {
            payload: PayloadType::SK,
            offset: 0
        })
    );
}

#[test]
fn decoding_more_payloads_than_the_limit_is_an_error() {
    let payloads = vec![Payload::new(Nonce { data: Vec::new() }); MAX_PAYLOADS + 1];
    let (first, bytes) = encode_payloads(&payloads).unwrap();
    assert_eq!(
        decode_payloads(first, &bytes),
        Err(DecodeError::TooManyPayloads {
            max: MAX_PAYLOADS,
            offset: MAX_PAYLOADS * 4
        })
    );
}

#[test]
fn decoding_an_ipv4_selector_of_the_wrong_length_is_an_error() {
    let ts = TrafficSelectors {
        selectors: vec![TrafficSelector::Unknown {
            ts_type: TsType::TS_IPV4_ADDR_RANGE,
            ip_protocol: 17,
            data: vec![0; 14],
        }],
    };
    let (first, bytes) = encode_payloads(&[Payload::new(PayloadBody::TsI(ts))]).unwrap();
    assert_eq!(
        decode_payloads(first, &bytes),
        Err(DecodeError::InvalidSelectorLength {
            payload: PayloadType::TSI,
            ts_type: TsType::TS_IPV4_ADDR_RANGE,
            offset: 8,
            length: 18,
            expected: 16,
        })
    );
}

#[test]
fn decoding_a_selector_count_above_what_is_present_is_an_error() {
    let (first, mut bytes) =
        encode_payloads(&[Payload::new(PayloadBody::TsR(TrafficSelectors::default()))]).unwrap();
    bytes[4] = 2;
    assert_eq!(
        decode_payloads(first, &bytes),
        Err(DecodeError::CountMismatch {
            payload: PayloadType::TSR,
            what: "traffic selectors",
            offset: 4,
            declared: 2,
            found: 0,
        })
    );
}

#[test]
fn decoding_fragment_number_zero_is_an_error() {
    let header = Header::new([1; 8], [2; 8], ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let mut bytes = Message {
        header,
        payloads: vec![],
    }
    .encode()
    .unwrap();
    bytes[16] = PayloadType::SKF.0;
    bytes.extend_from_slice(&[PayloadType::IDI.0, 0, 0, 10, 0, 0, 0, 3, 0xaa, 0xbb]);
    let bytes = with_length(bytes);
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::InvalidFragmentNumber {
            offset: 28,
            number: 0,
            total: 3
        })
    );
    assert_eq!(
        ikev2::codec::locate_encrypted_payload(&bytes),
        Err(DecodeError::InvalidFragmentNumber {
            offset: 28,
            number: 0,
            total: 3
        })
    );
}

#[test]
fn typed_notify_data_of_the_wrong_length_names_the_expected_layout() {
    let nat = Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0; 19]);
    assert_eq!(
        nat.typed_data(),
        Err(DecodeError::InvalidNotifyData {
            notify: NotifyType::NAT_DETECTION_SOURCE_IP,
            length: 19,
            expected: "20 bytes (SHA-1 hash)",
        })
    );
    assert!(
        Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, vec![0; 3])
            .typed_data()
            .is_err()
    );
    assert!(Notify::new(NotifyType::INVALID_KE_PAYLOAD, vec![0; 3])
        .typed_data()
        .is_err());
    assert!(Notify::new(NotifyType::COOKIE, vec![])
        .typed_data()
        .is_err());
    assert!(Notify::new(NotifyType::COOKIE, vec![0; 65])
        .typed_data()
        .is_err());
}

#[test]
fn encoding_a_payload_too_long_for_its_length_field_is_an_error() {
    let payloads = [Payload::new(Nonce {
        data: vec![0; 70_000],
    })];
    assert_eq!(
        encode_payloads(&payloads),
        Err(EncodeError::TooLong {
            what: "NONCE",
            length: 70_004,
            max: 65_535
        })
    );
}

#[test]
fn encoding_sk_before_another_payload_is_an_error() {
    let header = Header::new([1; 8], [2; 8], ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let message = Message {
        header,
        payloads: vec![
            Payload::new(Encrypted {
                first_inner: PayloadType::IDI,
                body: vec![0; 16],
            }),
            Payload::new(Nonce { data: vec![0; 16] }),
        ],
    };
    assert_eq!(
        message.encode(),
        Err(EncodeError::EncryptedPayloadPosition {
            payload: PayloadType::SK,
            index: 0
        })
    );
}

#[test]
fn encoding_a_delete_spi_of_the_wrong_size_is_an_error() {
    let mut delete = ikev2::codec::Delete::esp(&[1, 2]);
    delete.spis[1].push(0);
    assert_eq!(
        encode_payloads(&[Payload::new(delete)]),
        Err(EncodeError::DeleteSpiSize {
            spi_size: 4,
            length: 5
        })
    );
}

#[test]
fn decoding_more_proposals_transforms_or_attributes_than_the_limits_is_an_error() {
    use ikev2::codec::{
        AttributeValue, Proposal, Sa, Transform, TransformAttribute, TransformId, MAX_PROPOSALS,
        MAX_TRANSFORMS, MAX_TRANSFORM_ATTRIBUTES,
    };
    use ikev2::registry::{EncrId, ProtocolId, TransformAttributeType};

    let transform = Transform::with_key_length(TransformId::Encr(EncrId::ENCR_AES_GCM_16), 256);
    let proposal = |transforms: Vec<Transform>| Proposal {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: vec![0; 4],
        transforms,
    };
    let decode = |sa: Sa| {
        let (first, bytes) = encode_payloads(&[Payload::new(sa)]).unwrap();
        decode_payloads(first, &bytes)
    };

    let too_many = |what: &'static str, offset: usize, max: usize| {
        Err(DecodeError::TooMany {
            payload: PayloadType::SA,
            what,
            offset,
            max,
        })
    };
    assert_eq!(
        decode(Sa {
            proposals: vec![proposal(vec![transform.clone()]); MAX_PROPOSALS + 1]
        }),
        too_many("proposals", 4, MAX_PROPOSALS)
    );
    assert_eq!(
        decode(Sa {
            proposals: vec![proposal(vec![transform.clone(); MAX_TRANSFORMS + 1])]
        }),
        too_many("transforms", 4, MAX_TRANSFORMS)
    );
    let mut many_attributes = transform.clone();
    many_attributes.attributes = vec![
        TransformAttribute {
            attribute_type: TransformAttributeType(99),
            value: AttributeValue::Tlv(vec![1])
        };
        MAX_TRANSFORM_ATTRIBUTES + 1
    ];
    // Proposal at 4 (8 bytes + 4 SPI), transform at 16, its attributes from 24: 5 bytes each.
    assert_eq!(
        decode(Sa {
            proposals: vec![proposal(vec![many_attributes])]
        }),
        too_many(
            "transform attributes",
            24 + 5 * MAX_TRANSFORM_ATTRIBUTES,
            MAX_TRANSFORM_ATTRIBUTES
        )
    );
}

#[test]
fn decoding_more_delete_spis_than_the_limit_is_an_error() {
    use ikev2::codec::{Delete, MAX_DELETE_SPIS};
    let spis: Vec<u32> = (0..=MAX_DELETE_SPIS as u32).collect();
    let (first, bytes) = encode_payloads(&[Payload::new(Delete::esp(&spis))]).unwrap();
    assert_eq!(
        decode_payloads(first, &bytes),
        Err(DecodeError::TooMany {
            payload: PayloadType::DELETE,
            what: "SPIs",
            offset: 4,
            max: MAX_DELETE_SPIS
        })
    );
}

#[test]
fn tlv_and_tv_attributes_keep_their_form() {
    use ikev2::codec::{AttributeValue, Proposal, Sa, Transform, TransformAttribute, TransformId};
    use ikev2::registry::{ProtocolId, TransformAttributeType, TransformType};

    let mut transform = Transform::new(TransformId::new(TransformType(9), 3));
    transform.attributes = vec![
        TransformAttribute {
            attribute_type: TransformAttributeType::KEY_LENGTH,
            value: AttributeValue::Tlv(vec![1, 0]),
        },
        TransformAttribute {
            attribute_type: TransformAttributeType(7),
            value: AttributeValue::Tv(5),
        },
    ];
    let sa = Sa {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![transform],
        }],
    };
    let (first, bytes) = encode_payloads(&[Payload::new(sa.clone())]).unwrap();
    let decoded = decode_payloads(first, &bytes).unwrap();
    assert_eq!(decoded[0].body, PayloadBody::Sa(sa));
    // A Key Length in TLV form is kept as sent but not read as a key length.
    let PayloadBody::Sa(sa) = &decoded[0].body else {
        unreachable!()
    };
    assert_eq!(sa.proposals[0].transforms[0].key_length(), None);
}
