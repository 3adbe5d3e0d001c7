//! The printable view of decoded IKE payloads: every field by its registry name, values as
//! text where they are printable, bytes as hex. Serialized as the `--json` output (see
//! `docs/decode-json.md` in this crate) and rendered as indented text by [`crate::render`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::SystemTime;

use ikev2::auth::{
    certificate_proves, decode_auth_data, recover_rsa_pkcs1_digest, Certificate, Identity,
    TrustStore,
};
use ikev2::codec::{
    AttributeValue, NotifyData, Payload, PayloadBody, Proposal, TrafficSelector, Transform,
    TransformId,
};
use ikev2::registry::{
    CertEncoding, IdType, NotifyType, PayloadType, TransformAttributeType, TransformType,
};
use serde::Serialize;

/// What a payload view needs to know about the message it came in (for NAT detection).
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    /// SPIi of the header.
    pub spi_i: [u8; 8],
    /// SPIr of the header.
    pub spi_r: [u8; 8],
    /// Where the message came from.
    pub src: SocketAddr,
    /// Where it went.
    pub dst: SocketAddr,
    /// The I flag: the sender is the original initiator, so IDi (not IDr) is its identity.
    pub from_original_initiator: bool,
    /// CAs to validate CERT payloads against (`--ca`), if any.
    pub trust: Option<&'a TrustStore>,
    /// When the message was captured: the time certificates are validated at.
    pub captured_at: Option<SystemTime>,
}

/// One payload: its type, critical bit and typed body.
#[derive(Debug, Clone, Serialize)]
pub struct PayloadView {
    /// Payload type by registry name (e.g. "SA", "NOTIFY", "UNKNOWN(200)").
    #[serde(rename = "type")]
    pub payload_type: String,
    /// Payload type number.
    pub type_id: u8,
    /// The critical bit.
    pub critical: bool,
    /// The body's fields, by payload type.
    #[serde(flatten)]
    pub body: BodyView,
}

/// The body of a payload, one shape per payload type (serialized without a tag: the
/// enclosing `type` field says which).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BodyView {
    /// SA.
    Sa {
        /// Proposals in order.
        proposals: Vec<ProposalView>,
    },
    /// KE.
    Ke {
        /// Key exchange method by name.
        group: String,
        /// Its number.
        group_id: u16,
        /// Octets of key exchange data.
        data_len: usize,
        /// The key exchange data, hex.
        data: String,
    },
    /// IDi / IDr.
    Id {
        /// ID Type by name.
        id_type: String,
        /// Its number.
        id_type_id: u8,
        /// The identity as text (FQDN, e-mail, address, DN), when it has a text form.
        value: Option<String>,
        /// For the sender's own ID in a chain that carries its CERT: whether the certificate
        /// proves it (FQDN against SAN dNSName or, without SAN, the CN; DN against the subject).
        certificate_match: Option<String>,
        /// The identification data, hex.
        data: String,
    },
    /// CERT.
    Cert {
        /// Cert Encoding by name.
        encoding: String,
        /// Its number.
        encoding_id: u8,
        /// Octets of certificate data.
        data_len: usize,
        /// What the certificate says, when it parses as X.509.
        certificate: Option<CertificateView>,
        /// Why it did not parse, when it did not.
        certificate_error: Option<String>,
        /// The certificate data, hex.
        data: String,
    },
    /// CERTREQ.
    CertReq {
        /// Cert Encoding by name.
        encoding: String,
        /// Its number.
        encoding_id: u8,
        /// For X.509: the SHA-1 hashes of trusted CA public keys, hex.
        ca_key_hashes: Vec<String>,
        /// The Certification Authority field, hex.
        data: String,
    },
    /// AUTH.
    Auth {
        /// Auth Method by name.
        method: String,
        /// Its number.
        method_id: u8,
        /// The signature scheme (RFC 7427 AlgorithmIdentifier for method 14), when known.
        scheme: Option<String>,
        /// Octets of signature (or MAC).
        signature_len: Option<usize>,
        /// Why the authentication data could not be split, if it could not.
        scheme_error: Option<String>,
        /// For RSA PKCS#1 v1.5 signatures in a chain that also carries the signer's CERT: what
        /// the public-key operation with that certificate shows (the signed octets of RFC 7296
        /// §2.15 need SK_pi/SK_pr, which a decryption table does not give, so the digest
        /// itself is not compared).
        signature_check: Option<String>,
        /// The authentication data, hex.
        data: String,
    },
    /// Ni / Nr.
    Nonce {
        /// Octets of nonce.
        data_len: usize,
        /// The nonce, hex.
        data: String,
    },
    /// N.
    Notify {
        /// Notify Message Type by name.
        notify_type: String,
        /// Its number.
        notify_type_id: u16,
        /// True for error types (below 16384).
        error: bool,
        /// Protocol ID by name.
        protocol: String,
        /// SPI, hex, when present.
        spi: Option<String>,
        /// The notification data, hex.
        data: String,
        /// The notification data read by its type's layout, as text.
        decoded: Option<String>,
    },
    /// D.
    Delete {
        /// Protocol ID by name.
        protocol: String,
        /// SPI Size.
        spi_size: u8,
        /// SPIs, hex.
        spis: Vec<String>,
    },
    /// V.
    VendorId {
        /// The vendor ID, hex.
        data: String,
        /// The vendor ID as text, when it is printable.
        text: Option<String>,
    },
    /// TSi / TSr.
    Ts {
        /// The selectors.
        selectors: Vec<SelectorView>,
    },
    /// SK as received (sealed).
    Sk {
        /// The first inner payload's type by name.
        first_inner: String,
        /// Octets of IV, ciphertext and ICV.
        sealed_len: usize,
    },
    /// SKF as received (sealed).
    Skf {
        /// The first inner payload's type by name (NONE after fragment 1).
        first_inner: String,
        /// Fragment Number.
        fragment_number: u16,
        /// Total Fragments.
        total_fragments: u16,
        /// Octets of IV, ciphertext and ICV.
        sealed_len: usize,
    },
    /// CP.
    Cp {
        /// CFG Type by name.
        cfg_type: String,
        /// Attributes.
        attributes: Vec<CfgAttributeView>,
    },
    /// EAP and unknown payloads: the body, hex.
    Opaque {
        /// The payload body, hex.
        data: String,
    },
}

