//! The client against a real 3-member RAFT cluster of the Southbound database.

use std::time::Duration;

use ovn_ipsec_tests::ovsdb_server::Cluster;
use ovsdb::{
    parse_remotes, ChangeKind, ChangeSet, Error, Event, MemberRole, Monitor, MonitorConfig,
    TableCache,
};

const WAIT: Duration = Duration::from_secs(20);

fn config(remotes: &str) -> MonitorConfig {
    let tables = vec![
        (
            "SB_Global".into(),
            vec!["ipsec".into(), "external_ids".into()],
        ),
        ("Chassis".into(), vec!["name".into(), "encaps".into()]),
        ("Encap".into(), vec!["type".into(), "ip".into()]),
    ];
    let mut c = MonitorConfig::new(parse_remotes(remotes).unwrap(), "OVN_Southbound", tables);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.seed = Some(11);
    c
}

fn has_chassis(c: &TableCache, name: &str) -> bool {
    c.table("Chassis").any(|(_, r)| r.str("name") == Some(name))
}

/// Everything the monitor reports until `pred` holds.
#[derive(Debug, Default)]
struct Seen {
    connected: Vec<(String, bool)>,
    disconnected: Vec<String>,
    changes: Vec<ChangeSet>,
}

fn record(seen: &mut Seen, event: Event) {
    match event {
        Event::Connected { remote, delta } => seen.connected.push((remote.to_string(), delta)),
        Event::Disconnected { error, .. } => seen.disconnected.push(error.to_string()),
        Event::Changed(cs) => seen.changes.push(cs),
    }
}

async fn until(m: &mut Monitor, pred: impl Fn(&TableCache) -> bool) -> Seen {
    let mut seen = Seen::default();
    let work = async {
        loop {
            if pred(&m.cache()) {
                // Take what is already queued too (the cache is ahead of the events).
                while let Some(event) = m.try_next_event() {
                    record(&mut seen, event);
                }
                return;
            }
            let event = m.next_event().await.unwrap();
            record(&mut seen, event);
        }
    };
    tokio::time::timeout(WAIT, work)
        .await
        .expect("condition not reached in time");
    seen
}

async fn first_connection(m: &mut Monitor) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Connected { remote, .. }) = m.next_event().await {
                return remote.to_string();
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn monitor_on_a_follower_keeps_working_when_the_leader_is_killed() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader().unwrap();
    let follower = cluster.followers()[0];
    let mut m = Monitor::spawn(config(&cluster.members[follower].tcp_remote()));
    cluster.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    until(&mut m, |c| has_chassis(c, "ch1")).await;

    cluster.members[leader].kill();
    cluster.sbctl(&["--may-exist", "chassis-add", "ch2", "geneve", "192.0.2.2"]);
    let seen = until(&mut m, |c| has_chassis(c, "ch2")).await;
    assert!(
        seen.disconnected.is_empty(),
        "the follower connection survived: {seen:?}"
    );
}

#[tokio::test]
async fn member_in_use_stopped_then_delta_on_another_carries_the_deletion() {
    let cluster = Cluster::new(3);
    let followers = cluster.followers();
    let remotes = followers
        .iter()
        .map(|&i| cluster.members[i].tcp_remote())
        .collect::<Vec<_>>()
        .join(",");
    let mut cfg = config(&remotes);
    cfg.connect.probe_interval = Some(Duration::from_millis(300));
    // ovsdb-server drops history that holds more atoms than the database, so a deletion in a
    // nearly empty database is never sent as a delta; a few more chassis make it realistic.
    let mut filler = Vec::new();
    for i in 0..20 {
        filler.extend([
            "--".to_string(),
            "chassis-add".into(),
            format!("f{i}"),
            "geneve".into(),
        ]);
        filler.push(format!("198.51.100.{i}"));
    }
    let filler: Vec<&str> = filler.iter().skip(1).map(String::as_str).collect();
    cluster.sbctl(&filler);
    let mut m = Monitor::spawn(cfg);
    cluster.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    cluster.sbctl(&["chassis-add", "ch2", "geneve", "192.0.2.2"]);
    let in_use = first_connection(&mut m).await;
    until(&mut m, |c| has_chassis(c, "ch1") && has_chassis(c, "ch2")).await;

    // Stop the member in use: the client only learns it from its probe, so the deletion below
    // happens while it is disconnected.
    let stopped = cluster.member_by_remote(&in_use).unwrap();
    cluster.members[stopped].signal("STOP");
    let other = followers.iter().copied().find(|&i| i != stopped).unwrap();
    cluster.members[other].sbctl(&["chassis-del", "ch1"]);

    let seen = until(&mut m, |c| !has_chassis(c, "ch1")).await;
    cluster.members[stopped].signal("CONT");
    assert!(!seen.disconnected.is_empty());
    let last = seen.connected.last().expect("reconnected");
    assert_eq!(
        last,
        &(cluster.members[other].tcp_remote(), true),
        "asked for and got a delta"
    );
    let cs = seen.changes.last().unwrap();
    assert!(!cs.replaced);
    let deleted: Vec<_> = cs
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Delete)
        .map(|c| c.table.as_str())
        .collect();
    assert!(
        deleted.contains(&"Chassis") && deleted.contains(&"Encap"),
        "{cs:?}"
    );
    assert!(has_chassis(&m.cache(), "ch2"));
}

