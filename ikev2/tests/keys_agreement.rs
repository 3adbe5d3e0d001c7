//! Both ends of an exchange, each from its own seeded randomness, derive the same keys: the
//! IKE SA keys after IKE_SA_INIT, CHILD_SA keys with and without a fresh key exchange, and the
//! keys of a rekeyed IKE SA. What one side seals with its SK_e the other side opens.

use ikev2::crypto::aead::IV_LEN;
use ikev2::crypto::{
    sk, AeadCipher, CryptoProvider, KeMethod, PrfAlgorithm, Random, RingProvider, SeededRandom,
};
use ikev2::keys::{
    rekey_skeyseed, skeyseed, ChildSaKeyLengths, ChildSaKeys, IkeSaKeyLengths, IkeSaKeys,
};

struct Side {
    rng: SeededRandom,
    nonce: [u8; 32],
}

impl Side {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRandom::from_u64(seed);
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce);
        Side { rng, nonce }
    }
}

#[allow(clippy::too_many_arguments)]
fn ike_sa_keys(
    prf: PrfAlgorithm,
    cipher: AeadCipher,
    method: KeMethod,
    initiator: &mut Side,
    responder: &mut Side,
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
) -> (IkeSaKeys, IkeSaKeys) {
    let ke_i = RingProvider
        .key_exchange(method, &mut initiator.rng)
        .unwrap();
    let ke_r = RingProvider
        .key_exchange(method, &mut responder.rng)
        .unwrap();
    let (ni, nr) = (initiator.nonce, responder.nonce);
    let lengths = IkeSaKeyLengths::aead(prf, cipher);

    let g_ir = ke_i.agree(ke_r.public_value()).unwrap();
    let seed = skeyseed(&RingProvider, prf, &ni, &nr, &g_ir);
    let keys_i =
        IkeSaKeys::derive(&RingProvider, prf, lengths, &seed, &ni, &nr, spi_i, spi_r).unwrap();

    let g_ri = ke_r.agree(ke_i.public_value()).unwrap();
    let seed = skeyseed(&RingProvider, prf, &ni, &nr, &g_ri);
    let keys_r =
        IkeSaKeys::derive(&RingProvider, prf, lengths, &seed, &ni, &nr, spi_i, spi_r).unwrap();
    (keys_i, keys_r)
}

#[test]
fn both_ends_derive_the_same_ike_sa_keys_for_every_method_and_cipher() {
    for method in KeMethod::ALL {
        for (prf, cipher) in [
            (PrfAlgorithm::HmacSha256, AeadCipher::AesGcm16_256),
            (PrfAlgorithm::HmacSha384, AeadCipher::AesGcm16_128),
            (PrfAlgorithm::HmacSha512, AeadCipher::ChaCha20Poly1305),
        ] {
            let (mut i, mut r) = (Side::new(10), Side::new(20));
            let (keys_i, keys_r) =
                ike_sa_keys(prf, cipher, method, &mut i, &mut r, &[1; 8], &[2; 8]);
            assert_eq!(keys_i, keys_r, "{method:?} {prf:?} {cipher:?}");
            assert_eq!(keys_i.sk_ei.len(), cipher.keymat_len());
            assert_ne!(keys_i.sk_ei, keys_i.sk_er);

            // The initiator seals with SK_ei; the responder opens with its own SK_ei.
            let aad = [0u8; 32];
            let body = sk::seal(
                &RingProvider,
                cipher,
                keys_i.sk_ei.as_bytes(),
                &[0; IV_LEN],
                &aad,
                b"IDi AUTH SA TSi TSr",
            )
            .unwrap();
            let inner =
                sk::open(&RingProvider, cipher, keys_r.sk_ei.as_bytes(), &aad, &body).unwrap();
            assert_eq!(inner, b"IDi AUTH SA TSi TSr");
        }
    }
}

#[test]
fn child_sa_and_rekeyed_ike_sa_keys_agree_on_both_ends() {
    let prf = PrfAlgorithm::HmacSha256;
    let cipher = AeadCipher::AesGcm16_256;
    let method = KeMethod::Curve25519;
    let (mut i, mut r) = (Side::new(1), Side::new(2));
    let (keys_i, keys_r) = ike_sa_keys(prf, cipher, method, &mut i, &mut r, &[3; 8], &[4; 8]);

    // CREATE_CHILD_SA with fresh nonces, first without then with a KE.
    let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
    let lengths = ChildSaKeyLengths::aead(cipher);
    let plain_i =
        ChildSaKeys::derive(&RingProvider, prf, &keys_i.sk_d, None, &ni, &nr, lengths).unwrap();
    let plain_r =
        ChildSaKeys::derive(&RingProvider, prf, &keys_r.sk_d, None, &ni, &nr, lengths).unwrap();
    assert_eq!(plain_i, plain_r);
    assert_ne!(plain_i.encr_i, plain_i.encr_r);

    let ke_i = RingProvider.key_exchange(method, &mut i.rng).unwrap();
    let ke_r = RingProvider.key_exchange(method, &mut r.rng).unwrap();
    let g_i = ke_i.agree(ke_r.public_value()).unwrap();
    let g_r = ke_r.agree(ke_i.public_value()).unwrap();
    let pfs_i = ChildSaKeys::derive(
        &RingProvider,
        prf,
        &keys_i.sk_d,
        Some(&g_i),
        &ni,
        &nr,
        lengths,
    );
    let pfs_r = ChildSaKeys::derive(
        &RingProvider,
        prf,
        &keys_r.sk_d,
        Some(&g_r),
        &ni,
        &nr,
        lengths,
    );
    assert_eq!(pfs_i.as_ref().unwrap(), pfs_r.as_ref().unwrap());
    assert_ne!(
        pfs_i.unwrap(),
        plain_i,
        "a fresh key exchange changes KEYMAT"
    );

    // Rekeying the IKE SA: new SKEYSEED from the old SK_d, then keys with the new SPIs.
    let seed_i = rekey_skeyseed(&RingProvider, prf, &keys_i.sk_d, &g_i, &ni, &nr);
    let seed_r = rekey_skeyseed(&RingProvider, prf, &keys_r.sk_d, &g_r, &ni, &nr);
    assert_eq!(seed_i, seed_r);
    let lengths = IkeSaKeyLengths::aead(prf, cipher);
    let new_i = IkeSaKeys::derive(
        &RingProvider,
        prf,
        lengths,
        &seed_i,
        &ni,
        &nr,
        &[5; 8],
        &[6; 8],
    );
    let new_r = IkeSaKeys::derive(
        &RingProvider,
        prf,
        lengths,
        &seed_r,
        &ni,
        &nr,
        &[5; 8],
        &[6; 8],
    );
    assert_eq!(new_i.as_ref().unwrap(), new_r.as_ref().unwrap());
    assert_ne!(new_i.unwrap().sk_d, keys_i.sk_d);
}

#[test]
fn the_whole_derivation_is_reproducible_from_the_seeds() {
    let run = || {
        let (mut i, mut r) = (Side::new(77), Side::new(88));
        ike_sa_keys(
            PrfAlgorithm::HmacSha256,
            AeadCipher::AesGcm16_256,
            KeMethod::Ecp256,
            &mut i,
            &mut r,
            &[9; 8],
            &[8; 8],
        )
        .0
    };
    assert_eq!(run(), run());
}
