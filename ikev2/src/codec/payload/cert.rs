//! The Certificate and Certificate Request payloads (RFC 7296 §3.6, §3.7).

use crate::codec::reader::Reader;
use crate::codec::writer::Writer;
use crate::codec::{DecodeError, EncodeError};
use crate::registry::CertEncoding;

/// Length of one Certification Authority value of a CERTREQ for X.509: the SHA-1 hash of a
/// trusted CA's public key (RFC 7296 §3.7).
pub const CA_KEY_HASH_LEN: usize = 20;

/// A CERT payload: one certificate (or CRL, or hash and URL) in the given encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// Certificate Encoding, e.g. X509_SIGNATURE for a DER certificate.
    pub encoding: CertEncoding,
    /// Certificate Data, as sent.
    pub data: Vec<u8>,
}

impl Cert {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding(r.u8("Cert Encoding")?);
        Ok(Cert {
            encoding,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.encoding.0);
        w.bytes(&self.data);
        Ok(())
    }
}

/// A CERTREQ payload: the encoding wanted and the CAs the sender trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReq {
    /// Certificate Encoding requested.
    pub encoding: CertEncoding,
    /// Certification Authority field: for X.509, concatenated SHA-1 hashes of CA public keys.
    pub data: Vec<u8>,
}

impl CertReq {
    /// The CA public key hashes of an X.509 request, 20 bytes each. A trailing partial hash
    /// is not returned (RFC 7296 §3.7 gives it no meaning).
    pub fn ca_key_hashes(&self) -> impl Iterator<Item = &[u8]> {
        self.data.chunks_exact(CA_KEY_HASH_LEN)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encoding = CertEncoding(r.u8("Cert Encoding")?);
        Ok(CertReq {
            encoding,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.u8(self.encoding.0);
        w.bytes(&self.data);
        Ok(())
    }
}
