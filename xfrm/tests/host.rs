//! Host tests against the real kernel's XFRM netlink, each in a fresh network namespace of its
//! own (the thread unshares; the namespace disappears when the thread ends). The host kernel
//! has XFRM but no ESP, so states can only be shown to fail clearly here; the guest checks
//! (`examples/guest_checks.rs`) cover ESP.
//!
//! Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN for XFRM) and `ip` from iproute2.

use std::net::IpAddr;
use std::time::Duration;

use ovn_ipsec_tests::netns::{self, in_fresh_netns};
use xfrm::{
    Action, Algorithm, Change, Direction, Error, Event, Kernel, Mode, Ownership, Policy, PolicyId,
    Selector, SpiRange, SpiRequest, State, StateId, Template,
};

const OURS: std::ops::RangeInclusive<u32> = 1000..=1999;
const FOREIGN_REQID: u32 = 7;
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// Runs `ip ARGS…` in the calling thread's namespace and returns stdout; panics on failure.
fn ip(args: &[&str]) -> String {
    netns::ip(args).unwrap_or_else(|e| panic!("{e}"))
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn geneve_out(src: &str, dst: &str, reqid: u32) -> Policy {
    let sel = Selector::udp(addr(src), addr(dst), None, Some(6081));
    Policy::allow(
        PolicyId::new(sel, Direction::Out),
        100,
        vec![Template::transport(reqid)],
    )
}

async fn kernel() -> Kernel {
    Kernel::connect(Ownership::reqids(OURS)).await.unwrap()
}

#[test]
fn policies_add_update_delete_and_dump_for_ipv4_and_ipv6_allow_and_block() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let v4 = geneve_out("192.0.2.1", "192.0.2.2", 1001);
        let v6 = geneve_out("2001:db8::1", "2001:db8::2", 1002);
        let v4_in = {
            let sel = Selector::udp(addr("192.0.2.2"), addr("192.0.2.1"), None, Some(6081));
            Policy::allow(
                PolicyId::new(sel, Direction::In),
                100,
                vec![Template::transport(1001)],
            )
        };
        let block6 = {
            let sel = Selector::udp(addr("2001:db8::1"), addr("2001:db8::3"), None, Some(6081));
            Policy::block(PolicyId::new(sel, Direction::Out), 50, 1003)
        };
        for p in [&v4, &v6, &v4_in, &block6] {
            k.add_policy(p).await.unwrap();
        }

        let mut dumped: Vec<Policy> = k
            .dump_policies()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.policy)
            .collect();
        dumped.sort_by_key(|p| p.templates[0].reqid * 10 + p.id.dir as u32);
        let mut expected = vec![v4.clone(), v4_in.clone(), v6.clone(), block6.clone()];
        expected.sort_by_key(|p| p.templates[0].reqid * 10 + p.id.dir as u32);
        assert_eq!(dumped, expected);

        // What iproute2 sees agrees with what we meant.
        let listing = ip(&["xfrm", "policy", "list"]);
        assert!(
            listing.contains("src 192.0.2.1/32 dst 192.0.2.2/32 proto udp dport 6081"),
            "{listing}"
        );
        assert!(
            listing.contains("src 2001:db8::1/128 dst 2001:db8::2/128 proto udp dport 6081"),
            "{listing}"
        );
        assert!(listing.contains("action block"), "{listing}");
        assert!(
            listing.contains("proto esp reqid 1001 mode transport"),
            "{listing}"
        );

        // Adding again is EEXIST; update replaces (priority change), delete removes.
        assert!(matches!(k.add_policy(&v4).await, Err(Error::Exists { .. })));
        let mut v4b = v4.clone();
        v4b.priority = 7;
        v4b.action = Action::Block;
        k.update_policy(&v4b).await.unwrap();
        let now: Vec<_> = k.dump_policies().await.unwrap();
        assert!(now.iter().any(|p| p.policy == v4b), "{now:?}");
        k.delete_policy(&v6.id).await.unwrap();
        assert!(matches!(
            k.delete_policy(&v6.id).await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(k.dump_policies().await.unwrap().len(), 3);

        let report = k.cleanup().await.unwrap();
        assert_eq!((report.policies, report.states), (3, 0));
        assert!(ip(&["xfrm", "policy", "list"]).trim().is_empty());
    });
}

