//! Sealing and opening SK payload bodies: RFC 7634 Appendix B byte for byte, round trips for
//! every cipher, and each way a received body can be wrong.

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::aead::{AeadCipher, IV_LEN, NONCE_LEN};
use ikev2::crypto::sk::{self, SkError, MIN_BODY_LEN};
use ikev2::crypto::{CryptoProvider, Random, RingProvider, SeededRandom};

/// RFC 5282 §5.1: the AAD is the IKE header (28 bytes) and the SK generic header (4 bytes).
const AAD_LEN: usize = 32;

#[test]
fn sealing_reproduces_the_rfc_7634_appendix_b_message_exactly() {
    let v = &kv::read("rfc7634_appendix_b.txt")[0];
    let sk_e = v.hex("sk_e");
    let iv: [u8; IV_LEN] = v.hex("iv").try_into().unwrap();
    let inner = v.hex("inner");
    let message = v.hex("message");
    let (aad, body) = message.split_at(AAD_LEN);

    assert_eq!(sk::sealed_body_len(inner.len(), 0), body.len());
    let sealed = sk::seal(
        &RingProvider,
        AeadCipher::ChaCha20Poly1305,
        &sk_e,
        &iv,
        aad,
        &inner,
    )
    .unwrap();
    assert_eq!(hex::encode(&sealed), hex::encode(body));

    let opened = sk::open(
        &RingProvider,
        AeadCipher::ChaCha20Poly1305,
        &sk_e,
        aad,
        body,
    )
    .unwrap();
    assert_eq!(opened, inner);
}

fn keymat(cipher: AeadCipher, rng: &mut SeededRandom) -> Vec<u8> {
    let mut k = vec![0u8; cipher.keymat_len()];
    rng.fill(&mut k);
    k
}

#[test]
fn every_cipher_opens_what_it_sealed_with_and_without_padding() {
    let mut rng = SeededRandom::from_u64(1);
    for cipher in [
        AeadCipher::AesGcm16_128,
        AeadCipher::AesGcm16_256,
        AeadCipher::ChaCha20Poly1305,
    ] {
        let sk_e = keymat(cipher, &mut rng);
        for (inner_len, pad) in [(0usize, 0u8), (1, 0), (40, 3), (1500, 255)] {
            let mut inner = vec![0u8; inner_len];
            rng.fill(&mut inner);
            let iv = [9u8; IV_LEN];
            let aad = [0x5a; AAD_LEN];
            let body =
                sk::seal_padded(&RingProvider, cipher, &sk_e, &iv, &aad, &inner, pad).unwrap();
            assert_eq!(body.len(), sk::sealed_body_len(inner_len, pad));
            assert_eq!(&body[..IV_LEN], &iv, "the IV is sent in the clear first");
            let opened = sk::open(&RingProvider, cipher, &sk_e, &aad, &body).unwrap();
            assert_eq!(opened, inner, "{cipher:?} {inner_len} {pad}");
        }
    }
}

#[test]
fn a_body_shorter_than_iv_pad_length_and_icv_is_rejected() {
    let cipher = AeadCipher::AesGcm16_256;
    let sk_e = vec![0u8; cipher.keymat_len()];
    for len in [0, 8, MIN_BODY_LEN - 1] {
        assert_eq!(
            sk::open(&RingProvider, cipher, &sk_e, &[], &vec![0u8; len]),
            Err(SkError::BodyTooShort {
                len,
                min: MIN_BODY_LEN
            })
        );
    }
}

#[test]
fn a_changed_aad_iv_ciphertext_or_icv_fails_the_integrity_check() {
    let cipher = AeadCipher::AesGcm16_128;
    let mut rng = SeededRandom::from_u64(2);
    let sk_e = keymat(cipher, &mut rng);
    let aad = [1u8; AAD_LEN];
    let body = sk::seal(
        &RingProvider,
        cipher,
        &sk_e,
        &[3; IV_LEN],
        &aad,
        b"payloads",
    )
    .unwrap();

    let mut other_aad = aad;
    other_aad[27] ^= 1; // the IKE header's Length field
    assert_eq!(
        sk::open(&RingProvider, cipher, &sk_e, &other_aad, &body),
        Err(SkError::IntegrityCheckFailed { cipher })
    );
    for i in [0, IV_LEN, body.len() - 1] {
        let mut tampered = body.clone();
        tampered[i] ^= 0x80;
        assert_eq!(
            sk::open(&RingProvider, cipher, &sk_e, &aad, &tampered),
            Err(SkError::IntegrityCheckFailed { cipher }),
            "byte {i}"
        );
    }
    let mut wrong_key = sk_e.clone();
    wrong_key[0] ^= 1;
    assert_eq!(
        sk::open(&RingProvider, cipher, &wrong_key, &aad, &body),
        Err(SkError::IntegrityCheckFailed { cipher })
    );
}

#[test]
fn a_pad_length_larger_than_the_plaintext_is_bad_padding() {
    let cipher = AeadCipher::ChaCha20Poly1305;
    let mut rng = SeededRandom::from_u64(3);
    let sk_e = keymat(cipher, &mut rng);
    let iv = [4u8; IV_LEN];
    let aad = [2u8; AAD_LEN];

    // Plaintext of two octets whose Pad Length claims 5 octets of padding.
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&sk_e[32..]);
    nonce[4..].copy_from_slice(&iv);
    let mut plaintext = vec![0x00, 0x05];
    RingProvider
        .aead_seal(cipher, &sk_e[..32], &nonce, &aad, &mut plaintext)
        .unwrap();
    let mut body = iv.to_vec();
    body.extend_from_slice(&plaintext);

    assert_eq!(
        sk::open(&RingProvider, cipher, &sk_e, &aad, &body),
        Err(SkError::BadPadding {
            pad_length: 5,
            plaintext_len: 2
        })
    );
}

#[test]
fn sk_e_must_include_the_salt() {
    let cipher = AeadCipher::AesGcm16_256;
    assert_eq!(
        sk::seal(&RingProvider, cipher, &[0; 32], &[0; IV_LEN], &[], b"x"),
        Err(SkError::WrongKeyLength {
            cipher,
            expected: 36,
            actual: 32
        })
    );
}