/// One proposal of an SA payload.
#[derive(Debug, Clone, Serialize)]
pub struct ProposalView {
    /// Proposal Num.
    pub number: u8,
    /// Protocol ID by name.
    pub protocol: String,
    /// SPI, hex (absent when empty).
    pub spi: Option<String>,
    /// Transforms in order.
    pub transforms: Vec<TransformView>,
}

/// One transform of a proposal.
#[derive(Debug, Clone, Serialize)]
pub struct TransformView {
    /// Transform Type by name (ENCR, PRF, INTEG, KE, ESN).
    pub transform_type: String,
    /// Transform ID by its registry name.
    pub name: String,
    /// Transform ID number.
    pub id: u16,
    /// The Key Length attribute in bits, when present.
    pub key_length: Option<u16>,
    /// Other attributes.
    pub attributes: Vec<AttributeView>,
}

/// A transform attribute other than Key Length.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeView {
    /// Attribute type by name.
    pub attribute_type: String,
    /// TV value, when in TV form.
    pub value: Option<u16>,
    /// TLV value, hex, when in TLV form.
    pub data: Option<String>,
}

/// What a certificate says.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// subjectAltName dNSNames.
    pub dns_names: Vec<String>,
    /// subjectAltName iPAddresses.
    pub ip_addresses: Vec<String>,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Public key type.
    pub key_type: String,
    /// With `--ca`, for the sender's certificate (the first CERT of the chain): whether it
    /// chains to one of those CAs at the capture time, as text.
    pub chain: Option<String>,
}

/// One traffic selector.
#[derive(Debug, Clone, Serialize)]
pub struct SelectorView {
    /// TS Type by name.
    pub ts_type: String,
    /// IP Protocol ID (0 = any).
    pub ip_protocol: u8,
    /// Start Port (absent for unknown selector types).
    pub start_port: Option<u16>,
    /// End Port.
    pub end_port: Option<u16>,
    /// First address.
    pub start_address: Option<String>,
    /// Last address.
    pub end_address: Option<String>,
    /// For unknown selector types: the data, hex.
    pub data: Option<String>,
}

/// One configuration attribute.
#[derive(Debug, Clone, Serialize)]
pub struct CfgAttributeView {
    /// Attribute type by name.
    pub attribute_type: String,
    /// The value, hex.
    pub value: String,
    /// The value as an address, for address attributes of address length.
    pub address: Option<String>,
}

