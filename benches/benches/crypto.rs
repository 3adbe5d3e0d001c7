//! Cost of the IKEv2 crypto: the IKE SA key schedule, sealing and opening an SK payload, and
//! each key exchange method (generate our key, then agree with the peer's value).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ikev2::crypto::aead::IV_LEN;
use ikev2::crypto::{
    sk, AeadCipher, KeMethod, KeyExchange, PrfAlgorithm, Random, RingProvider, SeededRandom,
    SharedSecret,
};
use ikev2::keys::{skeyseed, IkeSaKeyLengths, IkeSaKeys};

/// A typical full-size IKE message body: 1500 bytes of inner payloads.
const MESSAGE_LEN: usize = 1500;

fn key_schedule(c: &mut Criterion) {
    let prf = PrfAlgorithm::HmacSha256;
    let lengths = IkeSaKeyLengths::aead(prf, AeadCipher::AesGcm16_256);
    let mut rng = SeededRandom::from_u64(1);
    let (mut ni, mut nr, mut g_ir) = ([0u8; 32], [0u8; 32], [0u8; 32]);
    rng.fill(&mut ni);
    rng.fill(&mut nr);
    rng.fill(&mut g_ir);
    let g_ir = SharedSecret::from_slice(&g_ir);
    let (spi_i, spi_r) = ([1u8; 8], [2u8; 8]);

    c.bench_function("key_schedule/skeyseed_and_sk_aes256gcm_sha256", |b| {
        b.iter(|| {
            let seed = skeyseed(&RingProvider, prf, &ni, &nr, &g_ir);
            IkeSaKeys::derive(&RingProvider, prf, lengths, &seed, &ni, &nr, &spi_i, &spi_r)
                .map(black_box)
        })
    });
}

fn sk_payload(c: &mut Criterion) {
    let mut group = c.benchmark_group("sk_payload_1500");
    group.throughput(Throughput::Bytes(MESSAGE_LEN as u64));
    let mut rng = SeededRandom::from_u64(2);
    let aad = [0x11u8; 32];
    let iv = [7u8; IV_LEN];
    let mut inner = vec![0u8; MESSAGE_LEN];
    rng.fill(&mut inner);

    for cipher in [
        AeadCipher::AesGcm16_128,
        AeadCipher::AesGcm16_256,
        AeadCipher::ChaCha20Poly1305,
    ] {
        let mut sk_e = vec![0u8; cipher.keymat_len()];
        rng.fill(&mut sk_e);
        let name = format!("{cipher:?}");
        group.bench_with_input(BenchmarkId::new("seal", &name), &inner, |b, inner| {
            b.iter(|| sk::seal(&RingProvider, cipher, &sk_e, &iv, &aad, black_box(inner)))
        });
        let body = sk::seal(&RingProvider, cipher, &sk_e, &iv, &aad, &inner).unwrap_or_default();
        group.bench_with_input(BenchmarkId::new("open", &name), &body, |b, body| {
            b.iter(|| sk::open(&RingProvider, cipher, &sk_e, &aad, black_box(body)))
        });
    }
    group.finish();
}

fn key_exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_exchange");
    for method in KeMethod::ALL {
        let Ok(peer) = KeyExchange::generate(method, &mut SeededRandom::from_u64(3)) else {
            continue;
        };
        let mut rng = SeededRandom::from_u64(4);
        group.bench_function(
            BenchmarkId::new("generate_and_agree", format!("{method:?}")),
            |b| {
                b.iter(|| {
                    KeyExchange::generate(method, &mut rng)
                        .and_then(|ours| ours.agree(black_box(peer.public_value())))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, key_schedule, sk_payload, key_exchange);
criterion_main!(benches);
