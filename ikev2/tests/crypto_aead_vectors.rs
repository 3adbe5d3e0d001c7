//! The provider's raw AEAD against selected Wycheproof cases (AES-GCM, ChaCha20-Poly1305).

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::aead::{AeadCipher, AeadError, ICV_LEN, NONCE_LEN};
use ikev2::crypto::{CryptoProvider, RingProvider};
use ikev2::registry::EncrId;

fn cipher(name: &str, key_len: usize) -> AeadCipher {
    match (name, key_len) {
        ("aes-128-gcm", 16) => AeadCipher::AesGcm16_128,
        ("aes-256-gcm", 32) => AeadCipher::AesGcm16_256,
        ("chacha20-poly1305", 32) => AeadCipher::ChaCha20Poly1305,
        other => panic!("unexpected cipher {other:?}"),
    }
}

#[test]
fn wycheproof_aead_cases_seal_and_open_as_expected() {
    let cases = kv::read("wycheproof_aead.txt");
    assert_eq!(cases.len(), 7);
    for case in cases {
        let key = case.hex("key");
        let cipher = cipher(case.get("cipher"), key.len());
        let nonce: [u8; NONCE_LEN] = case.hex("iv").try_into().unwrap();
        let aad = case.hex("aad");
        let msg = case.hex("msg");
        let mut sealed = case.hex("ct");
        sealed.extend_from_slice(&case.hex("tag"));

        match case.get("result") {
            "valid" => {
                let mut buf = msg.clone();
                RingProvider
                    .aead_seal(cipher, &key, &nonce, &aad, &mut buf)
                    .unwrap();
                assert_eq!(
                    hex::encode(&buf),
                    hex::encode(&sealed),
                    "[{}] seal",
                    case.name
                );

                let len = RingProvider
                    .aead_open(cipher, &key, &nonce, &aad, &mut sealed)
                    .unwrap();
                assert_eq!(&sealed[..len], &msg[..], "[{}] open", case.name);
            }
            "invalid" => {
                assert_eq!(
                    RingProvider.aead_open(cipher, &key, &nonce, &aad, &mut sealed),
                    Err(AeadError::IntegrityCheckFailed { cipher }),
                    "[{}]",
                    case.name
                );
            }
            other => panic!("unexpected result {other}"),
        }
    }
}

#[test]
fn aes_256_gcm_matches_the_gcm_specification_test_case_14() {
    // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 14: zero key, zero
    // IV, one zero block.
    let key = [0u8; 32];
    let nonce = [0u8; NONCE_LEN];
    let mut buf = vec![0u8; 16];
    RingProvider
        .aead_seal(AeadCipher::AesGcm16_256, &key, &nonce, &[], &mut buf)
        .unwrap();
    assert_eq!(
        hex::encode(&buf),
        "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
    );
}

#[test]
fn a_key_of_the_wrong_size_is_reported_with_both_lengths() {
    let mut buf = vec![0u8; ICV_LEN];
    assert_eq!(
        RingProvider.aead_open(
            AeadCipher::AesGcm16_128,
            &[0; 32],
            &[0; NONCE_LEN],
            &[],
            &mut buf
        ),
        Err(AeadError::WrongKeyLength {
            cipher: AeadCipher::AesGcm16_128,
            expected: 16,
            actual: 32
        })
    );
}

#[test]
fn a_ciphertext_shorter_than_the_tag_is_reported() {
    let mut buf = vec![0u8; ICV_LEN - 1];
    assert_eq!(
        RingProvider.aead_open(
            AeadCipher::ChaCha20Poly1305,
            &[0; 32],
            &[0; NONCE_LEN],
            &[],
            &mut buf
        ),
        Err(AeadError::CiphertextTooShort {
            cipher: AeadCipher::ChaCha20Poly1305,
            len: ICV_LEN - 1
        })
    );
}

#[test]
fn transforms_map_to_ciphers_by_id_and_key_length_attribute() {
    use AeadCipher::*;
    assert_eq!(
        AeadCipher::from_transform(EncrId::ENCR_AES_GCM_16, Some(256)),
        Ok(AesGcm16_256)
    );
    assert_eq!(
        AeadCipher::from_transform(EncrId::ENCR_AES_GCM_16, Some(128)),
        Ok(AesGcm16_128)
    );
    assert_eq!(
        AeadCipher::from_transform(EncrId::ENCR_CHACHA20_POLY1305, None),
        Ok(ChaCha20Poly1305)
    );
    // RFC 5282 §8: AES-GCM needs the Key Length attribute; RFC 7634 §3: ChaCha20 must not
    // have one.
    assert!(AeadCipher::from_transform(EncrId::ENCR_AES_GCM_16, None).is_err());
    assert!(AeadCipher::from_transform(EncrId::ENCR_CHACHA20_POLY1305, Some(256)).is_err());
    assert!(AeadCipher::from_transform(EncrId::ENCR_AES_CBC, Some(256)).is_err());
    for c in [AesGcm16_128, AesGcm16_256, ChaCha20Poly1305] {
        assert_eq!(
            AeadCipher::from_transform(c.id(), c.key_length_attribute()),
            Ok(c)
        );
        assert_eq!(c.keymat_len(), c.key_len() + 4);
    }
}
