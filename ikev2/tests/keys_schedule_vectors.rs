//! The key schedule against NIST CAVP / ACVP style IKEv2 KDF vectors (SP 800-135 §4.1):
//! SKEYSEED, DKM, child DKM with and without a fresh key exchange, and the rekeyed SKEYSEED.

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::{
    AeadCipher, PrfAlgorithm, PrfPlusError, RingProvider, SecretBytes, SharedSecret,
};
use ikev2::keys::{
    child_keymat, ike_keymat, rekey_skeyseed, skeyseed, ChildSaKeyLengths, ChildSaKeys,
    IkeSaKeyLengths, IkeSaKeys, KeyScheduleError,
};

struct Vector {
    prf: PrfAlgorithm,
    dkm_len: usize,
    ni: Vec<u8>,
    nr: Vec<u8>,
    g_ir: SharedSecret,
    g_ir_new: SharedSecret,
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    section: kv::Section,
}

fn vectors() -> Vec<Vector> {
    kv::read("ikev2_kdf.txt")
        .into_iter()
        .map(|section| {
            let prf = match section.name.as_str() {
                "SHA-1" => PrfAlgorithm::HmacSha1,
                "SHA-256" => PrfAlgorithm::HmacSha256,
                other => panic!("unexpected section {other}"),
            };
            let bits: usize = section.get("DKM length").parse().unwrap();
            Vector {
                prf,
                dkm_len: bits / 8,
                ni: section.hex("Ni"),
                nr: section.hex("Nr"),
                g_ir: SharedSecret::from_slice(&section.hex("g^ir")),
                g_ir_new: SharedSecret::from_slice(&section.hex("g^ir (new)")),
                spi_i: section.hex("SPIi").try_into().unwrap(),
                spi_r: section.hex("SPIr").try_into().unwrap(),
                section,
            }
        })
        .collect()
}

#[test]
fn skeyseed_dkm_child_dkm_and_rekey_match_the_kdf_vectors() {
    let all = vectors();
    assert_eq!(all.len(), 2);
    for v in all {
        let name = &v.section.name;

        let seed = skeyseed(&RingProvider, v.prf, &v.ni, &v.nr, &v.g_ir);
        assert_eq!(
            seed.as_bytes(),
            v.section.hex("SKEYSEED"),
            "[{name}] SKEYSEED"
        );

        let dkm = ike_keymat(
            &RingProvider,
            v.prf,
            &seed,
            &v.ni,
            &v.nr,
            &v.spi_i,
            &v.spi_r,
            v.dkm_len,
        )
        .unwrap();
        assert_eq!(dkm.as_bytes(), v.section.hex("DKM"), "[{name}] DKM");

        // SK_d is the first prf-output-length bytes of DKM.
        let sk_d = SecretBytes::from_slice(&dkm.as_bytes()[..v.prf.key_len()]);
        let child = child_keymat(&RingProvider, v.prf, &sk_d, None, &v.ni, &v.nr, v.dkm_len);
        assert_eq!(
            child.unwrap().as_bytes(),
            v.section.hex("DKM(Child SA)"),
            "[{name}] DKM(Child SA)"
        );
        let child_dh = child_keymat(
            &RingProvider,
            v.prf,
            &sk_d,
            Some(&v.g_ir_new),
            &v.ni,
            &v.nr,
            v.dkm_len,
        );
        assert_eq!(
            child_dh.unwrap().as_bytes(),
            v.section.hex("DKM(Child SA D-H)"),
            "[{name}] DKM(Child SA D-H)"
        );

        let rekeyed = rekey_skeyseed(&RingProvider, v.prf, &sk_d, &v.g_ir_new, &v.ni, &v.nr);
        assert_eq!(
            rekeyed.as_bytes(),
            v.section.hex("SKEYSEED(Rekey)"),
            "[{name}] SKEYSEED(Rekey)"
        );
    }
}

#[test]
fn ike_sa_keys_for_an_aead_suite_are_cut_from_dkm_in_rfc_order() {
    let v = vectors()
        .into_iter()
        .find(|v| v.section.name == "SHA-256")
        .unwrap();
    let cipher = AeadCipher::AesGcm16_256;
    let lengths = IkeSaKeyLengths::aead(v.prf, cipher);
    assert_eq!(
        lengths,
        IkeSaKeyLengths {
            sk_d: 32,
            sk_a: 0,
            sk_e: 36,
            sk_p: 32
        }
    );
    assert_eq!(lengths.total(), Ok(32 + 2 * 36 + 2 * 32));

    let seed = skeyseed(&RingProvider, v.prf, &v.ni, &v.nr, &v.g_ir);
    let keys = IkeSaKeys::derive(
        &RingProvider,
        v.prf,
        lengths,
        &seed,
        &v.ni,
        &v.nr,
        &v.spi_i,
        &v.spi_r,
    )
    .unwrap();

    let dkm = v.section.hex("DKM");
    assert_eq!(keys.sk_d.as_bytes(), &dkm[0..32]);
    assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
    assert_eq!(keys.sk_ei.as_bytes(), &dkm[32..68]);
    assert_eq!(keys.sk_er.as_bytes(), &dkm[68..104]);
    assert_eq!(keys.sk_pi.as_bytes(), &dkm[104..136]);
    assert_eq!(keys.sk_pr.as_bytes(), &dkm[136..168]);
}

