//! Counters of what an [`Endpoint`](super::Endpoint) did outside any one IKE SA, for the
//! daemon's metrics and for tests.

/// Monotonic counters since the endpoint was made; read with
/// [`Endpoint::stats`](super::Endpoint::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// IKE_SA_INIT requests answered with a COOKIE instead of being processed (RFC 7296 §2.6).
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests processed under load because they echoed a valid COOKIE.
    pub cookies_accepted: u64,
    /// IKE_SA_INIT requests under load whose COOKIE was wrong or too old (answered with a
    /// fresh COOKIE, no state kept).
    pub cookies_rejected: u64,
    /// IKE_SA_INIT requests dropped because `max_half_open` or `max_ike_sas` was reached even
    /// with a valid COOKIE.
    pub half_open_dropped: u64,
    /// IKE_SA_INIT requests from addresses no peer configuration names, dropped unanswered.
    pub unconfigured_dropped: u64,
    /// INVALID_IKE_SPI notifications sent for encrypted requests of unknown IKE SAs (RFC 7296
    /// §1.5).
    pub invalid_ike_spi_sent: u64,
    /// Encrypted requests of unknown IKE SAs left unanswered by the rate limit.
    pub invalid_ike_spi_suppressed: u64,
    /// Unprotected INVALID_IKE_SPI notifications received (RFC 7296 §2.21.4); each at most
    /// starts liveness checks.
    pub invalid_ike_spi_received: u64,
    /// Older IKE SAs replaced by a newly authenticated one with the same peer.
    pub ike_sas_replaced: u64,
    /// Requests sent again because their response did not come in time (RFC 7296 §2.1).
    pub retransmissions: u64,
}
