//! Decoding never panics on damaged input: seeded random mutations of the strongSwan capture
//! (byte flips, truncations, duplicated spans) go through the whole `decode` pipeline with the
//! keys, and mutated inner plaintexts go through the payload views. Deterministic: a fixed
//! seed drives a small xorshift generator. `IPSECCTL_MUTATIONS=N` runs N capture mutations
//! instead of the default, for longer runs (`cargo test --release -p ipsecctl --test no_panic`).

use ikev2::codec::{decode_payloads, Message};
use ikev2::crypto::{AeadCipher, RingProvider};
use ikev2::protection::{open, sender_sk_e, Opened};
use ipsecctl::capture::parse_capture;
use ipsecctl::decode::decode_capture;
use ipsecctl::key_table::KeyTable;
use ipsecctl::render::render;
use ipsecctl::view::{payloads, MessageContext};

const FIXTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ikev2/tests/fixtures/strongswan-5.9.8"
);

/// Mutated captures decoded per run, unless `IPSECCTL_MUTATIONS` says otherwise.
const CAPTURE_MUTATIONS: usize = 600;

fn capture_mutations() -> usize {
    std::env::var("IPSECCTL_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CAPTURE_MUTATIONS)
}
/// Mutations of each decrypted inner payload chain.
const PLAINTEXT_MUTATIONS: usize = 400;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(4) {
        0 | 1 => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        2 => bytes.truncate(rng.below(bytes.len())),
        _ => {
            let start = rng.below(bytes.len());
            let len = rng.below(64).min(bytes.len() - start);
            let span = bytes[start..start + len].to_vec();
            let at = rng.below(bytes.len());
            bytes.splice(at..at, span);
        }
    }
    bytes
}

fn table() -> KeyTable {
    let text = std::fs::read_to_string(format!(
        "{FIXTURE_DIR}/transport-two-children.ikev2_decryption_table"
    ))
    .unwrap();
    KeyTable::parse(&text).unwrap()
}

#[test]
fn mutated_captures_decode_without_panicking() {
    let original = std::fs::read(format!("{FIXTURE_DIR}/transport-two-children.pcap")).unwrap();
    let keys = table();
    let ca = std::fs::read(format!("{FIXTURE_DIR}/ca-cert.pem")).unwrap();
    let trust = ikev2::auth::TrustStore::from_pem(&ca).unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    let runs = capture_mutations();
    for _ in 0..runs {
        let bytes = mutate(&mut rng, &original);
        let Ok(capture) = parse_capture(&bytes) else {
            continue;
        };
        let report = decode_capture(
            "mutated.pcapng",
            &capture,
            Some(("keys", &keys)),
            Some(("ca", &trust)),
        );
        let _ = render(&report);
        serde_json::to_string(&report).unwrap();
        decoded += 1;
    }
    assert!(
        decoded > CAPTURE_MUTATIONS / 2,
        "most mutations still have a readable header"
    );
}

#[test]
fn mutated_inner_payloads_render_without_panicking() {
    let keys = table();
    let entry = &keys.entries()[0];
    let names = [
        "03-ike_auth-request.bin",
        "04-ike_auth-response.bin",
        "05-create_child_sa-request.bin",
        "06-create_child_sa-response.bin",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut viewed = 0;
    for name in names {
        let bytes = std::fs::read(format!("{FIXTURE_DIR}/../messages/{name}")).unwrap();
        let header = Message::decode(&bytes).unwrap().header;
        let sk_e = sender_sk_e(&header, &entry.sk_ei, &entry.sk_er);
        let Opened::Message(m) =
            open(&RingProvider, &bytes, AeadCipher::AesGcm16_256, sk_e).unwrap()
        else {
            panic!("no fragments in this exchange");
        };
        let ctx = MessageContext {
            spi_i: header.spi_i,
            spi_r: header.spi_r,
            src: "10.99.0.1:4500".parse().unwrap(),
            dst: "10.99.0.2:4500".parse().unwrap(),
            from_original_initiator: header.flags.is_initiator(),
            trust: None,
            captured_at: None,
        };
        for _ in 0..PLAINTEXT_MUTATIONS {
            let plaintext = mutate(&mut rng, &m.plaintext);
            if let Ok(list) = decode_payloads(m.first_inner, &plaintext) {
                serde_json::to_string(&payloads(&list, &ctx)).unwrap();
                viewed += 1;
            }
        }
    }
    assert!(viewed > 0);
}
