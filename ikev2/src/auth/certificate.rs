//! X.509 certificates: parsing (x509-parser), PEM files as ovs-pki writes them, CERT payloads.

use core::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ring::digest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::registry::CertEncoding;

use super::error::AuthError;
use super::public_key::{KeyType, PublicKey};

/// Largest certificate accepted, in octets. ovs-pki's RSA-2048 certificates are about 1 KiB;
/// this leaves room for RSA-8192 and long extension lists.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// Largest number of certificates read from one PEM bundle.
pub const MAX_PEM_CERTIFICATES: usize = 64;

/// A parsed X.509 certificate, keeping its DER and the fields authentication needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    subject_der: Vec<u8>,
    issuer: String,
    common_names: Vec<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    has_subject_alt_name: bool,
    is_ca: bool,
    not_before: i64,
    not_after: i64,
    spki_der: Vec<u8>,
    public_key: PublicKey,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("dns_names", &self.dns_names)
            .field("key_type", &self.public_key.key_type())
            .finish_non_exhaustive()
    }
}

fn malformed(e: impl fmt::Display) -> AuthError {
    AuthError::MalformedCertificate(e.to_string())
}

/// Formats seconds since the UNIX epoch as x509-parser prints certificate times.
pub(crate) fn format_time(unix_seconds: i64) -> String {
    ASN1Time::from_timestamp(unix_seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{unix_seconds} s after the epoch"))
}

/// Seconds since the UNIX epoch of `t`, negative before it, saturating far away.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs())
            .map(|s| -s)
            .unwrap_or(i64::MIN),
    }
}

impl Certificate {
    /// Parses one DER certificate; trailing octets are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, AuthError> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(AuthError::CertificateTooLarge {
                len: der.len(),
                max: MAX_CERTIFICATE_LEN,
            });
        }
        let (rest, cert) = X509Certificate::from_der(der).map_err(malformed)?;
        if !rest.is_empty() {
            return Err(malformed(format_args!(
                "{} octets after the certificate",
                rest.len()
            )));
        }

        let subject = cert.subject();
        let common_names = subject
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();

        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert.subject_alternative_name().map_err(malformed)?;
        let has_subject_alt_name = san.is_some();
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(octets) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*octets) {
                        ip_addresses.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*octets) {
                        ip_addresses.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        let is_ca = cert
            .basic_constraints()
            .map_err(malformed)?
            .is_some_and(|bc| bc.value.ca);

        let spki = cert.public_key();
        Ok(Certificate {
            der: der.to_vec(),
            subject: subject.to_string(),
            subject_der: subject.as_raw().to_vec(),
            issuer: cert.issuer().to_string(),
            common_names,
            dns_names,
            ip_addresses,
            has_subject_alt_name,
            is_ca,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            spki_der: spki.raw.to_vec(),
            // Limitation: keys other than RSA and ECDSA P-256/P-384 (DSA, Ed25519, P-521) are
            // refused, even for a CA in the bundle that would never sign AUTH payloads.
            public_key: PublicKey::from_spki(spki.raw)?,
        })
    }

    /// Parses the first certificate of a PEM file, skipping any text around the PEM block
    /// (ovs-pki writes `openssl x509 -text` output before it).
    pub fn from_pem(pem: &[u8]) -> Result<Self, AuthError> {
        let der = CertificateDer::from_pem_slice(pem).map_err(pem_error)?;
        Self::from_der(&der)
    }

    /// Parses every certificate of a PEM file (a CA bundle), at most
    /// [`MAX_PEM_CERTIFICATES`].
    pub fn all_from_pem(pem: &[u8]) -> Result<Vec<Self>, AuthError> {
        let mut certs = Vec::new();
        for der in CertificateDer::pem_slice_iter(pem).take(MAX_PEM_CERTIFICATES) {
            certs.push(Self::from_der(&der.map_err(pem_error)?)?);
        }
        if certs.is_empty() {
            return Err(AuthError::NoCertificate);
        }
        Ok(certs)
    }

    /// Parses the Certificate Data of a CERT payload (RFC 7296 §3.6); only encoding 4,
    /// X.509 Certificate - Signature (DER), is supported.
    pub fn from_cert_payload(encoding: CertEncoding, data: &[u8]) -> Result<Self, AuthError> {
        if encoding != CertEncoding::X509_SIGNATURE {
            return Err(AuthError::UnsupportedCertEncoding(encoding));
        }
        Self::from_der(data)
    }

    /// The Cert Encoding and Certificate Data to send this certificate in a CERT payload.
    pub fn cert_payload(&self) -> (CertEncoding, &[u8]) {
        (CertEncoding::X509_SIGNATURE, &self.der)
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject as a readable string (`C=US, ST=CA, …, CN=chassis-a`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The DER of the subject Name, which an ID_DER_ASN1_DN identity carries.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The issuer as a readable string.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject's commonName attributes, in order.
    pub fn common_names(&self) -> &[String] {
        &self.common_names
    }

    /// The dNSName entries of subjectAltName.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The iPAddress entries of subjectAltName (4 or 16 octets; others are skipped).
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// True when the certificate has a subjectAltName extension at all.
    pub fn has_subject_alt_name(&self) -> bool {
        self.has_subject_alt_name
    }

    /// True when basicConstraints says cA = TRUE.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        system_time(self.not_before)
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        system_time(self.not_after)
    }

    /// The subject public key's type.
    pub fn key_type(&self) -> KeyType {
        self.public_key.key_type()
    }

    /// The subject public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-1 of the SubjectPublicKeyInfo: how a CERTREQ payload names this certificate as a
    /// CA (RFC 7296 §3.7).
    pub fn spki_sha1(&self) -> [u8; 20] {
        let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.spki_der);
        let mut out = [0u8; 20];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Checks that `now` lies within notBefore..=notAfter.
    pub fn check_validity(&self, now: SystemTime) -> Result<(), AuthError> {
        let t = unix_seconds(now);
        if t < self.not_before {
            return Err(AuthError::CertificateNotYetValid {
                subject: self.subject.clone(),
                not_before: format_time(self.not_before),
                now: format_time(t),
            });
        }
        if t > self.not_after {
            return Err(AuthError::CertificateExpired {
                subject: self.subject.clone(),
                not_after: format_time(self.not_after),
                now: format_time(t),
            });
        }
        Ok(())
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        SystemTime::UNIX_EPOCH
            .checked_add(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

fn pem_error(e: rustls_pki_types::pem::Error) -> AuthError {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => AuthError::NoCertificate,
        other => AuthError::MalformedPem(other.to_string()),
    }
}
