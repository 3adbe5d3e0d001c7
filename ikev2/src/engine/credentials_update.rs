//! Replacing a peer's credentials in place, for certificate rotation: IKE SAs already
//! established keep their keys and stay up; the next IKE_AUTH with the peer (a new IKE SA, or
//! a reauthentication) presents the new certificate and checks the peer against the new CAs.

use std::sync::Arc;

use thiserror::Error;

use super::config::{ConfigError, Credentials};
use super::endpoint::Endpoint;
use super::event::PeerId;
use crate::auth::TrustStore;

/// Why new credentials were not taken.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CredentialsUpdateError {
    /// The peer configuration does not exist (never added, or removed).
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
    /// The configuration with the new credentials would not be valid (e.g. no certificate).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl Endpoint {
    /// Gives `peer` new credentials and CAs; the old ones stay if the result is not valid.
    pub fn update_credentials(
        &mut self,
        peer: PeerId,
        credentials: Credentials,
        trusted_cas: Arc<TrustStore>,
    ) -> Result<(), CredentialsUpdateError> {
        let config = self
            .peers
            .get_mut(&peer)
            .ok_or(CredentialsUpdateError::UnknownPeer(peer))?;
        let mut updated = config.clone();
        updated.credentials = credentials;
        updated.trusted_cas = trusted_cas;
        updated.validate()?;
        *config = updated;
        Ok(())
    }
}
