//! Certificate rotation in the running daemon: when the identity files were replaced (noticed
//! by [`CertWatch`](crate::cert_watch::CertWatch)) or on SIGHUP, the new certificate and key
//! go through the same check as at start (the certificate names this chassis and chains to the
//! CA, the key belongs to it) and, if they pass, become the credentials of every peer in the
//! engine. IKE SAs already up keep running on their keys; each peer's next IKE SA (a new one,
//! or a reauthentication) presents the new certificate. Files that fail the check leave the
//! running credentials in place, with a warning naming the file and what is wrong.

use std::time::{Instant, SystemTime};

use tracing::{info, warn};

use crate::cert_watch::{Observation, CERT_POLL_INTERVAL};
use crate::daemon::{credentials_of, Daemon};
use crate::identity_check::{check_local_identity, IdentityFiles, LocalIdentity, EXPIRY_WARNING};

impl Daemon {
    /// Looks at the identity files if it is time to, and loads them once they were replaced.
    pub(crate) fn poll_certificates(&mut self, now: Instant) {
        if self.cert_poll_at > now {
            return;
        }
        self.cert_poll_at = now + CERT_POLL_INTERVAL;
        if self.cert_watch.poll() == Observation::Replaced {
            let files = self.cert_watch.files().clone();
            info!(certificate = %files.certificate.display(), "identity files replaced on disk: loading them");
            self.load_identity(&files);
        }
    }

    /// Checks `files` as at start and, if they pass, makes them every peer's credentials;
    /// otherwise keeps the running ones. True when the new identity is in use.
    pub(crate) fn load_identity(&mut self, files: &IdentityFiles) -> bool {
        let now = SystemTime::now();
        match check_local_identity(files, &self.chassis, now) {
            Ok(identity) => {
                self.use_identity(identity, now);
                true
            }
            Err(error) => {
                warn!(%error, chassis = %self.chassis, "new certificate or key refused; the running ones stay in use");
                false
            }
        }
    }

    fn use_identity(&mut self, identity: LocalIdentity, now: SystemTime) {
        let expires_soon = identity.expires_within(now, EXPIRY_WARNING);
        let (credentials, certificate) = credentials_of(&self.chassis, identity);
        self.credentials = credentials;
        self.certificate = certificate;

        let mut updated = 0usize;
        let mut reauthenticating = 0usize;
        for peer in self.peers.peers.values() {
            let Some(id) = peer.engine_id else {
                continue;
            };
            let result = self.endpoint.update_credentials(
                id,
                self.credentials.credentials.clone(),
                self.credentials.trust.clone(),
            );
            match result {
                Ok(()) => {
                    updated += 1;
                    // RFC 7296 §2.8.3: an IKE SA rekey keeps the old authentication, so the new
                    // certificate is only presented by a new IKE SA; reauthenticate now, make
                    // before break. A peer without an established IKE SA presents it when it
                    // next comes up.
                    // Limitation: every peer reauthenticates at once, not spread over time.
                    if self.endpoint.reauthenticate(Instant::now(), id).is_ok() {
                        reauthenticating += 1;
                    }
                }
                Err(error) => {
                    peer.span
                        .in_scope(|| warn!(%error, "peer kept its old credentials"));
                }
            }
        }
        info!(subject = %self.certificate.0, peers = updated, reauthenticating, "certificate and key in use; established IKE SAs reauthenticate with them");
        if let Some(left) = expires_soon {
            warn!(
                subject = %self.certificate.0,
                hours_left = left.as_secs() / 3600,
                "the new certificate expires soon: replace it"
            );
        }
    }
}
