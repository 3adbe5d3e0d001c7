//! The kernel layer against the host kernel's real XFRM tables, each test in a fresh network
//! namespace of its own (the thread unshares; the namespace goes when the thread ends). The
//! host kernel has XFRM but no ESP, so policies are tested here and states only for their
//! failure path; `examples/kernel_guest_checks.rs` covers states in the qemu guest.
//!
//! Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN for XFRM) and `ip` from iproute2.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use controller::kernel::{
    needs_reconcile, next_wakeup, AeadAlgorithm, ChildKind, ChildSa, Desired, KernelConfig,
    KernelSync, ObjectRef, Operation, ProtectedPair, SaDirection, Wakeup,
};
use ovn_ipsec_tests::netns::{self, in_fresh_netns};
use xfrm::{Event, Key, Lifetimes};

const EVENT_WAIT: Duration = Duration::from_secs(5);

/// Runs `ip ARGS…` in the calling thread's namespace and returns stdout; panics on failure.
fn ip(args: &[&str]) -> String {
    netns::ip(args).unwrap_or_else(|e| panic!("{e}"))
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config() -> KernelConfig {
    KernelConfig {
        reqids: 5000..=9999,
        ..KernelConfig::default()
    }
}

fn v4_pair(n: u32, index: u32) -> ProtectedPair {
    let remote = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 1, 0, 0)) + n);
    ProtectedPair::geneve(addr("10.0.0.1"), IpAddr::V4(remote), index)
}

fn v6_pair(index: u32) -> ProtectedPair {
    ProtectedPair::geneve(addr("2001:db8::1"), addr("2001:db8::2"), index)
}

fn child_sa(pair: u32, child: ChildKind, dir: SaDirection, spi: u32) -> ChildSa {
    ChildSa {
        pair,
        child,
        dir,
        spi,
        algorithm: AeadAlgorithm::AesGcm256,
        key: Key::new(&[3; 36]),
        selector: None,
        encap: None,
        lifetimes: Lifetimes::default(),
        replay_window: 1024,
        esn: true,
    }
}

fn policy_count(listing: &str) -> usize {
    listing.matches("proto esp reqid").count()
}

#[test]
fn new_pairs_get_four_esp_required_policies_each_and_a_second_reconcile_changes_nothing() {
    in_fresh_netns(|| async {
        let mut sync = KernelSync::start(config()).await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0), v6_pair(1)],
            child_sas: vec![],
        };
        let r = sync.reconcile(&desired).await.unwrap();
        assert!(r.converged(), "{r:?}");
        assert_eq!((r.policies_added, r.applied()), (8, 8));

        let listing = ip(&["xfrm", "policy", "list"]);
        for needle in [
            "src 10.0.0.1/32 dst 10.1.0.2/32 proto udp dport 6081",
            "src 10.1.0.2/32 dst 10.0.0.1/32 proto udp sport 6081",
            "src 10.0.0.1/32 dst 10.1.0.2/32 proto udp sport 6081",
            "src 10.1.0.2/32 dst 10.0.0.1/32 proto udp dport 6081",
            "src 2001:db8::1/128 dst 2001:db8::2/128 proto udp dport 6081",
            "src 2001:db8::2/128 dst 2001:db8::1/128 proto udp dport 6081",
            "proto esp reqid 5000 mode transport",
            "proto esp reqid 5001 mode transport",
            "proto esp reqid 5002 mode transport",
            "proto esp reqid 5003 mode transport",
        ] {
            assert!(listing.contains(needle), "{needle} missing from\n{listing}");
        }
        // Required templates ("level use" would let plaintext through), no block action.
        assert!(!listing.contains("level use"), "{listing}");
        assert!(!listing.contains("action block"), "{listing}");
        assert_eq!(policy_count(&listing), 8);

        let again = sync.reconcile(&desired).await.unwrap();
        assert_eq!(again.applied(), 0, "{again:?}");
        assert!(again.retry_after.is_none());
    });
}

