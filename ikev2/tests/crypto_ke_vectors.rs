//! Key exchange methods against RFC 5903 §8 (ECP-256/384), RFC 7748 §5.2 and §6.1 (X25519)
//! and selected Wycheproof cases; peer-value validation; seeded MODP agreement.

#[path = "vectors/kv.rs"]
mod kv;

use ikev2::crypto::{
    CryptoProvider, KeError, KeMethod, KeyExchange, RingProvider, SeededRandom,
    UnsupportedAlgorithm,
};
use ikev2::registry::KeGroup;

#[test]
fn ecp_groups_match_rfc_5903_section_8_in_both_directions() {
    for section in kv::read("ecp.txt") {
        let method = match section.name.as_str() {
            "ECP-256" => KeMethod::Ecp256,
            "ECP-384" => KeMethod::Ecp384,
            other => panic!("unexpected section {other}"),
        };
        let initiator = KeyExchange::from_private_key(method, &section.hex("i")).unwrap();
        let responder = KeyExchange::from_private_key(method, &section.hex("r")).unwrap();

        let gi = [section.hex("gix"), section.hex("giy")].concat();
        let gr = [section.hex("grx"), section.hex("gry")].concat();
        assert_eq!(initiator.public_value(), &gi[..], "[{}] g^i", section.name);
        assert_eq!(responder.public_value(), &gr[..], "[{}] g^r", section.name);

        let girx = section.hex("girx");
        assert_eq!(initiator.agree(&gr).unwrap().as_bytes(), &girx[..]);
        assert_eq!(responder.agree(&gi).unwrap().as_bytes(), &girx[..]);
        assert_eq!(girx.len(), method.shared_len());
    }
}

#[test]
fn x25519_matches_rfc_7748_scalar_multiplication_and_diffie_hellman() {
    let sections = kv::read("x25519.txt");
    for s in sections
        .iter()
        .filter(|s| s.name.starts_with("RFC 7748 5.2"))
    {
        let k = KeyExchange::from_private_key(KeMethod::Curve25519, &s.hex("scalar")).unwrap();
        assert_eq!(
            k.agree(&s.hex("u")).unwrap().as_bytes(),
            &s.hex("output")[..]
        );
    }

    let dh = sections.iter().find(|s| s.name == "RFC 7748 6.1").unwrap();
    let alice = KeyExchange::from_private_key(KeMethod::Curve25519, &dh.hex("alice_private"));
    let bob = KeyExchange::from_private_key(KeMethod::Curve25519, &dh.hex("bob_private"));
    let (alice, bob) = (alice.unwrap(), bob.unwrap());
    assert_eq!(alice.public_value(), &dh.hex("alice_public")[..]);
    assert_eq!(bob.public_value(), &dh.hex("bob_public")[..]);
    let shared = dh.hex("shared");
    assert_eq!(
        alice.agree(bob.public_value()).unwrap().as_bytes(),
        &shared[..]
    );
    assert_eq!(
        bob.agree(alice.public_value()).unwrap().as_bytes(),
        &shared[..]
    );
}

#[test]
fn wycheproof_x25519_cases_agree_or_report_an_all_zero_secret() {
    let cases = kv::read("wycheproof_x25519.txt");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let k = KeyExchange::from_private_key(KeMethod::Curve25519, &case.hex("private")).unwrap();
        let result = k.agree(&case.hex("public"));
        match case.get("result") {
            "valid" | "acceptable" => assert_eq!(
                result.unwrap().as_bytes(),
                &case.hex("shared")[..],
                "[{}]",
                case.name
            ),
            "zero_shared" => assert_eq!(
                result.unwrap_err(),
                KeError::AllZeroSharedSecret,
                "[{}]",
                case.name
            ),
            other => panic!("unexpected result {other}"),
        }
    }
}