#[test]
fn spi_allocation_stays_within_the_range_and_reports_exhaustion() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        // The kernel probes random SPIs of the range as many times as the range is wide, so
        // a nearly full range can report exhaustion early: use half of it.
        let range = SpiRange::new(0x1000, 0x100f).unwrap();
        let mut spis = Vec::new();
        for i in 0..8u8 {
            let req = SpiRequest {
                src: addr(&format!("192.0.2.{}", 10 + i)),
                dst: addr("192.0.2.1"),
                reqid: 1000 + u32::from(i),
                mode: Mode::Transport,
                mark: None,
                range,
            };
            spis.push(k.alloc_spi(req).await.unwrap());
        }
        assert!(
            spis.iter().all(|s| (0x1000..=0x100f).contains(s)),
            "{spis:x?}"
        );
        let mut unique = spis.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            8,
            "SPIs must be distinct per destination: {spis:x?}"
        );

        // A one-SPI range: the first request gets it, the second finds it taken.
        let single = SpiRange::new(0x5000, 0x5000).unwrap();
        let req = SpiRequest {
            src: addr("192.0.2.99"),
            dst: addr("192.0.2.1"),
            reqid: 1500,
            mode: Mode::Transport,
            mark: None,
            range: single,
        };
        assert_eq!(k.alloc_spi(req).await.unwrap(), 0x5000);
        let req = SpiRequest {
            src: addr("192.0.2.98"),
            ..req
        };
        assert!(matches!(
            k.alloc_spi(req).await,
            Err(Error::SpiRangeExhausted {
                min: 0x5000,
                max: 0x5000
            })
        ));

        // IPv6 works the same way; the larval states are ours and show in our dump.
        let req6 = SpiRequest {
            src: addr("2001:db8::9"),
            dst: addr("2001:db8::1"),
            reqid: 1600,
            mode: Mode::Transport,
            mark: None,
            range: SpiRange::full(),
        };
        let spi6 = k.alloc_spi(req6).await.unwrap();
        assert!(spi6 >= 256);
        // 8 + 1 + 1 larval states, plus the one the failed request left behind (the kernel
        // creates it before looking for an SPI); all carry our reqids.
        let states = k.dump_states().await.unwrap();
        assert_eq!(states.len(), 11);
        assert!(states
            .iter()
            .any(|s| s.id.spi == spi6 && s.reqid == 1600 && s.algorithm.is_none()));

        // Requests outside our reqid range are refused before reaching the kernel.
        let foreign = SpiRequest { reqid: 5, ..req6 };
        assert!(matches!(
            k.alloc_spi(foreign).await,
            Err(Error::NotOwned { reqid: 5, .. })
        ));
        // The failed request's larval state has no SPI yet, so it cannot be named in a delete;
        // the kernel drops it at the acquire timeout.
        assert_eq!(k.cleanup().await.unwrap().states, 10);
        let left = k.dump_states().await.unwrap();
        assert!(left.len() == 1 && left[0].id.spi == 0, "{left:?}");
    });
}

#[test]
fn dumps_and_cleanup_see_only_our_objects_while_foreign_ones_sit_beside_them() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let foreign_reqid = FOREIGN_REQID.to_string();
        ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            "198.51.100.1",
            "dst",
            "198.51.100.2",
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
            &foreign_reqid,
            "mode",
            "transport",
        ]);
        ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            "2001:db8:f::1",
            "dst",
            "2001:db8:f::2",
            "dir",
            "in",
            "action",
            "block",
        ]);
        ip(&[
            "xfrm",
            "state",
            "allocspi",
            "src",
            "198.51.100.2",
            "dst",
            "198.51.100.1",
            "proto",
            "esp",
            "reqid",
            &foreign_reqid,
        ]);

        k.add_policy(&geneve_out("192.0.2.1", "192.0.2.2", 1001))
            .await
            .unwrap();
        k.add_policy(&geneve_out("2001:db8::1", "2001:db8::2", 1002))
            .await
            .unwrap();
        let req = SpiRequest {
            src: addr("192.0.2.2"),
            dst: addr("192.0.2.1"),
            reqid: 1001,
            mode: Mode::Transport,
            mark: None,
            range: SpiRange::full(),
        };
        k.alloc_spi(req).await.unwrap();

        let policies = k.dump_policies().await.unwrap();
        assert_eq!(policies.len(), 2);
        assert!(policies.iter().all(|p| p
            .policy
            .templates
            .iter()
            .all(|t| OURS.contains(&t.reqid))));
        let states = k.dump_states().await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].reqid, 1001);

        let report = k.cleanup().await.unwrap();
        assert_eq!((report.policies, report.states), (2, 1));
        let left = ip(&["xfrm", "policy", "list"]);
        assert!(
            left.contains("198.51.100.1") && left.contains("2001:db8:f::1"),
            "foreign policies must stay: {left}"
        );
        assert!(!left.contains("192.0.2.1"), "{left}");
        let left_states = ip(&["xfrm", "state", "list"]);
        assert!(
            left_states.contains(&format!("reqid {FOREIGN_REQID} ")),
            "foreign state must stay: {left_states}"
        );
    });
}

