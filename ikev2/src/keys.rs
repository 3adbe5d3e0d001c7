//! The IKEv2 key schedule: SKEYSEED, SK_* and CHILD_SA KEYMAT (RFC 7296 §2.13–2.18).
//!
//! ```text
//! SKEYSEED          = prf(Ni | Nr, g^ir)                                  §2.14
//! {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//!                   = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)               §2.14
//! SKEYSEED (rekey)  = prf(SK_d (old), g^ir (new) | Ni | Nr)               §2.18
//! KEYMAT            = prf+(SK_d, Ni | Nr)                                 §2.17
//!                   = prf+(SK_d, g^ir (new) | Ni | Nr)    with a KE       §2.17
//! ```
//!
//! Ni and Nr are the nonce values (the Nonce payload data, without its header); SPIi and SPIr
//! are the 8-byte SPIs as they appear in the IKE header. For a rekeyed IKE SA, Ni, Nr and the
//! SPIs are those of the CREATE_CHILD_SA exchange that made it.

use crate::crypto::{
    prf_plus, AeadCipher, CryptoProvider, PrfAlgorithm, PrfPlusError, SecretBytes, SharedSecret,
};

/// The key schedule could not produce the requested keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyScheduleError {
    /// The suite needs more keying material than prf+ can produce.
    #[error(transparent)]
    PrfPlus(#[from] PrfPlusError),
    /// The key lengths add up past `usize` (a nonsensical suite).
    #[error("key lengths overflow")]
    LengthOverflow,
}

/// SKEYSEED, from which all IKE SA keys are expanded. Zeroized on drop, redacted in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeyseed(SecretBytes);

impl Skeyseed {
    /// The bytes of SKEYSEED (for vectors and the Wireshark decryption table).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// RFC 7296 §2.14: `SKEYSEED = prf(Ni | Nr, g^ir)`.
pub fn skeyseed(
    provider: &dyn CryptoProvider,
    prf: PrfAlgorithm,
    ni: &[u8],
    nr: &[u8],
    g_ir: &SharedSecret,
) -> Skeyseed {
    // Limitation: PRFs with a fixed key size (AES-XCBC, AES-CMAC) would need the special
    // keying rule of RFC 7296 §2.14; only HMAC PRFs are implemented.
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    let key = SecretBytes::new(key);
    Skeyseed(
        provider
            .prf(prf, key.as_bytes(), &[g_ir.as_bytes()])
            .to_secret(),
    )
}

/// RFC 7296 §2.18: the SKEYSEED of a rekeyed IKE SA, `prf(SK_d (old), g^ir (new) | Ni | Nr)`,
/// with the nonces of the CREATE_CHILD_SA exchange and the PRF of the new IKE SA.
pub fn rekey_skeyseed(
    provider: &dyn CryptoProvider,
    prf: PrfAlgorithm,
    old_sk_d: &SecretBytes,
    g_ir_new: &SharedSecret,
    ni: &[u8],
    nr: &[u8],
) -> Skeyseed {
    let out = provider.prf(prf, old_sk_d.as_bytes(), &[g_ir_new.as_bytes(), ni, nr]);
    Skeyseed(out.to_secret())
}

/// How long each IKE SA key is for a negotiated suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSaKeyLengths {
    /// SK_d: the PRF's preferred key length.
    pub sk_d: usize,
    /// SK_ai and SK_ar: the integrity algorithm's key length; 0 with an AEAD cipher.
    pub sk_a: usize,
    /// SK_ei and SK_er: the encryption key, plus the salt for AEAD ciphers.
    pub sk_e: usize,
    /// SK_pi and SK_pr: the PRF's preferred key length.
    pub sk_p: usize,
}

impl IkeSaKeyLengths {
    /// Lengths for an AEAD suite: no SK_a (RFC 5282 §7.1), SK_e is key and 4-byte salt.
    // Limitation: only AEAD ciphers; AES-CBC with a separate integrity algorithm is not offered.
    pub fn aead(prf: PrfAlgorithm, cipher: AeadCipher) -> Self {
        IkeSaKeyLengths {
            sk_d: prf.key_len(),
            sk_a: 0,
            sk_e: cipher.keymat_len(),
            sk_p: prf.key_len(),
        }
    }

    /// Total keying material, `SK_d + 2 SK_a + 2 SK_e + 2 SK_p`.
    pub fn total(&self) -> Result<usize, KeyScheduleError> {
        let twice = |n: usize| n.checked_mul(2);
        Some(self.sk_d)
            .and_then(|t| t.checked_add(twice(self.sk_a)?))
            .and_then(|t| t.checked_add(twice(self.sk_e)?))
            .and_then(|t| t.checked_add(twice(self.sk_p)?))
            .ok_or(KeyScheduleError::LengthOverflow)
    }
}

/// The seven keys of an IKE SA (RFC 7296 §2.14). Each is zeroized on drop and redacted in
/// `Debug`. `i` keys protect what the original initiator sends, `r` keys what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaKeys {
    /// Derives CHILD_SA keys and the SKEYSEED of a rekeyed IKE SA.
    pub sk_d: SecretBytes,
    /// Integrity key for the initiator's messages (empty with AEAD).
    pub sk_ai: SecretBytes,
    /// Integrity key for the responder's messages (empty with AEAD).
    pub sk_ar: SecretBytes,
    /// Encryption key (and salt) for the initiator's messages.
    pub sk_ei: SecretBytes,
    /// Encryption key (and salt) for the responder's messages.
    pub sk_er: SecretBytes,
    /// Key for the initiator's AUTH payload (RFC 7296 §2.15).
    pub sk_pi: SecretBytes,
    /// Key for the responder's AUTH payload.
    pub sk_pr: SecretBytes,
}

