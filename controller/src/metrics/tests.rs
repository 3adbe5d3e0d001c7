//! The metrics' own bookkeeping: handshake durations and per-peer series.

use super::*;

fn sample(page: &str, key: &str) -> Option<String> {
    page.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_owned))
}

#[test]
fn handshake_duration_is_observed_only_for_ike_sas_we_initiated() {
    let m = Metrics::with_xfrm_stat(|| None);
    let t0 = Instant::now();
    m.handshake_started("chassis-2", t0);
    m.handshake_up("chassis-2", t0 + Duration::from_millis(40));
    // Responder side: counted, no duration known.
    m.handshake_up("chassis-3", t0);
    let page = m.encode().unwrap();
    assert_eq!(
        sample(&page, "ovn_ipsec_handshakes_total").as_deref(),
        Some("2")
    );
    assert_eq!(
        sample(&page, "ovn_ipsec_handshake_duration_seconds_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        sample(&page, "ovn_ipsec_handshake_duration_seconds_sum").as_deref(),
        Some("0.04")
    );
}

#[test]
fn removed_peer_leaves_the_page() {
    let m = Metrics::with_xfrm_stat(|| None);
    let c = PeerKernelCounters {
        bytes_in: 7,
        ..PeerKernelCounters::default()
    };
    m.set_peer_kernel_counters("chassis-2", c);
    let key = r#"ovn_ipsec_peer_bytes_total{peer="chassis-2",direction="in"}"#;
    assert_eq!(sample(&m.encode().unwrap(), key).as_deref(), Some("7"));
    m.remove_peer("chassis-2");
    assert_eq!(sample(&m.encode().unwrap(), key), None);
}
