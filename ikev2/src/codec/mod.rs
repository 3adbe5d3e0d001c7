//! Decoding and encoding of IKEv2 messages and payloads (RFC 7296 §3, RFC 7383).
