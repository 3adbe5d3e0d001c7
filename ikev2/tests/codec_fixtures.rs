//! Decoding the messages of a real strongSwan 5.9.8 exchange (see
//! `tests/fixtures/messages/README.md`) and encoding them again byte for byte.

use ikev2::codec::{locate_encrypted_payload, Message, NotifyData, PayloadBody, TransformId};
use ikev2::registry::{
    EncrId, ExchangeType, HashAlgorithm, KeGroup, NotifyType, PayloadType, PrfId, ProtocolId,
};

const FIXTURES: &[(&str, &[u8])] = &[
    (
        "01-ike_sa_init-request",
        include_bytes!("fixtures/messages/01-ike_sa_init-request.bin"),
    ),
    (
        "02-ike_sa_init-response",
        include_bytes!("fixtures/messages/02-ike_sa_init-response.bin"),
    ),
    (
        "03-ike_auth-request",
        include_bytes!("fixtures/messages/03-ike_auth-request.bin"),
    ),
    (
        "04-ike_auth-response",
        include_bytes!("fixtures/messages/04-ike_auth-response.bin"),
    ),
    (
        "05-create_child_sa-request",
        include_bytes!("fixtures/messages/05-create_child_sa-request.bin"),
    ),
    (
        "06-create_child_sa-response",
        include_bytes!("fixtures/messages/06-create_child_sa-response.bin"),
    ),
];

/// The payload sequence as (type, notify type for Notify payloads).
fn sequence(message: &Message) -> Vec<(PayloadType, Option<NotifyType>)> {
    message
        .payloads
        .iter()
        .map(|p| match &p.body {
            PayloadBody::Notify(n) => (p.payload_type(), Some(n.notify_type)),
            _ => (p.payload_type(), None),
        })
        .collect()
}

#[test]
fn every_strongswan_message_reencodes_byte_for_byte() {
    for (name, bytes) in FIXTURES {
        let message = Message::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&message.encode().unwrap(), bytes, "{name}");
    }
}

#[test]
fn ike_sa_init_request_decodes_to_the_payloads_strongswan_sent() {
    let message = Message::decode(FIXTURES[0].1).unwrap();
    assert_eq!(message.header.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(message.header.flags.is_initiator() && !message.header.flags.is_response());
    assert_eq!(message.header.spi_r, [0; 8]);
    assert_eq!(message.header.message_id, 0);
    let n = |t| (PayloadType::NOTIFY, Some(t));
    assert_eq!(
        sequence(&message),
        vec![
            (PayloadType::SA, None),
            (PayloadType::KE, None),
            (PayloadType::NONCE, None),
            n(NotifyType::NAT_DETECTION_SOURCE_IP),
            n(NotifyType::NAT_DETECTION_DESTINATION_IP),
            // IKE fragmentation was configured off, so no IKEV2_FRAGMENTATION_SUPPORTED.
            n(NotifyType::SIGNATURE_HASH_ALGORITHMS),
            n(NotifyType::REDIRECT_SUPPORTED),
        ]
    );

    // aes256gcm16-prfsha256-ecp256, aes256gcm16-prfsha256-x25519
    let PayloadBody::Sa(sa) = &message.payloads[0].body else {
        panic!("not an SA")
    };
    assert_eq!(sa.proposals.len(), 2);
    for (proposal, group) in sa
        .proposals
        .iter()
        .zip([KeGroup::ECP_256, KeGroup::CURVE25519])
    {
        assert_eq!(proposal.protocol, ProtocolId::IKE);
        assert!(proposal.spi.is_empty());
        let ids: Vec<_> = proposal.transforms.iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            vec![
                TransformId::Encr(EncrId::ENCR_AES_GCM_16),
                TransformId::Prf(PrfId::PRF_HMAC_SHA2_256),
                TransformId::Ke(group),
            ]
        );
        assert_eq!(proposal.transforms[0].key_length(), Some(256));
    }

    let PayloadBody::Ke(ke) = &message.payloads[1].body else {
        panic!("not a KE")
    };
    assert_eq!(ke.group, KeGroup::ECP_256);
    assert_eq!(ke.data.len(), 64);

    let PayloadBody::Notify(nat) = &message.payloads[3].body else {
        panic!("not a Notify")
    };
    assert!(matches!(nat.typed_data(), Ok(NotifyData::NatDetection(_))));
    let PayloadBody::Notify(hashes) = &message.payloads[5].body else {
        panic!("not a Notify")
    };
    assert_eq!(
        hashes.typed_data(),
        Ok(NotifyData::SignatureHashAlgorithms(vec![
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
            HashAlgorithm::IDENTITY,
        ]))
    );
}

#[test]
fn messages_after_ike_sa_init_are_a_single_sk_payload() {
    for (name, bytes) in &FIXTURES[2..] {
        let message = Message::decode(bytes).unwrap();
        assert_eq!(message.payloads.len(), 1, "{name}");
        let PayloadBody::Sk(sk) = &message.payloads[0].body else {
            panic!("{name}: not SK")
        };
        let location = locate_encrypted_payload(bytes).unwrap().unwrap();
        assert_eq!(location.payload_type, PayloadType::SK);
        assert_eq!(location.first_inner, sk.first_inner);
        assert_eq!(
            location.aad,
            0..32,
            "{name}: IKE header and SK generic header"
        );
        assert_eq!(&bytes[location.body.clone()], sk.body.as_slice(), "{name}");
    }
}

#[test]
fn ike_sa_init_has_no_encrypted_payload_to_locate() {
    assert_eq!(locate_encrypted_payload(FIXTURES[0].1), Ok(None));
}

#[test]
fn sk_payloads_name_the_first_inner_payload_of_each_exchange() {
    let first_inner: Vec<_> = FIXTURES[2..]
        .iter()
        .map(
            |(_, b)| match &Message::decode(b).unwrap().payloads[0].body {
                PayloadBody::Sk(sk) => sk.first_inner,
                _ => PayloadType::NONE,
            },
        )
        .collect();
    // IKE_AUTH starts with IDi / IDr, CREATE_CHILD_SA with N(USE_TRANSPORT_MODE).
    assert_eq!(
        first_inner,
        vec![
            PayloadType::IDI,
            PayloadType::IDR,
            PayloadType::NOTIFY,
            PayloadType::NOTIFY
        ]
    );
}
