//! TLS for `ssl:` remotes: the chassis' own certificate and key (as `ovs-pki` writes them, with
//! human-readable text before the PEM block) and a CA bundle the server must chain to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::{self, CertificateError, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::Error;

/// The three files of an OVSDB TLS client, as in `ovn-controller --private-key --certificate
/// --ca-cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chassis private key (PKCS#8 or PKCS#1 PEM).
    pub private_key: PathBuf,
    /// The chassis certificate (PEM, possibly with its chain).
    pub certificate: PathBuf,
    /// The CA certificate(s) the server's certificate must chain to.
    pub ca_cert: PathBuf,
}

impl TlsFiles {
    /// Reads the files and builds a rustls client configuration with client authentication.
    pub fn load(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let certs = read_certs("certificate", &self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.private_key).map_err(|e| Error::PemFile {
            what: "private key",
            path: self.private_key.clone(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs("CA certificate", &self.ca_cert)? {
            roots.add(ca).map_err(|e| Error::PemFile {
                what: "CA certificate",
                path: self.ca_cert.clone(),
                reason: e.to_string(),
            })?;
        }

        let provider = Arc::new(ring::default_provider());
        // Limitation: no certificate revocation lists are consulted.
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier { inner }))
            .with_client_auth_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let err = |reason: String| Error::PemFile {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Runs the TLS handshake over a connected TCP stream.
pub(crate) async fn handshake(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, Error> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::Tls(format!("{host:?} is neither an IP address nor a DNS name")))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Tls(format!("handshake with {host}: {e}")))
}

/// Verifies the server's chain against the CA bundle but not its name: OVSDB servers present
/// `ovs-pki` certificates whose names are not the addresses in the remote list, and OVS itself
/// checks the chain only. Signatures are still checked by the webpki verifier.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            private_key: dir.join("key.pem"),
            certificate: dir.join("cert.pem"),
            ca_cert: dir.join("ca.pem"),
        }
    }

    #[test]
    fn missing_or_empty_pem_files_are_named_errors() {
        let dir = std::env::temp_dir().join(format!("ovsdb-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = files(&dir);
        let err = f.load().unwrap_err();
        assert!(
            matches!(
                err,
                Error::PemFile {
                    what: "certificate",
                    ..
                }
            ),
            "{err}"
        );

        // Text as `openssl x509 -text` writes it, but no PEM block after it.
        std::fs::write(
            &f.certificate,
            "Certificate:\n    Data:\n        Version: 3 (0x2)\n",
        )
        .unwrap();
        let err = f.load().unwrap_err();
        assert!(
            matches!(&err, Error::PemFile { what: "certificate", reason, .. } if reason.contains("no CERTIFICATE")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
