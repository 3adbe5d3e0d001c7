//! Stateless COOKIEs of a responder under load (RFC 7296 §2.6).
//!
//! Above [`EndpointConfig::cookie_threshold`](super::EndpointConfig::cookie_threshold)
//! half-open IKE SAs, an IKE_SA_INIT request without a valid COOKIE is answered with one and
//! forgotten: no key exchange, no state. The initiator proves it receives at its address by
//! echoing the COOKIE; only then is the request processed.
//!
//! ```text
//! Cookie = <VersionIDofSecret> | prf(<secret>, Ni | IPi | SPIi)
//! ```
//!
//! The secret is replaced every [`COOKIE_SECRET_LIFETIME`]; the one before stays accepted for
//! one more period, so a COOKIE handed out just before a rotation still works. Secrets exist
//! only while COOKIEs are being handed out: an endpoint that is never under load never draws
//! one and arms no timer for them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{CryptoProvider, PrfAlgorithm, Random};

/// How long a secret hands out COOKIEs before the next one replaces it; it is accepted for
/// as long again afterwards.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(60);

/// Octets of a secret.
pub const COOKIE_SECRET_LEN: usize = 32;

/// The PRF of the COOKIE's hash.
const COOKIE_PRF: PrfAlgorithm = PrfAlgorithm::HmacSha256;

/// Octets of the hash in a COOKIE (HMAC-SHA-256's output).
const COOKIE_HASH_LEN: usize = 32;

/// Octets of a COOKIE we hand out: the secret's version and the hash (RFC 7296 §2.6 allows
/// up to 64).
pub const COOKIE_LEN: usize = 1 + COOKIE_HASH_LEN;

/// One secret and the version octet that names it in the COOKIEs it made.
struct CookieSecret {
    version: u8,
    bytes: Zeroizing<[u8; COOKIE_SECRET_LEN]>,
}

impl CookieSecret {
    fn cookie(
        &self,
        provider: &dyn CryptoProvider,
        ni: &[u8],
        ip: IpAddr,
        spi_i: &[u8; 8],
    ) -> Vec<u8> {
        let ip = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let hash = provider.prf(COOKIE_PRF, self.bytes.as_slice(), &[ni, &ip, spi_i]);
        let mut cookie = Vec::with_capacity(COOKIE_LEN);
        cookie.push(self.version);
        cookie.extend_from_slice(hash.as_bytes());
        cookie
    }
}

/// The responder's COOKIE secrets: the current one, the one before, and when to rotate.
#[derive(Default)]
pub(crate) struct CookieJar {
    current: Option<CookieSecret>,
    previous: Option<CookieSecret>,
    next_version: u8,
    rotate_at: Option<Instant>,
    /// `current` made a COOKIE since it became current, so it must outlive the rotation.
    used: bool,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("current", &self.current.as_ref().map(|s| s.version))
            .field("previous", &self.previous.as_ref().map(|s| s.version))
            .field("rotate_at", &self.rotate_at)
            .finish_non_exhaustive()
    }
}

impl CookieJar {
    /// The COOKIE for a request with `ni` and `spi_i` from `ip`, drawing a secret first if
    /// there is none.
    pub fn issue(
        &mut self,
        now: Instant,
        rng: &mut dyn Random,
        provider: &dyn CryptoProvider,
        ni: &[u8],
        ip: IpAddr,
        spi_i: &[u8; 8],
    ) -> Vec<u8> {
        let secret = match &mut self.current {
            Some(secret) => secret,
            slot @ None => {
                let mut bytes = Zeroizing::new([0u8; COOKIE_SECRET_LEN]);
                rng.fill(bytes.as_mut_slice());
                let version = self.next_version;
                self.next_version = self.next_version.wrapping_add(1);
                slot.insert(CookieSecret { version, bytes })
            }
        };
        self.used = true;
        self.rotate_at.get_or_insert(now + COOKIE_SECRET_LIFETIME);
        secret.cookie(provider, ni, ip, spi_i)
    }

