//! The one question the controller asks: does this peer prove chassis name X?

use std::time::SystemTime;

use crate::registry::AuthMethod;

use super::certificate::Certificate;
use super::error::AuthError;
use super::identity::{verify_chassis_identity, Identity};
use super::signature::{verify_auth, AuthScheme};
use super::trust::TrustStore;

/// What a peer presented in its IKE_AUTH message, ready to be checked.
#[derive(Clone, Copy, Debug)]
pub struct PeerCredentials<'a> {
    /// The identity of its IDi/IDr payload.
    pub id: &'a Identity,
    /// Its end-entity certificate (the first CERT payload).
    pub end_entity: &'a Certificate,
    /// Further CERT payloads: intermediate CA certificates, in any order.
    pub intermediates: &'a [Certificate],
    /// The Auth Method of its AUTH payload.
    pub auth_method: AuthMethod,
    /// The Authentication Data of its AUTH payload.
    pub auth_data: &'a [u8],
    /// The octets its AUTH must sign (RFC 7296 §2.15, see [`super::signed_octets`]).
    pub signed_octets: &'a [u8],
}

impl PeerCredentials<'_> {
    /// Checks everything, cheapest first: the identity against the certificate and the
    /// chassis name, the certificate chain against `trust` at `now`, and the AUTH signature.
    /// Returns the scheme the peer signed with.
    pub fn prove_chassis(
        &self,
        trust: &TrustStore,
        chassis_name: &str,
        now: SystemTime,
    ) -> Result<AuthScheme, AuthError> {
        verify_chassis_identity(self.end_entity, self.id, chassis_name)?;
        trust.verify_chain(self.end_entity, self.intermediates, now)?;
        verify_auth(
            self.end_entity,
            self.auth_method,
            self.auth_data,
            self.signed_octets,
        )
    }
}
