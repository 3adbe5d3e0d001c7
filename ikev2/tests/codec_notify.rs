//! The typed Notify constructors write the layouts `Notify::typed_data` reads back.

use ikev2::codec::{Notify, NotifyData};
use ikev2::registry::{HashAlgorithm, KeGroup, NotifyType, PayloadType, ProtocolId};

#[test]
fn typed_notify_constructors_read_back_through_typed_data() {
    let hash = [7u8; 20];
    assert_eq!(
        Notify::nat_detection_source_ip(hash).typed_data(),
        Ok(NotifyData::NatDetection(&hash))
    );
    assert_eq!(
        Notify::nat_detection_destination_ip(hash).notify_type,
        NotifyType::NAT_DETECTION_DESTINATION_IP
    );
    let hashes = [
        HashAlgorithm::SHA2_256,
        HashAlgorithm::SHA2_512,
        HashAlgorithm(77),
    ];
    assert_eq!(
        Notify::signature_hash_algorithms(&hashes).typed_data(),
        Ok(NotifyData::SignatureHashAlgorithms(hashes.to_vec()))
    );
    assert_eq!(
        Notify::invalid_ke_payload(KeGroup::CURVE25519).typed_data(),
        Ok(NotifyData::InvalidKePayload(KeGroup::CURVE25519))
    );
    assert_eq!(
        Notify::unsupported_critical_payload(PayloadType(200)).typed_data(),
        Ok(NotifyData::UnsupportedCriticalPayload(PayloadType(200)))
    );
    assert_eq!(
        Notify::cookie(vec![1, 2, 3]).typed_data(),
        Ok(NotifyData::Cookie(&[1, 2, 3]))
    );
    assert_eq!(
        Notify::new(NotifyType::SET_WINDOW_SIZE, vec![0, 0, 0, 4]).typed_data(),
        Ok(NotifyData::SetWindowSize(4))
    );

    let rekey = Notify::rekey_sa(ProtocolId::ESP, vec![0xc0, 0, 0, 1]);
    assert_eq!((rekey.protocol, rekey.spi.len()), (ProtocolId::ESP, 4));
    assert_eq!(rekey.typed_data(), Ok(NotifyData::Other(&[])));
    assert_eq!(
        Notify::status(NotifyType::USE_TRANSPORT_MODE).typed_data(),
        Ok(NotifyData::Other(&[]))
    );
}
