//! The real strongSwan 5.9.8 exchange: its ovs-pki certificates, its identities, and the AUTH
//! payloads of its IKE_AUTH messages as far as the given keys let us check them.
//!
//! The decryption table gives SK_ei/SK_er but not SK_pi/SK_pr, so MACedIDFor{I,R} — and with
//! it the signed octets — cannot be rebuilt: the signatures are opened with the certificates'
//! public keys instead, which shows each AUTH was made by the certificate's key, with
//! RSA PKCS#1 v1.5 and SHA-256 as RFC 7427 names it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ikev2::auth::{
    decode_auth_data, decode_signature_hash_algorithms, parse_certreq, recover_rsa_pkcs1_digest,
    verify_chassis_identity, AuthError, AuthScheme, Certificate, Identity, SignatureScheme,
    TrustStore,
};
use ikev2::registry::{AuthMethod, CertEncoding, HashAlgorithm, IdType, NotifyType};
use ring::aead;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/strongswan-5.9.8"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

/// 2027-06-01T00:00:00Z, inside the validity of the capture's certificates.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// The UDP payloads of the capture (pcapng over Ethernet, IPv4), IP fragments reassembled.
fn udp_payloads() -> Vec<Vec<u8>> {
    let pcap = fixture("transport-two-children.pcap");
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 12 <= pcap.len() {
        let kind = u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(pcap[at + 4..at + 8].try_into().unwrap()) as usize;
        if kind == 6 {
            let body = &pcap[at + 8..at + len - 4];
            let captured = u32::from_le_bytes(body[12..16].try_into().unwrap()) as usize;
            frames.push(body[20..20 + captured].to_vec());
        }
        at += len;
    }

    let mut out = Vec::new();
    let mut fragments: BTreeMap<u16, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
    for frame in frames {
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = be16(ip, 2);
        let id = be16(ip, 4) as u16;
        let flags_offset = be16(ip, 6);
        let more = flags_offset & 0x2000 != 0;
        let offset = (flags_offset & 0x1fff) * 8;
        let data = ip[ihl..total].to_vec();
        if !more && offset == 0 {
            out.push(data[8..].to_vec());
            continue;
        }
        let parts = fragments.entry(id).or_default();
        parts.push((offset, data));
        if !more {
            parts.sort();
            let whole: Vec<u8> = parts.iter().flat_map(|(_, d)| d.clone()).collect();
            out.push(whole[8..].to_vec());
        }
    }
    out
}

/// IKE messages: the UDP payloads without the non-ESP marker of port 4500.
fn ike_messages() -> Vec<Vec<u8>> {
    udp_payloads()
        .into_iter()
        .map(|p| match p.strip_prefix(&[0, 0, 0, 0]) {
            Some(ike) => ike.to_vec(),
            None => p,
        })
        .collect()
}

/// (payload type, body) of a chain of generic payloads starting with `first`.
fn payloads(first: u8, mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut kind = first;
    while kind != 0 {
        let len = be16(data, 2);
        out.push((kind, data[4..len].to_vec()));
        kind = data[0];
        data = &data[len..];
    }
    out
}

/// SK_ei and SK_er (key || salt) from the Wireshark decryption table.
fn sk_e() -> (Vec<u8>, Vec<u8>) {
    let table =
        String::from_utf8(fixture("transport-two-children.ikev2_decryption_table")).unwrap();
    let fields: Vec<&str> = table.trim().split(',').collect();
    (
        hex::decode(fields[2]).unwrap(),
        hex::decode(fields[3]).unwrap(),
    )
}

/// Decrypts the SK payload of an IKE_AUTH message (AES-256-GCM-16, RFC 5282) and returns
/// its inner payloads.
fn decrypt_sk(message: &[u8], sk_e: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(message[16], 46, "first payload is SK");
    let sk_len = be16(message, 30);
    let inner_first = message[28];
    let key =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &sk_e[..32]).unwrap());
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&sk_e[32..36]);
    nonce[4..].copy_from_slice(&message[32..40]);
    // RFC 5282 §5.1: the AAD runs from the IKE header to the end of the SK payload header.
    let aad = aead::Aad::from(&message[..32]);
    let mut ciphertext = message[40..28 + sk_len].to_vec();
    let plain = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aad,
            &mut ciphertext,
        )
        .unwrap();
    let pad = usize::from(*plain.last().unwrap());
    payloads(inner_first, &plain[..plain.len() - pad - 1])
}

fn find(payloads: &[(u8, Vec<u8>)], kind: u8) -> Vec<u8> {
    payloads.iter().find(|(k, _)| *k == kind).unwrap().1.clone()
}

