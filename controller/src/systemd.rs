//! systemd service notifications (sd_notify(3)) for `Type=notify` units: `READY=1` once the
//! Southbound view is synced and the kernel holds every policy of it, `STATUS=` with the peer
//! count, `WATCHDOG=1` from the daemon loop at half the `WATCHDOG_USEC` interval (a hung loop
//! stops pinging and systemd kills it), `RELOADING=1` / `READY=1` around a SIGHUP reload and
//! `STOPPING=1` on SIGTERM.
//!
//! Without `NOTIFY_SOCKET` (run in the foreground, in a container) every call is a no-op.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::daemon::Daemon;
use crate::desired::DesiredState;
use crate::southbound::Southbound;

/// The environment variable systemd names its notification socket in.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// The shortest watchdog ping interval we follow; a smaller `WATCHDOG_USEC` would make the
/// loop spin on pings.
pub const MIN_WATCHDOG_INTERVAL: Duration = Duration::from_millis(10);

/// Where notifications go.
enum Channel {
    /// No service manager listens.
    Off,
    /// The datagram socket in `NOTIFY_SOCKET`.
    Socket {
        /// A send failed already (logged once, not again).
        failed_once: bool,
    },
    /// Kept in memory, for tests of the logic.
    #[cfg(test)]
    Recorder(Vec<String>),
}

