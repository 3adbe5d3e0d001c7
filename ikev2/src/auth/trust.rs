//! The configured CA bundle and path validation of a peer's certificate chain.
//!
//! Path building and checking (signatures, validity of every certificate below the anchor,
//! basicConstraints of intermediates, path length) is rustls-webpki's: it accepts ovs-pki's
//! certificates as they are (X.509 v3, sha512WithRSAEncryption, no keyUsage, no
//! extendedKeyUsage). Around it we add what webpki leaves to its caller: the CA certificates
//! themselves must say cA = TRUE and be within their validity period, and the end entity's
//! validity is checked first so that an expiry names the certificate.

use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use tracing::debug;
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter};

use crate::registry::CertEncoding;

use super::certificate::{unix_seconds, Certificate};
use super::error::AuthError;

/// Largest number of intermediate certificates taken from a peer's CERT payloads.
pub const MAX_INTERMEDIATES: usize = 8;

/// Length of one CA hash in CERTREQ data (SHA-1, RFC 7296 §3.7).
pub const CERTREQ_HASH_LEN: usize = 20;

/// Signature algorithms accepted on certificates: every RSA and ECDSA variant ring verifies
/// (ovs-pki signs with sha512WithRSAEncryption).
static CERT_SIGNATURE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
];

/// The extended key usages an IKE peer certificate may carry, if it has the extension:
/// id-kp-serverAuth, id-kp-clientAuth, id-kp-ipsecIKE (RFC 4945 §5.1.3.12) and
/// anyExtendedKeyUsage. A certificate without the extension (ovs-pki's) is accepted.
struct IkeKeyUsage;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const EKU_IPSEC_IKE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11];
const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

impl ExtendedKeyUsageValidator for IkeKeyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let accepted =
            [EKU_SERVER_AUTH, EKU_CLIENT_AUTH, EKU_IPSEC_IKE, EKU_ANY].map(KeyPurposeId::new);
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if accepted.contains(&id) {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            Ok(())
        } else {
            // webpki's error names one required usage; serverAuth is the usual one.
            Err(webpki::Error::RequiredEkuNotFoundContext(
                webpki::RequiredEkuNotFoundContext {
                    required: webpki::KeyUsage::server_auth(),
                    present,
                },
            ))
        }
    }
}

/// The CA certificates a peer's certificate must chain to. Several CAs may be configured at
/// once, so that certificates of an old and a new CA are both accepted during a rotation.
pub struct TrustStore {
    cas: Vec<Certificate>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl core::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.cas.iter().map(Certificate::subject))
            .finish()
    }
}

