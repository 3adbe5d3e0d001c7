//! The daemon's UDP sockets over IPv6, in a network namespace the test creates (unshare(2) on
//! a thread of its own): IPv4 and IPv6 sockets hold ports 500 and 4500 side by side, the IPv6
//! NAT-T socket has the ESP-in-UDP option as the IPv4 one does, datagrams are answered from
//! the socket of the peer's family and port and from our address (not the one the route would
//! pick, unless that address is not on the host), and a whole IKE SA (IKE_SA_INIT and
//! IKE_AUTH with the controller's own peer configuration, certificates from the test PKI)
//! comes up over IPv6 through them. The host has no ESP, so the CHILD_SAs are negotiated but
//! not installed.
//!
//! Needs root (unshare) and `ip` (iproute2).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use controller::desired::{DesiredPeer, PeerKey, Role};
use controller::identity_check::{check_local_identity, IdentityFiles};
use controller::io::{Sockets, MAX_DATAGRAM};
use controller::peers::{peer_config, LocalCredentials};
use ikev2::crypto::{RingProvider, SeededRandom};
use ikev2::engine::{Endpoint, EndpointConfig, Event, Transmit};
use ovn_ipsec_tests::netns::in_fresh_netns;
use tokio::net::UdpSocket;

// Two addresses on lo. Between them the route would answer from the destination address
// itself; our sockets name their source, so answers come from OURS.
const OURS: Ipv6Addr = Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 1);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 2);
const WAIT: Duration = Duration::from_secs(20);

/// Brings up the namespace's loopback device with both test addresses on it. Runs `ip` from
/// the namespace's thread: a child process starts in its parent thread's namespace.
fn loopback_with_test_addresses() {
    let ip = |args: &[&str]| {
        let out = Command::new("ip")
            .args(args)
            .output()
            .expect("ip (iproute2)");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["link", "set", "lo", "up"]);
    for a in [OURS, THEIRS] {
        ip(&["addr", "add", &format!("{a}/128"), "dev", "lo", "nodad"]);
    }
    // The kernel installs an IPv6 address's local route from a work queue after `ip addr add`
    // returns; a datagram sent before that is lost (about 1 run in 50 here). Wait for both.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new("ip")
            .args(["-6", "route", "show", "table", "local"])
            .output()
            .expect("ip (iproute2)");
        let routes = String::from_utf8_lossy(&out.stdout);
        let routed = |a: Ipv6Addr| {
            routes
                .lines()
                .any(|l| l.starts_with(&format!("local {a} ")))
        };
        if routed(OURS) && routed(THEIRS) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no local routes for the test addresses:\n{routes}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn udp_encap_option(fd: i32) -> i32 {
    let mut value: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, a c_int to write to and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_UDP,
            100, // UDP_ENCAP
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    value
}

#[test]
fn ipv4_and_ipv6_sockets_share_the_ports_and_answer_from_the_peers_family() {
    in_fresh_netns(|| async {
        loopback_with_test_addresses();
        let sockets = Sockets::bind(500, 4500).await.unwrap();
        assert!(sockets.has_ipv6());

        // The IPv6 NAT-T socket has the ESP-in-UDP option: find it by its local address.
        let fds = std::fs::read_dir("/proc/self/fd").unwrap();
        let mut encap_v6 = 0;
        for fd in fds.flatten() {
            let Ok(fd) = fd.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // SAFETY: borrowing an fd of this process for the duration of the check only.
            let sock = std::mem::ManuallyDrop::new(unsafe {
                <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd)
            });
            if sock.local_addr().ok() == Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 4500))) {
                encap_v6 = udp_encap_option(sock.as_raw_fd());
            }
        }
        assert_eq!(encap_v6, 2, "UDP_ENCAP_ESPINUDP on [::]:4500");

        let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let v6 = UdpSocket::bind(SocketAddr::from((THEIRS, 0)))
            .await
            .unwrap();
        // Datagrams to the NAT-T port start with the non-ESP marker, or the kernel takes
        // them for ESP.
        let cases: [(&UdpSocket, SocketAddr); 4] = [
            (&v4, "127.0.0.1:500".parse().unwrap()),
            (&v4, "127.0.0.1:4500".parse().unwrap()),
            (&v6, SocketAddr::from((OURS, 500))),
            (&v6, SocketAddr::from((OURS, 4500))),
        ];
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for (from, to) in cases {
            let message = [0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08];
            from.send_to(&message, to).await.unwrap();
            let rx = tokio::time::timeout(WAIT, sockets.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rx.local_port, to.port());
            assert_eq!(rx.remote, from.local_addr().unwrap());
            assert_eq!(&buf[..rx.len], &message);

            // The answer leaves from the port it came to, in the sender's family.
            let answer = format!("answer to {to}").into_bytes();
            sockets
                .send(&Transmit {
                    local: to,
                    remote: rx.remote,
                    bytes: answer.clone(),
                })
                .await;
            let (len, source) = tokio::time::timeout(WAIT, from.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..len], &answer[..]);
            assert_eq!(source, to);
        }

        // A local address that is not on this host: sent anyway, from the route's choice.
        let foreign = SocketAddr::from((Ipv6Addr::new(0xfd98, 0, 0, 0, 0, 0, 0, 9), 500));
        let to_v6 = v6.local_addr().unwrap();
        sockets
            .send(&Transmit {
                local: foreign,
                remote: to_v6,
                bytes: b"from elsewhere".to_vec(),
            })
            .await;
        let (len, source) = tokio::time::timeout(WAIT, v6.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..len], b"from elsewhere");
        assert_eq!(source.port(), 500);
        assert_ne!(source.ip(), foreign.ip());
    });
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ikev2/tests/fixtures/pki")
        .join(name)
}

