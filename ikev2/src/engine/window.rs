//! Message IDs and the window (RFC 7296 §2.3).
//!
//! Each IKE SA has two independent Message ID sequences: the requests we initiate
//! ([`RequestWindow`]) and the requests the peer initiates ([`ResponseWindow`]). Responses
//! carry the Message ID of their request, so a datagram is matched to one side by its
//! Response flag.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use thiserror::Error;

use super::timers::{Retransmission, RetransmitDecision};

/// The window size every IKE SA starts with (RFC 7296 §2.3: one request outstanding until
/// SET_WINDOW_SIZE says otherwise).
pub const DEFAULT_WINDOW_SIZE: u32 = 1;

/// The largest window we accept from a peer's SET_WINDOW_SIZE or configure ourselves; it bounds
/// the responses we cache and the requests we keep for retransmission.
pub const MAX_WINDOW_SIZE: u32 = 16;

/// A request we sent and have not had a response to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    /// The datagrams of the request (several when it was fragmented, RFC 7383), resent as they
    /// are on every retransmission.
    pub datagrams: Vec<Vec<u8>>,
    /// Where the request is in its retransmission schedule.
    pub retransmission: Retransmission,
    /// When its retransmission timer fires next.
    pub deadline: Instant,
}

/// Why a request could not be queued.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RequestWindowError {
    /// The peer's window is full; the request must wait for a response (RFC 7296 §2.3).
    #[error("the peer's window of {size} requests is full")]
    WindowFull {
        /// The peer's window size.
        size: u32,
    },
    /// Every Message ID has been used; the IKE SA must have been rekeyed long before this
    /// (RFC 7296 §2.3: Message IDs never wrap).
    #[error("Message IDs of this IKE SA are exhausted")]
    MessageIdsExhausted,
}

/// The Message IDs of requests we initiate, and the requests still awaiting a response.
#[derive(Clone, Debug)]
pub struct RequestWindow {
    next_message_id: u32,
    exhausted: bool,
    peer_window: u32,
    pending: BTreeMap<u32, PendingRequest>,
}

impl Default for RequestWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestWindow {
    /// A fresh window: the first request gets Message ID 0.
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A window whose first request gets `message_id` (after IKE_SA_INIT, or an IKE SA rekey
    /// which resets the counters of the new SA to 0).
    pub fn starting_at(message_id: u32) -> Self {
        RequestWindow {
            next_message_id: message_id,
            exhausted: false,
            peer_window: DEFAULT_WINDOW_SIZE,
            pending: BTreeMap::new(),
        }
    }

    /// The peer announced its window size with SET_WINDOW_SIZE (RFC 7296 §2.3); values above
    /// [`MAX_WINDOW_SIZE`] are clamped and zero is ignored.
    pub fn set_peer_window(&mut self, size: u32) {
        if size > 0 {
            self.peer_window = size.min(MAX_WINDOW_SIZE);
        }
    }

    /// Whether another request may be sent now.
    pub fn can_send(&self) -> bool {
        !self.exhausted && (self.pending.len() as u64) < u64::from(self.peer_window)
    }

    /// The Message ID the next request will get.
    pub fn next_message_id(&self) -> Option<u32> {
        (!self.exhausted).then_some(self.next_message_id)
    }

    /// Reserves the next Message ID for a request about to be encoded.
    ///
    /// RFC 7296 §2.3: a request may only be sent while fewer than the peer's window size of
    /// requests are unanswered.
    pub fn allocate(&mut self) -> Result<u32, RequestWindowError> {
        if self.exhausted {
            return Err(RequestWindowError::MessageIdsExhausted);
        }
        if !self.can_send() {
            return Err(RequestWindowError::WindowFull {
                size: self.peer_window,
            });
        }
        let id = self.next_message_id;
        match id.checked_add(1) {
            Some(next) => self.next_message_id = next,
            None => self.exhausted = true,
        }
        Ok(id)
    }

    /// Records the encoded request with Message ID `message_id` (from [`Self::allocate`]),
    /// sent at `now`, so it can be retransmitted.
    pub fn sent(&mut self, message_id: u32, datagrams: Vec<Vec<u8>>, now: Instant) {
        let retransmission = Retransmission::new();
        let deadline = retransmission.first_deadline(now);
        self.pending.insert(
            message_id,
            PendingRequest {
                datagrams,
                retransmission,
                deadline,
            },
        );
    }

    /// A response with `message_id` arrived: the matching request, or `None` when no request
    /// with that ID is outstanding (a duplicate or forged response, to be dropped).
    pub fn on_response(&mut self, message_id: u32) -> Option<PendingRequest> {
        self.pending.remove(&message_id)
    }

    /// Whether a request with `message_id` is awaiting its response.
    pub fn is_pending(&self, message_id: u32) -> bool {
        self.pending.contains_key(&message_id)
    }

    /// How many requests are awaiting a response.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The earliest retransmission deadline of the outstanding requests.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Runs the retransmission schedule of every request due at `now`: the datagrams to send
    /// again, or [`RetransmitOutcome::PeerDead`] when one request has run out of retries.
    pub fn on_timeout(&mut self, now: Instant) -> RetransmitOutcome {
        let mut resend = Vec::new();
        for pending in self.pending.values_mut() {
            if pending.deadline > now {
                continue;
            }
            match pending.retransmission.on_timeout(now) {
                RetransmitDecision::Resend { next_deadline } => {
                    pending.deadline = next_deadline;
                    resend.extend(pending.datagrams.iter().cloned());
                }
                RetransmitDecision::GiveUp => return RetransmitOutcome::PeerDead,
            }
        }
        RetransmitOutcome::Resend(resend)
    }
}

/// The result of [`RequestWindow::on_timeout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetransmitOutcome {
    /// Send these datagrams again (possibly none).
    Resend(Vec<Vec<u8>>),
    /// A request went unanswered through the whole schedule (RFC 7296 §2.4).
    PeerDead,
}