/// Builds the view of a payload chain.
pub fn payloads(list: &[Payload], ctx: &MessageContext<'_>) -> Vec<PayloadView> {
    let mut views: Vec<PayloadView> = list.iter().map(|p| payload(p, ctx)).collect();

    // The first CERT of a chain is the sender's end-entity certificate (RFC 7296 §3.6).
    let signer = list.iter().find_map(|p| match &p.body {
        PayloadBody::Cert(c) => Certificate::from_cert_payload(c.encoding, &c.data).ok(),
        _ => None,
    });
    if let (Some(signer), Some(trust)) = (&signer, ctx.trust) {
        // The CERTs after the first are the intermediates (RFC 7296 §3.6).
        let intermediates: Vec<Certificate> = list
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Cert(c) => Certificate::from_cert_payload(c.encoding, &c.data).ok(),
                _ => None,
            })
            .skip(1)
            .collect();
        let first_cert = views.iter_mut().find_map(|v| match &mut v.body {
            BodyView::Cert {
                certificate: Some(c),
                ..
            } => Some(c),
            _ => None,
        });
        if let Some(view) = first_cert {
            view.chain = Some(match ctx.captured_at {
                None => "not validated: the frame has no capture time".to_string(),
                Some(at) => match trust.verify_chain(signer, &intermediates, at) {
                    Ok(ca) => format!("chains to {} (at the capture time)", ca.subject()),
                    Err(e) => format!("does NOT chain to the given CAs: {e}"),
                },
            });
        }
    }
    if let Some(signer) = signer {
        for (p, v) in list.iter().zip(views.iter_mut()) {
            let own_id = match &p.body {
                PayloadBody::IdI(id) if ctx.from_original_initiator => Some(id),
                PayloadBody::IdR(id) if !ctx.from_original_initiator => Some(id),
                _ => None,
            };
            if let (
                Some(id),
                BodyView::Id {
                    certificate_match, ..
                },
            ) = (own_id, &mut v.body)
            {
                let proven = Identity::from_id_payload(id.id_type, &id.data)
                    .and_then(|identity| certificate_proves(&signer, &identity));
                *certificate_match = Some(match proven {
                    Ok(()) => format!("proven by the certificate of {}", signer.subject()),
                    Err(e) => format!("NOT proven by the certificate of {}: {e}", signer.subject()),
                });
            }
            if let (
                PayloadBody::Auth(auth),
                BodyView::Auth {
                    signature_check, ..
                },
            ) = (&p.body, &mut v.body)
            {
                *signature_check = Some(
                    match recover_rsa_pkcs1_digest(&signer, auth.method, &auth.data) {
                        Ok(d) => format!(
                            "made with the key of {}: well-formed PKCS#1 v1.5, {} digest {}",
                            signer.subject(),
                            d.hash,
                            hex::encode(&d.digest)
                        ),
                        Err(e) => format!("not checked against {}: {e}", signer.subject()),
                    },
                );
            }
        }
    }
    views
}

/// Builds the view of one payload.
pub fn payload(p: &Payload, ctx: &MessageContext<'_>) -> PayloadView {
    let t: PayloadType = p.payload_type();
    PayloadView {
        payload_type: t.to_string(),
        type_id: t.0,
        critical: p.critical,
        body: body(&p.body, ctx),
    }
}