impl IkeSaKeys {
    /// RFC 7296 §2.14: `prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)` cut into the seven keys.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        provider: &dyn CryptoProvider,
        prf: PrfAlgorithm,
        lengths: IkeSaKeyLengths,
        skeyseed: &Skeyseed,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self, KeyScheduleError> {
        let keymat = ike_keymat(
            provider,
            prf,
            skeyseed,
            ni,
            nr,
            spi_i,
            spi_r,
            lengths.total()?,
        )?;

        let mut rest = keymat.as_bytes();
        let mut take = |n: usize| {
            let (key, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            SecretBytes::from_slice(key)
        };
        Ok(IkeSaKeys {
            sk_d: take(lengths.sk_d),
            sk_ai: take(lengths.sk_a),
            sk_ar: take(lengths.sk_a),
            sk_ei: take(lengths.sk_e),
            sk_er: take(lengths.sk_e),
            sk_pi: take(lengths.sk_p),
            sk_pr: take(lengths.sk_p),
        })
    }
}

/// How long each ESP key of a CHILD_SA is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSaKeyLengths {
    /// Encryption key per direction; for AEAD ciphers the key and the 4-byte salt.
    pub encr: usize,
    /// Integrity key per direction; 0 with an AEAD cipher.
    pub integ: usize,
}

impl ChildSaKeyLengths {
    /// Lengths for an AEAD ESP transform (RFC 4106 §8.1, RFC 7634 §2).
    pub fn aead(cipher: AeadCipher) -> Self {
        ChildSaKeyLengths {
            encr: cipher.keymat_len(),
            integ: 0,
        }
    }

    /// Total KEYMAT for both directions.
    pub fn total(&self) -> Result<usize, KeyScheduleError> {
        self.encr
            .checked_add(self.integ)
            .and_then(|n| n.checked_mul(2))
            .ok_or(KeyScheduleError::LengthOverflow)
    }
}

/// The ESP keys of one CHILD_SA (RFC 7296 §2.17): the initiator-to-responder SA's keys come
/// first, then the responder-to-initiator SA's. "Initiator" is the initiator of the exchange
/// that created the CHILD_SA, which after a rekey need not be the IKE SA's initiator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaKeys {
    /// Encryption key (and salt) of the SA carrying initiator-to-responder traffic.
    pub encr_i: SecretBytes,
    /// Integrity key of that SA (empty with AEAD).
    pub integ_i: SecretBytes,
    /// Encryption key (and salt) of the SA carrying responder-to-initiator traffic.
    pub encr_r: SecretBytes,
    /// Integrity key of that SA (empty with AEAD).
    pub integ_r: SecretBytes,
}

impl ChildSaKeys {
    /// RFC 7296 §2.17: `KEYMAT = prf+(SK_d, Ni | Nr)`, or `prf+(SK_d, g^ir (new) | Ni | Nr)`
    /// when the CREATE_CHILD_SA exchange carried KE payloads.
    pub fn derive(
        provider: &dyn CryptoProvider,
        prf: PrfAlgorithm,
        sk_d: &SecretBytes,
        g_ir_new: Option<&SharedSecret>,
        ni: &[u8],
        nr: &[u8],
        lengths: ChildSaKeyLengths,
    ) -> Result<Self, KeyScheduleError> {
        let keymat = child_keymat(provider, prf, sk_d, g_ir_new, ni, nr, lengths.total()?)?;

        let mut rest = keymat.as_bytes();
        let mut take = |n: usize| {
            let (key, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            SecretBytes::from_slice(key)
        };
        Ok(ChildSaKeys {
            encr_i: take(lengths.encr),
            integ_i: take(lengths.integ),
            encr_r: take(lengths.encr),
            integ_r: take(lengths.integ),
        })
    }
}

/// The raw CHILD_SA KEYMAT of RFC 7296 §2.17, `len` bytes long (what NIST calls
/// "DKM(Child SA)" and "DKM(Child SA D-H)").
pub fn child_keymat(
    provider: &dyn CryptoProvider,
    prf: PrfAlgorithm,
    sk_d: &SecretBytes,
    g_ir_new: Option<&SharedSecret>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<SecretBytes, KeyScheduleError> {
    let keymat = match g_ir_new {
        Some(g) => prf_plus(provider, prf, sk_d.as_bytes(), &[g.as_bytes(), ni, nr], len)?,
        None => prf_plus(provider, prf, sk_d.as_bytes(), &[ni, nr], len)?,
    };
    Ok(keymat)
}

/// The raw IKE SA keying material `prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)` of `len` bytes
/// (NIST's "DKM"), before it is cut into SK_*.
#[allow(clippy::too_many_arguments)]
pub fn ike_keymat(
    provider: &dyn CryptoProvider,
    prf: PrfAlgorithm,
    skeyseed: &Skeyseed,
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    len: usize,
) -> Result<SecretBytes, KeyScheduleError> {
    Ok(prf_plus(
        provider,
        prf,
        skeyseed.as_bytes(),
        &[ni, nr, spi_i, spi_r],
        len,
    )?)
}