struct AuthSide {
    /// The ID payload after its generic header, as received.
    id_body: Vec<u8>,
    id: Identity,
    cert: Certificate,
    auth_method: AuthMethod,
    auth_data: Vec<u8>,
}

/// The identity, certificate and AUTH payload of the initiator (IKE_AUTH request) and the
/// responder (IKE_AUTH response).
fn auth_sides() -> (AuthSide, AuthSide) {
    let messages = ike_messages();
    let (sk_ei, sk_er) = sk_e();
    let side = |message: &[u8], sk: &[u8], id_kind: u8| {
        let inner = decrypt_sk(message, sk);
        let id = find(&inner, id_kind);
        let cert = find(&inner, 37);
        let auth = find(&inner, 39);
        AuthSide {
            id: Identity::from_id_payload(IdType(id[0]), &id[4..]).unwrap(),
            id_body: id,
            cert: Certificate::from_cert_payload(CertEncoding(cert[0]), &cert[1..]).unwrap(),
            auth_method: AuthMethod(auth[0]),
            auth_data: auth[4..].to_vec(),
        }
    };
    let auth_messages: Vec<&Vec<u8>> = messages.iter().filter(|m| m[18] == 35).collect();
    assert_eq!(auth_messages.len(), 2, "IKE_AUTH request and response");
    (
        side(auth_messages[0], &sk_ei, 35),
        side(auth_messages[1], &sk_er, 36),
    )
}

#[test]
fn strongswan_fixture_certificates_parse_and_chain_to_their_ca() {
    let store = TrustStore::from_pem(&fixture("ca-cert.pem")).unwrap();
    for (file, name) in [
        ("chassis-a-cert.pem", "chassis-a"),
        ("chassis-b-cert.pem", "chassis-b"),
    ] {
        let c = Certificate::from_pem(&fixture(file)).unwrap();
        assert_eq!(c.dns_names(), [name]);
        assert_eq!(c.common_names(), [name]);
        assert_eq!(store.verify_chain(&c, &[], now()).unwrap(), &store.cas()[0]);
        verify_chassis_identity(&c, &Identity::chassis(name), name).unwrap();
    }
}

#[test]
fn strongswan_fixture_certificate_does_not_prove_the_other_chassis() {
    let a = Certificate::from_pem(&fixture("chassis-a-cert.pem")).unwrap();
    assert_eq!(
        verify_chassis_identity(&a, &Identity::chassis("chassis-b"), "chassis-b"),
        Err(AuthError::IdentityMismatch {
            expected: "ID_FQDN chassis-b".into(),
            presented: "certificate of C=US, ST=CA, O=Open vSwitch, OU=Open vSwitch \
                        certifier, CN=chassis-a (DNS:chassis-a)"
                .into(),
        })
    );
}

#[test]
fn strongswan_announces_sha2_signature_hash_algorithms() {
    let messages = ike_messages();
    for init in &messages[..2] {
        assert_eq!(init[18], 34, "IKE_SA_INIT");
        let notify = payloads(init[16], &init[28..])
            .into_iter()
            .filter(|(k, _)| *k == 41)
            .find(|(_, n)| NotifyType(be16(n, 2) as u16) == NotifyType::SIGNATURE_HASH_ALGORITHMS)
            .unwrap();
        let spi_size = usize::from(notify.1[1]);
        let hashes = decode_signature_hash_algorithms(&notify.1[4 + spi_size..]).unwrap();
        assert!(hashes.contains(&HashAlgorithm::SHA2_256), "{hashes:?}");
    }
}

#[test]
fn strongswan_ike_auth_carries_the_fixture_certificates_and_fqdn_ids() {
    let (initiator, responder) = auth_sides();
    assert_eq!(initiator.id, Identity::chassis("chassis-a"));
    assert_eq!(responder.id, Identity::chassis("chassis-b"));
    assert_eq!(
        initiator.cert,
        Certificate::from_pem(&fixture("chassis-a-cert.pem")).unwrap()
    );
    assert_eq!(
        responder.cert,
        Certificate::from_pem(&fixture("chassis-b-cert.pem")).unwrap()
    );
    let store = TrustStore::from_pem(&fixture("ca-cert.pem")).unwrap();
    for side in [&initiator, &responder] {
        store.verify_chain(&side.cert, &[], now()).unwrap();
        let Identity::Fqdn(name) = &side.id else {
            panic!("FQDN expected")
        };
        verify_chassis_identity(&side.cert, &side.id, name).unwrap();
    }
}

