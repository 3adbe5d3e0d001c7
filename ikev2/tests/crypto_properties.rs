//! Properties over arbitrary input: opening an SK body or agreeing with a peer value never
//! panics whatever the bytes, and sealing then opening gives the plaintext back.

use ikev2::crypto::aead::IV_LEN;
use ikev2::crypto::{sk, AeadCipher, KeMethod, KeyExchange, RingProvider, SeededRandom};
use proptest::prelude::*;

fn cipher() -> impl Strategy<Value = AeadCipher> {
    prop_oneof![
        Just(AeadCipher::AesGcm16_128),
        Just(AeadCipher::AesGcm16_256),
        Just(AeadCipher::ChaCha20Poly1305),
    ]
}

proptest! {
    #[test]
    fn sealing_then_opening_returns_the_inner_payloads(
        cipher in cipher(),
        key_seed in any::<[u8; 36]>(),
        iv in any::<[u8; IV_LEN]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        inner in proptest::collection::vec(any::<u8>(), 0..600),
        pad in any::<u8>(),
    ) {
        let sk_e = &key_seed[..cipher.keymat_len()];
        let body = sk::seal_padded(&RingProvider, cipher, sk_e, &iv, &aad, &inner, pad).unwrap();
        prop_assert_eq!(body.len(), sk::sealed_body_len(inner.len(), pad));
        prop_assert_eq!(sk::open(&RingProvider, cipher, sk_e, &aad, &body).unwrap(), inner);
    }

    #[test]
    fn opening_arbitrary_bytes_fails_without_panicking(
        cipher in cipher(),
        sk_e in proptest::collection::vec(any::<u8>(), 0..40),
        aad in proptest::collection::vec(any::<u8>(), 0..40),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        prop_assert!(sk::open(&RingProvider, cipher, &sk_e, &aad, &body).is_err());
    }

    #[test]
    fn arbitrary_curve_peer_values_never_panic(
        peer in proptest::collection::vec(any::<u8>(), 0..100),
        which in 0usize..3,
    ) {
        let method = [KeMethod::Curve25519, KeMethod::Ecp256, KeMethod::Ecp384][which];
        let ours = KeyExchange::generate(method, &mut SeededRandom::from_u64(1)).unwrap();
        let _ = ours.agree(&peer);
        // Values of the right length are either accepted or rejected with a reason.
        let mut sized = peer.clone();
        sized.resize(method.public_len(), 0x5a);
        let _ = ours.agree(&sized);
    }
}

proptest! {
    // MODP exponentiation is slow in debug builds: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn arbitrary_modp_peer_values_never_panic(
        peer in proptest::collection::vec(any::<u8>(), 256..=256),
    ) {
        let ours = KeyExchange::generate(KeMethod::Modp2048, &mut SeededRandom::from_u64(2))
            .unwrap();
        let _ = ours.agree(&peer);
        let _ = ours.agree(&peer[1..]);
    }
}
