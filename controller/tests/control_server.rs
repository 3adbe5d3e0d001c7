//! The control server on a temporary Unix socket: its mode and group, the protocol's errors,
//! concurrency, and a handler that panics.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use controller::control::client::{Client, ClientError};
use controller::control::protocol::*;
use controller::control::{ActionError, ControlHandler, ControlServer, ServerError, SocketConfig};

/// A handler with one peer, `chassis-b`, counting cleanups; rekey panics to test isolation.
#[derive(Default)]
struct TestHandler {
    cleanups: AtomicU32,
}

impl ControlHandler for TestHandler {
    fn status(&self) -> Status {
        Status {
            chassis: "chassis-a".into(),
            southbound: SouthboundStatus {
                remote: Some("tcp:127.0.0.1:6642".into()),
                state: ConnectionState::Connecting,
                member_role: None,
                last_sync_unix: None,
            },
            peers_desired: 1,
            peers_exempt: 0,
            peers_up: 0,
            certificate: None,
            version: "test".into(),
        }
    }
    fn peers(&self) -> Vec<PeerInfo> {
        Vec::new()
    }
    fn sas(&self) -> SaList {
        SaList {
            ike_sas: Vec::new(),
        }
    }
    fn initiate(&self, peer: &str) -> Result<ActionDone, ActionError> {
        if peer == "chassis-b" {
            Ok(ActionDone {
                message: "initiating chassis-b".into(),
            })
        } else {
            Err(ActionError::UnknownPeer { peer: peer.into() })
        }
    }
    fn terminate(&self, _peer: &str) -> Result<ActionDone, ActionError> {
        Err(ActionError::Failed {
            message: "no IKE SA".into(),
        })
    }
    fn rekey(&self, _peer: &str) -> Result<ActionDone, ActionError> {
        panic!("a bug in the daemon");
    }
    fn reload(&self) -> Result<ActionDone, ActionError> {
        Ok(ActionDone {
            message: "reloaded".into(),
        })
    }
    fn cleanup(&self) -> Result<CleanupReport, ActionError> {
        self.cleanups.fetch_add(1, Ordering::SeqCst);
        Ok(CleanupReport {
            states_removed: 0,
            policies_removed: 0,
        })
    }
}

struct Running {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    handler: Arc<TestHandler>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

fn start_at(dir: tempfile::TempDir, socket: PathBuf, group: Option<&str>) -> Running {
    let config = SocketConfig {
        path: socket.clone(),
        group: group.map(str::to_owned),
    };
    let server = ControlServer::bind(&config).unwrap();
    let handler = Arc::new(TestHandler::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let h: Arc<dyn ControlHandler> = handler.clone();
    let task = tokio::spawn(server.serve(h, async {
        let _ = stopped.await;
    }));
    Running {
        _dir: dir,
        socket,
        handler,
        stop: Some(stop),
        task: Some(task),
    }
}

fn start(group: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the server creates it.
    let socket = dir.path().join("run/ovn-ipsec/control.sock");
    start_at(dir, socket, group)
}

/// Sends raw lines and returns the reply lines, on a blocking thread.
async fn exchange(socket: &Path, lines: Vec<Vec<u8>>) -> Vec<String> {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let stream = UnixStream::connect(&socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut replies = Vec::new();
        for line in lines {
            (&stream).write_all(&line).unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            replies.push(reply);
        }
        replies
    })
    .await
    .unwrap()
}

async fn call(socket: &Path, request: Request) -> Result<Response, ClientError> {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Client::connect(&socket, Duration::from_secs(10))?.call(request)
    })
    .await
    .unwrap()
}