/// The least time between two `STATUS=` updates: while a large mesh converges the peer count
/// changes with nearly every event, and systemd needs no more than a line a second.
pub const STATUS_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The daemon's side of the systemd notification protocol: what was already said, and when the
/// watchdog is due.
pub struct Notifier {
    channel: Channel,
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises.
    watchdog_interval: Option<Duration>,
    next_watchdog: Option<Instant>,
    /// The initial Southbound view has been applied.
    southbound_synced: bool,
    /// `READY=1` was sent (since the start, or since the last reload began).
    ready: bool,
    /// Whether `READY=1` was ever sent: a reload before that is not announced.
    started: bool,
    /// The last `STATUS=` text sent.
    status: Option<String>,
    /// When it was sent.
    status_sent_at: Option<Instant>,
    /// A changed status waits for [`STATUS_MIN_INTERVAL`] to pass; this is when.
    status_due: Option<Instant>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID`); without a
    /// notification socket the notifier stays silent and keeps no watchdog.
    pub fn from_env(now: Instant) -> Notifier {
        if std::env::var_os(NOTIFY_SOCKET_ENV).is_none() {
            return Notifier::new(Channel::Off, None, now);
        }
        let interval = sd_notify::watchdog_enabled().map(|usec| usec / 2);
        Notifier::new(Channel::Socket { failed_once: false }, interval, now)
    }

    fn new(channel: Channel, watchdog_interval: Option<Duration>, now: Instant) -> Notifier {
        let watchdog_interval = watchdog_interval.map(|i| i.max(MIN_WATCHDOG_INTERVAL));
        Notifier {
            channel,
            watchdog_interval,
            next_watchdog: watchdog_interval.map(|_| now),
            southbound_synced: false,
            ready: false,
            started: false,
            status: None,
            status_sent_at: None,
            status_due: None,
        }
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        !matches!(self.channel, Channel::Off)
    }

    /// The watchdog ping interval in use (half of `WATCHDOG_USEC`), if the watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_interval
    }

    /// When the loop must wake up next: to ping the watchdog, or to send a status change that
    /// waited for [`STATUS_MIN_INTERVAL`].
    pub fn deadline(&self) -> Option<Instant> {
        match (self.next_watchdog, self.status_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Notes that the initial Southbound view has been applied to the peer table.
    pub fn southbound_synced(&mut self) {
        self.southbound_synced = true;
    }

    /// One step of the loop: pings the watchdog when due, says `READY=1` the first time
    /// `programmed` holds after the Southbound sync, and sends `status` when it changed (at
    /// most once per [`STATUS_MIN_INTERVAL`], except together with `READY=1`).
    pub fn step(&mut self, now: Instant, programmed: bool, status: String) {
        if !self.enabled() {
            return;
        }
        let mut states = Vec::new();
        let ready_now = !self.ready && self.southbound_synced && programmed;
        if ready_now {
            states.push(NotifyState::Ready);
        }
        let mut status_sent = false;
        if self.status.as_deref() != Some(status.as_str()) {
            let allowed_at = self.status_sent_at.map(|t| t + STATUS_MIN_INTERVAL);
            if ready_now || allowed_at.is_none_or(|t| t <= now) {
                states.push(NotifyState::Status(&status));
                status_sent = true;
                self.status_due = None;
            } else {
                self.status_due = allowed_at;
            }
        } else {
            // Changed back before it was sent: nothing to say.
            self.status_due = None;
        }
        if let (Some(interval), Some(due)) = (self.watchdog_interval, self.next_watchdog) {
            if due <= now {
                states.push(NotifyState::Watchdog);
                self.next_watchdog = Some(now + interval);
            }
        }
        if states.is_empty() {
            return;
        }
        self.send(&states);
        if ready_now {
            self.ready = true;
            self.started = true;
            debug!("told systemd we are ready");
        }
        if status_sent {
            self.status = Some(status);
            self.status_sent_at = Some(now);
        }
    }

    /// Before a reload: `RELOADING=1` with the monotonic time systemd ≥ 253 wants beside it.
    /// Nothing is said before the first `READY=1` (systemd still waits for the start).
    pub fn reloading(&mut self) {
        if !self.started {
            return;
        }
        self.ready = false;
        match NotifyState::monotonic_usec_now() {
            Ok(t) => self.send(&[NotifyState::Reloading, t]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// After a reload, whether it applied or kept the running configuration: `READY=1`.
    pub fn reloaded(&mut self) {
        if !self.started || self.ready {
            return;
        }
        self.ready = true;
        self.send(&[NotifyState::Ready]);
    }

    /// On SIGTERM or SIGINT: `STOPPING=1`.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        match &mut self.channel {
            Channel::Off => {}
            Channel::Socket { failed_once } => {
                if let Err(error) = sd_notify::notify(states) {
                    if !*failed_once {
                        warn!(%error, "cannot notify systemd (NOTIFY_SOCKET); not saying it again");
                        *failed_once = true;
                    }
                }
            }
            #[cfg(test)]
            Channel::Recorder(sent) => {
                sent.push(states.iter().map(|s| format!("{s}\n")).collect());
            }
        }
    }
}

/// What the `STATUS=` line is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFacts {
    /// The initial Southbound view has been applied.
    pub synced: bool,
    /// The Southbound connection is up now.
    pub connected: bool,
    /// What the Southbound view asks for.
    pub state: DesiredState,
    /// Desired peers with an established IKE SA.
    pub up: usize,
    /// Desired peers.
    pub desired: usize,
}

/// The `STATUS=` text: how many desired peers have an IKE SA (or why there are none), and
/// whether the Southbound DB is reachable.
pub fn status_line(f: StatusFacts) -> String {
    if !f.synced {
        return "waiting for the Southbound DB".to_owned();
    }
    let what = match f.state {
        DesiredState::Protecting => format!("{}/{} peers up", f.up, f.desired),
        DesiredState::IpsecDisabled => "IPsec is off in the Southbound DB".to_owned(),
        DesiredState::LocalChassisMissing => {
            "this chassis is not in the Southbound DB yet".to_owned()
        }
    };
    if f.connected {
        what
    } else {
        format!("{what}; Southbound unreachable, keeping every SA")
    }
}

impl Daemon {
    /// Takes the Southbound events that arrive together with `Connected` (the monitor queues
    /// the initial view right behind it), so that readiness is judged on that view.
    pub(crate) async fn take_initial_view(&mut self, sb: &mut Southbound) {
        // Limitation: this relies on the monitor queueing the initial change set before it
        // yields; should tokio's cooperative budget run out on exactly this poll, the view is
        // applied one loop turn later and READY=1 could precede its policies.
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, sb.next()).await {
            self.on_southbound(ev).await;
        }
        if !self.systemd.southbound_synced {
            debug!("initial Southbound view applied");
        }
        self.systemd.southbound_synced();
    }

    /// Tells systemd (and `/readyz`) what changed since the last step: ready once the view is
    /// synced and the last reconcile left nothing to retry with nothing more due; the peer
    /// count; the watchdog ping.
    pub(crate) fn notify_systemd(&mut self) {
        let programmed = !self.reconcile_due && self.kernel_retry.is_none();
        if self.systemd.southbound_synced && programmed && !self.metrics.is_ready() {
            self.metrics.set_ready(true);
        }
        let up = self.peers.up_count();
        let status = status_line(StatusFacts {
            synced: self.systemd.southbound_synced,
            connected: self.southbound.connected,
            state: self.desired.state,
            up,
            desired: self.desired.peers.len(),
        });
        self.systemd.step(Instant::now(), programmed, status);
    }

    /// A reload announced to systemd: `RELOADING=1`, the reload, `READY=1`.
    pub(crate) async fn reload_notifying(&mut self) {
        self.systemd.reloading();
        self.reload().await;
        self.systemd.reloaded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(watchdog: Option<Duration>, now: Instant) -> Notifier {
        Notifier::new(Channel::Recorder(Vec::new()), watchdog, now)
    }

    fn facts(synced: bool, connected: bool, up: usize, desired: usize) -> String {
        status_line(StatusFacts {
            synced,
            connected,
            state: DesiredState::Protecting,
            up,
            desired,
        })
    }

    fn sent(n: &mut Notifier) -> Vec<String> {
        match &mut n.channel {
            Channel::Recorder(v) => std::mem::take(v),
            _ => unreachable!(),
        }
    }

    #[test]
    fn ready_waits_for_the_southbound_sync_and_the_programmed_kernel() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.step(t0, true, facts(false, false, 0, 0));
        assert_eq!(sent(&mut n), ["STATUS=waiting for the Southbound DB\n"]);

        n.southbound_synced();
        let t1 = t0 + STATUS_MIN_INTERVAL;
        n.step(t1, false, facts(true, true, 0, 2));
        assert_eq!(sent(&mut n), ["STATUS=0/2 peers up\n"]);

        n.step(t1, true, facts(true, true, 0, 2));
        assert_eq!(sent(&mut n), ["READY=1\n"]);

        n.step(t1, true, facts(true, true, 0, 2));
        assert!(sent(&mut n).is_empty(), "nothing changed: nothing sent");
    }

    #[test]
    fn status_is_sent_only_when_the_peer_count_changes() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.southbound_synced();
        n.step(t0, true, facts(true, true, 41, 42));
        assert_eq!(sent(&mut n), ["READY=1\nSTATUS=41/42 peers up\n"]);
        let t1 = t0 + STATUS_MIN_INTERVAL;
        n.step(t1, true, facts(true, true, 41, 42));
        n.step(t1, true, facts(true, true, 42, 42));
        let t2 = t1 + STATUS_MIN_INTERVAL;
        n.step(t2, true, facts(true, false, 42, 42));
        assert_eq!(
            sent(&mut n),
            [
                "STATUS=42/42 peers up\n",
                "STATUS=42/42 peers up; Southbound unreachable, keeping every SA\n"
            ]
        );
    }

    #[test]
    fn status_changes_within_a_second_are_held_back_and_the_last_one_sent() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.step(t0, false, facts(true, true, 0, 3));
        assert_eq!(sent(&mut n), ["STATUS=0/3 peers up\n"]);
        assert_eq!(n.deadline(), None);

        let soon = t0 + Duration::from_millis(100);
        n.step(soon, false, facts(true, true, 1, 3));
        n.step(soon, false, facts(true, true, 2, 3));
        assert!(sent(&mut n).is_empty(), "held back");
        assert_eq!(n.deadline(), Some(t0 + STATUS_MIN_INTERVAL));

        n.step(t0 + STATUS_MIN_INTERVAL, false, facts(true, true, 2, 3));
        assert_eq!(sent(&mut n), ["STATUS=2/3 peers up\n"]);
        assert_eq!(n.deadline(), None);
    }

    #[test]
    fn a_status_change_undone_before_it_was_sent_is_not_sent() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.step(t0, false, facts(true, true, 0, 3));
        sent(&mut n);
        let soon = t0 + Duration::from_millis(100);
        n.step(soon, false, facts(true, true, 1, 3));
        n.step(soon, false, facts(true, true, 0, 3));
        assert_eq!(n.deadline(), None);
        n.step(t0 + STATUS_MIN_INTERVAL, false, facts(true, true, 0, 3));
        assert!(sent(&mut n).is_empty());
    }

    #[test]
    fn status_says_why_there_are_no_peers() {
        let line = |state, connected| {
            status_line(StatusFacts {
                synced: true,
                connected,
                state,
                up: 0,
                desired: 0,
            })
        };
        assert_eq!(
            line(DesiredState::IpsecDisabled, true),
            "IPsec is off in the Southbound DB"
        );
        assert_eq!(
            line(DesiredState::LocalChassisMissing, false),
            "this chassis is not in the Southbound DB yet; Southbound unreachable, keeping every SA"
        );
    }

    #[test]
    fn watchdog_pings_at_the_interval_from_the_first_step() {
        let t0 = Instant::now();
        let half = Duration::from_secs(15);
        let mut n = recorder(Some(half), t0);
        assert_eq!(n.deadline(), Some(t0));
        n.step(t0, false, "s".into());
        assert_eq!(sent(&mut n), ["STATUS=s\nWATCHDOG=1\n"]);
        assert_eq!(n.deadline(), Some(t0 + half));

        n.step(t0 + half - Duration::from_millis(1), false, "s".into());
        assert!(sent(&mut n).is_empty());
        n.step(t0 + half, false, "s".into());
        assert_eq!(sent(&mut n), ["WATCHDOG=1\n"]);
        assert_eq!(n.deadline(), Some(t0 + half + half));
    }

    #[test]
    fn a_tiny_watchdog_interval_is_raised_to_the_minimum() {
        let t0 = Instant::now();
        let n = recorder(Some(Duration::from_micros(1)), t0);
        assert_eq!(n.watchdog_interval(), Some(MIN_WATCHDOG_INTERVAL));
    }

    #[test]
    fn reload_is_announced_only_after_the_start_and_ends_ready() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.reloading();
        n.reloaded();
        assert!(sent(&mut n).is_empty(), "systemd still waits for the start");

        n.southbound_synced();
        n.step(t0, true, "s".into());
        sent(&mut n);
        n.reloading();
        n.reloaded();
        let msgs = sent(&mut n);
        assert_eq!(msgs.len(), 2);
        assert!(
            msgs[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{msgs:?}"
        );
        assert_eq!(msgs[1], "READY=1\n");
    }

    #[test]
    fn stopping_is_sent_on_request() {
        let t0 = Instant::now();
        let mut n = recorder(None, t0);
        n.stopping();
        assert_eq!(sent(&mut n), ["STOPPING=1\n"]);
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_is_kept() {
        let t0 = Instant::now();
        let mut n = Notifier::new(Channel::Off, None, t0);
        assert!(!n.enabled());
        n.southbound_synced();
        n.step(t0, true, "s".into());
        n.stopping();
        assert_eq!(n.deadline(), None);
    }
}
