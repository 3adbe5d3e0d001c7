//! Reauthentication (RFC 7296 §2.8.3).
