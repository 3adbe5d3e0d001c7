//! Every way authentication input can be wrong, one variant each.

use crate::registry::{AuthMethod, CertEncoding, HashAlgorithm, IdType};

use super::signature::AuthScheme;

/// Why a certificate, private key, AUTH payload or identity was not accepted.
///
/// The protocol engine answers any of these from a peer with AUTHENTICATION_FAILED
/// (RFC 7296 §2.21.2); the message says what exactly was wrong, for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    // --- ASN.1 and AUTH payload structure ---
    /// A DER structure (AlgorithmIdentifier, PSS parameters, EC private key) is malformed.
    #[error("malformed DER in {what}: {reason}")]
    MalformedDer {
        /// The structure being parsed.
        what: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// RFC 7427 §3: the AUTH data has no room for the AlgorithmIdentifier length octet.
    #[error("AUTH data of method DIGITAL_SIGNATURE is empty")]
    MissingAlgorithmIdentifier,
    /// RFC 7427 §3: the AlgorithmIdentifier length octet points past the AUTH data.
    #[error("AlgorithmIdentifier length {declared} exceeds the {available} octets that follow it")]
    TruncatedAlgorithmIdentifier {
        /// Value of the length octet.
        declared: usize,
        /// Octets present after the length octet.
        available: usize,
    },
    /// The AUTH data carries no signature octets.
    #[error("AUTH data carries no signature")]
    EmptySignature,
    /// A signature algorithm OID we do not implement (named when we know its name).
    #[error("unsupported signature algorithm {name}")]
    UnsupportedSignatureAlgorithm {
        /// The algorithm's name, or its OID in hex when unknown.
        name: String,
    },
    /// RSASSA-PSS parameters other than MGF1 with the message hash and salt = hash length.
    #[error("unsupported RSASSA-PSS parameters: {reason}")]
    UnsupportedPssParameters {
        /// Which parameter is not supported.
        reason: &'static str,
    },
    /// An AUTH method this crate does not verify or produce (shared keys, DSS, P-521 …).
    #[error("unsupported AUTH method {0}")]
    UnsupportedAuthMethod(AuthMethod),
    /// The SIGNATURE_HASH_ALGORITHMS notification data is not a list of 16-bit values.
    #[error("SIGNATURE_HASH_ALGORITHMS data has odd length {0}")]
    MalformedHashAlgorithms(usize),
    /// The peer's SIGNATURE_HASH_ALGORITHMS list has no hash that our key can sign with.
    #[error("no hash in common: peer announced {peer:?}, our {key} key signs with {ours:?}")]
    NoCommonHashAlgorithm {
        /// What the peer announced.
        peer: Vec<HashAlgorithm>,
        /// The hashes our key could use.
        ours: Vec<HashAlgorithm>,
        /// Our key's type.
        key: super::KeyType,
    },
    /// The signature scheme cannot be used with this key (e.g. ECDSA named, RSA key given).
    #[error("signature scheme {scheme} does not fit a {key} key")]
    SchemeKeyMismatch {
        /// The scheme asked for or announced.
        scheme: String,
        /// The key it was to be used with.
        key: super::KeyType,
    },
    /// The AUTH signature does not verify with the public key of the peer's certificate.
    #[error("AUTH signature ({scheme}) does not verify with the certificate of {subject}")]
    BadSignature {
        /// The scheme the signature was checked with.
        scheme: AuthScheme,
        /// Subject of the certificate whose key was used.
        subject: String,
    },
    /// An RSA PKCS#1 v1.5 signature that does not open to a well-formed DigestInfo under the
    /// certificate's public key.
    #[error("not a well-formed RSA PKCS#1 v1.5 signature: {reason}")]
    MalformedPkcs1Signature {
        /// What was wrong.
        reason: &'static str,
    },
    /// ring refused to sign (should not happen with a loaded key).
    #[error("signing with {0} failed")]
    SigningFailed(AuthScheme),

    // --- PEM and keys ---
    /// The PEM data is not well formed.
    #[error("malformed PEM: {0}")]
    MalformedPem(String),
    /// The PEM data has no private key section (RSA, EC or PKCS#8).
    #[error("no private key found in the PEM data")]
    NoPrivateKey,
    /// ring rejected the private key.
    #[error("{kind} private key rejected: {reason}")]
    KeyRejected {
        /// The key format that was tried.
        kind: &'static str,
        /// ring's reason.
        reason: String,
    },
    /// An EC key on a curve other than P-256 and P-384.
    #[error("unsupported EC curve (OID {oid_hex})")]
    UnsupportedCurve {
        /// The curve OID's contents in hex.
        oid_hex: String,
    },
    /// A public key of an algorithm other than rsaEncryption or id-ecPublicKey.
    #[error("unsupported public key algorithm (OID {oid_hex})")]
    UnsupportedPublicKey {
        /// The algorithm OID's contents in hex.
        oid_hex: String,
    },

    // --- Certificates ---
    /// The PEM data has no CERTIFICATE section.
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    /// A certificate larger than [`super::MAX_CERTIFICATE_LEN`].
    #[error("certificate of {len} octets exceeds the limit of {max}")]
    CertificateTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// x509-parser could not parse the certificate.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// A CERT payload in an encoding other than 4 (X.509 Certificate - Signature).
    #[error("CERT encoding {0} is not supported; only X509_SIGNATURE")]
    UnsupportedCertEncoding(CertEncoding),
    /// A certificate in the CA bundle lacks basicConstraints cA = TRUE.
    #[error("certificate of {subject} in the CA bundle is not a CA (basicConstraints)")]
    NotACaCertificate {
        /// Its subject.
        subject: String,
    },
    /// The CA bundle holds no certificate.
    #[error("the CA bundle is empty")]
    EmptyCaBundle,
    /// More intermediate certificates than [`super::MAX_INTERMEDIATES`].
    #[error("{count} intermediate certificates exceed the limit of {max}")]
    TooManyIntermediates {
        /// How many were presented.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The certificate's notAfter lies before the validation time.
    #[error("certificate of {subject} expired at {not_after} (checked at {now})")]
    CertificateExpired {
        /// Its subject.
        subject: String,
        /// notAfter, RFC 3339 / UTC.
        not_after: String,
        /// The validation time.
        now: String,
    },
    /// The certificate's notBefore lies after the validation time.
    #[error("certificate of {subject} is not valid before {not_before} (checked at {now})")]
    CertificateNotYetValid {
        /// Its subject.
        subject: String,
        /// notBefore, RFC 3339 / UTC.
        not_before: String,
        /// The validation time.
        now: String,
    },
    /// No path from the certificate to a configured CA (unknown issuer, bad signature, an
    /// issuer that is not a CA …); `reason` is the path validator's word.
    #[error("certificate of {subject} does not chain to a configured CA: {reason}")]
    UntrustedCertificate {
        /// Subject of the end-entity certificate.
        subject: String,
        /// Why path validation failed.
        reason: String,
    },
    /// CERTREQ data that is not a list of 20-octet SHA-1 hashes (RFC 7296 §3.7).
    #[error("CERTREQ data of {0} octets is not a list of 20-octet SHA-1 hashes")]
    MalformedCertReq(usize),

    // --- Identities ---
    /// The identity the peer presented (or its certificate proves) is not the expected one.
    #[error("identity mismatch: expected {expected}, peer presented {presented}")]
    IdentityMismatch {
        /// What we required.
        expected: String,
        /// What the peer's ID payload or certificate says.
        presented: String,
    },
    /// An ID type that cannot be matched against a certificate here.
    #[error("ID type {0} is not supported for certificate authentication")]
    UnsupportedIdType(IdType),
    /// Identification data that is not valid for its ID type.
    #[error("malformed {id_type} identification data: {reason}")]
    MalformedIdentity {
        /// The ID type.
        id_type: IdType,
        /// What was wrong.
        reason: &'static str,
    },
}