#[test]
fn batched_apply_programs_many_policies_and_reports_each_failure_in_place() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let mut changes: Vec<Change> = (0..1000u32)
            .map(|i| {
                let dst = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1]);
                let sel = Selector::udp(addr("10.0.0.1"), dst, None, Some(6081));
                Change::AddPolicy(Policy::allow(
                    PolicyId::new(sel, Direction::Out),
                    100,
                    vec![Template::transport(1000 + i % 1000)],
                ))
            })
            .collect();
        // A duplicate in the middle and a foreign reqid at the end.
        changes.insert(500, changes[10].clone());
        changes.push(Change::AddPolicy(geneve_out("10.9.9.9", "10.9.9.8", 42)));

        let results = k.apply(&changes).await.unwrap();
        assert_eq!(results.len(), 1002);
        assert!(
            matches!(results[500], Err(Error::Exists { .. })),
            "{:?}",
            results[500]
        );
        assert!(matches!(
            results[1001],
            Err(Error::NotOwned { reqid: 42, .. })
        ));
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1000);
        assert_eq!(k.dump_policies().await.unwrap().len(), 1000);

        let deletes: Vec<Change> = changes[..1000]
            .iter()
            .map(|c| match c {
                Change::AddPolicy(p) => Change::DeletePolicy(p.id),
                _ => unreachable!(),
            })
            .collect();
        let results = k.apply(&deletes).await.unwrap();
        // The duplicate at 500 means one policy (index 999's) is still there.
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 999);
        assert!(matches!(results[500], Err(Error::NotFound { .. })));
        assert_eq!(k.cleanup().await.unwrap().policies, 1);
    });
}

#[test]
fn external_policy_delete_and_flush_arrive_as_events() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let mut events = k.subscribe().await.unwrap();
        let p = geneve_out("192.0.2.1", "192.0.2.2", 1001);
        k.add_policy(&p).await.unwrap();
        match tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Event::PolicyAdded { policy, by_us } => {
                assert!(by_us);
                assert_eq!(policy.policy, p);
            }
            other => panic!("expected PolicyAdded, got {other:?}"),
        }

        ip(&[
            "xfrm",
            "policy",
            "delete",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.2",
            "proto",
            "udp",
            "dport",
            "6081",
            "dir",
            "out",
        ]);
        match tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Event::PolicyDeleted { policy, by_us } => {
                assert!(!by_us, "deleted by ip, not by us");
                let policy = policy.expect("the kernel includes the deleted policy");
                assert_eq!(policy.policy.id, p.id);
                assert!(k.ownership().owns_policy(&policy));
            }
            other => panic!("expected PolicyDeleted, got {other:?}"),
        }

        k.add_policy(&p).await.unwrap();
        let _added = tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        ip(&["xfrm", "policy", "flush"]);
        match tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Event::PoliciesFlushed { by_us } => assert!(!by_us),
            other => panic!("expected PoliciesFlushed, got {other:?}"),
        }
        assert!(k.dump_policies().await.unwrap().is_empty());

        // Our own delete is flagged as ours.
        k.add_policy(&p).await.unwrap();
        let _added = tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        k.delete_policy(&p.id).await.unwrap();
        match tokio::time::timeout(EVENT_WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Event::PolicyDeleted { by_us, .. } => assert!(by_us),
            other => panic!("expected PolicyDeleted, got {other:?}"),
        }
    });
}

#[test]
fn adding_an_esp_state_on_a_kernel_without_esp_reports_the_missing_module() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let id = |src: &str, dst: &str| StateId {
            src: addr(src),
            dst: addr(dst),
            spi: 0x2000,
            mark: None,
        };
        let cbc = Algorithm::aes_cbc_hmac_sha256(&[1; 16], &[2; 32]).unwrap();

        let err = k
            .add_state(&State::new(
                id("192.0.2.1", "192.0.2.2"),
                1001,
                Mode::Transport,
                cbc.clone(),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::KernelLacksEsp {
                    module: Some("esp4"),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("kernel lacks ESP (module esp4)"),
            "{err}"
        );

        let err = k
            .add_state(&State::new(
                id("2001:db8::1", "2001:db8::2"),
                1001,
                Mode::Transport,
                cbc,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::KernelLacksEsp {
                    module: Some("esp6"),
                    ..
                }
            ),
            "{err:?}"
        );

        // AEADs fail earlier, at the algorithm lookup, unless the host has the crypto module.
        let gcm = Algorithm::aes_gcm_256(&[3; 36]).unwrap();
        let err = k
            .add_state(&State::new(
                id("192.0.2.1", "192.0.2.2"),
                1001,
                Mode::Transport,
                gcm,
            ))
            .await
            .unwrap_err();
        assert!(err.is_missing_kernel_support(), "{err:?}");
        assert!(k.dump_states().await.unwrap().is_empty());
    });
}