/// What to do with a request from the peer, decided by its Message ID alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDisposition<'a> {
    /// A new request inside the window: process it, then [`ResponseWindow::responded`].
    Process,
    /// A retransmission of a request we already answered: send the cached response again
    /// without processing the request (RFC 7296 §2.1).
    Retransmit(&'a [Vec<u8>]),
    /// A retransmission of a request we are still working on; drop it.
    InProgress,
    /// A request older than the responses we keep; drop it.
    TooOld,
    /// A request beyond our window; drop it (RFC 7296 §2.3).
    BeyondWindow,
}

/// The Message IDs of requests the peer initiates, and our cached responses to them.
#[derive(Clone, Debug)]
pub struct ResponseWindow {
    size: u32,
    /// The lowest Message ID we have not answered yet; the window is `[low, low + size)`.
    low: u32,
    in_progress: BTreeSet<u32>,
    answered: BTreeMap<u32, Vec<Vec<u8>>>,
}

impl Default for ResponseWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseWindow {
    /// A fresh window expecting Message ID 0 first.
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A window expecting `message_id` as the peer's next request.
    pub fn starting_at(message_id: u32) -> Self {
        ResponseWindow {
            size: DEFAULT_WINDOW_SIZE,
            low: message_id,
            in_progress: BTreeSet::new(),
            answered: BTreeMap::new(),
        }
    }

    /// Our window size, the value to announce in SET_WINDOW_SIZE; clamped to
    /// `1..=MAX_WINDOW_SIZE`.
    pub fn set_size(&mut self, size: u32) {
        self.size = size.clamp(1, MAX_WINDOW_SIZE);
    }

