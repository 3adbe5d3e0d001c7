//! IKE identities (ID payloads, RFC 7296 §3.5) and whether a certificate proves one.
//!
//! An ID_FQDN identity must equal a subjectAltName dNSName (ASCII case-insensitively), or the
//! subject commonName when the certificate has no subjectAltName; an ID_DER_ASN1_DN identity
//! must equal the certificate's subject; ID_IPV4_ADDR / ID_IPV6_ADDR must be a subjectAltName
//! iPAddress.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::registry::IdType;

use super::certificate::Certificate;
use super::error::AuthError;
use super::signed_octets::rest_of_id_payload;

/// Longest FQDN accepted in an ID payload (RFC 1035 §2.3.4: 255 octets).
pub const MAX_FQDN_LEN: usize = 255;

/// An identity as an ID payload carries it, for the ID types certificates can prove.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_FQDN: a host name such as the OVN chassis name.
    Fqdn(String),
    /// ID_DER_ASN1_DN: the DER of an X.509 Name.
    DerAsn1Dn(Vec<u8>),
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
}

impl Identity {
    /// Parses an ID payload's ID Type and Identification Data.
    pub fn from_id_payload(id_type: IdType, data: &[u8]) -> Result<Self, AuthError> {
        let malformed = |reason| AuthError::MalformedIdentity { id_type, reason };
        match id_type {
            IdType::ID_FQDN => {
                if data.is_empty() {
                    return Err(malformed("empty"));
                }
                if data.len() > MAX_FQDN_LEN {
                    return Err(malformed("longer than 255 octets"));
                }
                if !data.iter().all(|b| b.is_ascii_graphic()) {
                    return Err(malformed("not printable ASCII"));
                }
                // Printable ASCII is valid UTF-8.
                Ok(Identity::Fqdn(String::from_utf8_lossy(data).into_owned()))
            }
            IdType::ID_DER_ASN1_DN => {
                match X509Name::from_der(data) {
                    Ok(([], _)) => {}
                    _ => return Err(malformed("not a DER X.509 Name")),
                }
                Ok(Identity::DerAsn1Dn(data.to_vec()))
            }
            IdType::ID_IPV4_ADDR => <[u8; 4]>::try_from(data)
                .map(|a| Identity::Ipv4(Ipv4Addr::from(a)))
                .map_err(|_| malformed("not 4 octets")),
            IdType::ID_IPV6_ADDR => <[u8; 16]>::try_from(data)
                .map(|a| Identity::Ipv6(Ipv6Addr::from(a)))
                .map_err(|_| malformed("not 16 octets")),
            other => Err(AuthError::UnsupportedIdType(other)),
        }
    }

    /// The ID Type of this identity.
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Fqdn(_) => IdType::ID_FQDN,
            Identity::DerAsn1Dn(_) => IdType::ID_DER_ASN1_DN,
            Identity::Ipv4(_) => IdType::ID_IPV4_ADDR,
            Identity::Ipv6(_) => IdType::ID_IPV6_ADDR,
        }
    }

    /// The Identification Data of this identity.
    pub fn id_data(&self) -> Vec<u8> {
        match self {
            Identity::Fqdn(name) => name.as_bytes().to_vec(),
            Identity::DerAsn1Dn(der) => der.clone(),
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
        }
    }

    /// RestOfInitIDPayload / RestOfRespIDPayload for this identity (RFC 7296 §2.15).
    pub fn rest_of_id_payload(&self) -> Vec<u8> {
        rest_of_id_payload(self.id_type(), &self.id_data())
    }

    /// Our own identity for the ID payload: the chassis name as ID_FQDN (how
    /// ovs-monitor-ipsec configures strongSwan and Libreswan).
    pub fn chassis(name: &str) -> Self {
        Identity::Fqdn(name.to_owned())
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Fqdn(name) => write!(f, "ID_FQDN {name}"),
            Identity::DerAsn1Dn(der) => match X509Name::from_der(der) {
                Ok((_, name)) => write!(f, "ID_DER_ASN1_DN {name}"),
                Err(_) => f.write_str("ID_DER_ASN1_DN (unparsable)"),
            },
            Identity::Ipv4(a) => write!(f, "ID_IPV4_ADDR {a}"),
            Identity::Ipv6(a) => write!(f, "ID_IPV6_ADDR {a}"),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// DNS names compare ASCII case-insensitively (RFC 4343), ignoring one trailing dot.
fn dns_name_eq(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// What a certificate names, for the `presented` side of an identity mismatch.
fn certificate_names(cert: &Certificate) -> String {
    let mut names: Vec<String> = cert
        .dns_names()
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect();
    names.extend(cert.ip_addresses().iter().map(|a| format!("IP:{a}")));
    if names.is_empty() {
        format!("certificate of {}", cert.subject())
    } else {
        format!("certificate of {} ({})", cert.subject(), names.join(", "))
    }
}

/// Checks that `cert` proves `identity` (the rules at the top of this module).
pub fn certificate_proves(cert: &Certificate, identity: &Identity) -> Result<(), AuthError> {
    let proven = match identity {
        Identity::Fqdn(name) => {
            if cert.has_subject_alt_name() {
                cert.dns_names().iter().any(|n| dns_name_eq(n, name))
            } else {
                cert.common_names().iter().any(|cn| dns_name_eq(cn, name))
            }
        }
        // Limitation: DNs compare as DER octets, without RFC 5280 §7.1 name normalization
        // (peers send their certificate's subject verbatim, so this holds in practice).
        Identity::DerAsn1Dn(der) => der.as_slice() == cert.subject_der(),
        Identity::Ipv4(a) => cert.ip_addresses().contains(&IpAddr::V4(*a)),
        Identity::Ipv6(a) => cert.ip_addresses().contains(&IpAddr::V6(*a)),
    };
    if proven {
        Ok(())
    } else {
        Err(AuthError::IdentityMismatch {
            expected: identity.to_string(),
            presented: certificate_names(cert),
        })
    }
}

/// Checks that a peer whose ID payload says `peer_id`, authenticated by `cert`, is the
/// chassis `chassis_name` of the Southbound DB.
///
/// The ID must be proven by the certificate, and the certificate must prove the chassis name
/// as an FQDN; an ID_FQDN identity must moreover be the chassis name itself, so that a
/// certificate naming several chassis cannot be used to claim one while being asked for
/// another.
pub fn verify_chassis_identity(
    cert: &Certificate,
    peer_id: &Identity,
    chassis_name: &str,
) -> Result<(), AuthError> {
    let expected = Identity::chassis(chassis_name);
    if let Identity::Fqdn(name) = peer_id {
        if !dns_name_eq(name, chassis_name) {
            return Err(AuthError::IdentityMismatch {
                expected: expected.to_string(),
                presented: peer_id.to_string(),
            });
        }
    }
    certificate_proves(cert, peer_id)?;
    certificate_proves(cert, &expected)
}
