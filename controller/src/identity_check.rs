//! The start-up check of our own identity: the configured certificate names this chassis the
//! way peers will check it, the private key belongs to that certificate, and the certificate
//! chains to the configured CA. Each failure says which file is wrong and how.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ikev2::auth::{
    certificate_proves, AuthError, AuthScheme, Certificate, Identity, KeyType, PrivateKey,
    SignatureScheme, TrustStore,
};
use ring::rand::SystemRandom;

/// Largest PEM file read (a certificate with its chain, a key, a CA bundle).
pub const MAX_PEM_FILE_LEN: u64 = 1024 * 1024;

/// How long before our certificate expires the daemon starts warning the operator.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// What is signed to show that the private key and the certificate belong together.
const KEY_PROBE: &[u8] = b"ovn-ipsecd: does this key belong to this certificate?";

/// The three files of our identity, as ovs-monitor-ipsec takes them from
/// `Open_vSwitch.other_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// Our certificate (PEM; further certificates in the file are sent as intermediates).
    pub certificate: PathBuf,
    /// Our private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// The CA certificate(s) every chassis certificate must chain to.
    pub ca_cert: PathBuf,
}

/// Why our own identity is not usable.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file larger than [`MAX_PEM_FILE_LEN`].
    #[error("{what} {path} is larger than {max} bytes")]
    TooLarge {
        /// Which file it is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The certificate file holds no usable certificate.
    #[error("certificate {path}: {source}")]
    BadCertificate {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<AuthError>,
    },
    /// The private key file holds no usable key.
    #[error("private key {path}: {source}")]
    BadPrivateKey {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<AuthError>,
    },
    /// The CA file holds no usable CA certificate.
    #[error("CA certificate {path}: {source}")]
    BadCa {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<AuthError>,
    },
    /// The certificate does not prove the chassis name (as ID_FQDN: a subjectAltName
    /// dNSName, or the commonName when there is no subjectAltName).
    #[error("certificate {path} names chassis {names} but this chassis is '{chassis}'")]
    WrongChassis {
        /// The certificate's path.
        path: PathBuf,
        /// The names it does carry, quoted.
        names: String,
        /// Our chassis name.
        chassis: String,
    },
    /// The certificate does not chain to the configured CA (or is expired, not yet valid).
    #[error("certificate {path} is not accepted with the CA certificate {ca_path}: {source}")]
    Untrusted {
        /// The certificate's path.
        path: PathBuf,
        /// The CA file's path.
        ca_path: PathBuf,
        /// Why path validation failed.
        source: Box<AuthError>,
    },
    /// The key and the certificate's public key are of different types.
    #[error(
        "private key {key_path} is a {key_type} key but certificate {cert_path} holds a \
         {cert_type} key"
    )]
    KeyTypeMismatch {
        /// The key's path.
        key_path: PathBuf,
        /// The certificate's path.
        cert_path: PathBuf,
        /// The private key's type.
        key_type: KeyType,
        /// The certificate key's type.
        cert_type: KeyType,
    },
    /// A signature made with the key does not verify with the certificate's public key.
    #[error("private key {key_path} does not belong to certificate {cert_path}: {source}")]
    KeyMismatch {
        /// The key's path.
        key_path: PathBuf,
        /// The certificate's path.
        cert_path: PathBuf,
        /// What the signature check said.
        source: Box<AuthError>,
    },
}

/// Our identity, checked and loaded: what the IKE engine authenticates with.
#[derive(Debug)]
pub struct LocalIdentity {
    /// Our end-entity certificate.
    pub certificate: Certificate,
    /// Certificates after the first in the certificate file, sent as intermediates.
    pub intermediates: Vec<Certificate>,
    /// Our private key.
    pub private_key: PrivateKey,
    /// The configured CAs, which peers' certificates must chain to as well.
    pub trust: TrustStore,
    /// The subject of the CA our own certificate chains to.
    pub ca_subject: String,
}

impl LocalIdentity {
    /// How long our certificate remains valid after `now`, if that is less than `window`
    /// (the operator should replace it); `None` when it is valid for longer.
    pub fn expires_within(
        &self,
        now: SystemTime,
        window: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let left = self
            .certificate
            .not_after()
            .duration_since(now)
            .unwrap_or_default();
        (left < window).then_some(left)
    }
}

