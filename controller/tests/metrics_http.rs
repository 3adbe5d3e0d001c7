//! The metrics endpoint on 127.0.0.1:0: values after updates through the API, health and
//! readiness, and `promtool check metrics` on the page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use controller::metrics::{
    ChildSaState, ConnectionState, FailureReason, IkeSaState, Metrics, MetricsServer, PeerCount,
    PeerKernelCounters, RekeyKind, RekeyResult,
};

/// A fixed `/proc/net/xfrm_stat`, so the values are known.
fn fixed_xfrm_stat() -> Option<xfrm::XfrmStat> {
    Some(xfrm::XfrmStat::parse(
        "XfrmInError\t0\nXfrmInNoStates\t5\nXfrmOutPolBlock\t17\n",
    ))
}

struct Served {
    address: SocketAddr,
    metrics: Arc<Metrics>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(metrics: Metrics) -> Served {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = server.local_addr().unwrap();
    let metrics = Arc::new(metrics);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(metrics.clone(), async {
        let _ = stopped.await;
    }));
    Served {
        address,
        metrics,
        _stop: stop,
    }
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, body.to_owned())
    })
    .await
    .unwrap()
}

/// The value of the sample line that starts with `series` (name and labels, exactly).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in\n{page}"))
        .parse()
        .unwrap()
}

