//! The control protocol's messages, and how the server turns one request line into a request
//! or an error reply.

pub use control_api::protocol::*;

/// Decodes one request line (without its newline): the version first, so that a client of
/// another version is told so rather than that its request is malformed.
pub fn decode_request(line: &[u8]) -> Result<Request, ErrorReply> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(request_too_large());
    }
    let probe: VersionProbe = serde_json::from_slice(line).map_err(|e| ErrorReply {
        code: ErrorCode::BadRequest,
        message: format!("not a request of the control protocol: {e}"),
    })?;
    if probe.version != PROTOCOL_VERSION {
        return Err(ErrorReply {
            code: ErrorCode::VersionMismatch,
            message: format!(
                "client speaks protocol version {}, ovn-ipsecd speaks version {PROTOCOL_VERSION}",
                probe.version
            ),
        });
    }
    let envelope: RequestEnvelope = serde_json::from_slice(line).map_err(|e| ErrorReply {
        code: ErrorCode::BadRequest,
        message: format!("malformed request: {e}"),
    })?;
    if let Some(peer) = envelope.request.peer() {
        check_peer_name(peer)?;
    }
    Ok(envelope.request)
}

/// The error for a request line longer than [`MAX_REQUEST_BYTES`].
pub fn request_too_large() -> ErrorReply {
    ErrorReply {
        code: ErrorCode::RequestTooLarge,
        message: format!("request longer than {MAX_REQUEST_BYTES} bytes"),
    }
}

/// Encodes a reply as one line, newline included.
pub fn encode_reply(outcome: Outcome) -> Vec<u8> {
    let envelope = ReplyEnvelope {
        version: PROTOCOL_VERSION,
        outcome,
    };
    let mut line = match serde_json::to_vec(&envelope) {
        Ok(line) => line,
        // Our reply types hold only strings, numbers and addresses; this cannot happen, but a
        // valid reply beats a panic if it ever does.
        Err(_) => {
            br#"{"version":1,"error":{"code":"failed","message":"reply encoding failed"}}"#.to_vec()
        }
    };
    line.push(b'\n');
    line
}

/// A peer name must be a plausible chassis name: bounded, printable, no whitespace.
fn check_peer_name(peer: &str) -> Result<(), ErrorReply> {
    let bad = |why: &str| ErrorReply {
        code: ErrorCode::BadRequest,
        message: format!("peer name {why}"),
    };
    if peer.is_empty() {
        return Err(bad("is empty"));
    }
    if peer.len() > MAX_PEER_NAME_BYTES {
        return Err(bad(&format!("is longer than {MAX_PEER_NAME_BYTES} bytes")));
    }
    if peer.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains whitespace or control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_of_another_version_reports_version_mismatch_even_with_unknown_kind() {
        let err = decode_request(br#"{"version":2,"request":{"kind":"teleport"}}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::VersionMismatch);
        assert!(err.message.contains("version 2"), "{}", err.message);
    }

    #[test]
    fn garbage_and_unknown_kinds_are_bad_requests() {
        for line in [
            &b"\xff\xfe"[..],
            b"{",
            b"[]",
            br#"{"version":"1"}"#,
            br#"{"version":1,"request":{"kind":"teleport"}}"#,
            br#"{"version":1,"request":{"kind":"initiate"}}"#,
            br#"{"version":1,"request":{"kind":"initiate","peer":""}}"#,
            br#"{"version":1,"request":{"kind":"rekey","peer":"a b"}}"#,
        ] {
            let err = decode_request(line).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{line:?}");
        }
    }

    #[test]
    fn per_peer_request_decodes() {
        let request =
            decode_request(br#"{"version":1,"request":{"kind":"rekey","peer":"chassis-b"}}"#)
                .unwrap();
        assert_eq!(
            request,
            Request::Rekey {
                peer: "chassis-b".into()
            }
        );
    }

    #[test]
    fn overlong_line_is_refused_before_parsing() {
        let line = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            decode_request(&line).unwrap_err().code,
            ErrorCode::RequestTooLarge
        );
    }
}
