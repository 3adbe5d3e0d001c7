//! `ipsecctl decode` as an operator runs it: the built binary on the strongSwan capture (with
//! and without keys, text and JSON), on captures this test writes (classic pcap, raw IP and
//! Linux cooked v2, IPv6, IP fragments, RFC 7383 SKF fragments, ESP, keepalives, malformed
//! messages), on truncated files, and with bad arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ikev2::codec::{Flags, Header, Id, Message, Nonce, Notify, Payload, PayloadBody};
use ikev2::crypto::{AeadCipher, RingProvider};
use ikev2::protection::protect_fragments;
use ikev2::registry::{ExchangeType, IdType, NotifyType};
use serde_json::Value;

const FIXTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ikev2/tests/fixtures/strongswan-5.9.8"
);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(FIXTURE_DIR).join(name)
}

fn capture() -> PathBuf {
    fixture("transport-two-children.pcap")
}

fn keys() -> PathBuf {
    fixture("transport-two-children.ikev2_decryption_table")
}

fn ipsecctl(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .args(args)
        .output()
        .unwrap()
}

fn decode(file: &Path, keys: Option<&PathBuf>, json: bool) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["decode".as_ref(), file.as_os_str()];
    if let Some(k) = keys {
        args.push("--keys".as_ref());
        args.push(k.as_os_str());
    }
    if json {
        args.push("--json".as_ref());
    }
    ipsecctl(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A new file in this test's scratch directory (unique: tests run in parallel).
fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let unique = format!("ipsecctl-decode-{}-{n}-{name}", std::process::id());
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ike_records(report: &Value) -> Vec<&Value> {
    report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "ike_message")
        .collect()
}

