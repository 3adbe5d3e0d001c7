//! Authentication: the AUTH payload (RFC 7296 §2.15, RFC 7427) and X.509 certificates.
//!
//! Everything here works on byte slices, so the protocol engine can glue it to the codec and
//! the crypto module:
//!
//! - [`signed_octets`]: the octets an AUTH payload signs. The caller computes MACedID with the
//!   IKE SA's PRF over [`Identity::rest_of_id_payload`].
//! - [`PrivateKey::sign_auth`] signs them into [`AuthData`]; [`verify_auth`] checks a peer's.
//! - [`choose_auth_scheme`] picks the scheme from the peer's SIGNATURE_HASH_ALGORITHMS
//!   ([`decode_signature_hash_algorithms`]) and our key.
//! - [`Certificate`] parses CERT payloads and PEM files; [`TrustStore`] validates chains
//!   against the configured CAs at a time the caller passes in (this crate reads no clock) and
//!   builds and matches CERTREQ data.
//! - [`verify_chassis_identity`] and [`PeerCredentials::prove_chassis`] answer whether a peer
//!   proves an OVN chassis name.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use ikev2::auth::{
//!     choose_auth_scheme, signed_octets, Certificate, Identity, PeerCredentials, PrivateKey,
//!     RsaPadding, TrustStore, OUR_HASH_ALGORITHMS,
//! };
//! use ring::rand::SystemRandom;
//!
//! let pki = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki");
//! let read = |name: &str| std::fs::read(format!("{pki}/{name}")).unwrap();
//! let rng = SystemRandom::new();
//!
//! // Configuration: CA bundle, our key and certificate (ovs-pki PEM files).
//! let trust = TrustStore::from_pem(&read("ca-bundle.pem"))?;
//! let key = PrivateKey::from_pem(&read("chassis-1-privkey.pem"), &rng)?;
//! let cert = Certificate::from_pem(&read("chassis-1-cert.pem"))?;
//!
//! // Initiator, IKE_AUTH request: sign InitiatorSignedOctets with a scheme the responder
//! // announced in SIGNATURE_HASH_ALGORITHMS.
//! let id = Identity::chassis("chassis-1");
//! let maced_id = [0u8; 32]; // prf(SK_pi, id.rest_of_id_payload()), from the crypto module
//! let octets = signed_octets(b"<IKE_SA_INIT request>", b"<Nr>", &maced_id);
//! let scheme = choose_auth_scheme(key.key_type(), Some(&OUR_HASH_ALGORITHMS), RsaPadding::Pkcs1v15)?;
//! let auth = key.sign_auth(scheme, &octets, &rng)?;
//!
//! // Responder: the decoded IDi, CERT and AUTH payloads prove chassis-1.
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000);
//! let peer = PeerCredentials {
//!     id: &id,
//!     end_entity: &cert,
//!     intermediates: &[],
//!     auth_method: auth.method,
//!     auth_data: &auth.data,
//!     signed_octets: &octets,
//! };
//! peer.prove_chassis(&trust, "chassis-1", now)?;
//! assert!(peer.prove_chassis(&trust, "chassis-2", now).is_err());
//! # Ok::<(), ikev2::auth::AuthError>(())
//! ```

mod algorithm_identifier;
mod certificate;
mod der;
mod error;
mod hash_algorithms;
mod identity;
mod oid;
mod peer;
mod private_key;
mod public_key;
mod rsa_recovery;
mod signature;
mod signed_octets;
mod trust;

pub use certificate::{Certificate, MAX_CERTIFICATE_LEN, MAX_PEM_CERTIFICATES};
pub use error::AuthError;
pub use hash_algorithms::{
    choose_auth_scheme, decode_signature_hash_algorithms, encode_signature_hash_algorithms,
    RsaPadding, MAX_HASH_ALGORITHMS, OUR_HASH_ALGORITHMS,
};
pub use identity::{certificate_proves, verify_chassis_identity, Identity, MAX_FQDN_LEN};
pub use peer::PeerCredentials;
pub use private_key::PrivateKey;
pub use public_key::{KeyType, PublicKey};
pub use rsa_recovery::{recover_rsa_pkcs1_digest, RecoveredDigest};
pub use signature::{
    decode_auth_data, encode_auth_data, verify_auth, AuthData, AuthScheme, SignatureScheme,
};
pub use signed_octets::{rest_of_id_payload, signed_octets};
pub use trust::{parse_certreq, TrustStore, CERTREQ_HASH_LEN, MAX_INTERMEDIATES};