fn body(b: &PayloadBody, ctx: &MessageContext<'_>) -> BodyView {
    match b {
        PayloadBody::Sa(sa) => BodyView::Sa {
            proposals: sa.proposals.iter().map(proposal).collect(),
        },
        PayloadBody::Ke(ke) => BodyView::Ke {
            group: ke.group.to_string(),
            group_id: ke.group.0,
            data_len: ke.data.len(),
            data: hex::encode(&ke.data),
        },
        PayloadBody::IdI(id) | PayloadBody::IdR(id) => BodyView::Id {
            id_type: id.id_type.to_string(),
            id_type_id: id.id_type.0,
            value: id_text(id.id_type, &id.data),
            certificate_match: None,
            data: hex::encode(&id.data),
        },
        PayloadBody::Cert(cert) => {
            let (certificate, certificate_error) =
                match Certificate::from_cert_payload(cert.encoding, &cert.data) {
                    Ok(c) => (Some(certificate_view(&c)), None),
                    Err(e) => (None, Some(e.to_string())),
                };
            BodyView::Cert {
                encoding: cert.encoding.to_string(),
                encoding_id: cert.encoding.0,
                data_len: cert.data.len(),
                certificate,
                certificate_error,
                data: hex::encode(&cert.data),
            }
        }
        PayloadBody::CertReq(req) => BodyView::CertReq {
            encoding: req.encoding.to_string(),
            encoding_id: req.encoding.0,
            ca_key_hashes: if req.encoding == CertEncoding::X509_SIGNATURE {
                req.ca_key_hashes().map(hex::encode).collect()
            } else {
                Vec::new()
            },
            data: hex::encode(&req.data),
        },
        PayloadBody::Auth(auth) => {
            let (scheme, signature_len, scheme_error) =
                match decode_auth_data(auth.method, &auth.data) {
                    Ok((scheme, sig)) => (Some(scheme.to_string()), Some(sig.len()), None),
                    Err(e) => (None, None, Some(e.to_string())),
                };
            BodyView::Auth {
                method: auth.method.to_string(),
                method_id: auth.method.0,
                scheme,
                signature_len,
                scheme_error,
                signature_check: None,
                data: hex::encode(&auth.data),
            }
        }
        PayloadBody::Nonce(n) => BodyView::Nonce {
            data_len: n.data.len(),
            data: hex::encode(&n.data),
        },
        PayloadBody::Notify(n) => BodyView::Notify {
            notify_type: n.notify_type.to_string(),
            notify_type_id: n.notify_type.0,
            error: n.notify_type.is_error(),
            protocol: n.protocol.to_string(),
            spi: (!n.spi.is_empty()).then(|| hex::encode(&n.spi)),
            data: hex::encode(&n.data),
            decoded: notify_decoded(n, ctx),
        },
        PayloadBody::Delete(d) => BodyView::Delete {
            protocol: d.protocol.to_string(),
            spi_size: d.spi_size,
            spis: d.spis.iter().map(hex::encode).collect(),
        },
        PayloadBody::VendorId(v) => BodyView::VendorId {
            data: hex::encode(&v.data),
            text: printable(&v.data),
        },
        PayloadBody::TsI(ts) | PayloadBody::TsR(ts) => BodyView::Ts {
            selectors: ts.selectors.iter().map(selector).collect(),
        },
        PayloadBody::Sk(sk) => BodyView::Sk {
            first_inner: sk.first_inner.to_string(),
            sealed_len: sk.body.len(),
        },
        PayloadBody::Skf(skf) => BodyView::Skf {
            first_inner: skf.first_inner.to_string(),
            fragment_number: skf.fragment_number,
            total_fragments: skf.total_fragments,
            sealed_len: skf.body.len(),
        },
        PayloadBody::Cp(cp) => BodyView::Cp {
            cfg_type: cp.cfg_type.to_string(),
            attributes: cp
                .attributes
                .iter()
                .map(|a| CfgAttributeView {
                    attribute_type: a.attribute_type.to_string(),
                    value: hex::encode(&a.value),
                    address: address(&a.value),
                })
                .collect(),
        },
        PayloadBody::Eap(e) => BodyView::Opaque {
            data: hex::encode(&e.data),
        },
        PayloadBody::Unknown(u) => BodyView::Opaque {
            data: hex::encode(&u.data),
        },
    }
}

fn proposal(p: &Proposal) -> ProposalView {
    ProposalView {
        number: p.number,
        protocol: p.protocol.to_string(),
        spi: (!p.spi.is_empty()).then(|| hex::encode(&p.spi)),
        transforms: p.transforms.iter().map(transform).collect(),
    }
}

fn transform(t: &Transform) -> TransformView {
    let name = match t.id {
        TransformId::Encr(v) => v.to_string(),
        TransformId::Prf(v) => v.to_string(),
        TransformId::Integ(v) => v.to_string(),
        TransformId::Ke(v) => v.to_string(),
        TransformId::Esn(v) => v.to_string(),
        TransformId::Other { id, .. } => format!("UNKNOWN({id})"),
    };
    let transform_type: TransformType = t.id.transform_type();
    let mut key_length = None;
    let mut attributes = Vec::new();
    for a in &t.attributes {
        match (&a.attribute_type, &a.value) {
            (&TransformAttributeType::KEY_LENGTH, AttributeValue::Tv(bits))
                if key_length.is_none() =>
            {
                key_length = Some(*bits);
            }
            (kind, AttributeValue::Tv(v)) => attributes.push(AttributeView {
                attribute_type: kind.to_string(),
                value: Some(*v),
                data: None,
            }),
            (kind, AttributeValue::Tlv(d)) => attributes.push(AttributeView {
                attribute_type: kind.to_string(),
                value: None,
                data: Some(hex::encode(d)),
            }),
        }
    }
    TransformView {
        transform_type: transform_type.to_string(),
        name,
        id: t.id.value(),
        key_length,
        attributes,
    }
}

