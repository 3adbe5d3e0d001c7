//! HMAC PRFs against RFC 4231 (HMAC-SHA2-256/384/512) and RFC 2202 (HMAC-SHA1).

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::{prf_plus, CryptoProvider, PrfAlgorithm, PrfPlusError, RingProvider};
use ikev2::registry::PrfId;

fn algorithm(field: &str) -> Option<PrfAlgorithm> {
    match field {
        "hmac-sha1" => Some(PrfAlgorithm::HmacSha1),
        "hmac-sha256" => Some(PrfAlgorithm::HmacSha256),
        "hmac-sha384" => Some(PrfAlgorithm::HmacSha384),
        "hmac-sha512" => Some(PrfAlgorithm::HmacSha512),
        _ => None,
    }
}

#[test]
fn hmac_prfs_match_rfc_4231_and_rfc_2202() {
    let mut checked = 0;
    for section in kv::read("hmac.txt") {
        let key = section.hex("key");
        let data = section.hex("data");
        for (field, expected) in section.fields() {
            let Some(prf) = algorithm(field) else {
                continue;
            };
            let out = RingProvider.prf(prf, &key, &[&data]);
            assert_eq!(
                hex::encode(out.as_bytes()),
                *expected,
                "[{}] {field}",
                section.name
            );
            assert_eq!(out.as_bytes().len(), prf.output_len());
            checked += 1;
        }
    }
    assert_eq!(checked, 9, "every digest in hmac.txt was checked");
}

#[test]
fn data_given_in_pieces_is_the_same_as_concatenated() {
    let whole = RingProvider.prf(PrfAlgorithm::HmacSha384, b"key", &[b"abcdef"]);
    let pieces = RingProvider.prf(PrfAlgorithm::HmacSha384, b"key", &[b"ab", b"", b"cdef"]);
    assert_eq!(whole.as_bytes(), pieces.as_bytes());
}

#[test]
fn prf_plus_past_255_blocks_is_an_error_not_a_panic() {
    for prf in [
        PrfAlgorithm::HmacSha1,
        PrfAlgorithm::HmacSha256,
        PrfAlgorithm::HmacSha384,
        PrfAlgorithm::HmacSha512,
    ] {
        let max = 255 * prf.output_len();
        assert_eq!(
            prf_plus(&RingProvider, prf, b"k", &[b"s"], max).map(|k| k.len()),
            Ok(max)
        );
        assert_eq!(
            prf_plus(&RingProvider, prf, b"k", &[b"s"], usize::MAX),
            Err(PrfPlusError::TooLong {
                prf,
                requested: usize::MAX,
                max
            })
        );
    }
}

#[test]
fn prf_outputs_are_redacted_in_debug() {
    let out = RingProvider.prf(PrfAlgorithm::HmacSha256, b"k", &[b"d"]);
    let printed = format!("{out:?}");
    assert_eq!(printed, "PrfOutput(<redacted 32 bytes>)");
    assert!(!printed.contains(&hex::encode(&out.as_bytes()[..4])));
}

#[test]
fn registry_ids_round_trip_through_the_prf_type() {
    for id in [
        PrfId::PRF_HMAC_SHA1,
        PrfId::PRF_HMAC_SHA2_256,
        PrfId::PRF_HMAC_SHA2_384,
        PrfId::PRF_HMAC_SHA2_512,
    ] {
        assert_eq!(PrfAlgorithm::from_id(id).map(PrfAlgorithm::id), Ok(id));
    }
    assert!(PrfAlgorithm::from_id(PrfId::PRF_HMAC_MD5).is_err());
}
