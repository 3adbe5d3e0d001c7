//! Which XFRM events should wake the reconciler: anything that may have changed our objects
//! behind our back. Events only wake it; the reconcile itself compares full dumps.

use xfrm::{Event, Ownership};

/// True when `event` may mean our kernel objects differ from what we last programmed: a
/// state or policy of ours (or one that cannot be attributed) changed by someone else, a
/// flush, a hard expire, or lost events. Our own changes and others' objects do not count.
pub fn needs_reconcile(event: &Event, ownership: &Ownership) -> bool {
    let maybe_ours = event.is_ours(ownership) != Some(false);
    match event {
        Event::Lost => true,
        // A hard expire means the kernel deleted the state; a soft one asks the IKE layer to
        // rekey, as do acquires and mapping changes: nothing for the kernel layer to repair.
        Event::Expire { hard, .. } => *hard && maybe_ours,
        Event::Acquire { .. } | Event::Mapping { .. } | Event::PolicyExpire { .. } => false,
        Event::StateAdded { by_us, .. }
        | Event::StateUpdated { by_us, .. }
        | Event::StateDeleted { by_us, .. }
        | Event::StatesFlushed { by_us, .. }
        | Event::PolicyAdded { by_us, .. }
        | Event::PolicyUpdated { by_us, .. }
        | Event::PolicyDeleted { by_us, .. }
        | Event::PoliciesFlushed { by_us } => !*by_us && maybe_ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_and_lost_events_wake_our_own_changes_and_acquires_do_not() {
        let own = Ownership::reqids(10..=20);
        assert!(needs_reconcile(
            &Event::StatesFlushed {
                proto: 0,
                by_us: false
            },
            &own
        ));
        assert!(needs_reconcile(&Event::Lost, &own));
        assert!(needs_reconcile(
            &Event::PolicyDeleted {
                policy: None,
                by_us: false
            },
            &own
        ));
        assert!(!needs_reconcile(
            &Event::PoliciesFlushed { by_us: true },
            &own
        ));
        assert!(!needs_reconcile(
            &Event::Acquire {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                reqid: Some(11),
                selector: xfrm::Selector::host_to_host(
                    "192.0.2.1".parse().unwrap(),
                    "192.0.2.2".parse().unwrap()
                ),
                dir: None,
            },
            &own
        ));
    }
}

/// Why [`next_wakeup`] returned.
#[derive(Debug)]
pub enum Wakeup {
    /// An event that may have changed our objects ([`needs_reconcile`]).
    KernelChanged(Box<Event>),
    /// The retry delay of a failed reconcile ran out.
    Retry,
    /// The periodic reconcile is due.
    Periodic,
    /// The event subscription failed; resubscribe, and reconcile meanwhile.
    EventsFailed(xfrm::Error),
}

/// Waits until the kernel layer should reconcile again: an event that [`needs_reconcile`], the
/// `retry` delay (from the last report), or `period`, whichever comes first. Events that do not
/// concern us are skipped. The caller passes events the IKE layer wants (acquire, expire) on
/// through its own subscription.
pub async fn next_wakeup(
    events: &mut xfrm::Events,
    retry: Option<std::time::Duration>,
    period: std::time::Duration,
) -> Wakeup {
    let ownership = events.ownership().clone();
    let (deadline, on_deadline) = match retry {
        Some(r) if r < period => (r, Wakeup::Retry),
        _ => (period, Wakeup::Periodic),
    };
    let timer = tokio::time::sleep(deadline);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            () = &mut timer => return on_deadline,
            e = events.next() => match e {
                Ok(e) if needs_reconcile(&e, &ownership) => return Wakeup::KernelChanged(Box::new(e)),
                Ok(_) => {}
                Err(e) => return Wakeup::EventsFailed(e),
            },
        }
    }
}