#[tokio::test]
async fn member_restarted_without_our_transaction_gives_a_full_replace() {
    let mut cluster = Cluster::new(3);
    let follower = cluster.followers()[0];
    let mut m = Monitor::spawn(config(&cluster.members[follower].tcp_remote()));
    cluster.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    until(&mut m, |c| has_chassis(c, "ch1")).await;

    cluster.members[follower].kill();
    cluster.sbctl(&["chassis-del", "ch1"]);
    cluster.sbctl(&["chassis-add", "ch2", "geneve", "192.0.2.2"]);
    cluster.members[follower].start();

    let seen = until(&mut m, |c| has_chassis(c, "ch2") && !has_chassis(c, "ch1")).await;
    assert_eq!(
        seen.connected.last().map(|c| c.1),
        Some(false),
        "full snapshot: {seen:?}"
    );
    let cs = seen
        .changes
        .iter()
        .rev()
        .find(|cs| cs.replaced)
        .expect("a replacing change set");
    let kinds: Vec<_> = cs
        .changes
        .iter()
        .map(|c| (c.table.as_str(), c.kind))
        .collect();
    assert!(
        kinds.contains(&("Chassis", ChangeKind::Delete)),
        "deletion shows up: {kinds:?}"
    );
    assert!(
        kinds.contains(&("Chassis", ChangeKind::Insert)),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn member_cut_off_from_its_cluster_is_left() {
    let mut cluster = Cluster::new(3);
    let keep = cluster.followers()[0];
    let mut m = Monitor::spawn(config(&cluster.members[keep].tcp_remote()));
    first_connection(&mut m).await;
    for i in 0..3 {
        if i != keep {
            cluster.members[i].kill();
        }
    }
    let error = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Disconnected { error, .. }) = m.next_event().await {
                return error;
            }
        }
    })
    .await
    .expect("the lonely member was not left");
    assert!(matches!(error, Error::NotConnectedToCluster(_)), "{error}");
}

#[tokio::test]
async fn member_role_is_the_servers_and_follows_an_election() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.leader().unwrap();
    let follower = cluster.followers()[0];
    let mut on_leader = Monitor::spawn(config(&cluster.members[leader].tcp_remote()));
    let mut on_follower = Monitor::spawn(config(&cluster.members[follower].tcp_remote()));
    first_connection(&mut on_leader).await;
    first_connection(&mut on_follower).await;
    assert_eq!(on_leader.member_role(), Some(MemberRole::Leader));
    assert_eq!(on_follower.member_role(), Some(MemberRole::Follower));

    // The leader goes: its monitor is disconnected (no role), and the follower's monitor
    // reports whichever role its server has after the election.
    cluster.members[leader].kill();
    let settled = async {
        loop {
            if let Some(new) = cluster.leader() {
                let want = if new == follower {
                    MemberRole::Leader
                } else {
                    MemberRole::Follower
                };
                if on_follower.member_role() == Some(want) && on_leader.member_role().is_none() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, settled)
        .await
        .expect("roles after the election");
}
