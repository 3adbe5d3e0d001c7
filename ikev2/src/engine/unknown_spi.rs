//! Messages outside of any IKE SA we hold (RFC 7296 §1.5 and §2.21.4): encrypted requests
//! for IKE SAs we do not know get an unprotected INVALID_IKE_SPI answer, rate-limited and
//! never to a response; an INVALID_IKE_SPI we receive is unauthenticated, so it only starts
//! liveness checks of the IKE SAs with that address and tears nothing down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use super::datagram;
use super::endpoint::Endpoint;
use super::ike_sa::State;
use super::timers::Timer;
use crate::codec::{self, Flags, Header, Message, Notify, Payload, PayloadBody};
use crate::registry::{ExchangeType, NotifyType, PayloadType};

/// The most INVALID_IKE_SPI answers sent per second, all peers together, so that forged
/// requests cannot turn the endpoint into a reflector.
pub const MAX_INVALID_SPI_ANSWERS_PER_SECOND: u32 = 20;

/// The most received INVALID_IKE_SPI notifications acted on per second; each may start a
/// liveness check, so forged ones must not make us flood the peers.
pub const MAX_INVALID_SPI_HINTS_PER_SECOND: u32 = 20;

/// The length of a rate limiter's window.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// At most `limit` events per [`RATE_WINDOW`], counted in fixed windows of caller time.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    limit: u32,
    window_start: Option<Instant>,
    used: u32,
}

impl RateLimiter {
    /// A limiter allowing `limit` events per second.
    pub fn per_second(limit: u32) -> Self {
        RateLimiter {
            limit,
            window_start: None,
            used: 0,
        }
    }

    /// Whether one more event is allowed at `now` (and counts it if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= RATE_WINDOW);
        if expired {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used >= self.limit {
            return false;
        }
        self.used += 1;
        true
    }
}

/// Whether `message` is encrypted (SK, or SKF fragment 1): only those get INVALID_IKE_SPI
/// (RFC 7296 §1.5 "an encrypted IKE request"), and a fragmented one only once.
fn encrypted_first_part(message: &[u8]) -> bool {
    match codec::locate_encrypted_payload(message) {
        Ok(Some(location)) => location.fragment.is_none_or(|f| f.number == 1),
        _ => false,
    }
}

impl Endpoint {
    /// A message whose SPI names none of our IKE SAs: answer an encrypted request with
    /// INVALID_IKE_SPI (rate-limited); drop everything else, responses above all.
    pub(crate) fn handle_unknown_spi(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        header: &Header,
        message: &[u8],
    ) {
        // RFC 7296 §2.21.4: never answer a response, whatever it is.
        if header.flags.is_response() || header.exchange_type == ExchangeType::IKE_SA_INIT {
            trace!(%remote, exchange = %header.exchange_type, "dropping message of unknown IKE SA");
            return;
        }
        if !encrypted_first_part(message) {
            trace!(%remote, "dropping unencrypted request of unknown IKE SA");
            return;
        }
        // Limitation: one budget for all sources, so forged requests can use up the answers a
        // genuine restarted peer would have got; its retransmissions get them a second later.
        if !self.invalid_spi_answers.allow(now) {
            self.stats.invalid_ike_spi_suppressed += 1;
            trace!(%remote, "INVALID_IKE_SPI rate limit reached");
            return;
        }

        // RFC 7296 §1.5: the SPIs and Message ID of the request, the R flag, and the I flag
        // of the end opposite to the sender's.
        let mut flags = Flags::RESPONSE;
        if !header.flags.is_initiator() {
            flags = flags.with(Flags::INITIATOR);
        }
        let answer = Message {
            header: Header::new(
                header.spi_i,
                header.spi_r,
                ExchangeType::INFORMATIONAL,
                flags,
                header.message_id,
            ),
            payloads: vec![Payload::new(Notify::status(NotifyType::INVALID_IKE_SPI))],
        };
        let Ok(bytes) = answer.encode() else {
            return;
        };
        debug!(%remote, exchange = %header.exchange_type, mid = header.message_id,
            "request for an unknown IKE SA: answering INVALID_IKE_SPI");
        self.stats.invalid_ike_spi_sent += 1;
        self.queue_datagram(local, remote, datagram::frame(bytes, nat_t));
    }

    /// An unprotected INFORMATIONAL (its first payload is a Notify, not SK): if it carries
    /// INVALID_IKE_SPI, the peer at `remote` may have lost its IKE SAs with us. RFC 7296
    /// §2.21.4: it may be forged, so it changes no state and is never answered; it only
    /// starts a liveness check of each established IKE SA with that address that has no
    /// request outstanding (an outstanding one's retransmissions are the check already).
    pub(crate) fn handle_unprotected_informational(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        message: &[u8],
    ) {
        let Ok(message) = Message::decode(message) else {
            return;
        };
        let invalid_spi = message.payloads.iter().any(|p| {
            matches!(&p.body, PayloadBody::Notify(n) if n.notify_type == NotifyType::INVALID_IKE_SPI)
        });
        if !invalid_spi {
            return;
        }
        self.stats.invalid_ike_spi_received += 1;
        if !self.invalid_spi_hints.allow(now) {
            return;
        }
        debug!(%remote, "INVALID_IKE_SPI received: checking liveness of the IKE SAs with it");
        for sa in self.ike_sas.values_mut() {
            if sa.remote.ip() == remote.ip()
                && matches!(sa.state, State::Established(_))
                && sa.requests.can_send()
            {
                sa.timers.set(Timer::Dpd, now);
            }
        }
    }
}

/// The first payload type of an unprotected notification message.
pub(crate) const UNPROTECTED_FIRST_PAYLOAD: PayloadType = PayloadType::NOTIFY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_its_limit_per_window_then_refills() {
        let start = Instant::now();
        let mut limiter = RateLimiter::per_second(3);
        assert!((0..3).all(|_| limiter.allow(start)));
        assert!(!limiter.allow(start + Duration::from_millis(999)));
        assert!(limiter.allow(start + RATE_WINDOW));
    }
}