#[test]
fn wycheproof_ecdh_cases_agree_or_report_a_point_not_on_the_curve() {
    let cases = kv::read("wycheproof_ecdh.txt");
    assert_eq!(cases.len(), 12);
    for case in cases {
        let group: u16 = case.get("group").parse().unwrap();
        let method = KeMethod::from_group(KeGroup(group)).unwrap();
        let k = KeyExchange::from_private_key(method, &case.hex("private")).unwrap();
        let sec1 = case.hex("public");
        assert_eq!(sec1[0], 0x04, "[{}] uncompressed", case.name);
        let result = k.agree(&sec1[1..]);
        match case.get("result") {
            "valid" => assert_eq!(
                result.unwrap().as_bytes(),
                &case.hex("shared")[..],
                "[{}]",
                case.name
            ),
            "invalid" => assert_eq!(
                result.unwrap_err(),
                KeError::PointNotOnCurve { method },
                "[{}]",
                case.name
            ),
            other => panic!("unexpected result {other}"),
        }
    }
}

#[test]
fn two_seeded_parties_agree_for_every_method() {
    for method in KeMethod::ALL {
        let mut rng_i = SeededRandom::from_u64(100);
        let mut rng_r = SeededRandom::from_u64(200);
        let i = RingProvider.key_exchange(method, &mut rng_i).unwrap();
        let r = RingProvider.key_exchange(method, &mut rng_r).unwrap();
        assert_eq!(i.public_value().len(), method.public_len(), "{method:?}");
        assert_eq!(i.method(), method);

        let gir_i = i.agree(r.public_value()).unwrap();
        let gir_r = r.agree(i.public_value()).unwrap();
        assert_eq!(gir_i, gir_r, "{method:?}");
        assert_eq!(gir_i.as_bytes().len(), method.shared_len(), "{method:?}");
        assert_ne!(i.public_value(), r.public_value());
    }
}

#[test]
fn the_same_seed_gives_the_same_public_value() {
    for method in KeMethod::ALL {
        let a = KeyExchange::generate(method, &mut SeededRandom::from_u64(5)).unwrap();
        let b = KeyExchange::generate(method, &mut SeededRandom::from_u64(5)).unwrap();
        let c = KeyExchange::generate(method, &mut SeededRandom::from_u64(6)).unwrap();
        assert_eq!(a.public_value(), b.public_value(), "{method:?}");
        assert_ne!(a.public_value(), c.public_value(), "{method:?}");
    }
}

#[test]
fn a_peer_value_of_the_wrong_length_is_rejected_for_every_method() {
    for method in KeMethod::ALL {
        let k = KeyExchange::generate(method, &mut SeededRandom::from_u64(1)).unwrap();
        for len in [0, method.public_len() - 1, method.public_len() + 1] {
            assert_eq!(
                k.agree(&vec![1u8; len]).unwrap_err(),
                KeError::PeerValueWrongLength {
                    method,
                    expected: method.public_len(),
                    actual: len
                }
            );
        }
    }
}

/// The RFC 3526 prime, big-endian, written out here independently of the library: the
/// p - 1 and p cases below only give the expected errors if the library's constant is exact.
fn modp_prime(method: KeMethod) -> Vec<u8> {
    let hex = match method {
        KeMethod::Modp2048 => concat!(
            "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
            "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
            "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
            "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
            "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
            "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
            "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
            "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
        ),
        KeMethod::Modp3072 => concat!(
            "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
            "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
            "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
            "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
            "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
            "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
            "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
            "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
            "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
            "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
            "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
            "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
        ),
        other => panic!("{other:?} is not a MODP group"),
    };
    hex::decode(hex).unwrap()
}

/// Big-endian `p - 1` (RFC 3526 primes end in 0xFF, so no borrow).
fn minus_one(p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    let last = v.len() - 1;
    v[last] -= 1;
    v
}

/// Big-endian `p + 1`, carrying through the trailing 0xFF bytes.
fn plus_one(p: &[u8]) -> Vec<u8> {
    let mut v = p.to_vec();
    for byte in v.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    v
}