#[test]
fn states_the_kernel_refuses_are_reported_with_growing_retry_delays_while_policies_stay() {
    in_fresh_netns(|| async {
        let mut sync = KernelSync::start(config()).await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0)],
            child_sas: vec![
                child_sa(0, ChildKind::Out, SaDirection::Outbound, 0x1001),
                child_sa(0, ChildKind::Out, SaDirection::Inbound, 0x1002),
            ],
        };
        let first = sync.reconcile(&desired).await.unwrap();
        assert_eq!(first.policies_added, 4, "{first:?}");
        assert_eq!(first.failures.len(), 2, "{first:?}");
        for f in &first.failures {
            assert_eq!(f.operation, Operation::Add);
            assert!(matches!(f.object, ObjectRef::State(_)));
            // The host kernel has no ESP: the error says so instead of a bare errno.
            assert!(f.error.is_missing_kernel_support(), "{:?}", f.error);
        }
        assert_eq!(first.retry_after, Some(Duration::from_millis(200)));
        assert_eq!(sync.retry_after(), Some(Duration::from_millis(200)));

        let second = sync.reconcile(&desired).await.unwrap();
        assert_eq!((second.applied(), second.failures.len()), (0, 2));
        assert_eq!(second.retry_after, Some(Duration::from_millis(400)));

        // Dropping the SAs from the desired set converges and resets the backoff.
        let third = sync
            .reconcile(&Desired {
                child_sas: vec![],
                ..desired.clone()
            })
            .await
            .unwrap();
        assert!(
            third.converged() && third.retry_after.is_none(),
            "{third:?}"
        );
        assert_eq!(policy_count(&ip(&["xfrm", "policy", "list"])), 4);
    });
}

#[test]
fn removing_a_pair_removes_exactly_its_policies() {
    in_fresh_netns(|| async {
        let mut sync = KernelSync::start(config()).await.unwrap();
        let mut desired = Desired {
            pairs: vec![v4_pair(2, 0), v4_pair(3, 1), v6_pair(2)],
            child_sas: vec![],
        };
        sync.reconcile(&desired).await.unwrap();
        desired.pairs.remove(1);
        let r = sync.reconcile(&desired).await.unwrap();
        assert_eq!((r.policies_deleted, r.applied()), (4, 4), "{r:?}");
        let listing = ip(&["xfrm", "policy", "list"]);
        assert!(!listing.contains("10.1.0.3"), "{listing}");
        assert!(listing.contains("10.1.0.2") && listing.contains("2001:db8::2"));
        assert_eq!(policy_count(&listing), 8);
    });
}

#[test]
fn foreign_policies_are_never_touched_and_a_conflicting_one_is_reported_not_replaced() {
    in_fresh_netns(|| async {
        // Another IPsec user's policies: one elsewhere, one on exactly our selector.
        ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            "10.9.9.1",
            "dst",
            "10.9.9.2",
            "dir",
            "out",
            "tmpl",
            "proto",
            "esp",
            "reqid",
            "7",
            "mode",
            "transport",
        ]);
        ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            "10.0.0.1/32",
            "dst",
            "10.1.0.3/32",
            "proto",
            "udp",
            "dport",
            "6081",
            "dir",
            "out",
            "tmpl",
            "proto",
            "esp",
            "reqid",
            "8",
            "mode",
            "transport",
        ]);
        let mut sync = KernelSync::start(config()).await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0), v4_pair(3, 1)],
            child_sas: vec![],
        };
        let r = sync.reconcile(&desired).await.unwrap();
        assert_eq!(r.policies_added, 7, "{r:?}");
        assert_eq!(r.failures.len(), 1, "{r:?}");
        assert!(matches!(r.failures[0].error, xfrm::Error::Exists { .. }));
        assert!(r.retry_after.is_some());

        let listing = ip(&["xfrm", "policy", "list"]);
        assert!(
            listing.contains("reqid 7 ") && listing.contains("reqid 8 "),
            "{listing}"
        );

        let removed = sync.remove_all().await.unwrap();
        assert_eq!((removed.policies, removed.states), (7, 0));
        let listing = ip(&["xfrm", "policy", "list"]);
        assert_eq!(policy_count(&listing), 2, "{listing}");
        assert!(
            listing.contains("reqid 7 ") && listing.contains("reqid 8 "),
            "{listing}"
        );
    });
}

