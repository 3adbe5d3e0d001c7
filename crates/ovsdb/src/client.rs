//! One JSON-RPC connection to an OVSDB server: requests and their replies, the server's
//! notifications, and liveness in both directions.
//!
//! A task owns the socket. It answers the server's `echo` itself, so a probe is answered while
//! the consumer is still applying a large update, and it sends its own `echo` after
//! `probe_interval` without receiving anything, closing the connection if another interval
//! passes in silence. Any bytes count as life, so a long initial dump never times out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};
use tracing::{debug, trace};

use crate::codec::{JsonCodec, MAX_MESSAGE_SIZE};
use crate::error::Error;
use crate::jsonrpc::{error_text, Message};
use crate::schema::DatabaseSchema;
use crate::transport::{self, BoxStream, Remote};

/// The idle time after which we probe the server (ovn-controller's default is 5 s as well).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The id of echo requests; the server uses the same string for its probes.
const ECHO_ID: &str = "echo";

/// How much the read buffer grows by at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A read buffer larger than this is released once empty.
const KEEP_BUFFER: usize = 1024 * 1024;

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Probe the server after this long without receiving anything; `None` disables probing.
    pub probe_interval: Option<Duration>,
    /// The largest JSON-RPC message accepted.
    pub max_message_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            probe_interval: Some(DEFAULT_PROBE_INTERVAL),
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

/// A notification from the server (`update`, `update2`, `update3`), or the reason the
/// connection ended (always the last item).
pub type Incoming = Result<(String, Value), Error>;

type ReplySender = oneshot::Sender<Result<Value, Value>>;

struct Outgoing {
    message: Value,
    reply: Option<(u64, String, ReplySender)>,
}

/// A handle to a live connection; cheap to clone. Dropping every handle closes it.
#[derive(Clone)]
pub struct Connection {
    out: mpsc::UnboundedSender<Outgoing>,
    next_id: Arc<AtomicU64>,
    remote: Remote,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .finish()
    }
}

impl Connection {
    /// Connects to `remote` and starts the connection's task.
    pub async fn open(
        remote: &Remote,
        tls: Option<&Arc<tokio_rustls::rustls::ClientConfig>>,
        options: &ConnectOptions,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Incoming>), Error> {
        let stream = transport::connect(remote, tls).await?;
        Ok(Self::over(stream, remote.clone(), options))
    }

    /// Runs the protocol over an already connected stream.
    pub fn over(
        stream: BoxStream,
        remote: Remote,
        options: &ConnectOptions,
    ) -> (Self, mpsc::UnboundedReceiver<Incoming>) {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let io = Io {
            codec: JsonCodec::new(options.max_message_size),
            probe_interval: options.probe_interval,
            pending: HashMap::new(),
            incoming: in_tx,
            wbuf: BytesMut::new(),
        };
        tokio::spawn(io.run(stream, out_rx));
        let conn = Self {
            out: out_tx,
            next_id: Arc::new(AtomicU64::new(1)),
            remote,
        };
        (conn, in_rx)
    }

    /// The remote this connection goes to.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Sends a request and waits for its reply; an error reply becomes [`Error::Rpc`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let message = json!({"id": id, "method": method, "params": params});
        self.out
            .send(Outgoing {
                message,
                reply: Some((id, method.to_string(), tx)),
            })
            .map_err(|_| Error::ConnectionLost(method.to_string()))?;
        match rx.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(Error::Rpc {
                method: method.to_string(),
                error: error_text(&error),
            }),
            Err(_) => Err(Error::ConnectionLost(method.to_string())),
        }
    }

    /// `list_dbs`: the databases the server serves.
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let v = self.call("list_dbs", json!([])).await?;
        let names = v
            .as_array()
            .ok_or_else(|| malformed("list_dbs reply", "not an array"))?;
        names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed("list_dbs reply", "a name is not a string"))
            })
            .collect()
    }

    /// `get_schema`: the schema of `db`.
    pub async fn get_schema(&self, db: &str) -> Result<DatabaseSchema, Error> {
        let v = self.call("get_schema", json!([db])).await?;
        DatabaseSchema::from_json(&v)
    }

    /// `transact`: runs `operations` on `db` atomically; returns one result per operation. An
    /// operation error is reported as [`Error::Rpc`].
    pub async fn transact(&self, db: &str, operations: Vec<Value>) -> Result<Vec<Value>, Error> {
        let mut params = vec![json!(db)];
        params.extend(operations);
        let v = self.call("transact", Value::Array(params)).await?;
        let results = match v {
            Value::Array(a) => a,
            _ => return Err(malformed("transact reply", "not an array")),
        };
        if let Some(err) = results
            .iter()
            .find(|r| r.get("error").is_some_and(|e| !e.is_null()))
        {
            return Err(Error::Rpc {
                method: "transact".into(),
                error: error_text(err),
            });
        }
        Ok(results)
    }

    /// `echo`: round trip with the server.
    pub async fn echo(&self) -> Result<(), Error> {
        self.call("echo", json!([])).await.map(drop)
    }

    /// `get_server_id`: the server's UUID (stable across its restarts).
    pub async fn get_server_id(&self) -> Result<String, Error> {
        let v = self.call("get_server_id", json!([])).await?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| malformed("get_server_id reply", "not a string"))
    }

    /// `monitor_cancel`: stops the monitor with this id.
    pub async fn monitor_cancel(&self, monitor_id: &Value) -> Result<(), Error> {
        self.call("monitor_cancel", json!([monitor_id]))
            .await
            .map(drop)
    }
}