fn credentials(chassis: &str) -> LocalCredentials {
    let files = IdentityFiles {
        certificate: fixture(&format!("{chassis}-cert.pem")),
        private_key: fixture(&format!("{chassis}-privkey.pem")),
        ca_cert: fixture("ca-bundle.pem"),
    };
    let id = check_local_identity(&files, chassis, SystemTime::now()).unwrap();
    LocalCredentials::new(
        chassis.into(),
        id.certificate,
        id.intermediates,
        id.private_key,
        id.trust,
    )
}

fn desired(local: Ipv6Addr, remote: Ipv6Addr, remote_chassis: &str) -> DesiredPeer {
    DesiredPeer::geneve(
        PeerKey {
            local_ip: IpAddr::V6(local),
            remote_ip: IpAddr::V6(remote),
        },
        remote_chassis.into(),
        Role::Responder {
            initiate_after: Duration::from_secs(10),
        },
    )
}

fn endpoint(seed: u64) -> Endpoint {
    let mut e = Endpoint::new(
        EndpointConfig::default(),
        Arc::new(RingProvider),
        Box::new(SeededRandom::from_u64(seed)),
    );
    e.set_wall_clock(Instant::now(), SystemTime::now());
    e
}

/// Answers SPI requests with made-up SPIs (no kernel ESP here); true once the IKE SA is up.
fn drain_events(e: &mut Endpoint, next_spi: &mut u32) -> bool {
    let mut up = false;
    while let Some(ev) = e.poll_event() {
        match ev {
            Event::AllocateSpi { request, .. } => {
                *next_spi += 1;
                e.spi_allocated(Instant::now(), request, *next_spi).unwrap();
            }
            Event::IkeSaUp { remote, .. } => {
                assert!(remote.is_ipv6());
                up = true;
            }
            Event::AuthFailed { reason, .. } => panic!("authentication failed: {reason:?}"),
            _ => {}
        }
    }
    up
}

#[test]
fn ike_sa_comes_up_over_ipv6_through_the_daemons_sockets() {
    in_fresh_netns(|| async {
        loopback_with_test_addresses();
        let sockets = Sockets::bind(500, 4500).await.unwrap();
        // The peer: an engine of chassis-2 on a socket of its own, initiating to our port 500.
        let theirs = UdpSocket::bind(SocketAddr::from((THEIRS, 0)))
            .await
            .unwrap();
        let their_addr = theirs.local_addr().unwrap();

        let mut ours = endpoint(1);
        let mut peer = endpoint(2);
        ours.add_peer(peer_config(
            &desired(OURS, THEIRS, "chassis-2"),
            &credentials("chassis-1"),
        ))
        .unwrap();
        let mut their_config = peer_config(
            &desired(THEIRS, OURS, "chassis-1"),
            &credentials("chassis-2"),
        );
        their_config.local = their_addr;
        let their_id = peer.add_peer(their_config).unwrap();
        peer.initiate(Instant::now(), their_id).unwrap();

        let (mut our_spi, mut their_spi) = (0x1000u32, 0x2000u32);
        let (mut ours_up, mut theirs_up) = (false, false);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut buf2 = vec![0u8; MAX_DATAGRAM];
        let deadline = Instant::now() + WAIT;
        while !(ours_up && theirs_up) {
            assert!(Instant::now() < deadline, "no IKE SA over IPv6 in {WAIT:?}");
            ours_up |= drain_events(&mut ours, &mut our_spi);
            theirs_up |= drain_events(&mut peer, &mut their_spi);
            while let Some(t) = ours.poll_transmit() {
                sockets.send(&t).await;
            }
            while let Some(t) = peer.poll_transmit() {
                theirs.send_to(&t.bytes, t.remote).await.unwrap();
            }
            tokio::select! {
                rx = sockets.recv(&mut buf) => {
                    let rx = rx.unwrap();
                    assert_eq!(rx.remote, their_addr);
                    let local = SocketAddr::new(IpAddr::V6(OURS), rx.local_port);
                    ours.handle_datagram(Instant::now(), local, rx.remote, &buf[..rx.len]);
                }
                r = theirs.recv_from(&mut buf2) => {
                    let (len, from) = r.unwrap();
                    peer.handle_datagram(Instant::now(), their_addr, from, &buf2[..len]);
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    ours.handle_timeout(Instant::now());
                    peer.handle_timeout(Instant::now());
                }
            }
        }
        assert_eq!(ours.ike_sas().count(), 1);
    });
}