fn types(payloads: &Value) -> Vec<String> {
    payloads
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p["notify_type"].as_str() {
            Some(n) => format!("N({n})"),
            None => p["type"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn without_keys_every_message_is_shown_with_its_sk_payload_sealed() {
    let out = decode(&capture(), None, false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "pcapng, 7 frames",
        "frame 1  +0.000000s  10.99.0.1:500 -> 10.99.0.2:500  292 bytes",
        "IKE_SA_INIT request  SPIi bb629a76df40020e  SPIr 0000000000000000  Message ID 0  flags I",
        "ENCR  ENCR_AES_GCM_16 key length 256",
        "KE    CURVE25519",
        "N(NAT_DETECTION_SOURCE_IP): matches sender 10.99.0.1:500 (no NAT on this side)",
        "N(SIGNATURE_HASH_ALGORITHMS): SHA2_256, SHA2_384, SHA2_512, IDENTITY",
        "frames 3+4 (IP-reassembled)",
        "10.99.0.1:4500 -> 10.99.0.2:4500  1519 bytes, non-ESP marker",
        "SK first inner payload IDI, 1487 bytes sealed",
        "CREATE_CHILD_SA response",
        "6 IKE messages (0 malformed)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("decrypted SK"), "{text}");
}

#[test]
fn with_keys_the_inner_payloads_of_every_sk_payload_are_shown() {
    let out = decode(&capture(), Some(&keys()), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "line 1: SPIi bb629a76df40020e SPIr eb309918dab0ed83  AES-GCM-256 with 16 octet ICV [RFC5282]",
        "decrypted SK with key table line 1 (IV f0489bb28d8382b3, 0 bytes padding",
        "IDI ID_FQDN chassis-a",
        "proven by the certificate of C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-a",
        "subject C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-a",
        "N(INITIAL_CONTACT)",
        "IDR ID_FQDN chassis-b",
        "AUTH DIGITAL_SIGNATURE(sha256WithRSAEncryption), 256-byte signature",
        "signature made with the key of C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch certifier, CN=chassis-b: well-formed PKCS#1 v1.5, SHA2_256 digest",
        "N(USE_TRANSPORT_MODE)",
        "proposal 1 ESP SPI 01000000",
        "10.99.0.1 udp port 6081",
        "10.99.0.2 udp any port",
        "4 encrypted payloads decrypted, 0 not",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn json_output_has_the_documented_structure() {
    let report = json(&decode(&capture(), Some(&keys()), true));
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["capture_format"], "pcapng");
    assert_eq!(report["summary"]["frames"], 7);
    assert_eq!(report["summary"]["ike_messages"], 6);
    assert_eq!(report["summary"]["decrypted"], 4);
    assert_eq!(report["key_table"]["entries"][0]["supported"], true);

    let messages = ike_records(&report);
    assert_eq!(messages.len(), 6);
    let exchanges: Vec<&str> = messages
        .iter()
        .map(|m| m["header"]["exchange"].as_str().unwrap())
        .collect();
    assert_eq!(
        exchanges,
        [
            "IKE_SA_INIT",
            "IKE_SA_INIT",
            "IKE_AUTH",
            "IKE_AUTH",
            "CREATE_CHILD_SA",
            "CREATE_CHILD_SA"
        ]
    );

    let init = messages[0];
    assert_eq!(init["src"], "10.99.0.1:500");
    assert_eq!(init["nat_t"], false);
    assert_eq!(init["header"]["flags"]["initiator"], true);
    assert_eq!(init["payloads"][0]["type"], "SA");
    assert_eq!(
        init["payloads"][0]["proposals"][0]["transforms"][0]["name"],
        "ENCR_AES_GCM_16"
    );
    assert_eq!(
        init["payloads"][0]["proposals"][0]["transforms"][0]["key_length"],
        256
    );
    assert!(
        init["decryption"].is_null(),
        "IKE_SA_INIT has nothing encrypted"
    );

    let auth = messages[2];
    assert_eq!(auth["frames"], serde_json::json!([3, 4]));
    assert_eq!(auth["nat_t"], true);
    assert_eq!(auth["payloads"][0]["type"], "SK");
    let d = &auth["decryption"];
    assert_eq!(d["status"], "decrypted");
    assert_eq!(d["key_table_line"], 1);
    assert_eq!(
        types(&d["payloads"]),
        [
            "IDI",
            "CERT",
            "N(INITIAL_CONTACT)",
            "CERTREQ",
            "IDR",
            "AUTH",
            "N(USE_TRANSPORT_MODE)",
            "N(ESP_TFC_PADDING_NOT_SUPPORTED)",
            "SA",
            "TSI",
            "TSR",
            "N(MOBIKE_SUPPORTED)",
            "N(NO_ADDITIONAL_ADDRESSES)",
            "N(MULTIPLE_AUTH_SUPPORTED)",
            "N(EAP_ONLY_AUTHENTICATION)",
            "N(IKEV2_MESSAGE_ID_SYNC_SUPPORTED)"
        ]
    );
    assert_eq!(d["payloads"][0]["value"], "chassis-a");
    assert!(d["payloads"][0]["certificate_match"]
        .as_str()
        .unwrap()
        .starts_with("proven by"));
    assert!(
        d["payloads"][4]["certificate_match"].is_null(),
        "IDr of a request is not the sender's"
    );
    assert_eq!(
        d["payloads"][1]["certificate"]["dns_names"],
        serde_json::json!(["chassis-a"])
    );
    assert_eq!(d["payloads"][9]["selectors"][0]["start_port"], 6081);

    let ccsa = messages[4];
    assert_eq!(
        types(&ccsa["decryption"]["payloads"]),
        [
            "N(USE_TRANSPORT_MODE)",
            "N(ESP_TFC_PADDING_NOT_SUPPORTED)",
            "SA",
            "NONCE",
            "TSI",
            "TSR"
        ]
    );
}

#[test]
fn json_without_keys_has_no_decryption() {
    let report = json(&decode(&capture(), None, true));
    assert!(report["key_table"].is_null());
    for m in ike_records(&report) {
        assert!(m["decryption"].is_null());
    }
}

#[test]
fn key_table_for_another_ike_sa_reports_missing_keys() {
    let table = scratch(
        "other-sa.table",
        b"0102030405060708,1112131415161718,\
          000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223,\
          000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223,\
          \"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"\n",
    );
    let report = json(&decode(&capture(), Some(&table), true));
    let auth = ike_records(&report)[2];
    assert_eq!(auth["decryption"]["status"], "no_keys");
    assert_eq!(report["summary"]["not_decrypted"], 4);
}

#[test]
fn wireshark_cipher_ipsecctl_cannot_decrypt_is_reported_per_message() {
    let table = scratch(
        "cbc.table",
        b"bb629a76df40020e,eb309918dab0ed83,00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,\
          00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,\"AES-CBC-256 [RFC3602]\",\
          00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,\
          00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff,\"HMAC_SHA2_256_128 [RFC4868]\"\n",
    );
    let out = decode(&capture(), Some(&table), false);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("(not supported: cannot decrypt)"), "{text}");
    assert!(
        text.contains(
            "not decrypted with key table line 1: encryption algorithm \"AES-CBC-256 [RFC3602]\""
        ),
        "{text}"
    );
}

#[test]
fn wrong_keys_fail_the_integrity_check_without_failing_the_run() {
    let table = scratch(
        "wrong.table",
        b"bb629a76df40020e,eb309918dab0ed83,\
          000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223,\
          000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223,\
          \"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"\n",
    );
    let report = json(&decode(&capture(), Some(&table), true));
    let auth = ike_records(&report)[2];
    assert_eq!(auth["decryption"]["status"], "failed");
    assert!(
        auth["decryption"]["detail"]
            .as_str()
            .unwrap()
            .contains("integrity check"),
        "{auth}"
    );
}

#[test]
fn truncated_capture_keeps_the_frames_before_the_damage() {
    let bytes = std::fs::read(capture()).unwrap();
    let cut = scratch("truncated.pcapng", &bytes[..bytes.len() - 300]);
    let out = decode(&cut, Some(&keys()), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("capture damaged after frame 6: the file ends inside a record (truncated)"),
        "{text}"
    );
    assert!(text.contains("5 IKE messages (0 malformed)"), "{text}");
}

#[test]
fn corrupted_ike_messages_are_reported_and_the_rest_decoded() {
    let bytes = std::fs::read(capture()).unwrap();
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let at = bytes
        .windows(init.len())
        .position(|w| w == init.as_slice())
        .unwrap();

    let mut corrupted = bytes.clone();
    // The SA payload's length (offset 28 + 2): now runs past the message.
    corrupted[at + 30] = 0xff;
    // And the IKE_SA_INIT response's major version.
    let resp = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/02-ike_sa_init-response.bin"
    ))
    .unwrap();
    let at_resp = bytes
        .windows(resp.len())
        .position(|w| w == resp.as_slice())
        .unwrap();
    corrupted[at_resp + 17] = 0x30;
    let path = scratch("corrupted.pcapng", &corrupted);

    let out = decode(&path, Some(&keys()), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("MALFORMED: "), "{text}");
    assert!(
        text.contains("6 IKE messages (2 malformed), 4 encrypted payloads decrypted"),
        "{text}"
    );

    let report = json(&decode(&path, None, true));
    let messages = ike_records(&report);
    let first = messages[0]["error"].as_str().unwrap();
    assert!(first.contains("SA"), "the error names the payload: {first}");
    assert!(
        messages[1]["error"].as_str().unwrap().contains("version"),
        "{}",
        messages[1]
    );
    assert!(!messages[1]["header"].is_null(), "the header still shows");
    assert!(messages[2]["error"].is_null());
}

#[test]
fn garbage_and_empty_files_are_unreadable() {
    let garbage = scratch("garbage.pcap", b"this is not a capture at all");
    let out = decode(&garbage, None, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a pcap or pcapng file"),
        "{}",
        stderr(&out)
    );

    let empty = scratch("empty.pcap", b"");
    assert_eq!(decode(&empty, None, false).status.code(), Some(1));

    let missing = PathBuf::from("/nonexistent/capture.pcap");
    let out = decode(&missing, None, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/capture.pcap"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_key_table_exits_1_naming_the_line() {
    let table = scratch(
        "bad.table",
        b"# comment\nbb629a76df40020e,eb309918dab0ed83,zz\n",
    );
    let out = decode(&capture(), Some(&table), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 2: expected 8 comma-separated fields"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ipsecctl(&[]).status.code(), Some(2));
    assert_eq!(ipsecctl(&["decode".as_ref()]).status.code(), Some(2));
    let out = ipsecctl(&[
        "decode".as_ref(),
        capture().as_os_str(),
        "--frobnicate".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

// ---- Captures written by the test -------------------------------------------------------

const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A classic little-endian pcap file.
fn pcap(link_type: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&link_type.to_le_bytes());
    for (i, frame) in frames.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(frame);
    }
    f
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// IPv4 packets carrying `transport` (protocol `proto`), split in fragments of `mtu_payload`
/// bytes when given.
fn ipv4(proto: u8, id: u16, transport: &[u8], mtu_payload: Option<usize>) -> Vec<Vec<u8>> {
    let piece = mtu_payload.unwrap_or(transport.len().max(1));
    let chunks: Vec<&[u8]> = transport.chunks(piece).collect();
    let mut packets = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = i + 1 < chunks.len();
        let offset = (i * piece / 8) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&((if more { 0x2000 } else { 0 }) | offset).to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(chunk);
        packets.push(p);
    }
    packets
}

fn ipv6_udp(transport: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(transport.len() as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(transport);
    p
}

fn with_marker(message: &[u8]) -> Vec<u8> {
    let mut m = vec![0; 4];
    m.extend_from_slice(message);
    m
}

const SPI_I: [u8; 8] = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];
const SPI_R: [u8; 8] = [0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8];
const SK_EI: [u8; 20] = [0x11; 20];

fn fragmented_ike_auth() -> Vec<Vec<u8>> {
    let header = Header::new(SPI_I, SPI_R, ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let inner = vec![
        Payload {
            critical: false,
            body: PayloadBody::IdI(Id {
                id_type: IdType::ID_FQDN,
                data: b"chassis-x".to_vec(),
            }),
        },
        Payload::new(Notify::status(NotifyType::INITIAL_CONTACT)),
        Payload::new(Nonce {
            data: vec![0x5a; 64],
        }),
        Payload::new(Notify::status(NotifyType::USE_TRANSPORT_MODE)),
    ];
    let mut iv = 0u8;
    let mut next_iv = || {
        iv += 1;
        [iv; 8]
    };
    protect_fragments(
        &RingProvider,
        &header,
        &[],
        &inner,
        AeadCipher::AesGcm16_128,
        &SK_EI,
        40,
        &mut next_iv,
    )
    .unwrap()
}

fn synthetic_table() -> PathBuf {
    let line = format!(
        "{},{},{},{},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"\n",
        hex::encode(SPI_I),
        hex::encode(SPI_R),
        hex::encode(SK_EI),
        hex::encode([0x22u8; 20])
    );
    scratch("synthetic.table", line.as_bytes())
}

#[test]
fn skf_fragments_out_of_order_are_decrypted_and_reassembled() {
    let fragments = fragmented_ike_auth();
    assert_eq!(fragments.len(), 3);
    let frames: Vec<Vec<u8>> = [1usize, 0, 2]
        .iter()
        .flat_map(|&i| {
            ipv4(
                17,
                100 + i as u16,
                &udp(4500, 4500, &with_marker(&fragments[i])),
                None,
            )
        })
        .collect();
    let path = scratch("skf.pcap", &pcap(LINKTYPE_RAW, &frames));

    let out = decode(&path, Some(&synthetic_table()), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("SKF fragment 2/3, first inner payload NONE"),
        "{text}"
    );
    assert!(
        text.contains(
            "decrypted SKF fragment 2/3 with key table line 1: 1 of 3 fragments decrypted so far"
        ),
        "{text}"
    );
    assert!(text.contains("reassembled from frames 1+2+3"), "{text}");
    assert!(text.contains("IDI ID_FQDN chassis-x"), "{text}");

    let report = json(&decode(&path, Some(&synthetic_table()), true));
    let messages = ike_records(&report);
    assert_eq!(messages[0]["decryption"]["status"], "fragment_held");
    assert_eq!(messages[0]["decryption"]["fragment"]["number"], 2);
    let last = &messages[2]["decryption"];
    assert_eq!(last["status"], "decrypted");
    assert_eq!(
        last["reassembled_from_frames"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(
        types(&last["payloads"]),
        [
            "IDI",
            "N(INITIAL_CONTACT)",
            "NONCE",
            "N(USE_TRANSPORT_MODE)"
        ]
    );
}

#[test]
fn missing_skf_fragment_is_reported_at_the_end() {
    let fragments = fragmented_ike_auth();
    let frames: Vec<Vec<u8>> = [0usize, 2]
        .iter()
        .flat_map(|&i| {
            ipv4(
                17,
                200 + i as u16,
                &udp(4500, 4500, &with_marker(&fragments[i])),
                None,
            )
        })
        .collect();
    let path = scratch("skf-missing.pcap", &pcap(LINKTYPE_RAW, &frames));
    let text = stdout(&decode(&path, Some(&synthetic_table()), false));
    assert!(text.contains("only 2 of 3 SKF fragments arrived"), "{text}");
}

#[test]
fn esp_keepalives_ipv6_and_ip_fragments_in_a_raw_ip_capture() {
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let mut frames = Vec::new();
    // IKE over UDP 500 in 3 IPv4 fragments, the last two swapped and one repeated.
    let mut pieces = ipv4(17, 7, &udp(500, 500, &init), Some(128));
    assert_eq!(pieces.len(), 3);
    pieces.swap(1, 2);
    let repeat = pieces[0].clone();
    frames.extend(pieces.into_iter().take(2));
    frames.push(repeat);
    frames.extend(
        ipv4(17, 7, &udp(500, 500, &init), Some(128))
            .into_iter()
            .skip(1)
            .take(1),
    );
    // ESP in UDP 4500, a NAT-keepalive, plain ESP, and IKE over IPv6.
    frames.extend(ipv4(
        17,
        8,
        &udp(4500, 4500, &[0xc0, 0, 0, 1, 0, 0, 0, 9, 0xee, 0xee]),
        None,
    ));
    frames.extend(ipv4(17, 9, &udp(4500, 4500, &[0xff]), None));
    frames.extend(ipv4(50, 10, &[0xc0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3], None));
    frames.push(ipv6_udp(&udp(500, 500, &init)));
    // Unrelated UDP (Geneve), and an IKE-port datagram whose UDP length lies.
    frames.extend(ipv4(17, 11, &udp(6081, 6081, &[0; 16]), None));
    let mut lying = udp(500, 500, &[0; 8]);
    lying[5] = 200;
    frames.extend(ipv4(17, 12, &lying, None));
    let path = scratch("mixed.pcap", &pcap(LINKTYPE_RAW, &frames));

    let report = json(&decode(&path, None, true));
    let kinds: Vec<&str> = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ike_message",
            "esp",
            "nat_keepalive",
            "esp",
            "ike_message",
            "malformed_frame"
        ],
        "{report:#}"
    );
    let records = report["records"].as_array().unwrap();
    assert_eq!(
        records[0]["frames"],
        serde_json::json!([1, 2, 4]),
        "the repeat is ignored"
    );
    assert_eq!(records[0]["header"]["exchange"], "IKE_SA_INIT");
    assert!(records[0]["error"].is_null());
    assert_eq!(records[1]["spi"], "c0000001");
    assert_eq!(records[1]["udp_encapsulated"], true);
    assert_eq!(records[3]["udp_encapsulated"], false);
    assert_eq!(records[4]["src"], "[2001:db8::1]:500");
    assert!(
        records[5]["error"].as_str().unwrap().starts_with("UDP: "),
        "{}",
        records[5]
    );
    assert_eq!(report["summary"]["unrelated_frames"], 1);
    assert_eq!(report["summary"]["esp_packets"], 2);
}

#[test]
fn linux_cooked_v2_capture_decodes_and_conflicting_fragments_are_dropped() {
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let sll2 = |ip: Vec<u8>| {
        let mut f = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&ip);
        f
    };
    let mut frames: Vec<Vec<u8>> = ipv4(17, 1, &udp(500, 500, &init), None)
        .into_iter()
        .map(sll2)
        .collect();
    let mut pieces = ipv4(17, 2, &udp(500, 500, &init), Some(128));
    let mut forged = pieces[0].clone();
    *forged.last_mut().unwrap() ^= 0xff;
    pieces.insert(1, forged);
    frames.extend(pieces.into_iter().map(sll2));
    let path = scratch("sll2.pcap", &pcap(LINKTYPE_LINUX_SLL2, &frames));

    let report = json(&decode(&path, None, true));
    let records = report["records"].as_array().unwrap();
    assert_eq!(records[0]["kind"], "ike_message");
    assert!(records[0]["error"].is_null());
    let dropped = records
        .iter()
        .find(|r| r["kind"] == "ip_fragments_dropped")
        .unwrap();
    assert!(
        dropped["error"]
            .as_str()
            .unwrap()
            .contains("different bytes"),
        "{dropped}"
    );
    assert_eq!(dropped["frames"], serde_json::json!([2, 3]));
    // The rest of the datagram's fragments arrive after the drop and start a new one.
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "ip_fragments_incomplete"),
        "{report:#}"
    );
}

#[test]
fn truncated_ike_message_in_a_frame_is_reported_not_fatal() {
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let short = &init[..100];
    let frames: Vec<Vec<u8>> = ipv4(17, 1, &udp(500, 500, short), None)
        .into_iter()
        .chain(ipv4(17, 2, &udp(500, 500, &init[..10]), None))
        .chain(ipv4(17, 3, &udp(500, 500, &init), None))
        .collect();
    let path = scratch("short-ike.pcap", &pcap(LINKTYPE_RAW, &frames));
    let report = json(&decode(&path, None, true));
    let messages = ike_records(&report);
    assert_eq!(messages.len(), 3);
    assert!(
        messages[0]["error"].as_str().unwrap().contains("292"),
        "{}",
        messages[0]
    );
    assert!(messages[1]["header"].is_null());
    assert!(!messages[1]["error"].is_null());
    assert!(messages[2]["error"].is_null());
    assert_eq!(report["summary"]["malformed_messages"], 2);
    let _ = Message::decode(&init).unwrap();
}

#[test]
fn frames_cut_by_the_snap_length_show_what_was_captured() {
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let whole = ipv4(17, 1, &udp(500, 500, &init), None).remove(0);
    const SNAPLEN: usize = 96;
    let mut file = pcap(LINKTYPE_RAW, &[]);
    file[16..20].copy_from_slice(&(SNAPLEN as u32).to_le_bytes());
    for kept in [SNAPLEN, 24] {
        file.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&(kept as u32).to_le_bytes());
        file.extend_from_slice(&(whole.len() as u32).to_le_bytes());
        file.extend_from_slice(&whole[..kept]);
    }
    let path = scratch("snaplen.pcap", &file);

    let out = decode(&path, None, false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "IKE_SA_INIT request  SPIi bb629a76df40020e",
        "MALFORMED: the capture's snap length cut the message: 68 of 292 octets captured",
        "frame 2: malformed: UDP: UDP header needs 8 bytes, the datagram has 4 (the snap length kept 24 of 320 bytes)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

fn editcap_fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// The records without their times (microsecond files lose the nanoseconds).
fn timeless_records(report: &Value) -> Vec<Value> {
    let mut records = report["records"].as_array().unwrap().clone();
    for r in &mut records {
        let r = r.as_object_mut().unwrap();
        r.remove("time");
        r.remove("relative_time");
    }
    records
}

#[test]
fn classic_pcap_as_editcap_writes_it_decodes_like_the_pcapng_original() {
    let original = json(&decode(&capture(), Some(&keys()), true));
    for name in [
        "transport-two-children-usec.pcap",
        "transport-two-children-nsec.pcap",
    ] {
        let report = json(&decode(&editcap_fixture(name), Some(&keys()), true));
        assert_eq!(report["capture_format"], "pcap");
        assert_eq!(
            timeless_records(&report),
            timeless_records(&original),
            "{name}"
        );
    }
    let nsec = json(&decode(
        &editcap_fixture("transport-two-children-nsec.pcap"),
        None,
        true,
    ));
    assert_eq!(
        nsec["first_frame_time"], original["first_frame_time"],
        "nanoseconds kept"
    );
}

#[test]
fn messages_cut_by_the_snap_length_still_show_their_header() {
    let path = editcap_fixture("transport-two-children-snap200.pcap");
    let report = json(&decode(&path, Some(&keys()), true));
    let messages = ike_records(&report);
    let exchanges: Vec<&str> = messages
        .iter()
        .map(|m| m["header"]["exchange"].as_str().unwrap())
        .collect();
    assert_eq!(
        exchanges,
        [
            "IKE_SA_INIT",
            "IKE_SA_INIT",
            "IKE_AUTH",
            "CREATE_CHILD_SA",
            "CREATE_CHILD_SA"
        ],
        "the IP-fragmented IKE_AUTH request cannot be reassembled from cut fragments"
    );
    assert_eq!(messages[0]["header"]["length"], 292, "the declared length");
    assert_eq!(
        messages[0]["error"],
        "the capture's snap length cut the message: 158 of 292 octets captured"
    );
    let text = stdout(&decode(&path, None, false));
    assert!(
        text.contains("IP fragment (id 8591, offset 0) cut by the snap length: not reassembled"),
        "{text}"
    );
}

#[test]
fn ipv6_fragments_are_reassembled() {
    let init = std::fs::read(format!(
        "{FIXTURE_DIR}/../messages/01-ike_sa_init-request.bin"
    ))
    .unwrap();
    let datagram = udp(500, 500, &init);
    let piece = 120;
    let chunks: Vec<&[u8]> = datagram.chunks(piece).collect();
    let mut frames = Vec::new();
    for (i, chunk) in chunks.iter().enumerate().rev() {
        let more = u16::from(i + 1 < chunks.len());
        let mut fragment_header = vec![17, 0];
        fragment_header.extend_from_slice(&((((i * piece) / 8) as u16) << 3 | more).to_be_bytes());
        fragment_header.extend_from_slice(&0xfeed_beefu32.to_be_bytes());
        fragment_header.extend_from_slice(chunk);
        let mut packet = ipv6_udp(&fragment_header);
        packet[6] = 44; // Next Header: Fragment
        frames.push(packet);
    }
    let path = scratch("ipv6-fragments.pcap", &pcap(LINKTYPE_RAW, &frames));
    let report = json(&decode(&path, None, true));
    let messages = ike_records(&report);
    assert_eq!(messages.len(), 1, "{report:#}");
    assert_eq!(messages[0]["frames"], serde_json::json!([1, 2, 3]));
    assert_eq!(messages[0]["src"], "[2001:db8::1]:500");
    assert!(messages[0]["error"].is_null(), "{}", messages[0]);
    assert_eq!(messages[0]["header"]["exchange"], "IKE_SA_INIT");
}

#[test]
fn dash_reads_the_capture_from_standard_input() {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipsecctl"))
        .args(["decode", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(capture()).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = json(&out);
    assert_eq!(report["file"], "-");
    assert_eq!(ike_records(&report).len(), 6);
}

#[test]
fn informational_delete_config_vendor_id_and_error_notifies_are_shown_by_name() {
    use ikev2::codec::{CfgAttribute, Config, Delete, VendorId};
    use ikev2::protection::protect;
    use ikev2::registry::{CfgAttributeType, CfgType, KeGroup};

    let sk_ei = [0x11u8; 20];
    let sk_er = [0x22u8; 20];
    let seal = |flags: Flags, id: u32, inner: Vec<Payload>, sk_e: &[u8]| {
        let header = Header::new(SPI_I, SPI_R, ExchangeType::INFORMATIONAL, flags, id);
        protect(
            &RingProvider,
            &header,
            &[],
            &inner,
            AeadCipher::AesGcm16_128,
            sk_e,
            &[id as u8; 8],
            0,
        )
        .unwrap()
    };
    let delete = seal(
        Flags::INITIATOR,
        7,
        vec![Payload::new(Delete::esp(&[0xc0ff_ee01, 0xc0ff_ee02]))],
        &sk_ei,
    );
    let liveness = seal(Flags::INITIATOR.with(Flags::RESPONSE), 7, vec![], &sk_ei);
    let config = seal(
        Flags::RESPONSE,
        3,
        vec![Payload::new(Config {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![CfgAttribute {
                attribute_type: CfgAttributeType::INTERNAL_IP4_ADDRESS,
                value: vec![10, 0, 0, 9],
            }],
        })],
        &sk_er,
    );
    let refusal = Message {
        header: Header::new(SPI_I, [0; 8], ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0),
        payloads: vec![
            Payload::new(Notify::invalid_ke_payload(KeGroup::CURVE25519)),
            Payload::new(VendorId {
                data: b"ovn-ipsec test".to_vec(),
            }),
            Payload::new(Notify::cookie(vec![0xab; 16])),
        ],
    }
    .encode()
    .unwrap();

    let frames: Vec<Vec<u8>> = [delete, liveness, config]
        .iter()
        .enumerate()
        .flat_map(|(i, m)| ipv4(17, i as u16, &udp(4500, 4500, &with_marker(m)), None))
        .chain(ipv4(17, 9, &udp(500, 500, &refusal), None))
        .collect();
    let path = scratch("informational.pcap", &pcap(LINKTYPE_RAW, &frames));
    let out = decode(&path, Some(&synthetic_table()), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "INFORMATIONAL request",
        "DELETE ESP SPIs c0ffee01, c0ffee02",
        "(no payloads)",
        "CP CFG_REPLY",
        "INTERNAL_IP4_ADDRESS 10.0.0.9",
        "N(INVALID_KE_PAYLOAD) error: accepted group CURVE25519",
        "VENDOR_ID ovn-ipsec test",
        "N(COOKIE): cookie of 16 octets",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// The JSON of the strongSwan capture decoded with its keys, as committed in
/// `tests/fixtures/transport-two-children.decode.json`: the layout is a stable interface, so
/// any change to it shows here. Run with `UPDATE_GOLDEN=1` to rewrite the file after an
/// intended change (and raise `format_version` if a field changed meaning or went away).
#[test]
fn json_of_the_strongswan_capture_matches_the_committed_golden_file() {
    let mut report = json(&decode(&capture(), Some(&keys()), true));
    report["file"] = Value::from("transport-two-children.pcap");
    report["key_table"]["file"] = Value::from("transport-two-children.ikev2_decryption_table");
    let golden = editcap_fixture("transport-two-children.decode.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let mut text = serde_json::to_string_pretty(&report).unwrap();
        text.push('\n');
        std::fs::write(&golden, text).unwrap();
    }
    let expected: Value = serde_json::from_slice(&std::fs::read(&golden).unwrap()).unwrap();
    assert!(
        report == expected,
        "JSON layout changed; see {}",
        golden.display()
    );
}

#[test]
fn full_hex_prints_nonces_and_key_exchange_values_whole() {
    let nonce = "226f8e084187ec27d8a430e898c59f7b657660e14b00de5c";
    let short = stdout(&decode(&capture(), None, false));
    assert!(
        short.contains(&format!("NONCE 32 bytes: {nonce}…")),
        "{short}"
    );
    let out = ipsecctl(&[
        "decode".as_ref(),
        capture().as_os_str(),
        "--full-hex".as_ref(),
    ]);
    let full = stdout(&out);
    let line = full
        .lines()
        .find(|l| l.contains("NONCE 32 bytes: "))
        .unwrap();
    assert_eq!(line.trim().len(), "NONCE 32 bytes: ".len() + 64, "{line}");
    assert!(!line.contains('…'));
}

fn decode_with_ca(ca: &Path) -> Output {
    ipsecctl(&[
        "decode".as_ref(),
        capture().as_os_str(),
        "--keys".as_ref(),
        keys().as_os_str(),
        "--ca".as_ref(),
        ca.as_os_str(),
        "--json".as_ref(),
    ])
}

#[test]
fn with_ca_each_senders_certificate_is_validated_at_the_capture_time() {
    let report = json(&decode_with_ca(&fixture("ca-cert.pem")));
    let subject = "C=US, ST=CA, O=Open vSwitch, OU=switchca, CN=OVS switchca CA Certificate (2026 Dec 03 18:04:50)";
    assert_eq!(
        report["trusted_cas"]["subjects"],
        serde_json::json!([subject])
    );
    for index in [2, 3] {
        let cert = &ike_records(&report)[index]["decryption"]["payloads"][1]["certificate"];
        assert_eq!(
            cert["chain"],
            format!("chains to {subject} (at the capture time)"),
            "{cert}"
        );
    }

    let other_ca = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ikev2/tests/fixtures/pki/ca-a-cert.pem"
    ));
    let report = json(&decode_with_ca(&other_ca));
    let cert = &ike_records(&report)[2]["decryption"]["payloads"][1]["certificate"];
    assert!(
        cert["chain"]
            .as_str()
            .unwrap()
            .starts_with("does NOT chain to the given CAs"),
        "{cert}"
    );
}

#[test]
fn unreadable_ca_file_exits_1() {
    let not_pem = scratch("not-a-ca.pem", b"no certificates here\n");
    let out = decode_with_ca(&not_pem);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("CA file"), "{}", stderr(&out));
}