fn malformed(what: &'static str, reason: &str) -> Error {
    Error::Malformed {
        what,
        reason: reason.into(),
    }
}

struct Io {
    codec: JsonCodec,
    probe_interval: Option<Duration>,
    pending: HashMap<u64, (String, ReplySender)>,
    incoming: mpsc::UnboundedSender<Incoming>,
    wbuf: BytesMut,
}

impl Io {
    async fn run(mut self, stream: BoxStream, mut out_rx: mpsc::UnboundedReceiver<Outgoing>) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let reason = self.serve(&mut rd, &mut wr, &mut out_rx).await;
        debug!(error = %reason, "OVSDB connection closed");
        let _ = wr.shutdown().await;
        let _ = self.incoming.send(Err(reason));
    }

    async fn serve(
        &mut self,
        rd: &mut ReadHalf<BoxStream>,
        wr: &mut WriteHalf<BoxStream>,
        out_rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    ) -> Error {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut last_rx = Instant::now();
        let mut probe_sent = false;
        loop {
            let deadline = self
                .probe_interval
                .map(|p| last_rx + if probe_sent { p * 2 } else { p });
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                read = rd.read_buf(&mut rbuf) => {
                    match read {
                        Ok(0) => {
                            return match self.codec.decode_eof(&mut rbuf) {
                                Err(e) => e,
                                Ok(_) => Error::Closed,
                            };
                        }
                        Ok(_) => {
                            last_rx = Instant::now();
                            probe_sent = false;
                            if let Err(e) = self.drain(&mut rbuf, wr).await {
                                return e;
                            }
                            // Give back the room a large initial dump needed.
                            if rbuf.is_empty() && rbuf.capacity() > KEEP_BUFFER {
                                rbuf = BytesMut::with_capacity(READ_CHUNK);
                            }
                        }
                        Err(e) => return Error::Io(e),
                    }
                }
                out = out_rx.recv() => {
                    let Some(out) = out else { return Error::Closed };
                    if let Some((id, method, tx)) = out.reply {
                        self.pending.insert(id, (method, tx));
                    }
                    if let Err(e) = self.write(wr, &out.message).await {
                        return e;
                    }
                }
                // Limitation: the probe also runs while the server composes a large reply; a
                // server that needs more than two intervals before its first byte is dropped,
                // as ovn-controller would drop it.
                () = sleep => {
                    let Some(p) = self.probe_interval else { continue };
                    if probe_sent {
                        return Error::ProbeTimeout(p * 2);
                    }
                    trace!("idle: sending echo");
                    probe_sent = true;
                    let echo = json!({"id": ECHO_ID, "method": "echo", "params": []});
                    if let Err(e) = self.write(wr, &echo).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Handles every complete message in the read buffer.
    async fn drain(
        &mut self,
        rbuf: &mut BytesMut,
        wr: &mut WriteHalf<BoxStream>,
    ) -> Result<(), Error> {
        while let Some(value) = self.codec.decode(rbuf)? {
            match Message::from_value(value)? {
                Message::Request { id, method, params } if method == "echo" => {
                    let reply = Message::Reply {
                        id,
                        result: Ok(params),
                    };
                    self.write(wr, &reply.to_value()).await?;
                }
                // ovsdb-server sends no other request: one is a protocol error, not a guess.
                Message::Request { method, .. } => return Err(Error::UnknownMethod(method)),
                Message::Notification { method, params } => match method.as_str() {
                    "update" | "update2" | "update3" => {
                        // The consumer may have gone; the connection then ends with its handle.
                        let _ = self.incoming.send(Ok((method, params)));
                    }
                    _ => return Err(Error::UnknownMethod(method)),
                },
                Message::Reply { id, result } => {
                    if id.as_str() == Some(ECHO_ID) {
                        continue;
                    }
                    match id.as_u64().and_then(|n| self.pending.remove(&n)) {
                        Some((_, tx)) => {
                            let _ = tx.send(result);
                        }
                        None => debug!(%id, "reply to no request of ours, ignored"),
                    }
                }
            }
        }
        Ok(())
    }

    async fn write(&mut self, wr: &mut WriteHalf<BoxStream>, v: &Value) -> Result<(), Error> {
        self.wbuf.clear();
        self.codec.encode(v, &mut self.wbuf)?;
        wr.write_all(&self.wbuf).await?;
        wr.flush().await?;
        Ok(())
    }
}
