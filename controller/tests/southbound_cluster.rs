//! The Southbound view on a 3-member RAFT cluster given as an OVN remote list: killing the
//! member in use moves the view to another member, and nothing is lost or invented.

use std::collections::BTreeSet;
use std::time::Duration;

use controller::southbound::{Southbound, SouthboundConfig, SouthboundEvent};
use ovn_ipsec_tests::ovsdb_server::Cluster;
use ovsdb::parse_remotes;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn view_moves_to_another_member_when_the_one_in_use_dies() {
    let mut cluster = Cluster::new(3);
    cluster.sbctl(&["chassis-add", "ch1", "geneve", "192.0.2.1"]);
    let mut cfg = SouthboundConfig::new(parse_remotes(&cluster.tcp_remotes()).unwrap());
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    cfg.seed = Some(9);
    let mut sb = Southbound::spawn(&cfg);

    let in_use = tokio::time::timeout(WAIT, async {
        let mut remote = None;
        loop {
            match sb.next().await.unwrap() {
                SouthboundEvent::Connected { remote: r, .. } => remote = Some(r),
                SouthboundEvent::Changed { snapshot, .. }
                    if snapshot.chassis.contains_key("ch1") =>
                {
                    return remote.unwrap()
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();

    let member = cluster.member_by_remote(&in_use).unwrap();
    cluster.members[member].kill();
    cluster.sbctl(&["--may-exist", "chassis-add", "ch2", "geneve", "192.0.2.2"]);
    cluster.sbctl(&["--if-exists", "chassis-del", "ch1"]);

    let (moved_to, names) = tokio::time::timeout(WAIT, async {
        let mut moved_to = None;
        loop {
            match sb.next().await.unwrap() {
                SouthboundEvent::Connected { remote, .. } => moved_to = Some(remote),
                SouthboundEvent::Changed { snapshot, .. } => {
                    let names: BTreeSet<_> = snapshot.chassis.keys().cloned().collect();
                    if !names.contains("ch1") && names.contains("ch2") {
                        return (moved_to, names);
                    }
                }
                SouthboundEvent::Disconnected { .. } => {}
            }
        }
    })
    .await
    .unwrap();
    let moved_to = moved_to.expect("reconnected");
    assert_ne!(moved_to, in_use);
    assert_eq!(names, BTreeSet::from(["ch2".to_string()]));
}