#[test]
fn non_aead_lengths_put_integrity_keys_between_sk_d_and_sk_e() {
    let v = vectors()
        .into_iter()
        .find(|v| v.section.name == "SHA-1")
        .unwrap();
    let lengths = IkeSaKeyLengths {
        sk_d: 20,
        sk_a: 20,
        sk_e: 16,
        sk_p: 20,
    };
    let seed = skeyseed(&RingProvider, v.prf, &v.ni, &v.nr, &v.g_ir);
    let keys = IkeSaKeys::derive(
        &RingProvider,
        v.prf,
        lengths,
        &seed,
        &v.ni,
        &v.nr,
        &v.spi_i,
        &v.spi_r,
    )
    .unwrap();
    let dkm = v.section.hex("DKM");
    assert_eq!(keys.sk_ai.as_bytes(), &dkm[20..40]);
    assert_eq!(keys.sk_ar.as_bytes(), &dkm[40..60]);
    assert_eq!(keys.sk_ei.as_bytes(), &dkm[60..76]);
    assert_eq!(keys.sk_er.as_bytes(), &dkm[76..92]);
    assert_eq!(keys.sk_pr.as_bytes(), &dkm[112..132]);
}

#[test]
fn child_sa_keys_take_initiator_to_responder_first_with_salt_in_the_key() {
    let v = vectors()
        .into_iter()
        .find(|v| v.section.name == "SHA-256")
        .unwrap();
    let dkm = v.section.hex("DKM");
    let sk_d = SecretBytes::from_slice(&dkm[..32]);
    let lengths = ChildSaKeyLengths::aead(AeadCipher::AesGcm16_256);
    assert_eq!(lengths.total(), Ok(72));

    for (g, expected_field) in [
        (None, "DKM(Child SA)"),
        (Some(&v.g_ir_new), "DKM(Child SA D-H)"),
    ] {
        let keys =
            ChildSaKeys::derive(&RingProvider, v.prf, &sk_d, g, &v.ni, &v.nr, lengths).unwrap();
        let keymat = v.section.hex(expected_field);
        assert_eq!(keys.encr_i.as_bytes(), &keymat[0..36], "{expected_field}");
        assert!(keys.integ_i.is_empty());
        assert_eq!(keys.encr_r.as_bytes(), &keymat[36..72], "{expected_field}");
        assert!(keys.integ_r.is_empty());
    }
}

#[test]
fn asking_for_more_child_keymat_than_prf_plus_allows_fails_cleanly() {
    let sk_d = SecretBytes::from_slice(&[7; 20]);
    let lengths = ChildSaKeyLengths {
        encr: 2000,
        integ: 600,
    };
    let err = ChildSaKeys::derive(
        &RingProvider,
        PrfAlgorithm::HmacSha1,
        &sk_d,
        None,
        b"ni",
        b"nr",
        lengths,
    )
    .unwrap_err();
    assert_eq!(
        err,
        KeyScheduleError::PrfPlus(PrfPlusError::TooLong {
            prf: PrfAlgorithm::HmacSha1,
            requested: 5200,
            max: 255 * 20
        })
    );

    let overflowing = ChildSaKeyLengths {
        encr: usize::MAX,
        integ: 1,
    };
    assert_eq!(overflowing.total(), Err(KeyScheduleError::LengthOverflow));
}

#[test]
fn derived_keys_never_appear_in_debug_output() {
    let v = vectors()
        .into_iter()
        .find(|v| v.section.name == "SHA-256")
        .unwrap();
    let seed = skeyseed(&RingProvider, v.prf, &v.ni, &v.nr, &v.g_ir);
    let keys = IkeSaKeys::derive(
        &RingProvider,
        v.prf,
        IkeSaKeyLengths::aead(v.prf, AeadCipher::ChaCha20Poly1305),
        &seed,
        &v.ni,
        &v.nr,
        &v.spi_i,
        &v.spi_r,
    )
    .unwrap();
    let printed = format!("{keys:?} {seed:?} {:?}", v.g_ir);
    for secret in [
        keys.sk_d.as_bytes(),
        keys.sk_ei.as_bytes(),
        keys.sk_pr.as_bytes(),
        seed.as_bytes(),
        v.g_ir.as_bytes(),
    ] {
        assert!(!printed.contains(&hex::encode(&secret[..6])));
        assert!(!printed.contains(&format!("{:?}", &secret[..3])));
    }
    assert!(printed.contains("redacted"));
}
