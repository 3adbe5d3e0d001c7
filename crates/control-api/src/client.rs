//! A blocking client of the control socket: connect, send one request line, read one reply
//! line, check the version.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{
    ErrorCode, ErrorReply, Outcome, ReplyEnvelope, Request, RequestEnvelope, Response,
    VersionProbe, MAX_REPLY_BYTES, PROTOCOL_VERSION,
};

/// How long a client waits for the daemon to answer before giving up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Ways a call to the daemon can fail, each a different answer for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing exists at the socket path: the daemon is not running (or uses another path).
    #[error("ovn-ipsecd is not running: no control socket at {path}")]
    SocketMissing {
        /// The socket path tried.
        path: PathBuf,
    },
    /// A socket file exists but nobody accepts on it: the daemon stopped without removing it.
    #[error("ovn-ipsecd is not running: nothing listens on {path}")]
    NotListening {
        /// The socket path tried.
        path: PathBuf,
    },
    /// The socket's mode or owner does not let this user connect.
    #[error("permission denied on {path}: run as root or as a member of the control group")]
    PermissionDenied {
        /// The socket path tried.
        path: PathBuf,
    },
    /// Client and daemon speak different protocol versions.
    #[error("protocol version mismatch: ipsecctl speaks version {client}, ovn-ipsecd speaks version {server}; use the ipsecctl installed with the daemon")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        client: u32,
        /// The daemon's.
        server: u32,
    },
    /// The daemon answered with an error.
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Server(ErrorReply),
    /// The reply line is longer than [`MAX_REPLY_BYTES`].
    #[error("the reply is larger than {MAX_REPLY_BYTES} bytes")]
    ReplyTooLarge,
    /// The daemon closed the connection without a complete reply.
    #[error("ovn-ipsecd closed the connection without replying")]
    Closed,
    /// The reply is not a valid reply of this protocol version.
    #[error("malformed reply from ovn-ipsecd: {0}")]
    BadReply(serde_json::Error),
    /// Another I/O error (timeout, reset).
    #[error("talking to ovn-ipsecd at {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A connection to the daemon's control socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path`; every read and write waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let path = path.to_path_buf();
        let stream = UnixStream::connect(&path).map_err(|e| connect_error(&path, e))?;
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Ok(Client {
            path,
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and returns the daemon's response, or why there is none.
    pub fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let envelope = RequestEnvelope {
            version: PROTOCOL_VERSION,
            request,
        };
        // Serialising our own plain types cannot fail; map it anyway rather than unwrap.
        let mut line = serde_json::to_vec(&envelope).map_err(ClientError::BadReply)?;
        line.push(b'\n');
        self.send_raw(&line)?;

        let reply = self.read_reply_line()?;
        parse_reply(&reply)
    }

    /// Writes bytes as they are (tests use it to send malformed requests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let path = self.path.clone();
        let stream = self.reader.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|source| ClientError::Io { path, source })
    }

    /// Reads one reply line, bounded by [`MAX_REPLY_BYTES`], without its newline.
    pub fn read_reply_line(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut line = Vec::new();
        let limit = (MAX_REPLY_BYTES as u64).saturating_add(1);
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if line.last() == Some(&b'\n') {
            line.pop();
            return Ok(line);
        }
        if read as u64 >= limit {
            return Err(ClientError::ReplyTooLarge);
        }
        Err(ClientError::Closed)
    }
}

/// Checks a reply line's version, then decodes it.
pub fn parse_reply(line: &[u8]) -> Result<Response, ClientError> {
    let probe: VersionProbe = serde_json::from_slice(line).map_err(ClientError::BadReply)?;
    if probe.version != PROTOCOL_VERSION {
        return Err(ClientError::VersionMismatch {
            client: PROTOCOL_VERSION,
            server: probe.version,
        });
    }
    let reply: ReplyEnvelope = serde_json::from_slice(line).map_err(ClientError::BadReply)?;
    match reply.outcome {
        Outcome::Ok(response) => Ok(response),
        Outcome::Error(e) if e.code == ErrorCode::VersionMismatch => {
            Err(ClientError::VersionMismatch {
                client: PROTOCOL_VERSION,
                server: reply.version,
            })
        }
        Outcome::Error(e) => Err(ClientError::Server(e)),
    }
}

fn connect_error(path: &Path, e: std::io::Error) -> ClientError {
    use std::io::ErrorKind;
    let path = path.to_path_buf();
    match e.kind() {
        ErrorKind::NotFound => ClientError::SocketMissing { path },
        ErrorKind::ConnectionRefused => ClientError::NotListening { path },
        ErrorKind::PermissionDenied => ClientError::PermissionDenied { path },
        _ => ClientError::Io { path, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ActionDone;

    #[test]
    fn reply_from_another_version_is_a_version_mismatch() {
        let err = parse_reply(br#"{"version":7,"ok":{"kind":"something_new"}}"#).unwrap_err();
        assert!(matches!(
            err,
            ClientError::VersionMismatch {
                client: PROTOCOL_VERSION,
                server: 7
            }
        ));
    }

    #[test]
    fn unknown_error_code_from_a_newer_server_still_decodes() {
        let err = parse_reply(br#"{"version":1,"error":{"code":"brand_new","message":"m"}}"#)
            .unwrap_err();
        assert!(matches!(
            err,
            ClientError::Server(ErrorReply {
                code: ErrorCode::Unknown,
                ..
            })
        ));
    }

    #[test]
    fn done_reply_round_trips() {
        let reply = ReplyEnvelope {
            version: PROTOCOL_VERSION,
            outcome: Outcome::Ok(Response::Done(ActionDone {
                message: "ok".into(),
            })),
        };
        let line = serde_json::to_vec(&reply).unwrap();
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            r#"{"version":1,"ok":{"kind":"done","message":"ok"}}"#
        );
        assert_eq!(
            parse_reply(&line).unwrap(),
            Response::Done(ActionDone {
                message: "ok".into()
            })
        );
    }

    #[test]
    fn connecting_to_a_missing_path_says_the_socket_is_missing() {
        let err =
            Client::connect(Path::new("/nonexistent/ovn-ipsec.sock"), DEFAULT_TIMEOUT).unwrap_err();
        assert!(matches!(err, ClientError::SocketMissing { .. }));
    }
}