fn selector(s: &TrafficSelector) -> SelectorView {
    match s {
        TrafficSelector::Ipv4(r) => SelectorView {
            ts_type: s.ts_type().to_string(),
            ip_protocol: r.ip_protocol,
            start_port: Some(r.start_port),
            end_port: Some(r.end_port),
            start_address: Some(r.start_address.to_string()),
            end_address: Some(r.end_address.to_string()),
            data: None,
        },
        TrafficSelector::Ipv6(r) => SelectorView {
            ts_type: s.ts_type().to_string(),
            ip_protocol: r.ip_protocol,
            start_port: Some(r.start_port),
            end_port: Some(r.end_port),
            start_address: Some(r.start_address.to_string()),
            end_address: Some(r.end_address.to_string()),
            data: None,
        },
        TrafficSelector::Unknown {
            ts_type,
            ip_protocol,
            data,
        } => SelectorView {
            ts_type: ts_type.to_string(),
            ip_protocol: *ip_protocol,
            start_port: None,
            end_port: None,
            start_address: None,
            end_address: None,
            data: Some(hex::encode(data)),
        },
    }
}

fn certificate_view(c: &Certificate) -> CertificateView {
    CertificateView {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        dns_names: c.dns_names().to_vec(),
        ip_addresses: c.ip_addresses().iter().map(IpAddr::to_string).collect(),
        is_ca: c.is_ca(),
        key_type: c.key_type().to_string(),
        chain: None,
    }
}

/// The text form of an identity, by ID Type (RFC 7296 §3.5).
fn id_text(id_type: IdType, data: &[u8]) -> Option<String> {
    match id_type {
        IdType::ID_FQDN | IdType::ID_RFC822_ADDR => printable(data),
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => address(data),
        IdType::ID_DER_ASN1_DN => distinguished_name(data),
        IdType::ID_KEY_ID => printable(data),
        _ => None,
    }
}

/// Reads 4 or 16 octets as an address.
fn address(data: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(data) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    if let Ok(v6) = <[u8; 16]>::try_from(data) {
        return Some(Ipv6Addr::from(v6).to_string());
    }
    None
}

/// The bytes as text when they are non-empty printable ASCII.
fn printable(data: &[u8]) -> Option<String> {
    let ok = !data.is_empty() && data.iter().all(|b| (0x20..0x7f).contains(b));
    ok.then(|| String::from_utf8_lossy(data).into_owned())
}

/// The notification data as text, for the types whose layout we know.
fn notify_decoded(n: &ikev2::codec::Notify, ctx: &MessageContext<'_>) -> Option<String> {
    let typed = match n.typed_data() {
        Ok(t) => t,
        Err(e) => return Some(format!("malformed: {e}")),
    };
    match typed {
        NotifyData::NatDetection(hash) => {
            // RFC 7296 §2.23: SHA-1(SPIi | SPIr | IP | Port) of the sender (SOURCE) or of the
            // receiver (DESTINATION) as the sender sees it.
            let (what, addr) = if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP {
                ("sender", ctx.src)
            } else {
                ("receiver", ctx.dst)
            };
            let expected = nat_detection_hash(ctx, addr);
            let verdict = if expected.as_slice() == hash.as_slice() {
                format!("matches {what} {addr} (no NAT on this side)")
            } else {
                format!("does not match {what} {addr} (NAT, or the peer's view differs)")
            };
            Some(verdict)
        }
        NotifyData::SignatureHashAlgorithms(list) => Some(
            list.iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        NotifyData::InvalidKePayload(group) => Some(format!("accepted group {group}")),
        NotifyData::UnsupportedCriticalPayload(t) => Some(format!("payload type {t}")),
        NotifyData::Cookie(c) => Some(format!("cookie of {} octets", c.len())),
        NotifyData::SetWindowSize(w) => Some(format!("window size {w}")),
        NotifyData::AdditionalIp4Address(a) => Some(a.to_string()),
        NotifyData::AdditionalIp6Address(a) => Some(a.to_string()),
        NotifyData::Other(_) => None,
    }
}

fn nat_detection_hash(ctx: &MessageContext<'_>, addr: SocketAddr) -> Vec<u8> {
    let mut input = Vec::with_capacity(8 + 8 + 16 + 2);
    input.extend_from_slice(&ctx.spi_i);
    input.extend_from_slice(&ctx.spi_r);
    match addr.ip() {
        IpAddr::V4(a) => input.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => input.extend_from_slice(&a.octets()),
    }
    input.extend_from_slice(&addr.port().to_be_bytes());
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input)
        .as_ref()
        .to_vec()
}

/// An ID_DER_ASN1_DN as text (RFC 4514 order as x509-parser prints it).
fn distinguished_name(data: &[u8]) -> Option<String> {
    use x509_parser::prelude::FromDer;
    match x509_parser::x509::X509Name::from_der(data) {
        Ok(([], name)) => Some(name.to_string()),
        _ => None,
    }
}