fn error_of(reply: &str) -> ErrorReply {
    let envelope: ReplyEnvelope = serde_json::from_str(reply).unwrap();
    assert_eq!(envelope.version, PROTOCOL_VERSION);
    match envelope.outcome {
        Outcome::Error(e) => e,
        Outcome::Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_root_only_by_default_and_removed_on_shutdown() {
    let running = start(None);
    let meta = std::fs::metadata(&running.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix_uid());
    let socket = running.socket.clone();
    running.stop().await;
    assert!(!socket.exists());
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_with_a_group_is_0660_and_owned_by_that_group() {
    if nix_uid() != 0 {
        eprintln!("skipped: changing a socket's group to another needs root");
        return;
    }
    let running = start(Some("4242"));
    let meta = std::fs::metadata(&running.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 4242);
    // The directory the server created is opened to the group, so its members can reach it.
    let dir = std::fs::metadata(running.socket.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o750);
    assert_eq!(dir.gid(), 4242);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_the_operator_chose_is_left_as_it_is_with_a_group() {
    if nix_uid() != 0 {
        eprintln!("skipped: changing a socket's group to another needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("chosen");
    std::fs::create_dir(&chosen).unwrap();
    std::fs::set_permissions(&chosen, std::fs::Permissions::from_mode(0o700)).unwrap();
    let running = start_at(dir, chosen.join("control.sock"), Some("4242"));
    assert_eq!(std::fs::metadata(&running.socket).unwrap().gid(), 4242);
    let meta = std::fs::metadata(&chosen).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_ne!(meta.gid(), 4242);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_group_is_refused_before_the_socket_appears() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let err = ControlServer::bind(&SocketConfig {
        path: socket.clone(),
        group: Some("no-such-group-ovn-ipsec".into()),
    })
    .unwrap_err();
    assert!(matches!(err, ServerError::UnknownGroup(_)), "{err}");
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_a_live_socket_is_refused_and_a_stale_one_replaced() {
    let running = start(None);
    let err = ControlServer::bind(&SocketConfig {
        path: running.socket.clone(),
        group: None,
    })
    .unwrap_err();
    assert!(matches!(err, ServerError::AlreadyRunning(_)), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let replaced = start_at(dir, stale, None);
    let response = call(&replaced.socket, Request::Status).await.unwrap();
    assert!(matches!(response, Response::Status(_)));
    replaced.stop().await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_file_at_the_socket_path_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let err = ControlServer::bind(&SocketConfig {
        path: path.clone(),
        group: None,
    })
    .unwrap_err();
    assert!(matches!(err, ServerError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_of_another_version_gets_version_mismatch_naming_both() {
    let running = start(None);
    let replies = exchange(
        &running.socket,
        vec![b"{\"version\":2,\"request\":{\"kind\":\"frobnicate\"}}\n".to_vec()],
    )
    .await;
    let e = error_of(&replies[0]);
    assert_eq!(e.code, ErrorCode::VersionMismatch);
    assert!(e.message.contains("version 2") && e.message.contains("version 1"));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_bad_request_and_the_connection_keeps_answering() {
    let running = start(None);
    let replies = exchange(
        &running.socket,
        vec![
            b"\xff\x00garbage\n".to_vec(),
            b"{\"version\":1,\"request\":{\"kind\":\"initiate\"}}\n".to_vec(),
            b"{\"version\":1,\"request\":{\"kind\":\"status\"}}\n".to_vec(),
        ],
    )
    .await;
    assert_eq!(error_of(&replies[0]).code, ErrorCode::BadRequest);
    assert_eq!(error_of(&replies[1]).code, ErrorCode::BadRequest);
    let ok: ReplyEnvelope = serde_json::from_str(&replies[2]).unwrap();
    assert!(matches!(ok.outcome, Outcome::Ok(Response::Status(_))));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_request_gets_request_too_large() {
    let running = start(None);
    let mut line = vec![b'x'; MAX_REQUEST_BYTES + 10];
    line.push(b'\n');
    let replies = exchange(&running.socket, vec![line]).await;
    assert_eq!(error_of(&replies[0]).code, ErrorCode::RequestTooLarge);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_cleanup_is_refused_without_calling_the_handler() {
    let running = start(None);
    let err = call(&running.socket, Request::Cleanup { confirm: false })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Server(e) if e.code == ErrorCode::NotConfirmed),
        "{err}"
    );
    assert_eq!(running.handler.cleanups.load(Ordering::SeqCst), 0);
    call(&running.socket, Request::Cleanup { confirm: true })
        .await
        .unwrap();
    assert_eq!(running.handler.cleanups.load(Ordering::SeqCst), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_errors_carry_their_codes() {
    let running = start(None);
    let unknown = call(
        &running.socket,
        Request::Initiate {
            peer: "chassis-z".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(&unknown, ClientError::Server(e) if e.code == ErrorCode::UnknownPeer));
    let failed = call(
        &running.socket,
        Request::Terminate {
            peer: "chassis-b".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&failed, ClientError::Server(e) if e.code == ErrorCode::Failed && e.message == "no IKE SA")
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_yields_an_error_and_the_server_lives_on() {
    let running = start(None);
    let err = call(
        &running.socket,
        Request::Rekey {
            peer: "chassis-b".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, ClientError::Server(e) if e.code == ErrorCode::Failed));
    let ok = call(&running.socket, Request::Reload).await.unwrap();
    assert_eq!(
        ok,
        Response::Done(ActionDone {
            message: "reloaded".into()
        })
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_are_all_answered() {
    let running = start(None);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let socket = running.socket.clone();
        tasks.push(tokio::spawn(
            async move { call(&socket, Request::Status).await },
        ));
    }
    // A client that connects and sends nothing must not hold the others up.
    let idle = UnixStream::connect(&running.socket).unwrap();
    for t in tasks {
        let response = t.await.unwrap().unwrap();
        assert!(matches!(response, Response::Status(s) if s.chassis == "chassis-a"));
    }
    drop(idle);
    running.stop().await;
}