/// Reads a file of at most [`MAX_PEM_FILE_LEN`] bytes.
fn read_bounded(what: &'static str, path: &Path) -> Result<Vec<u8>, IdentityError> {
    let read_err = |source| IdentityError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut data = Vec::new();
    file.take(MAX_PEM_FILE_LEN.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(read_err)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > MAX_PEM_FILE_LEN {
        return Err(IdentityError::TooLarge {
            what,
            path: path.to_owned(),
            max: MAX_PEM_FILE_LEN,
        });
    }
    Ok(data)
}

/// The names a certificate proves as ID_FQDN, quoted, for the mismatch message.
fn proven_names(cert: &Certificate) -> String {
    let names = if cert.has_subject_alt_name() {
        cert.dns_names()
    } else {
        cert.common_names()
    };
    if names.is_empty() {
        return format!("nothing (subject {})", cert.subject());
    }
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The scheme used to test the key: one every key type of ours can sign with.
fn probe_scheme(key: KeyType) -> AuthScheme {
    match key {
        KeyType::Rsa { .. } => AuthScheme::DigitalSignature(SignatureScheme::RsaPkcs1Sha256),
        KeyType::EcdsaP256 => AuthScheme::EcdsaP256Sha256,
        KeyType::EcdsaP384 => AuthScheme::EcdsaP384Sha384,
    }
}

/// Loads and checks our identity for `chassis` at time `now` (see the module documentation).
/// The checks run in this order: the certificate names the chassis, it chains to the CA, the
/// key belongs to it.
pub fn check_local_identity(
    files: &IdentityFiles,
    chassis: &str,
    now: SystemTime,
) -> Result<LocalIdentity, IdentityError> {
    let cert_pem = read_bounded("certificate", &files.certificate)?;
    let key_pem = zeroize::Zeroizing::new(read_bounded("private key", &files.private_key)?);
    let ca_pem = read_bounded("CA certificate", &files.ca_cert)?;

    let bad_cert = |source| IdentityError::BadCertificate {
        path: files.certificate.clone(),
        source: Box::new(source),
    };
    let mut certs = Certificate::all_from_pem(&cert_pem).map_err(bad_cert)?;
    if certs.is_empty() {
        return Err(bad_cert(AuthError::NoCertificate));
    }
    let certificate = certs.remove(0);
    let intermediates = certs;
    let trust = TrustStore::from_pem(&ca_pem).map_err(|source| IdentityError::BadCa {
        path: files.ca_cert.clone(),
        source: Box::new(source),
    })?;
    let rng = SystemRandom::new();
    let private_key =
        PrivateKey::from_pem(&key_pem, &rng).map_err(|source| IdentityError::BadPrivateKey {
            path: files.private_key.clone(),
            source: Box::new(source),
        })?;

    // Peers check our ID_FQDN against the certificate exactly like this.
    if certificate_proves(&certificate, &Identity::chassis(chassis)).is_err() {
        return Err(IdentityError::WrongChassis {
            path: files.certificate.clone(),
            names: proven_names(&certificate),
            chassis: chassis.to_owned(),
        });
    }

    let ca_subject = trust
        .verify_chain(&certificate, &intermediates, now)
        .map_err(|source| IdentityError::Untrusted {
            path: files.certificate.clone(),
            ca_path: files.ca_cert.clone(),
            source: Box::new(source),
        })?
        .subject()
        .to_owned();

    check_key_matches(files, &private_key, &certificate, &rng)?;

    Ok(LocalIdentity {
        certificate,
        intermediates,
        private_key,
        trust,
        ca_subject,
    })
}

/// Signs a probe with the key and verifies it with the certificate's public key.
fn check_key_matches(
    files: &IdentityFiles,
    key: &PrivateKey,
    cert: &Certificate,
    rng: &SystemRandom,
) -> Result<(), IdentityError> {
    let same_type = match (key.key_type(), cert.key_type()) {
        (KeyType::Rsa { .. }, KeyType::Rsa { .. }) => true,
        (a, b) => a == b,
    };
    if !same_type {
        return Err(IdentityError::KeyTypeMismatch {
            key_path: files.private_key.clone(),
            cert_path: files.certificate.clone(),
            key_type: key.key_type(),
            cert_type: cert.key_type(),
        });
    }
    let mismatch = |source| IdentityError::KeyMismatch {
        key_path: files.private_key.clone(),
        cert_path: files.certificate.clone(),
        source: Box::new(source),
    };
    let scheme = probe_scheme(key.key_type());
    let auth = key.sign_auth(scheme, KEY_PROBE, rng).map_err(mismatch)?;
    ikev2::auth::verify_auth(cert, auth.method, &auth.data, KEY_PROBE).map_err(mismatch)?;
    Ok(())
}

#[cfg(test)]
mod tests;