fn update(m: &Metrics) {
    m.set_peers(PeerCount::Desired, 3);
    m.set_peers(PeerCount::Exempt, 1);
    m.set_peers(PeerCount::Up, 2);
    m.set_ike_sas(IkeSaState::Established, 2);
    m.set_ike_sas(IkeSaState::Connecting, 1);
    m.set_child_sas(ChildSaState::Installed, 4);
    m.handshake_completed(Duration::from_millis(30));
    m.handshake_completed(Duration::from_millis(7));
    m.failure(FailureReason::Auth);
    m.failure(FailureReason::Auth);
    m.failure(FailureReason::InvalidKe);
    m.rekey(RekeyKind::Child, RekeyResult::Success);
    m.rekey(RekeyKind::Ike, RekeyResult::Failure);
    m.retransmissions_total(1);
    m.dead_peer();
    m.cookie_sent();
    m.set_southbound_state(ConnectionState::Connected);
    m.southbound_reconnected();
    m.set_peer_kernel_counters(
        "chassis-b",
        PeerKernelCounters {
            bytes_in: 1000,
            bytes_out: 2000,
            packets_in: 10,
            packets_out: 20,
            integrity_failures: 2,
            replay_failures: 1,
        },
    );
    m.set_peer_kernel_counters("chassis-c", PeerKernelCounters::default());
    m.set_certificate_expiry(1_830_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_the_values_set_through_the_api() {
    let served = serve(Metrics::with_xfrm_stat(fixed_xfrm_stat)).await;
    update(&served.metrics);
    let (code, page) = get(served.address, "/metrics").await;
    assert_eq!(code, 200);

    for (series, value) in [
        (r#"ovn_ipsec_peers{state="desired"}"#, 3.0),
        (r#"ovn_ipsec_peers{state="exempt"}"#, 1.0),
        (r#"ovn_ipsec_peers{state="up"}"#, 2.0),
        (r#"ovn_ipsec_ike_sas{state="established"}"#, 2.0),
        (r#"ovn_ipsec_ike_sas{state="connecting"}"#, 1.0),
        (r#"ovn_ipsec_ike_sas{state="failed"}"#, 0.0),
        (r#"ovn_ipsec_child_sas{state="installed"}"#, 4.0),
        ("ovn_ipsec_handshakes_total", 2.0),
        ("ovn_ipsec_handshake_duration_seconds_count", 2.0),
        (
            r#"ovn_ipsec_handshake_duration_seconds_bucket{le="0.01"}"#,
            1.0,
        ),
        (r#"ovn_ipsec_failures_total{reason="auth"}"#, 2.0),
        (r#"ovn_ipsec_failures_total{reason="invalid_ke"}"#, 1.0),
        (r#"ovn_ipsec_failures_total{reason="timeout"}"#, 0.0),
        (
            r#"ovn_ipsec_rekeys_total{kind="child",result="success"}"#,
            1.0,
        ),
        (
            r#"ovn_ipsec_rekeys_total{kind="ike",result="failure"}"#,
            1.0,
        ),
        ("ovn_ipsec_retransmissions_total", 1.0),
        ("ovn_ipsec_dead_peers_total", 1.0),
        ("ovn_ipsec_cookies_sent_total", 1.0),
        (r#"ovn_ipsec_southbound_state{state="connected"}"#, 1.0),
        (r#"ovn_ipsec_southbound_state{state="disconnected"}"#, 0.0),
        ("ovn_ipsec_southbound_reconnects_total", 1.0),
        (
            r#"ovn_ipsec_peer_bytes_total{peer="chassis-b",direction="in"}"#,
            1000.0,
        ),
        (
            r#"ovn_ipsec_peer_bytes_total{peer="chassis-b",direction="out"}"#,
            2000.0,
        ),
        (
            r#"ovn_ipsec_peer_packets_total{peer="chassis-b",direction="out"}"#,
            20.0,
        ),
        (
            r#"ovn_ipsec_peer_integrity_failures_total{peer="chassis-b"}"#,
            2.0,
        ),
        (
            r#"ovn_ipsec_peer_replay_failures_total{peer="chassis-b"}"#,
            1.0,
        ),
        (
            r#"ovn_ipsec_xfrm_stat_total{counter="XfrmOutPolBlock"}"#,
            17.0,
        ),
        (
            r#"ovn_ipsec_xfrm_stat_total{counter="XfrmInNoStates"}"#,
            5.0,
        ),
        ("ovn_ipsec_certificate_expiry_timestamp_seconds", 1.83e9),
        ("ovn_ipsec_ready", 0.0),
        (
            &format!(
                "ovn_ipsec_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ] {
        assert_eq!(sample(&page, series), value, "{series}");
    }
    assert!(page.contains("# HELP ovn_ipsec_failures_total Failed negotiations by reason"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_peer_leaves_the_page() {
    let served = serve(Metrics::with_xfrm_stat(fixed_xfrm_stat)).await;
    update(&served.metrics);
    served.metrics.remove_peer("chassis-b");
    let (_, page) = get(served.address, "/metrics").await;
    assert!(!page.contains("chassis-b"), "{page}");
    assert!(page.contains(r#"peer="chassis-c""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_xfrm_stat_is_read_at_scrape_time() {
    if !std::path::Path::new("/proc/net/xfrm_stat").exists() {
        eprintln!("skipped: this kernel has no /proc/net/xfrm_stat (CONFIG_XFRM_STATISTICS)");
        return;
    }
    let served = serve(Metrics::new()).await;
    let (_, page) = get(served.address, "/metrics").await;
    let host = xfrm::XfrmStat::read().unwrap();
    assert!(host.0.contains_key("XfrmOutPolBlock"));
    // The counter may move between the two reads on a busy host; its presence is the point.
    assert!(page.contains(r#"ovn_ipsec_xfrm_stat_total{counter="XfrmOutPolBlock"}"#));
    assert!(page.contains(r#"ovn_ipsec_xfrm_stat_total{counter="XfrmInNoStates"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_live_and_readyz_follows_the_ready_flag() {
    let served = serve(Metrics::with_xfrm_stat(fixed_xfrm_stat)).await;
    assert_eq!(get(served.address, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get(served.address, "/readyz").await.0, 503);
    served.metrics.set_ready(true);
    assert_eq!(
        get(served.address, "/readyz").await,
        (200, "ready\n".into())
    );
    let (_, page) = get(served.address, "/metrics").await;
    assert_eq!(sample(&page, "ovn_ipsec_ready"), 1.0);
    served.metrics.set_ready(false);
    assert_eq!(get(served.address, "/readyz").await.0, 503);
    assert_eq!(get(served.address, "/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_page_passes_promtool_check_metrics() {
    let served = serve(Metrics::new()).await;
    update(&served.metrics);
    // A chassis name comes from the Southbound DB: quotes, backslashes and newlines in it must
    // be escaped, not break the page.
    served
        .metrics
        .set_peer_kernel_counters("odd \"chassis\"\\\nname", PeerKernelCounters::default());
    let (_, page) = get(served.address, "/metrics").await;

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not found ({e}): install the Debian package `prometheus` \
             (tests/setup/ops.sh does: need_pkgs prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\npage:\n{page}"
    );
}