#[test]
fn strongswan_auth_payloads_are_rfc_7427_rsa_sha256_signatures_by_the_certificate_keys() {
    let (initiator, responder) = auth_sides();
    for (side, other) in [(&initiator, &responder), (&responder, &initiator)] {
        assert_eq!(side.auth_method, AuthMethod::DIGITAL_SIGNATURE);
        let (scheme, signature) = decode_auth_data(side.auth_method, &side.auth_data).unwrap();
        assert_eq!(
            scheme,
            AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256)
        );
        assert_eq!(signature.len(), 256);

        let recovered =
            recover_rsa_pkcs1_digest(&side.cert, side.auth_method, &side.auth_data).unwrap();
        assert_eq!(recovered.hash, HashAlgorithm::SHA2_256);
        assert_eq!(recovered.digest.len(), 32);
        // Under the other chassis' key the same octets are no PKCS#1 v1.5 signature.
        assert!(matches!(
            recover_rsa_pkcs1_digest(&other.cert, side.auth_method, &side.auth_data),
            Err(AuthError::MalformedPkcs1Signature { .. })
        ));
    }
}

#[test]
fn strongswan_certreq_names_the_ca_by_our_spki_hash() {
    let store = TrustStore::from_pem(&fixture("ca-cert.pem")).unwrap();
    let messages = ike_messages();
    let (sk_ei, _) = sk_e();
    // The responder asks in IKE_SA_INIT, the initiator in its IKE_AUTH request.
    let init_response = payloads(messages[1][16], &messages[1][28..]);
    let auth_request = decrypt_sk(&messages[2], &sk_ei);
    for certreq in [find(&init_response, 38), find(&auth_request, 38)] {
        assert_eq!(CertEncoding(certreq[0]), CertEncoding::X509_SIGNATURE);
        // strongSwan lists every CA it holds; ours is among them.
        let hashes = parse_certreq(&certreq[1..]).unwrap();
        assert!(hashes.contains(&store.cas()[0].spki_sha1()));
        assert_eq!(
            store.cas_named_by_certreq(&certreq[1..]).unwrap(),
            [&store.cas()[0]]
        );
    }
}

#[test]
fn rest_of_id_payload_equals_the_received_id_payload_body() {
    // RFC 7296 §2.15: MACedIDFor{I,R} is computed over exactly these octets.
    let (initiator, responder) = auth_sides();
    assert_eq!(initiator.id.rest_of_id_payload(), initiator.id_body);
    assert_eq!(responder.id.rest_of_id_payload(), responder.id_body);
    assert_eq!(initiator.id_body, b"\x02\0\0\0chassis-a");
}

#[test]
fn signed_octets_from_the_capture_sign_and_verify_with_our_keys() {
    // The layout of InitiatorSignedOctets with the capture's RealMessage1 and NonceRData and a
    // made-up SK_pi (the real one is not in the decryption table).
    let messages = ike_messages();
    let real_message_1 = &messages[0];
    let nonce_r = find(&payloads(messages[1][16], &messages[1][28..]), 40);
    let (initiator, _) = auth_sides();
    let sk_pi = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0x5c; 32]);
    let maced_id = ring::hmac::sign(&sk_pi, &initiator.id.rest_of_id_payload());
    let octets = ikev2::auth::signed_octets(real_message_1, &nonce_r, maced_id.as_ref());
    assert_eq!(octets.len(), real_message_1.len() + nonce_r.len() + 32);
    assert_eq!(&octets[..real_message_1.len()], &real_message_1[..]);

    let rng = ring::rand::SystemRandom::new();
    let pki = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki");
    let key = ikev2::auth::PrivateKey::from_pem(
        &std::fs::read(format!("{pki}/chassis-1-privkey.pem")).unwrap(),
        &rng,
    )
    .unwrap();
    let cert = Certificate::from_pem(&std::fs::read(format!("{pki}/chassis-1-cert.pem")).unwrap())
        .unwrap();
    let scheme = AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256);
    let auth = key.sign_auth(scheme, &octets, &rng).unwrap();
    assert_eq!(
        auth.data.len(),
        1 + 15 + 256,
        "same size as strongSwan's AUTH data"
    );
    assert_eq!(auth.data.len(), initiator.auth_data.len());
    ikev2::auth::verify_auth(&cert, auth.method, &auth.data, &octets).unwrap();
    // Our digest recovery agrees with SHA-256 over the signed octets.
    let recovered = recover_rsa_pkcs1_digest(&cert, auth.method, &auth.data).unwrap();
    assert_eq!(
        recovered.digest,
        ring::digest::digest(&ring::digest::SHA256, &octets).as_ref()
    );
}