#[test]
fn modp_rejects_zero_one_p_minus_one_and_values_not_below_p() {
    for method in [KeMethod::Modp2048, KeMethod::Modp3072] {
        let k = KeyExchange::generate(method, &mut SeededRandom::from_u64(9)).unwrap();
        let len = method.public_len();
        let p = modp_prime(method);
        assert_eq!(p.len(), len);

        let mut one = vec![0u8; len];
        one[len - 1] = 1;
        let cases = [
            (vec![0u8; len], KeError::PeerValueZero { method }),
            (one, KeError::PeerValueOne { method }),
            (minus_one(&p), KeError::PeerValuePMinusOne { method }),
            (p.clone(), KeError::PeerValueNotBelowPrime { method }),
            (plus_one(&p), KeError::PeerValueNotBelowPrime { method }),
            (vec![0xff; len], KeError::PeerValueNotBelowPrime { method }),
        ];
        for (value, expected) in cases {
            assert_eq!(k.agree(&value).unwrap_err(), expected);
        }

        // The generator itself (2) is a valid public value.
        let mut two = vec![0u8; len];
        two[len - 1] = 2;
        assert!(k.agree(&two).is_ok());
    }
}

#[test]
fn modp_with_known_exponents_computes_textbook_values() {
    // With x = 1 the public value is the generator 2, and agreeing with the peer's y gives y.
    let k = KeyExchange::from_private_key(KeMethod::Modp2048, &[1]).unwrap();
    let mut two = vec![0u8; 256];
    two[255] = 2;
    assert_eq!(k.public_value(), &two[..]);
    let mut y = vec![0u8; 256];
    y[200] = 0x42;
    assert_eq!(k.agree(&y).unwrap().as_bytes(), &y[..]);

    // x = 10: 2^10 = 1024.
    let k = KeyExchange::from_private_key(KeMethod::Modp3072, &[10]).unwrap();
    let mut expected = vec![0u8; 384];
    expected[382] = 0x04;
    assert_eq!(k.public_value(), &expected[..]);
}

#[test]
fn private_keys_of_the_wrong_size_or_range_are_rejected() {
    assert_eq!(
        KeyExchange::from_private_key(KeMethod::Curve25519, &[1; 31]).unwrap_err(),
        KeError::PrivateKeyWrongLength {
            method: KeMethod::Curve25519,
            expected: 32,
            actual: 31
        }
    );
    assert_eq!(
        KeyExchange::from_private_key(KeMethod::Ecp256, &[0; 32]).unwrap_err(),
        KeError::PrivateKeyOutOfRange {
            method: KeMethod::Ecp256
        }
    );
    assert_eq!(
        KeyExchange::from_private_key(KeMethod::Ecp384, &[0xff; 48]).unwrap_err(),
        KeError::PrivateKeyOutOfRange {
            method: KeMethod::Ecp384
        }
    );
    assert_eq!(
        KeyExchange::from_private_key(KeMethod::Modp2048, &[0; 4]).unwrap_err(),
        KeError::PrivateKeyOutOfRange {
            method: KeMethod::Modp2048
        }
    );
    assert_eq!(
        KeyExchange::from_private_key(KeMethod::Modp2048, &[1; 257]).unwrap_err(),
        KeError::PrivateKeyWrongLength {
            method: KeMethod::Modp2048,
            expected: 256,
            actual: 257
        }
    );
}

#[test]
fn registry_groups_map_to_methods_and_unknown_ones_are_unsupported() {
    for method in KeMethod::ALL {
        assert_eq!(KeMethod::from_group(method.group()), Ok(method));
    }
    assert_eq!(
        KeMethod::from_group(KeGroup::MODP_1024),
        Err(UnsupportedAlgorithm::KeGroup(KeGroup::MODP_1024))
    );
    assert_eq!(KeMethod::from_group(KeGroup(31)), Ok(KeMethod::Curve25519));
}

#[test]
fn key_exchanges_print_no_private_key() {
    let k = KeyExchange::from_private_key(KeMethod::Curve25519, &[0x77; 32]).unwrap();
    let printed = format!("{k:?}");
    assert!(printed.contains("<redacted>"));
    assert!(!printed.contains("77, 77"));
    assert!(!printed.contains("7777"));
    let shared = k.agree(&[9; 32]).unwrap();
    assert_eq!(format!("{shared:?}"), "SharedSecret(<redacted 32 bytes>)");
}