    /// Whether `cookie` was made by the current or the previous secret for these values.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        cookie: &[u8],
        ni: &[u8],
        ip: IpAddr,
        spi_i: &[u8; 8],
    ) -> bool {
        let Some(&version) = cookie.first() else {
            return false;
        };
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .filter(|s| s.version == version)
            .any(|s| bool::from(s.cookie(provider, ni, ip, spi_i).ct_eq(cookie)))
    }

    /// When [`Self::on_timeout`] must run next; `None` while no secret exists.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.rotate_at
    }

    /// Rotates the secrets once their period is over: the current one becomes the previous
    /// one if it made COOKIEs (else it is dropped), the previous one is dropped. A new
    /// current secret is drawn when the next COOKIE is needed.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.rotate_at.is_none_or(|at| at > now) {
            return;
        }
        let current = self.current.take();
        self.previous = current.filter(|_| self.used);
        self.used = false;
        self.rotate_at = self.previous.as_ref().map(|_| now + COOKIE_SECRET_LIFETIME);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::crypto::{RingProvider, SeededRandom};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    const NI: [u8; 32] = [5; 32];
    const SPI: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn issued(jar: &mut CookieJar, now: Instant) -> Vec<u8> {
        let mut rng = SeededRandom::from_u64(1);
        jar.issue(now, &mut rng, &RingProvider, &NI, IP, &SPI)
    }

    #[test]
    fn cookie_is_version_and_hash_and_verifies_for_the_same_request_only() {
        let now = Instant::now();
        let mut jar = CookieJar::default();
        let cookie = issued(&mut jar, now);
        assert_eq!(cookie.len(), COOKIE_LEN);
        assert_eq!(cookie[0], 0);
        assert!(jar.verify(&RingProvider, &cookie, &NI, IP, &SPI));

        let other_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        assert!(!jar.verify(&RingProvider, &cookie, &NI, other_ip, &SPI));
        assert!(!jar.verify(&RingProvider, &cookie, &[6; 32], IP, &SPI));
        assert!(!jar.verify(&RingProvider, &cookie, &NI, IP, &[0; 8]));
        assert!(!jar.verify(&RingProvider, &cookie[..COOKIE_LEN - 1], &NI, IP, &SPI));
        assert!(!jar.verify(&RingProvider, &[], &NI, IP, &SPI));
    }

    #[test]
    fn previous_secret_is_accepted_for_one_period_after_rotation() {
        let now = Instant::now();
        let mut jar = CookieJar::default();
        let cookie = issued(&mut jar, now);
        assert_eq!(jar.next_timeout(), Some(now + COOKIE_SECRET_LIFETIME));

        let first = now + COOKIE_SECRET_LIFETIME;
        jar.on_timeout(first);
        assert!(jar.verify(&RingProvider, &cookie, &NI, IP, &SPI));
        let newer = issued(&mut jar, first);
        assert_eq!(newer[0], 1, "a new secret has the next version");
        assert_ne!(newer, cookie);

        jar.on_timeout(first + COOKIE_SECRET_LIFETIME);
        assert!(!jar.verify(&RingProvider, &cookie, &NI, IP, &SPI));
        assert!(jar.verify(&RingProvider, &newer, &NI, IP, &SPI));
    }

    #[test]
    fn secrets_and_their_timer_go_away_when_no_cookie_is_needed() {
        let now = Instant::now();
        let mut jar = CookieJar::default();
        assert_eq!(jar.next_timeout(), None);
        issued(&mut jar, now);
        jar.on_timeout(now + COOKIE_SECRET_LIFETIME);
        assert!(
            jar.next_timeout().is_some(),
            "the previous secret still counts"
        );
        jar.on_timeout(now + 2 * COOKIE_SECRET_LIFETIME);
        assert_eq!(jar.next_timeout(), None);
        assert!(jar.current.is_none() && jar.previous.is_none());
    }

    #[test]
    fn early_timeout_rotates_nothing() {
        let now = Instant::now();
        let mut jar = CookieJar::default();
        let cookie = issued(&mut jar, now);
        jar.on_timeout(now + Duration::from_secs(1));
        assert_eq!(issued(&mut jar, now), cookie);
    }
}