    /// Our window size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Classifies a request by its Message ID; a [`RequestDisposition::Process`] result marks it
    /// in progress.
    pub fn on_request(&mut self, message_id: u32) -> RequestDisposition<'_> {
        let high = u64::from(self.low) + u64::from(self.size);
        if u64::from(message_id) >= high {
            return RequestDisposition::BeyondWindow;
        }
        if self.in_progress.contains(&message_id) {
            return RequestDisposition::InProgress;
        }
        if let Some(response) = self.answered.get(&message_id) {
            return RequestDisposition::Retransmit(response);
        }
        if message_id < self.low {
            return RequestDisposition::TooOld;
        }
        self.in_progress.insert(message_id);
        RequestDisposition::Process
    }

    /// Records the response to request `message_id` so retransmissions of the request get it
    /// again; the window slides past every answered ID at its bottom.
    pub fn responded(&mut self, message_id: u32, datagrams: Vec<Vec<u8>>) {
        if !self.in_progress.remove(&message_id) {
            return;
        }
        self.answered.insert(message_id, datagrams);
        while self.answered.contains_key(&self.low) {
            match self.low.checked_add(1) {
                Some(next) => self.low = next,
                None => break,
            }
        }

        // RFC 7296 §2.3: keep the responses to the last `size` requests below the window; older
        // retransmissions are dropped.
        let keep_from = self.low.saturating_sub(self.size);
        self.answered = self.answered.split_off(&keep_from);
    }

    /// A request we were processing was dropped without a response (e.g. it failed to decrypt);
    /// a retransmission of it will be processed again.
    pub fn abandoned(&mut self, message_id: u32) {
        self.in_progress.remove(&message_id);
    }

    /// The lowest Message ID not yet answered.
    pub fn expected(&self) -> u32 {
        self.low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::engine::timers::RETRANSMIT_MAX_RETRIES;

    fn dgram(tag: u8) -> Vec<Vec<u8>> {
        vec![vec![tag; 4]]
    }

    #[test]
    fn requests_get_consecutive_message_ids_from_zero() {
        let now = Instant::now();
        let mut w = RequestWindow::new();
        let a = w.allocate().unwrap();
        w.sent(a, dgram(1), now);
        assert_eq!(a, 0);
        assert!(w.on_response(a).is_some());
        assert_eq!(w.allocate().unwrap(), 1);
    }

    #[test]
    fn second_request_waits_while_the_default_window_is_full() {
        let now = Instant::now();
        let mut w = RequestWindow::new();
        let id = w.allocate().unwrap();
        w.sent(id, dgram(1), now);
        assert!(!w.can_send());
        assert_eq!(
            w.allocate(),
            Err(RequestWindowError::WindowFull { size: 1 })
        );
        w.on_response(id).unwrap();
        assert!(w.can_send());
    }

    #[test]
    fn larger_peer_window_allows_several_outstanding_requests() {
        let now = Instant::now();
        let mut w = RequestWindow::new();
        w.set_peer_window(3);
        for _ in 0..3 {
            let id = w.allocate().unwrap();
            w.sent(id, dgram(id as u8), now);
        }
        assert!(!w.can_send());
        assert_eq!(w.pending_len(), 3);
    }

    #[test]
    fn peer_window_is_clamped_and_zero_ignored() {
        let mut w = RequestWindow::new();
        w.set_peer_window(0);
        assert!(w.can_send());
        w.set_peer_window(u32::MAX);
        let now = Instant::now();
        for _ in 0..MAX_WINDOW_SIZE {
            let id = w.allocate().unwrap();
            w.sent(id, dgram(0), now);
        }
        assert!(!w.can_send());
    }

    #[test]
    fn response_with_unknown_message_id_matches_nothing() {
        let now = Instant::now();
        let mut w = RequestWindow::new();
        let id = w.allocate().unwrap();
        w.sent(id, dgram(1), now);
        assert!(w.on_response(7).is_none());
        assert!(w.on_response(id).is_some());
        // A duplicated response to the same request is dropped too.
        assert!(w.on_response(id).is_none());
    }

    #[test]
    fn message_ids_never_wrap() {
        let mut w = RequestWindow::starting_at(u32::MAX);
        assert_eq!(w.allocate(), Ok(u32::MAX));
        w.on_response(u32::MAX);
        assert_eq!(w.allocate(), Err(RequestWindowError::MessageIdsExhausted));
        assert_eq!(w.next_message_id(), None);
    }

    #[test]
    fn unanswered_request_is_resent_until_the_peer_is_dead() {
        let start = Instant::now();
        let mut w = RequestWindow::new();
        let id = w.allocate().unwrap();
        w.sent(id, dgram(9), start);
        assert_eq!(w.next_deadline(), Some(start + Duration::from_millis(500)));

        let mut resends = 0;
        loop {
            let now = w.next_deadline().unwrap();
            match w.on_timeout(now) {
                RetransmitOutcome::Resend(d) => {
                    assert_eq!(d, dgram(9));
                    resends += 1;
                }
                RetransmitOutcome::PeerDead => break,
            }
        }
        assert_eq!(resends, RETRANSMIT_MAX_RETRIES);
    }

    #[test]
    fn timeout_before_the_deadline_resends_nothing() {
        let start = Instant::now();
        let mut w = RequestWindow::new();
        let id = w.allocate().unwrap();
        w.sent(id, dgram(9), start);
        assert_eq!(
            w.on_timeout(start + Duration::from_millis(100)),
            RetransmitOutcome::Resend(vec![])
        );
    }

    #[test]
    fn fragmented_request_is_resent_whole() {
        let start = Instant::now();
        let mut w = RequestWindow::new();
        let id = w.allocate().unwrap();
        let fragments = vec![vec![1], vec![2], vec![3]];
        w.sent(id, fragments.clone(), start);
        let now = w.next_deadline().unwrap();
        assert_eq!(w.on_timeout(now), RetransmitOutcome::Resend(fragments));
    }

    #[test]
    fn retransmitted_request_gets_the_cached_response() {
        let mut w = ResponseWindow::new();
        assert_eq!(w.on_request(0), RequestDisposition::Process);
        w.responded(0, dgram(0xaa));
        assert_eq!(
            w.on_request(0),
            RequestDisposition::Retransmit(&dgram(0xaa)[..])
        );
        assert_eq!(w.expected(), 1);
    }

    #[test]
    fn request_being_processed_is_not_processed_twice() {
        let mut w = ResponseWindow::new();
        assert_eq!(w.on_request(0), RequestDisposition::Process);
        assert_eq!(w.on_request(0), RequestDisposition::InProgress);
        w.abandoned(0);
        assert_eq!(w.on_request(0), RequestDisposition::Process);
    }

    #[test]
    fn request_beyond_the_window_is_dropped() {
        let mut w = ResponseWindow::new();
        assert_eq!(w.on_request(1), RequestDisposition::BeyondWindow);
        assert_eq!(w.on_request(u32::MAX), RequestDisposition::BeyondWindow);
        assert_eq!(w.on_request(0), RequestDisposition::Process);
    }

    #[test]
    fn only_the_last_response_is_kept_with_window_one() {
        let mut w = ResponseWindow::new();
        for id in 0..3 {
            assert_eq!(w.on_request(id), RequestDisposition::Process);
            w.responded(id, dgram(id as u8));
        }
        assert_eq!(w.on_request(0), RequestDisposition::TooOld);
        assert_eq!(w.on_request(1), RequestDisposition::TooOld);
        assert_eq!(
            w.on_request(2),
            RequestDisposition::Retransmit(&dgram(2)[..])
        );
        assert_eq!(w.on_request(3), RequestDisposition::Process);
    }

    #[test]
    fn larger_window_accepts_requests_out_of_order() {
        let mut w = ResponseWindow::new();
        w.set_size(4);
        assert_eq!(w.on_request(2), RequestDisposition::Process);
        assert_eq!(w.on_request(0), RequestDisposition::Process);
        w.responded(2, dgram(2));
        assert_eq!(w.expected(), 0);
        w.responded(0, dgram(0));
        assert_eq!(w.expected(), 1);
        assert_eq!(w.on_request(1), RequestDisposition::Process);
        w.responded(1, dgram(1));
        assert_eq!(w.expected(), 3);
        assert_eq!(w.on_request(6), RequestDisposition::Process);
        assert_eq!(w.on_request(7), RequestDisposition::BeyondWindow);
        assert_eq!(
            w.on_request(0),
            RequestDisposition::Retransmit(&dgram(0)[..])
        );
    }

    #[test]
    fn response_for_a_request_not_in_progress_is_ignored() {
        let mut w = ResponseWindow::new();
        w.responded(0, dgram(1));
        assert_eq!(w.expected(), 0);
        assert_eq!(w.on_request(0), RequestDisposition::Process);
    }
}