#[test]
fn policies_flushed_behind_our_back_wake_the_reconciler_and_are_restored() {
    in_fresh_netns(|| async {
        let mut sync = KernelSync::start(config()).await.unwrap();
        let mut events = sync.kernel().subscribe().await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0)],
            child_sas: vec![],
        };
        sync.reconcile(&desired).await.unwrap();

        ip(&["xfrm", "policy", "flush"]);
        let own = sync.config().ownership();
        let deadline = Instant::now() + EVENT_WAIT;
        let mut woken = false;
        while Instant::now() < deadline && !woken {
            let e = tokio::time::timeout(EVENT_WAIT, events.next())
                .await
                .expect("an event within 5 s")
                .unwrap();
            // Our own additions come first and must not wake it.
            if matches!(e, Event::PolicyAdded { by_us: true, .. }) {
                assert!(!needs_reconcile(&e, &own));
            }
            woken =
                matches!(e, Event::PoliciesFlushed { by_us: false }) && needs_reconcile(&e, &own);
        }
        assert!(woken, "no flush event woke the reconciler");

        let r = sync.reconcile(&desired).await.unwrap();
        assert_eq!((r.policies_added, r.applied()), (4, 4), "{r:?}");
        assert_eq!(policy_count(&ip(&["xfrm", "policy", "list"])), 4);
    });
}

#[test]
fn a_thousand_pairs_reconcile_in_one_batch_and_converge() {
    in_fresh_netns(|| async {
        const PAIRS: u32 = 1000;
        let mut sync = KernelSync::start(config()).await.unwrap();
        let desired = Desired {
            pairs: (0..PAIRS).map(|i| v4_pair(2 + i, i)).collect(),
            child_sas: vec![],
        };
        let t = Instant::now();
        let r = sync.reconcile(&desired).await.unwrap();
        let first = t.elapsed();
        assert!(r.converged(), "{:?}", r.failures.first());
        assert_eq!(r.policies_added, 4000);

        let t = Instant::now();
        let again = sync.reconcile(&desired).await.unwrap();
        let noop = t.elapsed();
        assert_eq!(again.applied(), 0);
        assert_eq!(sync.kernel().dump_policies().await.unwrap().len(), 4000);

        // Half the pairs leave.
        let half = Desired {
            pairs: desired.pairs[..500].to_vec(),
            child_sas: vec![],
        };
        let t = Instant::now();
        let r = sync.reconcile(&half).await.unwrap();
        let removal = t.elapsed();
        assert_eq!(r.policies_deleted, 2000);
        // Not a timing assertion: the numbers are for the report (criterion owns speed targets).
        eprintln!(
            "1000 pairs: first reconcile (4000 policies) {first:?}, no-op reconcile {noop:?}, \
             removing 500 pairs {removal:?}"
        );
    });
}

#[test]
fn with_a_mark_configured_our_policies_carry_it_and_reconcile_is_stable() {
    in_fresh_netns(|| async {
        let config = KernelConfig {
            mark: Some(xfrm::Mark {
                value: 0x10,
                mask: 0xf0,
            }),
            ..config()
        };
        let mut sync = KernelSync::start(config).await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0), v6_pair(1)],
            child_sas: vec![],
        };
        let r = sync.reconcile(&desired).await.unwrap();
        assert_eq!(r.policies_added, 8, "{r:?}");
        let listing = ip(&["xfrm", "policy", "list"]);
        assert_eq!(listing.matches("mark 0x10/0xf0").count(), 8, "{listing}");
        let again = sync.reconcile(&desired).await.unwrap();
        assert_eq!(again.applied(), 0, "{again:?}");
    });
}

#[test]
fn next_wakeup_skips_our_own_changes_and_wakes_on_a_flush_or_the_timers() {
    in_fresh_netns(|| async {
        let mut sync = KernelSync::start(config()).await.unwrap();
        let mut events = sync.kernel().subscribe().await.unwrap();
        let desired = Desired {
            pairs: vec![v4_pair(2, 0)],
            child_sas: vec![],
        };
        sync.reconcile(&desired).await.unwrap();

        // Our own four additions are pending as events but do not wake it.
        let w = next_wakeup(&mut events, None, Duration::from_millis(300)).await;
        assert!(matches!(w, Wakeup::Periodic), "{w:?}");
        let w = next_wakeup(
            &mut events,
            Some(Duration::from_millis(50)),
            Duration::from_secs(60),
        )
        .await;
        assert!(matches!(w, Wakeup::Retry), "{w:?}");

        ip(&["xfrm", "policy", "flush"]);
        let w = next_wakeup(&mut events, None, EVENT_WAIT).await;
        let Wakeup::KernelChanged(e) = w else {
            panic!("woke for {w:?}, want the flush")
        };
        assert!(
            matches!(*e, Event::PoliciesFlushed { by_us: false }),
            "{e:?}"
        );
    });
}