impl TrustStore {
    /// A trust store of the given CA certificates; each must say cA = TRUE.
    pub fn new(cas: Vec<Certificate>) -> Result<Self, AuthError> {
        if cas.is_empty() {
            return Err(AuthError::EmptyCaBundle);
        }
        let mut anchors = Vec::with_capacity(cas.len());
        for ca in &cas {
            if !ca.is_ca() {
                return Err(AuthError::NotACaCertificate {
                    subject: ca.subject().to_owned(),
                });
            }
            let der = CertificateDer::from(ca.der());
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| AuthError::MalformedCertificate(e.to_string()))?;
            anchors.push(anchor.to_owned());
        }
        Ok(TrustStore { cas, anchors })
    }

    /// A trust store of every certificate in a PEM bundle (ovs-pki's `cacert.pem`, or several
    /// concatenated).
    pub fn from_pem(pem: &[u8]) -> Result<Self, AuthError> {
        Self::new(Certificate::all_from_pem(pem)?)
    }

    /// The configured CA certificates.
    pub fn cas(&self) -> &[Certificate] {
        &self.cas
    }

    /// Certification Authority data for our CERTREQ payload: the SHA-1 hashes of our CAs'
    /// SubjectPublicKeyInfo, concatenated (RFC 7296 §3.7).
    pub fn certreq_data(&self) -> Vec<u8> {
        self.cas.iter().flat_map(|ca| ca.spki_sha1()).collect()
    }

    /// Cert Encoding and Certification Authority data of our CERTREQ payload.
    pub fn certreq_payload(&self) -> (CertEncoding, Vec<u8>) {
        (CertEncoding::X509_SIGNATURE, self.certreq_data())
    }

    /// The configured CAs that a received CERTREQ names, in our order. An empty result means
    /// the peer asked for none of our CAs.
    pub fn cas_named_by_certreq(
        &self,
        certreq_data: &[u8],
    ) -> Result<Vec<&Certificate>, AuthError> {
        let hashes = parse_certreq(certreq_data)?;
        Ok(self
            .cas
            .iter()
            .filter(|ca| hashes.contains(&ca.spki_sha1()))
            .collect())
    }

    /// Validates `end_entity` and the `intermediates` the peer sent (CERT payloads after the
    /// first, in any order) against the configured CAs at time `now`.
    ///
    /// Returns the CA the chain ends at.
    pub fn verify_chain(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        now: SystemTime,
    ) -> Result<&Certificate, AuthError> {
        if intermediates.len() > MAX_INTERMEDIATES {
            return Err(AuthError::TooManyIntermediates {
                count: intermediates.len(),
                max: MAX_INTERMEDIATES,
            });
        }
        end_entity.check_validity(now)?;

        let untrusted = |reason: String| AuthError::UntrustedCertificate {
            subject: end_entity.subject().to_owned(),
            reason,
        };
        let ee_der = CertificateDer::from(end_entity.der());
        let ee = EndEntityCert::try_from(&ee_der).map_err(|e| untrusted(e.to_string()))?;
        let intermediate_ders: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.der()))
            .collect();
        let seconds = u64::try_from(unix_seconds(now)).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));

        // webpki treats an anchor as a bare name and key and does not look at the validity
        // of the CA certificate it came from: offer it only the CAs valid now.
        let (valid, invalid): (Vec<_>, Vec<_>) = self
            .cas
            .iter()
            .zip(&self.anchors)
            .partition(|(ca, _)| ca.check_validity(now).is_ok());
        let anchors: Vec<TrustAnchor<'_>> = valid.iter().map(|(_, a)| (*a).clone()).collect();

        // Limitation: no revocation checking (CRLs, OCSP); ovs-pki deployments revoke by
        // replacing the CA bundle.
        let result = ee.verify_for_usage(
            CERT_SIGNATURE_ALGORITHMS,
            &anchors,
            &intermediate_ders,
            time,
            IkeKeyUsage,
            None,
            None,
        );
        let path = match result {
            Ok(path) => path,
            Err(webpki::Error::UnknownIssuer) => {
                // Say so when the issuer is a configured CA outside its validity period.
                let issuers: Vec<&str> = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(Certificate::issuer)
                    .collect();
                if let Some((ca, _)) = invalid
                    .iter()
                    .find(|(ca, _)| issuers.contains(&ca.subject()))
                {
                    ca.check_validity(now)?;
                }
                return Err(untrusted(describe(&webpki::Error::UnknownIssuer)));
            }
            Err(e) => return Err(untrusted(describe(&e))),
        };

        let anchor = path.anchor();
        let ca = valid
            .iter()
            .find(|(_, a)| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
            .map(|(ca, _)| *ca)
            .ok_or_else(|| untrusted("path ends at an unknown anchor".into()))?;
        debug!(
            subject = end_entity.subject(),
            ca = ca.subject(),
            "certificate chain verified"
        );
        Ok(ca)
    }
}

/// Splits CERTREQ Certification Authority data into its 20-octet SHA-1 hashes.
pub fn parse_certreq(certreq_data: &[u8]) -> Result<Vec<[u8; CERTREQ_HASH_LEN]>, AuthError> {
    let chunks = certreq_data.chunks_exact(CERTREQ_HASH_LEN);
    if !chunks.remainder().is_empty() {
        return Err(AuthError::MalformedCertReq(certreq_data.len()));
    }
    Ok(chunks
        .filter_map(|c| <[u8; CERTREQ_HASH_LEN]>::try_from(c).ok())
        .collect())
}

/// webpki's error in words an operator can act on.
fn describe(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "issuer is not a configured CA".into(),
        webpki::Error::CaUsedAsEndEntity => "end-entity certificate is a CA".into(),
        webpki::Error::EndEntityUsedAsCa => {
            "an issuer in the chain is not a CA (basicConstraints)".into()
        }
        webpki::Error::InvalidSignatureForPublicKey => "a signature in the chain is invalid".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "extendedKeyUsage allows neither serverAuth, clientAuth nor ipsecIKE".into()
        }
        webpki::Error::CertExpired { .. } => "an intermediate certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => {
            "an intermediate certificate is not yet valid".into()
        }
        other => format!("{other:?}"),
    }
}