#[test]
fn configured_mark_is_set_on_our_objects_and_separates_them_from_same_reqid_foreign_ones() {
    in_fresh_netns(|| async {
        let mark = xfrm::Mark {
            value: 0x42,
            mask: 0xff,
        };
        let k = Kernel::connect(Ownership {
            reqids: OURS,
            mark: Some(mark),
        })
        .await
        .unwrap();
        // A foreign policy with one of our reqids but no mark.
        ip(&[
            "xfrm",
            "policy",
            "add",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.9",
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
            "1001",
            "mode",
            "transport",
        ]);
        let p = geneve_out("192.0.2.1", "192.0.2.2", 1001);
        k.add_policy(&p).await.unwrap();

        let listing = ip(&["xfrm", "policy", "list"]);
        assert!(listing.contains("mark 0x42/0xff"), "{listing}");
        let ours = k.dump_policies().await.unwrap();
        assert_eq!(ours.len(), 1, "{ours:?}");
        assert_eq!(ours[0].policy.id.mark, Some(mark));

        // Deleting by the unmarked id still finds ours: the configured mark is filled in.
        k.delete_policy(&p.id).await.unwrap();
        assert_eq!(k.cleanup().await.unwrap(), xfrm::CleanupReport::default());
        assert!(ip(&["xfrm", "policy", "list"]).contains("192.0.2.9"));
    });
}

#[test]
fn policy_if_id_is_programmed_and_reported_back() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let mut p = geneve_out("2001:db8::1", "2001:db8::2", 1001);
        p.id.if_id = Some(7);
        k.add_policy(&p).await.unwrap();
        assert!(ip(&["xfrm", "policy", "list"]).contains("if_id 0x7"));
        let dumped = k.dump_policies().await.unwrap();
        assert_eq!(dumped[0].policy.id.if_id, Some(7));
        k.delete_policy(&p.id).await.unwrap();
        assert!(k.dump_policies().await.unwrap().is_empty());
    });
}

/// The controller shares one `Kernel` between tasks and moves event streams into tasks.
#[test]
fn kernel_and_events_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Kernel>();
    assert_send::<xfrm::Events>();
}

#[test]
fn an_overflowing_event_queue_is_reported_as_lost_events() {
    in_fresh_netns(|| async {
        let k = kernel().await;
        let mut events = k.subscribe().await.unwrap();
        let adds: Vec<Change> = (0..1000u32)
            .map(|i| {
                let sel = Selector::udp(
                    addr("10.0.0.1"),
                    IpAddr::from([10, 2, (i / 250) as u8, (i % 250) as u8 + 1]),
                    None,
                    Some(6081),
                );
                Change::AddPolicy(Policy::allow(
                    PolicyId::new(sel, Direction::Out),
                    100,
                    vec![Template::transport(1000 + i)],
                ))
            })
            .collect();
        let deletes: Vec<Change> = adds
            .iter()
            .map(|c| match c {
                Change::AddPolicy(p) => Change::DeletePolicy(p.id),
                _ => unreachable!(),
            })
            .collect();
        // Far more notifications than the 4 MiB receive queue holds, without reading.
        for _ in 0..10 {
            k.apply(&adds).await.unwrap();
            k.apply(&deletes).await.unwrap();
        }
        let mut lost = false;
        for _ in 0..30_000 {
            match tokio::time::timeout(EVENT_WAIT, events.next()).await {
                Ok(Ok(Event::Lost)) => {
                    lost = true;
                    break;
                }
                Ok(Ok(_)) => {}
                other => panic!("event stream ended without reporting the loss: {other:?}"),
            }
        }
        assert!(lost, "20000 unread notifications must overflow the queue");
        // Once drained, the subscription keeps working.
        while tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_ok()
        {}
        let p = geneve_out("192.0.2.1", "192.0.2.2", 1001);
        k.add_policy(&p).await.unwrap();
        loop {
            match tokio::time::timeout(EVENT_WAIT, events.next())
                .await
                .unwrap()
                .unwrap()
            {
                Event::PolicyAdded { policy, .. } if policy.policy == p => break,
                _ => {}
            }
        }
    });
}
