//! Decode and encode throughput of real IKE messages (strongSwan 5.9.8's IKE_SA_INIT and
//! IKE_AUTH requests) and of the decrypted IKE_AUTH plaintext.
//!
//! Criterion reports bytes/s; every iteration handles one message, so messages/s is the
//! inverse of the time per iteration.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ikev2::codec::{decode_payloads, encode_payloads, Message};
use ikev2::registry::PayloadType;

const IKE_SA_INIT: &[u8] =
    include_bytes!("../../ikev2/tests/fixtures/messages/01-ike_sa_init-request.bin");
const IKE_AUTH: &[u8] =
    include_bytes!("../../ikev2/tests/fixtures/messages/03-ike_auth-request.bin");
/// First inner payload type, then the decrypted SK plaintext of the IKE_AUTH request.
const IKE_AUTH_PLAINTEXT: &[u8] =
    include_bytes!("../../fuzz/corpus/decode_message/03-plaintext-ike_auth-request.bin");

fn messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, bytes) in [("ike_sa_init", IKE_SA_INIT), ("ike_auth", IKE_AUTH)] {
        let message = Message::decode(bytes).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Message::decode(black_box(bytes)).unwrap())
        });
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&message).encode().unwrap())
        });
    }

    let (first, plaintext) = IKE_AUTH_PLAINTEXT.split_first().unwrap();
    let first = PayloadType(*first);
    let payloads = decode_payloads(first, plaintext).unwrap();
    group.throughput(Throughput::Bytes(plaintext.len() as u64));
    group.bench_function("decode/ike_auth_plaintext", |b| {
        b.iter(|| decode_payloads(black_box(first), black_box(plaintext)).unwrap())
    });
    group.bench_function("encode/ike_auth_plaintext", |b| {
        b.iter(|| encode_payloads(black_box(&payloads)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, messages);
criterion_main!(benches);
