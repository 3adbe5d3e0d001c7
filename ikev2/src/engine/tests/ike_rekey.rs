//! IKE SA rekeying (RFC 7296 §2.18) and its collisions (§2.8.1).
